"""Tests for ssd_tutorial.data.coco on the tiny fixture in data/fixtures/coco (made by scripts/make_fixtures.py)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ssd_tutorial.config import TINY_SHAPES
from ssd_tutorial.data import coco_dataset, collate_detection, eval_transforms, train_transforms
from ssd_tutorial.data._common import BoxesClippedWarning
from ssd_tutorial.evaluate import coco_map, mean_average_precision

REPO = Path(__file__).resolve().parents[1]
COCO_DIR = REPO / "data" / "fixtures" / "coco"
IMAGES, ANNOTATIONS = COCO_DIR / "images", COCO_DIR / "annotations.json"


@pytest.fixture(scope="module")
def samples(make_fixtures):  # make_fixtures, fixture_copy, fresh_fixtures, read_all: tests/conftest.py
    return {s["image_id"]: s for s in make_fixtures.coco_samples()}


def test_category_mapping_is_contiguous_and_exposed():
    ds = coco_dataset(IMAGES, ANNOTATIONS)
    # Categories are listed as 7, 3, 11 in the file; sorted by id they become labels 1, 2, 3.
    assert ds.label_to_category_id == {1: 3, 2: 7, 3: 11}
    assert ds.category_id_to_label == {3: 1, 7: 2, 11: 3}
    assert ds.class_names == ("__background__", "circle", "square", "triangle")
    assert ds.class_names == TINY_SHAPES.class_names  # so a shapes model can train on it unchanged


def test_items_match_the_source(samples, read_all):
    ds = coco_dataset(IMAGES, ANNOTATIONS)
    assert len(ds) == 4 and ds.ids == [101, 102, 103, 104]
    for image, target in read_all(ds):
        s = samples[target["image_id"]]
        assert type(image) is torch.Tensor and image.shape == (3, 120, 160) and image.dtype == torch.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        crowd = [a for a in s["annotations"] if a["iscrowd"]]
        n = len(s["boxes"])
        assert target["boxes"].shape == (n + len(crowd), 4) and target["boxes"].dtype == torch.float32
        # Shapes labels 1, 2, 3 are the fixture's circle, square, triangle: the same after the mapping.
        assert target["labels"][:n].tolist() == s["labels"].tolist()
        expected = torch.from_numpy(s["boxes"]).clamp(max=160)
        if s["image_id"] == 103:
            expected[0, 2] = 160  # written 20 px past the right edge, clipped
        assert torch.equal(target["boxes"][:n], expected)
        assert target["difficult"].tolist() == [False] * n + [True] * len(crowd)


def test_image_without_objects():
    ds = coco_dataset(IMAGES, ANNOTATIONS)
    _, target = ds[1]
    assert target["image_id"] == 102
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,) and target["labels"].dtype == torch.int64
    assert target["difficult"].shape == (0,)


def test_crowd_boxes_are_difficult_and_can_be_dropped():
    ds = coco_dataset(IMAGES, ANNOTATIONS)
    _, target = ds[3]
    assert target["difficult"].tolist() == [False, False, True]
    assert target["boxes"][2].tolist() == [0.0, 0.0, 80.0, 60.0]
    _, kept = coco_dataset(IMAGES, ANNOTATIONS, keep_difficult=False)[3]
    assert kept["difficult"].tolist() == [False, False] and len(kept["labels"]) == 2


def test_box_outside_the_image_is_clipped_with_a_warning():
    ds = coco_dataset(IMAGES, ANNOTATIONS)
    with pytest.warns(BoxesClippedWarning, match=r"annotations\.json \(image id 103.*1 box\(es\) outside"):
        ds[2]
    with warnings.catch_warnings():
        warnings.simplefilter("error", BoxesClippedWarning)
        ds[0]  # nothing to clip, no warning


def test_loading_prints_nothing(capsys):
    coco_dataset(IMAGES, ANNOTATIONS)[0]
    assert capsys.readouterr().out == ""


def test_transforms_and_loader():
    ds = coco_dataset(IMAGES, ANNOTATIONS, transforms=eval_transforms(TINY_SHAPES))
    raw = coco_dataset(IMAGES, ANNOTATIONS)
    image, target = ds[0]
    assert image.shape == (3, 128, 128) and target["image_id"] == 101
    assert torch.allclose(target["boxes"], raw[0][1]["boxes"] * torch.tensor([0.8, 128 / 120, 0.8, 128 / 120]))
    torch.manual_seed(0)
    train = coco_dataset(IMAGES, ANNOTATIONS, transforms=train_transforms(TINY_SHAPES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoxesClippedWarning)
        images, targets = next(iter(DataLoader(train, batch_size=4, collate_fn=collate_detection)))
    assert images.shape == (4, 3, 128, 128)
    assert targets[1]["boxes"].shape == (0, 4)  # the empty image stays empty
    assert all(len(t["boxes"]) == len(t["labels"]) == len(t["difficult"]) for t in targets)


def test_targets_evaluate_perfectly_against_themselves(read_all):
    targets = [t for _, t in read_all(coco_dataset(IMAGES, ANNOTATIONS))]
    detections = [{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"]))} for t in targets]
    assert mean_average_precision(detections, targets)["map"] == pytest.approx(1.0)
    assert coco_map(detections, targets)["map"] == pytest.approx(1.0)


def test_missing_files_name_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"annotation file not found: .*missing\.json.*cocodataset\.org"):
        coco_dataset(IMAGES, tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match=r"images folder not found: .*no_images"):
        coco_dataset(tmp_path / "no_images", ANNOTATIONS)


@pytest.fixture
def coco_copy(fixture_copy):
    root = fixture_copy("coco")
    return root / "images", root / "annotations.json"


def test_broken_annotation_file(coco_copy):
    images, annotations = coco_copy
    annotations.write_text("{not json")
    with pytest.raises(ValueError, match=r"could not parse .*annotations\.json"):
        coco_dataset(images, annotations)
    annotations.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [
        {"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "x"}]}))  # fmt: skip
    shutil.copy(images / "000000000101.jpg", images / "a.jpg")
    with pytest.raises(ValueError, match=r"category ids \[5\]"):
        coco_dataset(images, annotations)[0]


def test_corrupt_or_missing_image_names_the_file(coco_copy):
    images, annotations = coco_copy
    (images / "000000000101.jpg").write_bytes(b"\x89PNG garbage")
    (images / "000000000102.jpg").unlink()
    ds = coco_dataset(images, annotations)
    with pytest.raises(OSError, match=r"could not read image file .*000000000101\.jpg"):
        ds[0]
    with pytest.raises(FileNotFoundError, match=r"000000000102\.jpg"):
        ds[1]
    with pytest.raises(IndexError):
        ds[4]


def test_fixtures_are_reproducible(fresh_fixtures):
    fresh = fresh_fixtures / "coco"
    assert (fresh / "annotations.json").read_text() == ANNOTATIONS.read_text()
    names = sorted(p.name for p in IMAGES.iterdir())
    assert names == sorted(p.name for p in (fresh / "images").iterdir())
    from PIL import Image

    for name in names:
        a = np.asarray(Image.open(IMAGES / name), dtype=np.int16)
        b = np.asarray(Image.open(fresh / "images" / name), dtype=np.int16)
        assert np.abs(a - b).max() <= 2, name  # JPEG encoders may differ by a rounding


def test_own_class_names_come_from_categories(own_classes, samples, read_all):
    ds = coco_dataset(own_classes["coco_images"], own_classes["coco_annotations"])
    # Categories sorted by id: 3 (circle -> "mug"), 7 (square -> "cat"), 11 (triangle -> "teapot").
    assert ds.class_names == ("__background__", "mug", "cat", "teapot")
    assert ds.label_to_category_id == {1: 3, 2: 7, 3: 11}
    for _, target in read_all(ds):
        s = samples[target["image_id"]]
        n = len(s["boxes"])
        assert [ds.class_names[k] for k in target["labels"][:n]] == [("mug", "cat", "teapot")[int(k) - 1]
                                                                      for k in s["labels"]]  # fmt: skip


def _write(annotations: Path, data: dict) -> Path:
    annotations.write_text(json.dumps(data))
    return annotations


def test_bad_annotation_content_names_the_file_and_the_id(coco_copy):
    images, annotations = coco_copy
    original = json.loads(annotations.read_text())
    for key in ("images", "categories", "annotations"):
        data = {k: v for k, v in original.items() if k != key}
        with pytest.raises(ValueError, match=rf"annotations\.json is not a COCO detection file: missing key\(s\) "
                                             rf"\['{key}'\]"):  # fmt: skip
            coco_dataset(images, _write(annotations, data))
    with pytest.raises(ValueError, match=r"annotations\.json: a COCO file holds a JSON object, got a JSON list"):
        coco_dataset(images, _write(annotations, [original]))
    cases = [
        (lambda d: d["annotations"][2].update(bbox=[94.0, 79.0, 86.0]), r"annotation id 3: 'bbox' must be 4 finite"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, "3", 4]), r"annotation id 1: 'bbox' must be 4 finite"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, float("nan"), 4]), r"annotation id 1: 'bbox' must be 4"),
        (lambda d: d["annotations"][1].update(bbox=[9, 17, -22, 21]), r"annotation id 2: .*negative size"),
        (lambda d: d["annotations"][1].update(image_id=999), r"annotation id 2: 'image_id' 999 is not in 'images'"),
        (lambda d: d["annotations"][1].pop("bbox"), r"annotations\[1\] needs the key\(s\) \['bbox'\]"),
        (lambda d: d["images"][0].pop("file_name"), r"images\[0\] needs the key\(s\) \['file_name'\]"),
        (lambda d: d["categories"][0].update(id="7"), r"categories\[0\] 'id' must be an int, got '7'"),
        (lambda d: d["categories"].append({"id": 3, "name": "again"}), r"'categories' repeats the id\(s\) \[3\]"),
        (lambda d: d.update(categories=[]), r"'categories' is empty"),
        (lambda d: d.update(images=[], annotations=[]), r"'images' is empty"),
        (lambda d: d.update(annotations={}), r"'annotations' must be a list, got dict"),
    ]
    for change, message in cases:
        data = json.loads(json.dumps(original))
        change(data)
        with pytest.raises(ValueError, match=r"annotations\.json.*" + message):
            coco_dataset(images, _write(annotations, data))


def test_download_hint_names_the_official_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        coco_dataset(IMAGES, tmp_path / "missing.json")
    for url in ("http://images.cocodataset.org/zips/val2017.zip",
                "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"):  # fmt: skip
        assert url in str(info.value)
