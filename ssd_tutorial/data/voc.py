"""PASCAL VOC layout (``VOCdevkit/VOC{year}``) from a local folder: real VOC or your own VOC-XML export.

The XML files are read here; torchvision's ``VOCDetection`` is only used for the opt-in ``download=True``.

Introduced in: 08_your_own_dataset.ipynb
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.etree.ElementTree import parse as parse_xml

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets import VOCDetection

from ..config import VOC_CLASSES
from ._common import check_index, clip_to_image, load_rgb
from .transforms import to_plain, to_tv_tensors

__all__ = ["voc_dataset", "VOCDataset", "VOC_CLASSES", "read_voc_objects"]

_YEARS = ("2007", "2008", "2009", "2010", "2011", "2012")
_DOWNLOAD_HINT = (
    "Download the PASCAL VOC {year} 'trainval' archive (and for 2007 'test') from "
    "http://host.robots.ox.ac.uk/pascal/VOC/voc{year}/ and extract it into {root}, so that "
    "{root}/VOCdevkit/VOC{year}/ holds ImageSets/Main/, JPEGImages/ and Annotations/ "
    "(or pass download=True to let torchvision fetch it)."
)


def _voc_root(root: Path, year: str, image_set: str) -> Path:
    """The VOC{year} folder, after checking the layout; FileNotFoundError otherwise."""
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


def _number(bndbox: Element, tag: str, where: str) -> float:
    text = bndbox.findtext(tag)
    if text is None:
        raise ValueError(f"{where}: <bndbox> has no <{tag}>")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: <{tag}> must be a number, got {text.strip()!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: <{tag}> must be finite, got {text.strip()!r}")
    return value


def read_voc_objects(path: str | os.PathLike) -> list[tuple[str, list[float], bool]]:
    """The objects of one VOC XML file as ``(name, [x1, y1, x2, y2] continuous pixels, difficult)``.

    VOC counts pixels from 1 and includes both ends: pixel k spans [k - 1, k], so a box becomes
    ``(xmin - 1, ymin - 1, xmax, ymax)``. Every error names the file and the object.
    """
    try:
        root = parse_xml(path).getroot()
    except FileNotFoundError:
        raise FileNotFoundError(f"VOC annotation file not found: {path}") from None
    except ParseError as err:
        raise ValueError(f"could not parse VOC annotation file {path}: {err}") from err
    objects = []
    for k, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        where = f"{path}: object {k} ({name!r})" if name else f"{path}: object {k}"
        if not name:
            raise ValueError(f"{where} has no <name>")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise ValueError(f"{where} has no <bndbox> (objects need <xmin>, <ymin>, <xmax>, <ymax>)")
        xmin, ymin, xmax, ymax = (_number(bndbox, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax"))
        box = [xmin - 1, ymin - 1, xmax, ymax]
        if box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"{where}: inverted box, xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g} "
                             "(need xmin <= xmax and ymin <= ymax, 1-based inclusive pixels)")  # fmt: skip
        flag = (obj.findtext("difficult") or "0").strip()
        if flag not in ("0", "1"):
            raise ValueError(f"{where}: <difficult> must be 0 or 1, got {flag!r}")
        objects.append((name, box, flag == "1"))
    return objects


def _split_ids(split_file: Path) -> list[str]:
    """Image ids listed in ``ImageSets/Main/{split}.txt``, blank lines skipped (first column only)."""
    return [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]


def _check_class_names(class_names: Any) -> tuple[str, ...]:
    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names must be a sequence of str (background first) or None, "
                        f"got {type(class_names).__name__} {class_names!r}")  # fmt: skip
    names = tuple(class_names)
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"class_names must all be str, got {names!r}")
    if len(names) < 2:
        raise ValueError(f"class_names must have the background and at least one class, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names!r}")
    return names


class VOCDataset(Dataset):
    """PASCAL VOC items as ``(image Tensor[3, H, W] float32 in [0, 1], target)``; see :func:`voc_dataset`."""

    def __init__(self, root: str | os.PathLike, image_set: str = "train",
                 transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None,
                 class_names: Sequence[str] | None = None, download: bool = False, year: str = "2012", *,
                 keep_difficult: bool = True) -> None:  # fmt: skip
        year = str(year)
        if year not in _YEARS:
            raise ValueError(f"year must be one of {_YEARS}, got {year!r}")
        valid_sets = ("train", "trainval", "val", "test") if year == "2007" else ("train", "trainval", "val")
        if image_set not in valid_sets:
            raise ValueError(f"image_set must be one of {valid_sets} for VOC{year}, got {image_set!r}")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable or None, got {type(transforms).__name__}")
        given = None if class_names is None else _check_class_names(class_names)
        self.root = Path(root)
        if download:  # torchvision fetches and extracts the official archive (md5-checked) into root
            VOCDetection(str(self.root), year=year, image_set=image_set, download=True)
        self.voc_root = _voc_root(self.root, year, image_set)
        self.year, self.image_set = year, image_set
        self.transforms = transforms
        self.keep_difficult = keep_difficult
        split_file = self.voc_root / "ImageSets" / "Main" / f"{image_set}.txt"
        ids = _split_ids(split_file)
        if not ids:
            raise ValueError(f"split {image_set!r} of {self.root} lists no images ({split_file} is empty)")
        self.images = [str(self.voc_root / "JPEGImages" / f"{i}.jpg") for i in ids]
        self.annotations = [str(self.voc_root / "Annotations" / f"{i}.xml") for i in ids]
        self.class_names: tuple[str, ...] = given if given is not None else self._names_from_xml()
        self._label_of = {name: label for label, name in enumerate(self.class_names) if label > 0}

    def _names_from_xml(self) -> tuple[str, ...]:
        """VOC_CLASSES when every name of the split is a VOC class, else background + the sorted names found."""
        found = {name for path in self.annotations for name, _, _ in read_voc_objects(path)}
        if found <= set(VOC_CLASSES[1:]):
            return VOC_CLASSES
        return ("__background__", *sorted(found))

    def __len__(self) -> int:
        return len(self.images)

    def _target(self, index: int, height: int, width: int) -> dict[str, Tensor]:
        path = self.annotations[index]
        boxes, labels, difficult = [], [], []
        for name, box, flag in read_voc_objects(path):
            if name not in self._label_of:
                why = "the background (class_names[0])" if name == self.class_names[0] else "not in class_names"
                raise ValueError(f"{path}: object class {name!r} is {why}; class_names are {self.class_names[1:]} "
                                 "after the background")  # fmt: skip
            boxes.append(box)
            labels.append(self._label_of[name])
            difficult.append(flag)
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
        return (f"VOCDataset(root={str(self.root)!r}, year={self.year!r}, image_set={self.image_set!r}, "
                f"n={len(self)}, classes={len(self.class_names) - 1})")  # fmt: skip


def voc_dataset(root: str | os.PathLike, image_set: str = "train",
                transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None,
                class_names: Sequence[str] | None = None, download: bool = False, year: str = "2012", *,
                keep_difficult: bool = True) -> VOCDataset:  # fmt: skip
    """Detection data in the PASCAL VOC layout, ``root/VOCdevkit/VOC{year}``: real VOC or a VOC-XML export.

    Item ``i`` is ``(image Tensor[3, H, W] float32 in [0, 1], {"boxes": Tensor[M, 4] float32 xyxy pixels,
    "labels": Tensor[M] long in 1..C-1, "difficult": Tensor[M] bool})``; label ``k`` is
    ``dataset.class_names[k]`` (``class_names[0]`` is the background), so ``SSDConfig(...,
    num_classes=len(ds.class_names), class_names=ds.class_names)`` fits the data.
    VOC's 1-based inclusive pixel indices become continuous coordinates: ``(xmin - 1, ymin - 1, xmax, ymax)``.
    Boxes reaching outside the image are clipped to it (a :class:`BoxesClippedWarning` names the file
    and the count); boxes left without area are dropped.

    Args:
        root: folder that contains ``VOCdevkit/``.
        image_set: ``"train"``, ``"val"``, ``"trainval"`` (or ``"test"`` for 2007).
        transforms: optional ``(image, target) -> (image, target)`` v2-style callable (e.g. ``train_transforms(cfg)``);
            it gets a ``tv_tensors.Image`` (uint8) and ``BoundingBoxes``; its output is turned into plain tensors.
        class_names: the C names, background first, used as given (an object with another name is an error).
            None reads every XML file of the split: if all the names found are PASCAL VOC classes the 20 VOC
            classes are used (``VOC_CLASSES``, the usual VOC labels); otherwise ``("__background__", *sorted
            names)``. Pass the train split's ``class_names`` to its val split, so that a class missing from
            one split cannot shift the labels of the other.
        download: True lets torchvision's ``VOCDetection(download=True)`` fetch the official archive into
            ``root`` first (real VOC only; the tests replace it by a fake and never download).
        year: ``"2007"`` … ``"2012"`` (your own export goes in ``VOCdevkit/VOC2012`` by default).
        keep_difficult: False drops the boxes marked difficult (common for training).

    Raises:
        FileNotFoundError: the folder layout is wrong (names the missing file and how to get the data).
        ValueError: an empty split, or an XML file that cannot be used (names the file and the object).

    Introduced in: 08_your_own_dataset.ipynb
    """
    return VOCDataset(root, image_set, transforms, class_names, download, year, keep_difficult=keep_difficult)
