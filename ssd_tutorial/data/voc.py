"""PASCAL VOC detection from a local folder, over torchvision.datasets.VOCDetection (never downloads).

Introduced in: 08_your_own_dataset.ipynb
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.etree.ElementTree import parse as parse_xml

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets import VOCDetection

from ..config import VOC_CLASSES
from ._common import check_index, clip_to_image, load_rgb
from .transforms import to_plain, to_tv_tensors

__all__ = ["voc_dataset", "VOCDataset"]

_YEARS = ("2007", "2008", "2009", "2010", "2011", "2012")
_DOWNLOAD_HINT = (
    "Download the PASCAL VOC {year} 'trainval' archive (and for 2007 'test') from "
    "http://host.robots.ox.ac.uk/pascal/VOC/voc{year}/ and extract it into {root}, so that "
    "{root}/VOCdevkit/VOC{year}/ holds ImageSets/Main/, JPEGImages/ and Annotations/."
)


def _voc_root(root: Path, year: str, image_set: str) -> Path:
    """The VOC{year} folder, after checking the layout VOCDetection expects; FileNotFoundError otherwise."""
    hint = _DOWNLOAD_HINT.format(year=year, root=root)
    if not root.is_dir():
        raise FileNotFoundError(f"VOC root folder not found: {root}. {hint}")
    voc_root = root / "VOCdevkit" / f"VOC{year}"
    if not voc_root.is_dir():
        inside = " (root looks like the VOC folder itself: pass the folder that contains VOCdevkit/)" if (
            root / "JPEGImages").is_dir() else ""  # fmt: skip
        raise FileNotFoundError(f"VOC folder not found: {voc_root}{inside}. {hint}")
    for needed in (voc_root / "ImageSets" / "Main" / f"{image_set}.txt", voc_root / "JPEGImages",
                   voc_root / "Annotations"):  # fmt: skip
        if not needed.exists():
            raise FileNotFoundError(f"VOC {image_set} split needs {needed}, which does not exist. {hint}")
    return voc_root


class VOCDataset(Dataset):
    """PASCAL VOC items as ``(image Tensor[3, H, W] float32 in [0, 1], target)``; see :func:`voc_dataset`."""

    class_names: tuple[str, ...] = VOC_CLASSES

    def __init__(self, root: str | os.PathLike, image_set: str = "train",
                 transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None, year: str = "2012",
                 keep_difficult: bool = True) -> None:  # fmt: skip
        year = str(year)
        if year not in _YEARS:
            raise ValueError(f"year must be one of {_YEARS}, got {year!r}")
        valid_sets = ("train", "trainval", "val", "test") if year == "2007" else ("train", "trainval", "val")
        if image_set not in valid_sets:
            raise ValueError(f"image_set must be one of {valid_sets} for VOC{year}, got {image_set!r}")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable or None, got {type(transforms).__name__}")
        self.root = Path(root)
        self.voc_root = _voc_root(self.root, year, image_set)
        self.year, self.image_set = year, image_set
        self.transforms = transforms
        self.keep_difficult = keep_difficult
        self._voc = VOCDetection(str(self.root), year=year, image_set=image_set, download=False)
        self._label_of = {name: label for label, name in enumerate(self.class_names) if label > 0}

    @property
    def images(self) -> list[str]:
        """Paths of the JPEG images, in split-file order."""
        return self._voc.images

    @property
    def annotations(self) -> list[str]:
        """Paths of the XML annotations, in split-file order."""
        return self._voc.annotations

    def __len__(self) -> int:
        return len(self._voc)

    def _target(self, index: int, height: int, width: int) -> dict[str, Tensor]:
        path = self.annotations[index]
        try:
            tree = parse_xml(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"VOC annotation file not found: {path}") from None
        except ParseError as err:
            raise ValueError(f"could not parse VOC annotation file {path}: {err}") from err
        objects = VOCDetection.parse_voc_xml(tree.getroot())["annotation"].get("object", [])
        objects = [objects] if isinstance(objects, dict) else objects
        boxes, labels, difficult = [], [], []
        for obj in objects:
            if obj["name"] not in self._label_of:
                raise ValueError(f"{path}: unknown VOC class {obj['name']!r}; expected one of {VOC_CLASSES[1:]}")
            bb = obj["bndbox"]
            # VOC counts pixels from 1 and includes both ends: pixel k spans [k - 1, k] in box coordinates.
            boxes.append([float(bb["xmin"]) - 1, float(bb["ymin"]) - 1, float(bb["xmax"]), float(bb["ymax"])])
            labels.append(self._label_of[obj["name"]])
            difficult.append(bool(int(obj.get("difficult", "0") or 0)))
        boxes_t = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)  # [M, 4]
        boxes_t, keep = clip_to_image(boxes_t, height, width, source=path)
        difficult_t = torch.tensor(difficult, dtype=torch.bool)
        if not self.keep_difficult:
            keep &= ~difficult_t
        return {"boxes": boxes_t[keep], "labels": torch.tensor(labels, dtype=torch.int64)[keep],
                "difficult": difficult_t[keep]}  # fmt: skip

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        i = check_index(index, len(self), "VOCDataset")
        image = load_rgb(self.images[i])  # [3, H, W] uint8
        target = self._target(i, image.shape[-2], image.shape[-1])
        if self.transforms is not None:
            return to_plain(*self.transforms(*to_tv_tensors(image, target)))
        return to_plain(image, target)

    def __repr__(self) -> str:
        return f"VOCDataset(root={str(self.root)!r}, year={self.year!r}, image_set={self.image_set!r}, n={len(self)})"


def voc_dataset(root: str | os.PathLike, image_set: str = "train",
                transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None, year: str = "2012", *,
                keep_difficult: bool = True) -> VOCDataset:  # fmt: skip
    """PASCAL VOC detection from ``root/VOCdevkit/VOC{year}`` (torchvision's layout; nothing is downloaded).

    Item ``i`` is ``(image Tensor[3, H, W] float32 in [0, 1], {"boxes": Tensor[M, 4] float32 xyxy pixels,
    "labels": Tensor[M] long in 1..20 (config.VOC_CLASSES order), "difficult": Tensor[M] bool})``.
    VOC's 1-based inclusive pixel indices become continuous coordinates: ``(xmin - 1, ymin - 1, xmax, ymax)``.
    Boxes reaching outside the image are clipped to it (a :class:`BoxesClippedWarning` names the file
    and the count); boxes left without area are dropped.

    Args:
        root: folder that contains ``VOCdevkit/``.
        image_set: ``"train"``, ``"val"``, ``"trainval"`` (or ``"test"`` for 2007).
        transforms: optional ``(image, target) -> (image, target)`` v2-style callable (e.g. ``train_transforms(cfg)``);
            it gets a ``tv_tensors.Image`` (uint8) and ``BoundingBoxes``; its output is turned into plain tensors.
        year: ``"2007"`` … ``"2012"``.
        keep_difficult: False drops the boxes marked difficult (common for training).

    Raises:
        FileNotFoundError: the folder layout is wrong (names the missing file and how to get the data).

    Introduced in: 08_your_own_dataset.ipynb
    """
    return VOCDataset(root, image_set, transforms, year, keep_difficult)
