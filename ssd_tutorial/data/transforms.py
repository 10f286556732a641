"""SSD data augmentation and evaluation resizing, built from torchvision.transforms.v2.

The datasets of this package return plain tensors; these pipelines wrap them into ``tv_tensors`` (so
v2 moves the boxes with the pixels), run the v2 steps, and hand plain tensors back in the target
format of DESIGN.md: ``image`` Tensor[3, S, S] float32 in [0, 1], ``target["boxes"]`` Tensor[M, 4]
float32 xyxy pixels, ``target["labels"]`` Tensor[M] long (plus ``"difficult"`` Tensor[M] bool if present).
No normalization: the model normalizes its inputs itself.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import PIL.Image
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..config import SSDConfig

__all__ = ["train_transforms", "eval_transforms", "DetectionTransform", "to_tv_tensors", "to_plain"]

Sample = tuple[Any, dict[str, Any]]


def to_tv_tensors(image: Tensor | PIL.Image.Image, target: dict[str, Any]) -> tuple[tv_tensors.Image, dict[str, Any]]:
    """Wrap a plain sample for torchvision.transforms.v2 (tensors already wrapped are kept).

    Args:
        image: Tensor[C, H, W] (any dtype) or a PIL image.
        target: dict with ``"boxes"`` Tensor[M, 4] xyxy pixels (or ``tv_tensors.BoundingBoxes``) and per-box
            fields such as ``"labels"``; other entries pass through.

    Returns:
        ``(tv_tensors.Image, target copy with "boxes" as BoundingBoxes(format XYXY, canvas_size=(H, W)))``.

    Introduced in: 06_training.ipynb
    """
    if isinstance(image, PIL.Image.Image):
        image = F.to_image(image)
    if not isinstance(image, Tensor) or image.ndim != 3:
        got = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a Tensor[C, H, W] or a PIL image, got {got}")
    if not isinstance(image, tv_tensors.Image):
        image = tv_tensors.Image(image)
    if not isinstance(target, dict) or "boxes" not in target:
        raise TypeError(f"target must be a dict with a 'boxes' entry, got {type(target).__name__}")
    target = dict(target)
    boxes = target["boxes"]
    if not isinstance(boxes, tv_tensors.BoundingBoxes):
        boxes = torch.as_tensor(boxes)
        if boxes.numel() == 0:
            boxes = boxes.reshape(0, 4)  # [0, 4] even if it came as [0]
        if boxes.ndim != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"target['boxes'] must be [M, 4] xyxy pixels, got {list(boxes.shape)}")
        if not boxes.is_floating_point():
            boxes = boxes.float()
        boxes = tv_tensors.BoundingBoxes(boxes, format=tv_tensors.BoundingBoxFormat.XYXY,
                                         canvas_size=tuple(image.shape[-2:]))  # fmt: skip
    target["boxes"] = boxes
    return image, target


def to_plain(image: Tensor | PIL.Image.Image, target: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
    """Undo :func:`to_tv_tensors`: plain float32 image in [0, 1] and the DESIGN target format.

    Integer images are scaled to [0, 1], float images clamped to it; boxes become Tensor[M, 4] float32 xyxy;
    ``"labels"`` long; ``"difficult"`` bool. Other entries pass through unchanged.

    Introduced in: 06_training.ipynb
    """
    if isinstance(image, PIL.Image.Image):
        image = F.to_image(image)
    image = image.as_subclass(Tensor)
    if not image.is_floating_point():
        image = F.to_dtype(image, torch.float32, scale=True)
    else:  # resampling can overshoot [0, 1] by a rounding error
        image = image.float().clamp(0.0, 1.0)
    target = dict(target)
    boxes = target.get("boxes")
    if isinstance(boxes, tv_tensors.BoundingBoxes):
        if boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
            boxes = F.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
        boxes = boxes.as_subclass(Tensor)
    if isinstance(boxes, Tensor):
        target["boxes"] = boxes.to(torch.float32).reshape(-1, 4)  # [M, 4]
    for key, dtype in (("labels", torch.int64), ("difficult", torch.bool)):
        if isinstance(target.get(key), Tensor):
            target[key] = target[key].as_subclass(Tensor).to(dtype)
    return image, target


def _per_box_fields(inputs: Any) -> tuple[Tensor, ...]:
    """labels_getter for SanitizeBoundingBoxes: every per-box tensor of the target (labels, difficult, ...)."""
    target = inputs[1] if isinstance(inputs, (tuple, list)) else inputs
    num_boxes = target["boxes"].shape[0]
    return tuple(value for key, value in target.items()
                 if key != "boxes" and isinstance(value, Tensor) and not isinstance(value, tv_tensors.TVTensor)
                 and value.ndim >= 1 and value.shape[0] == num_boxes)  # fmt: skip


class DetectionTransform:
    """``(image, target) -> (image, target)``: plain tensors in, v2 steps on tv_tensors, plain tensors out.

    Args:
        steps: callables taking and returning ``(tv_tensors.Image, target)``, applied in order
            (any torchvision.transforms.v2 transform qualifies).

    Introduced in: 06_training.ipynb
    """

    def __init__(self, steps: Sequence[Callable[..., Sample]]) -> None:
        self.steps = list(steps)

    def __call__(self, image: Tensor | PIL.Image.Image, target: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        image, target = to_tv_tensors(image, target)
        for step in self.steps:
            image, target = step(image, target)
        return to_plain(image, target)

    def __repr__(self) -> str:
        inner = "".join(f"\n    {step!r}," for step in self.steps)
        return f"{type(self).__name__}([{inner}\n])"


class ShrinkToFit:
    """Downscale (never upscale) so the longer side is at most ``max_size``; keeps later zoom-out canvases small."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size

    def __call__(self, image: tv_tensors.Image, target: dict[str, Any]) -> Sample:
        h, w = image.shape[-2:]
        if max(h, w) <= self.max_size:
            return image, target
        scale = self.max_size / max(h, w)
        size = [max(1, round(h * scale)), max(1, round(w * scale))]
        return v2.Resize(size, antialias=True)(image, target)

    def __repr__(self) -> str:
        return f"ShrinkToFit(max_size={self.max_size})"


class ZoomOut:
    """v2.RandomZoomOut whose fill is the mean colour on both uint8 and float images (SSD paper, sec. 3.6)."""

    def __init__(self, fill: Sequence[float], side_range: tuple[float, float], p: float = 0.5) -> None:
        self.fill = tuple(float(f) for f in fill)
        self._float = v2.RandomZoomOut(fill={tv_tensors.Image: list(self.fill), "others": 0},
                                       side_range=side_range, p=p)  # fmt: skip
        uint8_fill = [round(255 * f) for f in self.fill]
        self._uint8 = v2.RandomZoomOut(fill={tv_tensors.Image: uint8_fill, "others": 0}, side_range=side_range, p=p)

    def __call__(self, image: tv_tensors.Image, target: dict[str, Any]) -> Sample:
        zoom = self._float if image.is_floating_point() else self._uint8
        return zoom(image, target)

    def __repr__(self) -> str:
        return f"ZoomOut(fill={self.fill}, side_range={self._float.side_range}, p={self._float.p})"


class IoUCrop(v2.RandomIoUCrop):
    """v2.RandomIoUCrop (SSD paper, sec. 2.2) with the same sampling, drawing all trials of an option at once.

    torchvision tries up to ``trials`` random crops one by one (a few small tensor ops each); when a min-IoU
    option cannot be met (small objects and 0.7 / 0.9) that costs milliseconds per image. Here the ``trials``
    crops are drawn as one batch and the first valid one is kept, which is the same distribution. Images
    without boxes are left as they are (torchvision would search for a crop it can never find).
    """

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        boxes = next(x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes))
        if boxes.shape[0] == 0:
            return {}
        orig_h, orig_w = boxes.canvas_size
        xyxy = (
            F.convert_bounding_box_format(
                boxes.as_subclass(Tensor), old_format=boxes.format, new_format=tv_tensors.BoundingBoxFormat.XYXY
            )
            .float()
            .cpu()
        )  # [M, 4]; crop parameters are drawn on the CPU
        cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2  # [M]
        while True:
            min_iou = self.options[int(torch.randint(len(self.options), (1,)))]
            if min_iou >= 1.0:  # the "keep the whole image" option
                return {}
            scale = self.min_scale + (self.max_scale - self.min_scale) * torch.rand(self.trials, 2)  # [T, 2]
            new_w, new_h = (orig_w * scale[:, 0]).floor(), (orig_h * scale[:, 1]).floor()  # [T]
            position = torch.rand(self.trials, 2)
            left, top = ((orig_w - new_w) * position[:, 0]).floor(), ((orig_h - new_h) * position[:, 1]).floor()
            crops = torch.stack([left, top, left + new_w, top + new_h], dim=1)  # [T, 4] xyxy
            aspect = new_w / new_h.clamp(min=1)
            ok = (new_w > 0) & (new_h > 0) & (aspect >= self.min_aspect_ratio) & (aspect <= self.max_aspect_ratio)
            within = (
                (crops[:, None, 0] < cx)
                & (cx < crops[:, None, 2])
                & (crops[:, None, 1] < cy)
                & (cy < crops[:, None, 3])
            )  # [T, M] box centre inside the crop
            iou = torch.where(within, box_iou(crops, xyxy), -1.0)  # [T, M]
            ok &= within.any(dim=1) & (iou.max(dim=1).values >= min_iou)
            if ok.any():
                k = int(ok.nonzero()[0])
                return dict(top=int(top[k]), left=int(left[k]), height=int(new_h[k]), width=int(new_w[k]),
                            is_within_crop_area=within[k].to(boxes.device))  # fmt: skip


def _check_cfg(cfg: SSDConfig) -> None:
    if not isinstance(cfg, SSDConfig):
        raise TypeError(f"cfg must be an SSDConfig, got {type(cfg).__name__}")


def train_transforms(cfg: SSDConfig, *, zoom_out_max: float | None = None,
                     max_input_size: int | None = None) -> DetectionTransform:  # fmt: skip
    """SSD training augmentation (SSD paper, sec. 2.2 "Data augmentation" and sec. 3.6).

    Steps: shrink large inputs to ``max_input_size``, photometric distortion, zoom-out onto a canvas filled
    with ``cfg.mean`` (side x1 to x``zoom_out_max``, p = 0.5), IoU crop (skipped for images without boxes),
    horizontal flip, resize to ``cfg.image_size`` square, drop degenerate boxes (< 1 px) with their labels
    and other per-box fields, float32 in [0, 1].

    Args:
        cfg: the model configuration (``image_size``, ``mean``).
        zoom_out_max: largest zoom-out factor; default 4 (the paper's) for inputs >= 300 px, else 2, so the
            small objects of a tiny model do not shrink below its smallest anchors.
        max_input_size: longer side above which the input is first downscaled; default ``cfg.image_size``.

    Introduced in: 06_training.ipynb
    """
    _check_cfg(cfg)
    if zoom_out_max is None:
        zoom_out_max = 4.0 if cfg.image_size >= 300 else 2.0
    if not zoom_out_max >= 1.0:
        raise ValueError(f"zoom_out_max must be >= 1, got {zoom_out_max!r}")
    size = cfg.image_size
    return DetectionTransform([
        ShrinkToFit(max_input_size or size),
        v2.RandomPhotometricDistort(p=0.5),
        ZoomOut(cfg.mean, side_range=(1.0, zoom_out_max), p=0.5),
        IoUCrop(),
        v2.RandomHorizontalFlip(p=0.5),
        v2.Resize((size, size), antialias=True),
        v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_per_box_fields),
        v2.ToDtype(torch.float32, scale=True),
    ])  # fmt: skip


def eval_transforms(cfg: SSDConfig) -> DetectionTransform:
    """Evaluation preprocessing: resize to ``cfg.image_size`` square (boxes follow), float32 in [0, 1].

    IoU is unchanged by scaling both boxes the same way, so AP computed on resized targets equals AP on
    the original ones. Boxes are not sanitized: ground truth stays as annotated.

    Introduced in: 06_training.ipynb
    """
    _check_cfg(cfg)
    size = cfg.image_size
    return DetectionTransform([v2.Resize((size, size), antialias=True), v2.ToDtype(torch.float32, scale=True)])
