"""COCO-format detection from a local folder, over torchvision.datasets.CocoDetection (never downloads).

COCO category ids are sparse (1..90 with gaps for COCO itself; anything in your own files). The model
wants contiguous labels 1..K, so categories sorted by id get labels 1, 2, ..., K; the mapping is kept on
the dataset (``label_to_category_id``, ``category_id_to_label``) to write results back in COCO ids.

Introduced in: 08_your_own_dataset.ipynb
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
from torchvision.transforms.v2 import functional as F

from ._common import check_index, clip_to_image
from .transforms import to_plain, to_tv_tensors

__all__ = ["coco_dataset", "COCODataset", "check_coco_dict"]

_COCO_URLS = (
    "http://images.cocodataset.org/zips/train2017.zip",  # 118k training images, 18 GB
    "http://images.cocodataset.org/zips/val2017.zip",  # 5k validation images, 1 GB
    "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",  # instances_{train,val}2017.json
)
_DOWNLOAD_HINT = (
    f"For COCO 2017 itself (nothing is downloaded for you), fetch {_COCO_URLS[1]} (or {_COCO_URLS[0]}) and "
    f"{_COCO_URLS[2]}, unzip them and pass images_dir='.../val2017', "
    "annotation_file='.../annotations/instances_val2017.json'."
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_entries(dataset: dict, key: str, source: Path, needed: tuple[str, ...]) -> list[dict]:
    entries = dataset[key]
    if not isinstance(entries, list):
        raise ValueError(f"{source}: {key!r} must be a list, got {type(entries).__name__}")
    for k, entry in enumerate(entries):
        missing = [n for n in needed if not isinstance(entry, dict) or n not in entry]
        if missing:
            raise ValueError(f"{source}: {key}[{k}] needs the key(s) {missing}, got {entry!r:.120}")
        if not _is_int(entry["id"]):
            raise ValueError(f"{source}: {key}[{k}] 'id' must be an int, got {entry['id']!r}")
    counts = Counter(e["id"] for e in entries)
    if len(counts) != len(entries):
        repeated = sorted(i for i, n in counts.items() if n > 1)
        raise ValueError(f"{source}: {key!r} repeats the id(s) {repeated[:10]}")
    return entries


def check_coco_dict(dataset: Any, source: Path) -> None:
    """ValueError naming ``source`` and the key, entry or annotation id that a COCO detection file gets wrong."""
    if not isinstance(dataset, dict):
        raise ValueError(f"{source}: a COCO file holds a JSON object, got a JSON {type(dataset).__name__}")
    missing = [key for key in ("images", "annotations", "categories") if key not in dataset]
    if missing:
        raise ValueError(f"{source} is not a COCO detection file: missing key(s) {missing} "
                         f"(need 'images', 'annotations', 'categories'; found {sorted(dataset)[:10]})")  # fmt: skip
    images = _check_entries(dataset, "images", source, ("id", "file_name"))
    categories = _check_entries(dataset, "categories", source, ("id",))
    annotations = _check_entries(dataset, "annotations", source, ("id", "image_id", "category_id", "bbox"))
    if not images:
        raise ValueError(f"{source}: 'images' is empty, so the dataset would have no items")
    if not categories:
        raise ValueError(f"{source}: 'categories' is empty; list the object classes as {{'id': int, 'name': str}}")
    image_ids, category_ids, unknown = {i["id"] for i in images}, {c["id"] for c in categories}, set()
    for ann in annotations:
        where = f"{source}: annotation id {ann['id']}"
        bbox = ann["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise ValueError(f"{where}: 'bbox' must be 4 finite numbers [x, y, width, height], got {bbox!r:.120}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise ValueError(f"{where}: 'bbox' [x, y, width, height] has a negative size, got {bbox}")
        if ann["image_id"] not in image_ids:
            raise ValueError(f"{where}: 'image_id' {ann['image_id']!r} is not in 'images'")
        if ann["category_id"] not in category_ids:
            unknown.add(ann["category_id"])
    if unknown:
        raise ValueError(f"{source}: annotations use category ids {sorted(unknown, key=str)} missing from "
                         f"'categories' {sorted(category_ids)}")  # fmt: skip


class COCODataset(Dataset):
    """COCO items as ``(image Tensor[3, H, W] float32 in [0, 1], target)``; see :func:`coco_dataset`."""

    def __init__(self, images_dir: str | os.PathLike, annotation_file: str | os.PathLike,
                 transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None,
                 keep_difficult: bool = True) -> None:  # fmt: skip
        self.images_dir, self.annotation_file = Path(images_dir), Path(annotation_file)
        if not self.annotation_file.is_file():
            raise FileNotFoundError(f"COCO annotation file not found: {self.annotation_file}. {_DOWNLOAD_HINT}")
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"COCO images folder not found: {self.images_dir}. {_DOWNLOAD_HINT}")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable or None, got {type(transforms).__name__}")
        self.transforms = transforms
        self.keep_difficult = keep_difficult
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints while it loads
                base = CocoDetection(str(self.images_dir), str(self.annotation_file))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"could not parse COCO annotation file {self.annotation_file}: {err}") from err
        except (KeyError, TypeError, AssertionError) as err:  # pycocotools indexes the file blindly
            check_coco_dict(json.loads(self.annotation_file.read_text()), self.annotation_file)
            raise ValueError(f"{self.annotation_file} is not a COCO detection file (need 'images', 'annotations', "
                             f"'categories'): {err!r}") from err  # fmt: skip
        check_coco_dict(base.coco.dataset, self.annotation_file)
        self.coco = base.coco
        self.ids: list[int] = base.ids
        categories = sorted(self.coco.cats.values(), key=lambda c: c["id"])
        self.label_to_category_id: dict[int, int] = {k + 1: int(c["id"]) for k, c in enumerate(categories)}
        self.category_id_to_label: dict[int, int] = {cid: label for label, cid in self.label_to_category_id.items()}
        self.class_names: tuple[str, ...] = ("__background__", *(str(c.get("name", c["id"])) for c in categories))
        self._wrapped = wrap_dataset_for_transforms_v2(base, target_keys={"image_id", "boxes", "labels", "iscrowd"})

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> Path:
        """Path of the image file of item ``index``."""
        return self.images_dir / self.coco.imgs[self.ids[index]]["file_name"]

    def _labels(self, category_ids: Tensor, source: str) -> Tensor:
        labels = [self.category_id_to_label.get(int(c), -1) for c in category_ids.tolist()]
        if -1 in labels:
            unknown = sorted({int(c) for c, lab in zip(category_ids.tolist(), labels) if lab == -1})
            raise ValueError(f"{source}: annotations use category ids {unknown} missing from 'categories' "
                             f"{sorted(self.category_id_to_label)}")  # fmt: skip
        return torch.tensor(labels, dtype=torch.int64)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        i = check_index(index, len(self), "COCODataset")
        path = self.image_path(i)
        try:  # the v2 wrapper turns COCO's [x, y, w, h] lists into xyxy BoundingBoxes, per-box fields into lists
            pil_image, raw = self._wrapped[i]
        except FileNotFoundError:
            raise FileNotFoundError(f"image file not found: {path}") from None
        except (OSError, SyntaxError) as err:  # PIL: unidentified / truncated / corrupt data
            raise OSError(f"could not read image file {path}: {err}") from err
        image = F.pil_to_tensor(pil_image)  # [3, H, W] uint8
        height, width = image.shape[-2:]
        image_id = self.ids[i]
        source = f"{self.annotation_file} (image id {image_id}, {self.coco.imgs[image_id]['file_name']})"
        if "boxes" in raw:
            boxes = raw["boxes"].as_subclass(Tensor).to(torch.float32).reshape(-1, 4)  # [M, 4] xyxy
            labels = self._labels(raw["labels"], source)
            difficult = torch.tensor([bool(c) for c in raw["iscrowd"]], dtype=torch.bool)
        else:  # an image without annotations
            boxes, labels = torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)
            difficult = torch.zeros(0, dtype=torch.bool)
        boxes, keep = clip_to_image(boxes, height, width, source=source)
        if not self.keep_difficult:
            keep &= ~difficult
        target = {"boxes": boxes[keep], "labels": labels[keep], "difficult": difficult[keep], "image_id": image_id}
        if self.transforms is not None:
            return to_plain(*self.transforms(*to_tv_tensors(image, target)))
        return to_plain(image, target)

    def __repr__(self) -> str:
        return (f"COCODataset(images_dir={str(self.images_dir)!r}, annotation_file={str(self.annotation_file)!r}, "
                f"n={len(self)}, classes={len(self.class_names) - 1})")  # fmt: skip


def coco_dataset(images_dir: str | os.PathLike, annotation_file: str | os.PathLike,
                 transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None, *,
                 keep_difficult: bool = True) -> COCODataset:  # fmt: skip
    """COCO-format detection: images in ``images_dir``, annotations in a COCO json file (nothing is downloaded).

    Item ``i`` is ``(image Tensor[3, H, W] float32 in [0, 1], {"boxes": Tensor[M, 4] float32 xyxy pixels,
    "labels": Tensor[M] long in 1..K, "difficult": Tensor[M] bool, "image_id": int})``. Labels are the
    categories sorted by COCO id, numbered from 1 (``dataset.label_to_category_id``,
    ``dataset.category_id_to_label``, ``dataset.class_names`` with ``"__background__"`` first).
    ``"difficult"`` is COCO's ``iscrowd`` (evaluation ignores such boxes). Images without annotations give
    M = 0. Boxes reaching outside the image are clipped to it (a :class:`BoxesClippedWarning` names the
    image and the count); boxes left without area are dropped.

    Args:
        images_dir: folder with the image files named in the json's ``images[*].file_name``.
        annotation_file: COCO json (``images``, ``annotations``, ``categories``).
        transforms: optional ``(image, target) -> (image, target)`` v2-style callable; see :func:`voc_dataset`.
        keep_difficult: False drops crowd boxes (common for training).

    Nothing is downloaded. For COCO 2017 fetch and unzip http://images.cocodataset.org/zips/val2017.zip
    (or .../zips/train2017.zip) and http://images.cocodataset.org/annotations/annotations_trainval2017.zip,
    then pass ``images_dir=".../val2017"``, ``annotation_file=".../annotations/instances_val2017.json"``.

    Raises:
        FileNotFoundError: a missing folder or file, named, with how to get COCO.
        ValueError: a file that is not COCO detection json: a missing key, a bbox that is not 4 numbers,
            an unknown image or category id (names the file and the key or annotation id).

    Introduced in: 08_your_own_dataset.ipynb
    """
    return COCODataset(images_dir, annotation_file, transforms, keep_difficult)
