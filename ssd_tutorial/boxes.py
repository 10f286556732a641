"""Box formats and the SSD box parameterization (encode / decode).

Introduced in: 04_forward_pass.ipynb
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["cxcywh_to_xyxy", "xyxy_to_cxcywh", "encode_boxes", "decode_boxes"]


# Largest scaled log size offset decode_boxes applies: a box at most 1000/16 = 62.5 times its anchor (torchvision's
# BoxCoder clip, bbox_xform_clip = log(1000 / 16)).
MAX_LOG_SIZE_OFFSET = math.log(1000.0 / 16)


def _check_last_dim(boxes: Tensor, name: str) -> None:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must be [..., 4], got {list(boxes.shape)}")


def _check_finite(boxes: Tensor, name: str) -> None:
    if boxes.device.type == "meta" or not boxes.is_floating_point():
        return
    finite = torch.isfinite(boxes).all(dim=-1)  # [...]
    if not bool(finite.all()):
        raise ValueError(f"{name} must be finite, got {_first_bad_row(~finite, boxes)}")


def cxcywh_to_xyxy(boxes_cxcywh: Tensor) -> Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2); any leading dims. ValueError for NaN / inf (names the first bad row)."""
    _check_last_dim(boxes_cxcywh, "boxes_cxcywh")
    _check_finite(boxes_cxcywh, "boxes_cxcywh")
    cxcy, wh = boxes_cxcywh[..., :2], boxes_cxcywh[..., 2:]
    return torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=-1)


def xyxy_to_cxcywh(boxes_xyxy: Tensor) -> Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h); any leading dims. ValueError for NaN / inf (names the first bad row)."""
    _check_last_dim(boxes_xyxy, "boxes_xyxy")
    _check_finite(boxes_xyxy, "boxes_xyxy")
    x1y1, x2y2 = boxes_xyxy[..., :2], boxes_xyxy[..., 2:]
    return torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], dim=-1)


def _check_variances(variances: object) -> tuple[float, float]:
    if not isinstance(variances, (tuple, list)) or len(variances) != 2:
        raise TypeError(f"variances must be a (center, size) pair of numbers such as cfg.variances, got {variances!r}")
    for v in variances:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"variances must be numbers, got {type(v).__name__} {v!r} in {variances!r}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"variances must be finite and > 0, got {tuple(variances)}")
    return float(variances[0]), float(variances[1])


def _first_bad_row(bad: Tensor, boxes: Tensor) -> str:
    """``"row (i, j) = [...]"`` for the first True of ``bad`` (Tensor[...] bool over the leading dims)."""
    index = tuple(bad.nonzero()[0].tolist())
    where = index[0] if len(index) == 1 else index
    return f"row {where} = {boxes[index].tolist()}"


def _check_sizes(boxes_cxcywh: Tensor, name: str) -> None:
    """ValueError naming ``name`` and its first row that is not finite or has width or height <= 0."""
    ok = torch.isfinite(boxes_cxcywh).all(dim=-1) & (boxes_cxcywh[..., 2:] > 0).all(dim=-1)  # [...]
    if not bool(ok.all()):
        raise ValueError(f"{name} must be finite (cx, cy, w, h) boxes with w > 0 and h > 0 (an empty or inverted "
                         f"box has no log-size offset), got {_first_bad_row(~ok, boxes_cxcywh)}")  # fmt: skip


def _leading_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    try:
        torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    except RuntimeError:
        raise ValueError(f"{name_a} {list(a.shape)} and {name_b} {list(b.shape)} must have the same (or "
                         "broadcastable) leading dims, e.g. [A, 4] and [A, 4]") from None  # fmt: skip


def encode_boxes(gt_cxcywh: Tensor, anchors_cxcywh: Tensor, variances: tuple[float, float]) -> Tensor:
    """Offsets that move each anchor onto its box (SSD paper, eq. 2, with variances).

    Args:
        gt_cxcywh: Tensor[..., 4] boxes, broadcastable against ``anchors_cxcywh``; finite, w > 0, h > 0.
        anchors_cxcywh: Tensor[..., 4] default boxes; finite, w > 0, h > 0.
        variances: (v0, v1) scale of the centre and size offsets, e.g. ``cfg.variances``.

    Returns:
        Tensor[..., 4]: ``((gx-ax)/(aw*v0), (gy-ay)/(ah*v0), log(gw/aw)/v1, log(gh/ah)/v1)``.

    Raises:
        ValueError: leading dims that do not broadcast, a box that is not finite or has no width or height
            (names the argument and its first bad row).
    """
    _check_last_dim(gt_cxcywh, "gt_cxcywh")
    _check_last_dim(anchors_cxcywh, "anchors_cxcywh")
    v_center, v_size = _check_variances(variances)
    _leading_shape(gt_cxcywh, anchors_cxcywh, "gt_cxcywh", "anchors_cxcywh")
    _check_sizes(gt_cxcywh, "gt_cxcywh")
    _check_sizes(anchors_cxcywh, "anchors_cxcywh")
    anchor_wh = anchors_cxcywh[..., 2:]
    offset_xy = (gt_cxcywh[..., :2] - anchors_cxcywh[..., :2]) / (anchor_wh * v_center)
    offset_wh = torch.log(gt_cxcywh[..., 2:] / anchor_wh) / v_size
    return torch.cat([offset_xy, offset_wh], dim=-1)


def decode_boxes(deltas: Tensor, anchors_cxcywh: Tensor, variances: tuple[float, float]) -> Tensor:
    """Inverse of :func:`encode_boxes`: offsets + anchors -> boxes, Tensor[..., 4] cxcywh.

    The scaled size offset ``delta_wh * variances[1]`` is capped at ``log(1000 / 16)`` before ``exp`` (as
    torchvision's ``BoxCoder`` does), so a wild prediction of an untrained or diverging model gives a box at most
    62.5× its anchor instead of an infinite one.

    Raises:
        ValueError: leading dims that do not broadcast, anchors that are not finite or have no width or
            height, or non-finite ``deltas``.
    """
    _check_last_dim(deltas, "deltas")
    _check_last_dim(anchors_cxcywh, "anchors_cxcywh")
    v_center, v_size = _check_variances(variances)
    _leading_shape(deltas, anchors_cxcywh, "deltas", "anchors_cxcywh")
    _check_sizes(anchors_cxcywh, "anchors_cxcywh")
    finite = torch.isfinite(deltas).all(dim=-1)  # [...]
    if not bool(finite.all()):
        raise ValueError(f"deltas must be finite, got {_first_bad_row(~finite, deltas)}")
    anchor_wh = anchors_cxcywh[..., 2:]
    center = anchors_cxcywh[..., :2] + deltas[..., :2] * v_center * anchor_wh
    size = anchor_wh * torch.exp((deltas[..., 2:] * v_size).clamp(max=MAX_LOG_SIZE_OFFSET))
    boxes = torch.cat([center, size], dim=-1)
    return boxes
