"""ssd_tutorial — build an SSD detector step by step (the package the notebooks import).

Public names are loaded lazily, so ``import ssd_tutorial`` stays fast and the core never pulls in
ipywidgets or matplotlib: ``ssd_tutorial.default_boxes`` imports ``ssd_tutorial.anchors`` on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "config": ["SSDConfig", "SSD512_VOC", "SSD300_VOC", "TINY_SHAPES", "get_config", "paper_box_sizes"],
    "anchors": ["default_boxes", "level_box_shapes"],
    "boxes": ["cxcywh_to_xyxy", "xyxy_to_cxcywh", "encode_boxes", "decode_boxes"],
    "matching": ["match_anchors", "encode_targets"],
    "model": ["SSD", "build_ssd", "adapt_config", "source_feature_shapes"],
    "loss": ["multibox_loss"],
    "postprocess": ["decode_detections"],
    "data": ["ShapesDataset", "collate_detection", "voc_dataset", "coco_dataset", "train_transforms",
             "eval_transforms"],
    "train": ["fit", "save_checkpoint", "load_checkpoint", "load_pretrained"],
    "evaluate": ["mean_average_precision", "coco_map", "precision_recall_curve"],
}
_NAME_TO_MODULE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = {"config", "anchors", "boxes", "matching", "backbones", "model", "loss", "postprocess", "data",
               "train", "evaluate", "viz", "widgets", "exercises", "cli", "analysis", "checkpoints",
               "distributed", "monitoring", "fast", "drawing", "train_support"}

__all__ = sorted(_NAME_TO_MODULE) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _NAME_TO_MODULE:
        module = importlib.import_module(f".{_NAME_TO_MODULE[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ssd_tutorial' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
