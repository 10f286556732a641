"""Write the tiny VOC-layout and COCO-layout fixtures in data/fixtures/ from ShapesDataset (deterministic).

They are generated shapes, not VOC or COCO photographs (see data/fixtures/README.md).

    python scripts/make_fixtures.py [--out data/fixtures]

VOC (data/fixtures/voc/VOCdevkit/VOC2012/): 4 images of 160 x 120 px, train.txt (3 ids) and val.txt (1 id).
The shapes are only renamed after VOC classes (circle -> bottle, square -> cow, triangle -> person, i.e. label * 5),
the first object of the second image is marked difficult, and the first box of the third image is written
9 px wider than the image (the loader must clip it).

COCO (data/fixtures/coco/): images/ with 4 images and annotations.json with sparse category ids listed out
of order (square 7, circle 3, triangle 11), image ids 101..104, one image without objects, one crowd
annotation, and one box reaching 20 px past the right edge.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image

from ssd_tutorial.config import VOC_CLASSES
from ssd_tutorial.data.shapes import ShapesDataset

WIDTH, HEIGHT = 160, 120
JPEG_QUALITY = 75
VOC_LABEL_FACTOR = 5  # shapes label 1, 2, 3 -> VOC classes 5, 10, 15 (bottle, cow, person)
COCO_CATEGORIES = [{"id": 7, "name": "square"}, {"id": 3, "name": "circle"}, {"id": 11, "name": "triangle"}]
COCO_ID_OF_SHAPE = {1: 3, 2: 7, 3: 11}


def crop_samples(seed: int, count: int, want_empty: int = -1) -> list[dict]:
    """``count`` ShapesDataset (160 px) images cropped to 160 x 120, each with >= 2 boxes, all inside the crop.

    ``want_empty``: position in the returned list that must hold an image without objects (-1: none).
    """
    data = ShapesDataset(10_000, image_size=WIDTH, seed=seed, max_objects=3)
    samples, index = [], 0
    while len(samples) < count:
        image, target = data[index]
        boxes, labels = target["boxes"].numpy(), target["labels"].numpy()
        empty_wanted = len(samples) == want_empty
        usable = len(boxes) == 0 if empty_wanted else (len(boxes) >= 2 and boxes[:, 3].max() <= HEIGHT)
        if usable:
            pixels = (image[:, :HEIGHT, :].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # [H, W, 3]
            samples.append({"index": index, "pixels": pixels, "boxes": boxes, "labels": labels})
        index += 1
    return samples


def voc_samples() -> list[dict]:
    """The VOC fixture: id, pixels, boxes (continuous xyxy), VOC labels, difficult flags, split, written boxes."""
    samples = crop_samples(seed=2012, count=4)
    for k, s in enumerate(samples):
        s["id"] = f"2012_{k + 1:06d}"
        s["split"] = "val" if k == 3 else "train"
        s["voc_labels"] = s["labels"] * VOC_LABEL_FACTOR
        s["difficult"] = np.zeros(len(s["boxes"]), dtype=bool)
        written = s["boxes"].copy()
        if k == 1:
            s["difficult"][0] = True
        if k == 2:
            written[0, 2] = WIDTH + 9
        s["written_boxes"] = written
    return samples


def write_voc(out: Path) -> None:
    voc = out / "voc" / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    samples = voc_samples()
    for s in samples:
        Image.fromarray(s["pixels"]).save(voc / "JPEGImages" / f"{s['id']}.jpg", quality=JPEG_QUALITY)
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "VOC2012"
        ET.SubElement(root, "filename").text = f"{s['id']}.jpg"
        size = ET.SubElement(root, "size")
        for tag, value in (("width", WIDTH), ("height", HEIGHT), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        ET.SubElement(root, "segmented").text = "0"
        for box, label, difficult in zip(s["written_boxes"], s["voc_labels"], s["difficult"]):
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = VOC_CLASSES[int(label)]
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = str(int(difficult))
            bndbox = ET.SubElement(obj, "bndbox")
            # VOC: 1-based, inclusive pixel indices.
            x1, y1, x2, y2 = (int(v) for v in box)
            for tag, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
                ET.SubElement(bndbox, tag).text = str(value)
        ET.indent(root)
        ET.ElementTree(root).write(voc / "Annotations" / f"{s['id']}.xml", encoding="unicode")
    for split in ("train", "val"):
        ids = [s["id"] for s in samples if s["split"] == split]
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


def coco_samples() -> list[dict]:
    """The COCO fixture: image id, file name, pixels, boxes (continuous xyxy), shape labels, written annotations."""
    samples = crop_samples(seed=2017, count=4, want_empty=1)
    ann_id = 1
    for k, s in enumerate(samples):
        s["image_id"] = 101 + k
        s["file_name"] = f"{s['image_id']:012d}.jpg"
        s["annotations"] = []
        for j, (box, label) in enumerate(zip(s["boxes"], s["labels"])):
            x1, y1, x2, y2 = (float(v) for v in box)
            w = (WIDTH + 20.0 if (k == 2 and j == 0) else x2) - x1  # one box reaches 20 px past the right edge
            category = COCO_ID_OF_SHAPE[int(label)]
            s["annotations"].append({"id": ann_id, "image_id": s["image_id"], "category_id": category,
                                     "bbox": [x1, y1, w, y2 - y1], "area": w * (y2 - y1), "iscrowd": 0,
                                     "segmentation": []})  # fmt: skip
            ann_id += 1
        if k == 3:  # a crowd region over the top-left quarter
            s["annotations"].append({"id": ann_id, "image_id": s["image_id"], "category_id": 3,
                                     "bbox": [0.0, 0.0, 80.0, 60.0], "area": 4800.0, "iscrowd": 1,
                                     "segmentation": {"counts": [0, 4800], "size": [HEIGHT, WIDTH]}})  # fmt: skip
            ann_id += 1
    return samples


def write_coco(out: Path) -> None:
    coco = out / "coco"
    (coco / "images").mkdir(parents=True, exist_ok=True)
    samples = coco_samples()
    for s in samples:
        Image.fromarray(s["pixels"]).save(coco / "images" / s["file_name"], quality=JPEG_QUALITY)
    dataset = {
        "info": {"description": "ssd_tutorial COCO fixture, generated by scripts/make_fixtures.py"},
        "images": [{"id": s["image_id"], "file_name": s["file_name"], "width": WIDTH, "height": HEIGHT}
                   for s in samples],
        "annotations": [a for s in samples for a in s["annotations"]],
        "categories": COCO_CATEGORIES,
    }  # fmt: skip
    (coco / "annotations.json").write_text(json.dumps(dataset, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "fixtures")
    args = parser.parse_args(argv)
    write_voc(args.out)
    write_coco(args.out)


if __name__ == "__main__":
    main()
