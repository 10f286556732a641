"""Detections from raw head outputs: decode, clip, score, per-class NMS, keep the best (the taught version).

Introduced in: 04_forward_pass.ipynb

The model's eval mode uses :func:`ssd_tutorial.fast.decode_detections`, which gives the same
detections faster (tests/test_fast.py).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from .boxes import cxcywh_to_xyxy, decode_boxes
from .config import SSDConfig

__all__ = ["decode_detections"]


def decode_detections(loc_preds: Tensor, cls_logits: Tensor, anchors_cxcywh: Tensor, cfg: SSDConfig) -> list[dict]:
    """Turn head outputs into at most ``cfg.max_detections`` boxes per image (rules of DESIGN.md).

    1. decode the offsets (``cfg.variances``) into xyxy boxes, clipped to ``[0, cfg.image_size]``;
    2. softmax over classes; for each object class c >= 1 of each image keep the scores
       > ``cfg.score_threshold``, at most the ``cfg.pre_nms_top_k`` best;
    3. NMS per image and class at ``cfg.nms_threshold``: one ``batched_nms`` call for the whole
       batch, with one group per (image, class);
    4. per image, the best ``cfg.max_detections`` over all classes, by descending score.

    Args:
        loc_preds: Tensor[B, A, 4] predicted offsets.
        cls_logits: Tensor[B, A, C] class logits, class 0 is background.
        anchors_cxcywh: Tensor[A, 4] default boxes in pixels.
        cfg: the model's SSDConfig.

    Returns:
        B dicts ``{"boxes": Tensor[N, 4] xyxy px, "scores": Tensor[N], "labels": Tensor[N] long}``.

    Introduced in: 04_forward_pass.ipynb
    """
    _check_inputs(loc_preds, cls_logits, anchors_cxcywh, cfg)
    B, A, C = cls_logits.shape
    # Scores in the boxes' dtype: NMS needs both alike (fp16 logits under autocast, fp32 anchors).
    dtype = torch.promote_types(loc_preds.dtype, anchors_cxcywh.dtype)
    boxes = cxcywh_to_xyxy(decode_boxes(loc_preds.to(dtype), anchors_cxcywh.to(dtype), cfg.variances))
    boxes = boxes.clamp(min=0, max=cfg.image_size)  # [B, A, 4]
    scores = cls_logits.to(dtype).softmax(dim=-1)  # [B, A, C]

    # The pre_nms_top_k best anchors of each (image, class), then those above the threshold.
    object_scores = scores[..., 1:].transpose(1, 2)  # [B, C-1, A]
    top_scores, top_anchors = object_scores.topk(min(cfg.pre_nms_top_k, A), dim=2)  # [B, C-1, k] each
    image, cls, rank = (top_scores > cfg.score_threshold).nonzero(as_tuple=True)  # [K] each
    anchor = top_anchors[image, cls, rank]  # [K]
    labels = cls + 1  # [K], class 0 is background
    cand_boxes, cand_scores = boxes[image, anchor], top_scores[image, cls, rank]  # [K, 4], [K]

    keep = batched_nms(cand_boxes, cand_scores, image * C + labels, cfg.nms_threshold)  # [N], by score desc
    return _best_per_image(cand_boxes[keep], cand_scores[keep], labels[keep], image[keep], B, cfg.max_detections)


def _best_per_image(boxes: Tensor, scores: Tensor, labels: Tensor, image: Tensor, batch: int,
                    max_detections: int) -> list[dict]:  # fmt: skip
    """Split detections sorted by descending score into ``batch`` dicts, at most ``max_detections`` each.

    Args:
        boxes: Tensor[N, 4]; scores, labels, image: Tensor[N], all in descending score order.
    """
    by_image = image.sort(stable=True).indices  # [N]; stable: keeps the score order inside each image
    image = image[by_image]
    counts = torch.bincount(image, minlength=batch)  # [B]
    starts = counts.cumsum(0) - counts  # [B] first position of each image
    rank = torch.arange(image.numel(), device=image.device) - starts[image]  # [N] rank inside its image
    keep = by_image[rank < max_detections]
    counts = counts.clamp(max=max_detections).tolist()
    per_image = zip(boxes[keep].split(counts), scores[keep].split(counts), labels[keep].split(counts))
    return [{"boxes": b, "scores": s, "labels": lab} for b, s, lab in per_image]


def _check_inputs(loc_preds: Tensor, cls_logits: Tensor, anchors_cxcywh: Tensor, cfg: SSDConfig) -> None:
    """Types, shapes and finite values of decode_detections' inputs (shared with fast.py)."""
    for name, value in (("loc_preds", loc_preds), ("cls_logits", cls_logits), ("anchors_cxcywh", anchors_cxcywh)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not isinstance(cfg, SSDConfig):
        raise TypeError(f"cfg must be an SSDConfig, got {type(cfg).__name__}")
    if cls_logits.ndim != 3 or cls_logits.shape[-1] != cfg.num_classes:
        raise ValueError(f"cls_logits must be [B, A, {cfg.num_classes}] (C = cfg.num_classes), "
                         f"got {list(cls_logits.shape)}")  # fmt: skip
    B, A, _ = cls_logits.shape
    if list(loc_preds.shape) != [B, A, 4]:
        raise ValueError(f"loc_preds must be [B, A, 4] = {[B, A, 4]} (from cls_logits), got {list(loc_preds.shape)}")
    if list(anchors_cxcywh.shape) != [A, 4]:
        raise ValueError(f"anchors_cxcywh must be [A, 4] = {[A, 4]} (from cls_logits), "
                         f"got {list(anchors_cxcywh.shape)}")  # fmt: skip
    for name, value in (("loc_preds", loc_preds), ("cls_logits", cls_logits), ("anchors_cxcywh", anchors_cxcywh)):
        if not value.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")
        # A NaN or an inf makes the sum NaN or inf: one cheap pass; count the bad values only then.
        total = value.sum(dtype=torch.promote_types(value.dtype, torch.float32))
        bad = 0 if bool(torch.isfinite(total)) else int((~torch.isfinite(value)).sum())
        if bad:  # 0 also when the sum of finite values overflowed
            raise ValueError(f"{name} must be finite, got {bad} NaN or inf values of {value.numel()} "
                             f"(a diverged model or a bad checkpoint?)")  # fmt: skip
