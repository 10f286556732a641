"""SSD hyper-parameters as one frozen dataclass, plus the presets the notebooks use.

Introduced in: 01_constants.ipynb
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SSDConfig",
    "SSD512_VOC",
    "SSD300_VOC",
    "TINY_SHAPES",
    "PRESETS",
    "VOC_CLASSES",
    "SHAPES_CLASSES",
    "get_config",
    "paper_box_sizes",
]

BACKBONES = ("vgg16", "resnet50", "tiny")

VOC_CLASSES = (
    "__background__",
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
SHAPES_CLASSES = ("__background__", "circle", "square", "triangle")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _tuple(value: Any, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"SSDConfig.{name} must be a sequence, got {type(value).__name__} {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class SSDConfig:
    """Every constant of one SSD model, validated on construction.

    Lists have one entry per feature-map level (L of them), except ``box_sizes`` which has L + 1:
    level k uses s_k and sqrt(s_k * s_{k+1}) for its two square anchors (SSD paper, section 2.2).

    Args:
        name: preset name, e.g. ``"ssd512_voc"``.
        image_size: side of the square input in pixels.
        num_classes: C, object classes **plus background** (class 0).
        class_names: C names, ``class_names[0]`` is the background.
        feature_map_sizes: side of each source feature map, e.g. (64, 32, ..., 1).
        steps: input pixels spanned by one feature-map cell, per level (may be fractional).
        box_sizes: L + 1 anchor scales in pixels, strictly increasing.
        aspect_ratios: per level, ratios r > 0; each gives a r:1 and a 1:r box.
        in_channels: channels of each source feature map.
        backbone: ``"vgg16"``, ``"resnet50"`` or ``"tiny"``.
        variances: (center, size) scaling of the box parameterization.
        iou_threshold: IoU from which an anchor is matched to a box (SSD paper: 0.5).
        neg_pos_ratio: negatives kept per positive in hard negative mining (SSD paper: 3).
        score_threshold, nms_threshold, pre_nms_top_k, max_detections: post-processing.
        mean, std: RGB normalization applied by the model to images in [0, 1].
    """

    name: str
    image_size: int
    num_classes: int
    class_names: tuple[str, ...]
    feature_map_sizes: tuple[int, ...]
    steps: tuple[float, ...]
    box_sizes: tuple[float, ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    in_channels: tuple[int, ...]
    backbone: str = "vgg16"
    variances: tuple[float, float] = (0.1, 0.2)
    iou_threshold: float = 0.5
    neg_pos_ratio: int = 3
    score_threshold: float = 0.01
    nms_threshold: float = 0.45
    pre_nms_top_k: int = 400
    max_detections: int = 200
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("class_names", "feature_map_sizes", "steps", "box_sizes", "in_channels",
                     "variances", "mean", "std"):  # fmt: skip
            put(name, _tuple(getattr(self, name), name))
        ratios = _tuple(self.aspect_ratios, "aspect_ratios")
        put("aspect_ratios", tuple(_tuple(r, f"aspect_ratios[{k}]") for k, r in enumerate(ratios)))
        # Types first (TypeError naming the field), numpy scalars become plain Python numbers.
        _text(self.name, "name")
        _text(self.backbone, "backbone")
        for k, class_name in enumerate(self.class_names):
            _text(class_name, f"class_names[{k}]")
        for name in _INT_FIELDS:
            put(name, _int(getattr(self, name), name))
        for name in _FLOAT_FIELDS:
            put(name, _number(getattr(self, name), name))
        for name in ("feature_map_sizes", "in_channels"):
            put(name, tuple(_int(v, f"{name}[{k}]") for k, v in enumerate(getattr(self, name))))
        for name in ("steps", "box_sizes", "variances", "mean", "std"):
            put(name, tuple(_number(v, f"{name}[{k}]") for k, v in enumerate(getattr(self, name))))
        put("aspect_ratios", tuple(tuple(_number(r, f"aspect_ratios[{k}][{j}]") for j, r in enumerate(ratios))
                                   for k, ratios in enumerate(self.aspect_ratios)))  # fmt: skip
        self._validate()

    def _validate(self) -> None:
        def fail(field_name: str, expected: str, got: Any) -> None:
            raise ValueError(f"SSDConfig.{field_name}: expected {expected}, got {got!r}")

        if not self.name:
            fail("name", "a non-empty string", self.name)
        if self.image_size < 1:
            fail("image_size", "a positive int", self.image_size)
        if self.num_classes < 2:
            fail("num_classes", "an int >= 2 (background + at least one object class)", self.num_classes)
        if len(self.class_names) != self.num_classes:
            fail("class_names", f"{self.num_classes} names (num_classes, background first)",
                 f"{len(self.class_names)} names {self.class_names}")  # fmt: skip
        if len(set(self.class_names)) != len(self.class_names):
            fail("class_names", "unique names (label k is class_names[k])", self.class_names)
        levels = len(self.feature_map_sizes)
        if levels < 1:
            fail("feature_map_sizes", "at least one level", self.feature_map_sizes)
        for name in ("steps", "aspect_ratios", "in_channels"):
            got = getattr(self, name)
            if len(got) != levels:
                fail(name, f"{levels} values (one per feature map)", f"{len(got)} values {got}")
        if len(self.box_sizes) != levels + 1:
            fail("box_sizes", f"{levels + 1} values (feature maps + 1)",
                 f"{len(self.box_sizes)} values {self.box_sizes}")  # fmt: skip
        for k, fm in enumerate(self.feature_map_sizes):
            if fm < 1:
                fail(f"feature_map_sizes[{k}]", "a positive int", fm)
        for k, ch in enumerate(self.in_channels):
            if ch < 1:
                fail(f"in_channels[{k}]", "a positive int", ch)
        if not all(_is_finite_positive(s) for s in self.box_sizes):
            fail("box_sizes", "finite positive sizes in pixels", self.box_sizes)
        if any(b <= a for a, b in zip(self.box_sizes, self.box_sizes[1:])):
            fail("box_sizes", "strictly increasing sizes", self.box_sizes)
        for k, (fm, step) in enumerate(zip(self.feature_map_sizes, self.steps)):
            if not _is_finite_positive(step):
                fail(f"steps[{k}]", "a finite positive number of pixels", step)
            # The cells must tile the image: fm * step >= S > (fm - 1) * step (1e-6 for float steps).
            eps = 1e-6 * self.image_size
            if not (fm * step >= self.image_size - eps and (fm - 1) * step < self.image_size - eps):
                fail(f"steps[{k}]",
                     f"a step with {fm} * step >= image_size {self.image_size} > {fm - 1} * step "
                     f"(feature map {fm} must cover the image), e.g. {self.image_size / fm:g}",
                     step)  # fmt: skip
        for k, ratios in enumerate(self.aspect_ratios):
            if not all(_is_finite_positive(r) for r in ratios):
                fail(f"aspect_ratios[{k}]", "finite ratios > 0", ratios)
        if self.backbone not in BACKBONES:
            fail("backbone", f"one of {BACKBONES}", self.backbone)
        if len(self.variances) != 2 or not all(_is_finite_positive(v) for v in self.variances):
            fail("variances", "two finite positive numbers (center, size)", self.variances)
        self._validate_thresholds(fail)

    def _validate_thresholds(self, fail: Callable[[str, str, Any], None]) -> None:
        # `not lo <= x <= hi` is also True for NaN, so NaN is refused by every range check below.
        if not 0.0 < self.iou_threshold <= 1.0:
            fail("iou_threshold", "a number in (0, 1]", self.iou_threshold)
        if not (math.isfinite(self.neg_pos_ratio) and self.neg_pos_ratio >= 0):
            fail("neg_pos_ratio", "a finite number >= 0 (negatives kept per positive)", self.neg_pos_ratio)
        if not 0.0 <= self.score_threshold < 1.0:
            fail("score_threshold", "a number in [0, 1)", self.score_threshold)
        if not 0.0 < self.nms_threshold <= 1.0:
            fail("nms_threshold", "a number in (0, 1]", self.nms_threshold)
        for name in ("pre_nms_top_k", "max_detections"):
            value = getattr(self, name)
            if value < 1:
                fail(name, "a positive int", value)
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3:
                fail(name, "3 values (R, G, B)", value)
        if not all(0.0 <= m <= 1.0 for m in self.mean):
            fail("mean", "3 values in [0, 1] (images are in [0, 1]: divide 0-255 means by 255)", self.mean)
        if not all(MIN_STD <= s <= 1.0 for s in self.std):
            fail("std", f"3 values in [{MIN_STD:g}, 1] (the model divides images by std: a smaller std blows "
                 "the normalized pixels up until the losses overflow to inf/NaN; divide 0-255 stds by 255)",
                 self.std)  # fmt: skip

    @property
    def num_levels(self) -> int:
        """L, the number of feature maps that carry anchors."""
        return len(self.feature_map_sizes)

    @property
    def anchors_per_location(self) -> tuple[int, ...]:
        """Anchors at each cell of each level: 2 squares + 2 rectangles per aspect ratio."""
        return tuple(2 + 2 * len(ratios) for ratios in self.aspect_ratios)

    @property
    def anchors_per_level(self) -> tuple[int, ...]:
        """fm_k^2 * anchors_per_location[k] for each level."""
        return tuple(fm * fm * k for fm, k in zip(self.feature_map_sizes, self.anchors_per_location))

    @property
    def num_anchors(self) -> int:
        """A, the total number of default boxes over all levels."""
        return sum(self.anchors_per_level)

    def replace(self, **changes: Any) -> SSDConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python data (lists, numbers, strings), safe for checkpoints and JSON."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = [list(v) if isinstance(v, tuple) else v for v in value]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SSDConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"SSDConfig.from_dict: unknown fields {unknown}; expected a subset of {sorted(names)}")
        return cls(**data)


_INT_FIELDS = ("image_size", "num_classes", "pre_nms_top_k", "max_detections")
_FLOAT_FIELDS = ("iou_threshold", "neg_pos_ratio", "score_threshold", "nms_threshold")
MIN_STD = 1e-3  # smallest normalization std accepted (pixels / std must stay far from float overflow)


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _text(value: Any, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"SSDConfig.{name} must be a str, got {_kind(value)}")


def _int(value: Any, name: str) -> int:
    """``value`` as a plain int; TypeError naming the field for bools, floats, strings …"""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"SSDConfig.{name} must be an int, got {_kind(value)}")


def _number(value: Any, name: str) -> int | float:
    """``value`` as a plain int or float; TypeError naming the field for bools, strings, None, tensors …"""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"SSDConfig.{name} must be a number, got {_kind(value)}")
    return value if type(value) in (int, float) else float(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def paper_box_sizes(image_size: float, num_levels: int, s_min: float = 0.2, s_max: float = 0.9) -> list[float]:
    """Box sizes in pixels from the SSD paper's linear rule (eq. 4), extended with one extra size.

    s_k = s_min + (s_max - s_min) / (m - 1) * (k - 1) for k = 1 … m, with m = num_levels; the
    (m + 1)-th value continues the line so the last level has a s_{k+1} for its second square.
    """
    if num_levels < 2:
        raise ValueError(f"num_levels must be >= 2 for the linear rule, got {num_levels}")
    delta = (s_max - s_min) / (num_levels - 1)
    return [image_size * (s_min + delta * k) for k in range(num_levels + 1)]


SSD512_VOC = SSDConfig(
    name="ssd512_voc",
    image_size=512,
    num_classes=21,
    class_names=VOC_CLASSES,
    feature_map_sizes=(64, 32, 16, 8, 4, 2, 1),
    steps=(8, 16, 32, 64, 128, 256, 512),
    box_sizes=(35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6),
    aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)),
    in_channels=(512, 1024, 512, 256, 256, 256, 256),
    backbone="vgg16",
)

# The SSD paper's SSD300 (and torchvision's ssd300_vgg16): 8732 anchors. The steps (8, 16, 32, 64, 100, 300) and
# box sizes are those of the authors' released Caffe code; the paper's formula (j + 0.5) / |f_k| would give
# the fractional steps 300 / fm.
SSD300_VOC = SSDConfig(
    name="ssd300_voc",
    image_size=300,
    num_classes=21,
    class_names=VOC_CLASSES,
    feature_map_sizes=(38, 19, 10, 5, 3, 1),
    steps=(8, 16, 32, 64, 100, 300),
    box_sizes=(30.0, 60.0, 111.0, 162.0, 213.0, 264.0, 315.0),
    aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)),
    in_channels=(512, 1024, 512, 256, 256, 256),
    backbone="vgg16",
)

# Small enough to train on a laptop CPU in minutes on ShapesDataset (128 px, 1524 anchors).
TINY_SHAPES = SSDConfig(
    name="tiny_shapes",
    image_size=128,
    num_classes=4,
    class_names=SHAPES_CLASSES,
    feature_map_sizes=(16, 8, 4, 2, 1),
    steps=(8, 16, 32, 64, 128),
    box_sizes=(12.8, 25.6, 44.8, 64.0, 89.6, 115.2),
    aspect_ratios=((2,), (2, 3), (2, 3), (2,), (2,)),
    in_channels=(64, 128, 128, 128, 128),
    backbone="tiny",
)

PRESETS: dict[str, SSDConfig] = {cfg.name: cfg for cfg in (SSD512_VOC, SSD300_VOC, TINY_SHAPES)}


def get_config(name: str) -> SSDConfig:
    """Look a preset up by name: ``"ssd512_voc"``, ``"ssd300_voc"`` or ``"tiny_shapes"``."""
    key = name.lower() if isinstance(name, str) else name
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid names: {', '.join(sorted(PRESETS))}")
    return PRESETS[key]
