"""Datasets and transforms: generated shapes, PASCAL VOC and COCO from local folders, SSD augmentation.

Every dataset item is ``(image Tensor[3, H, W] float32 in [0, 1], target)`` with
``target = {"boxes": Tensor[M, 4] float32 xyxy pixels, "labels": Tensor[M] long in 1..C-1}``
(VOC and COCO add ``"difficult": Tensor[M] bool``).

Introduced in: 06_training.ipynb
"""

from ._common import BoxesClippedWarning
from .coco import coco_dataset
from .shapes import ShapesDataset, collate_detection
from .transforms import eval_transforms, train_transforms
from .voc import voc_dataset

__all__ = [
    "ShapesDataset",
    "collate_detection",
    "voc_dataset",
    "coco_dataset",
    "train_transforms",
    "eval_transforms",
    "BoxesClippedWarning",
]
