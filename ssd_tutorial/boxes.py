"""Box formats and the SSD box parameterization (encode / decode).

Introduced in: 04_forward_pass.ipynb
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cxcywh_to_xyxy", "xyxy_to_cxcywh", "encode_boxes", "decode_boxes"]


def _check_last_dim(boxes: Tensor, name: str) -> None:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must be [..., 4], got {list(boxes.shape)}")


def cxcywh_to_xyxy(boxes_cxcywh: Tensor) -> Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2); any leading dims."""
    _check_last_dim(boxes_cxcywh, "boxes_cxcywh")
    cxcy, wh = boxes_cxcywh[..., :2], boxes_cxcywh[..., 2:]
    return torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=-1)


def xyxy_to_cxcywh(boxes_xyxy: Tensor) -> Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h); any leading dims."""
    _check_last_dim(boxes_xyxy, "boxes_xyxy")
    x1y1, x2y2 = boxes_xyxy[..., :2], boxes_xyxy[..., 2:]
    return torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], dim=-1)


def encode_boxes(gt_cxcywh: Tensor, anchors_cxcywh: Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> Tensor:
    """Offsets that move each anchor onto its box (SSD paper, eq. 2, with variances).

    Args:
        gt_cxcywh: Tensor[..., 4] boxes, broadcastable against ``anchors_cxcywh``.
        anchors_cxcywh: Tensor[..., 4] default boxes.
        variances: (v0, v1) scale of the centre and size offsets.

    Returns:
        Tensor[..., 4]: ``((gx-ax)/(aw*v0), (gy-ay)/(ah*v0), log(gw/aw)/v1, log(gh/ah)/v1)``.
    """
    _check_last_dim(gt_cxcywh, "gt_cxcywh")
    _check_last_dim(anchors_cxcywh, "anchors_cxcywh")
    v_center, v_size = variances
    anchor_wh = anchors_cxcywh[..., 2:]
    offset_xy = (gt_cxcywh[..., :2] - anchors_cxcywh[..., :2]) / (anchor_wh * v_center)
    offset_wh = torch.log(gt_cxcywh[..., 2:] / anchor_wh) / v_size
    return torch.cat([offset_xy, offset_wh], dim=-1)


def decode_boxes(deltas: Tensor, anchors_cxcywh: Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> Tensor:
    """Inverse of :func:`encode_boxes`: offsets + anchors -> boxes, Tensor[..., 4] cxcywh."""
    _check_last_dim(deltas, "deltas")
    _check_last_dim(anchors_cxcywh, "anchors_cxcywh")
    v_center, v_size = variances
    anchor_wh = anchors_cxcywh[..., 2:]
    center = anchors_cxcywh[..., :2] + deltas[..., :2] * v_center * anchor_wh
    size = anchor_wh * torch.exp(deltas[..., 2:] * v_size)
    return torch.cat([center, size], dim=-1)
