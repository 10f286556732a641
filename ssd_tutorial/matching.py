"""Anchor <-> ground-truth matching and batched target encoding: the taught, plain version.

Introduced in: 05_loss.ipynb

The rule is the article's (and the SSD paper's, section 2.2 "Matching strategy"):

1. greedy bipartite step: repeatedly take the largest remaining IoU (anchor a, box m), give anchor a
   to box m and remove a's row and m's column; stop when the largest remaining IoU is < 1e-6. A box
   gets an anchor as long as one it overlaps is still free, even a box smaller than every anchor.
2. threshold step: every anchor still unmatched whose best IoU is >= ``iou_threshold`` takes that box.

Ties are broken by index, so the result is deterministic on every device: in the greedy step, among
equal IoUs the lowest box index wins, then the lowest anchor index; in the threshold step the lowest
box index wins.

This module is written to be read next to notebook 05; the model trains with
:func:`ssd_tutorial.fast.encode_targets`, which gives the same targets faster (tests/test_fast.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torchvision.ops import box_iou

from .boxes import cxcywh_to_xyxy, encode_boxes, xyxy_to_cxcywh
from .config import SSDConfig

__all__ = ["match_anchors", "encode_targets", "greedy_bipartite"]

MIN_IOU = 1e-6  # the greedy step stops below this IoU: such a pair does not overlap


def greedy_bipartite(iou: Tensor, min_iou: float = MIN_IOU) -> Tensor:
    """Step 1 of the matching: the anchor each box takes, one round per box.

    Args:
        iou: Tensor[B, M, A] (or [M, A]) IoU of every ground-truth box with every anchor.
        min_iou: stop when the largest remaining IoU is below this.

    Returns:
        Tensor[B, M] (or [M]) long: the anchor each box takes, -1 if none.

    Introduced in: 05_loss.ipynb
    """
    if not isinstance(iou, Tensor) or iou.ndim not in (2, 3):
        got = list(iou.shape) if isinstance(iou, Tensor) else type(iou).__name__
        raise ValueError(f"iou must be a Tensor[B, M, A] or [M, A] (boxes x anchors), got {got}")
    if iou.ndim == 2:
        return greedy_bipartite(iou.unsqueeze(0), min_iou).squeeze(0)
    batch, num_boxes, num_anchors = iou.shape
    remaining = iou.clone()  # [B, M, A]; removed rows and columns are set to -1
    taken = torch.full((batch, num_boxes), -1, dtype=torch.long, device=iou.device)  # [B, M]
    images = torch.arange(batch, device=iou.device)  # [B]
    for _ in range(min(num_boxes, num_anchors)):
        # max over the flattened [M * A] returns the first maximum: the lowest box, then the lowest anchor.
        best, position = remaining.flatten(1).max(dim=1)  # [B] each
        box, anchor = position // num_anchors, position % num_anchors  # [B] each
        found = best >= min_iou  # [B]; an image whose best is below is finished
        taken[images, box] = torch.where(found, anchor, taken[images, box])
        remaining[images, box, :] = -1.0  # box m is served
        remaining[images, :, anchor] = -1.0  # anchor a is taken
    return taken


def _match_batch(iou: Tensor, iou_threshold: float) -> Tensor:
    """Both matching steps on IoU Tensor[B, M, A] -> Tensor[B, A] long, the matched box or -1."""
    batch, num_boxes, num_anchors = iou.shape
    if num_boxes == 0:
        return torch.full((batch, num_anchors), -1, dtype=torch.long, device=iou.device)
    best_iou, best_box = iou.max(dim=1)  # [B, A] each; ties -> lowest box
    matches = torch.where(best_iou >= iou_threshold, best_box, -1)  # [B, A], step 2
    taken = greedy_bipartite(iou)  # [B, M], step 1
    image, box = (taken >= 0).nonzero(as_tuple=True)  # [G] each
    matches[image, taken[image, box]] = box  # step 1 wins over step 2
    return matches


def checked_match_inputs(gt_boxes_xyxy: Tensor, anchors_xyxy: Tensor, iou_threshold: float) -> tuple[Tensor, Tensor]:
    """``match_anchors``' arguments checked (ValueError / TypeError naming the argument), as (gt, anchors) in one
    floating dtype on the anchors' device. Shared with ``fast.match_anchors``."""
    _check_box_tensor(gt_boxes_xyxy, "gt_boxes_xyxy")
    _check_box_tensor(anchors_xyxy, "anchors_xyxy", rows="A")
    _check_threshold(iou_threshold)
    dtype = _work_dtype(anchors_xyxy.dtype)
    anchors = anchors_xyxy.to(dtype)
    gt = gt_boxes_xyxy.to(device=anchors.device, dtype=dtype)
    _check_box_values(gt, lambda m: f"gt_boxes_xyxy[{m}]")
    _check_box_values(anchors, lambda a: f"anchors_xyxy[{a}]")
    return gt, anchors


def match_anchors(gt_boxes_xyxy: Tensor, anchors_xyxy: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Match one image's ground-truth boxes to anchors with the article's two-step rule (module docstring).

    Introduced in: 05_loss.ipynb

    Args:
        gt_boxes_xyxy: Tensor[M, 4] xyxy pixels; M may be 0.
        anchors_xyxy: Tensor[A, 4] xyxy pixels, the *unclipped* default boxes.
        iou_threshold: IoU from which a still-unmatched anchor takes its best box (SSD paper: 0.5).

    Returns:
        Tensor[A] long on the anchors' device: index of the matched box, -1 for background.
    """
    gt, anchors = checked_match_inputs(gt_boxes_xyxy, anchors_xyxy, iou_threshold)
    iou = box_iou(gt, anchors).unsqueeze(0)  # [1, M, A]
    return _match_batch(iou, iou_threshold).squeeze(0)  # [A]


def encode_targets(targets: list[dict], anchors_cxcywh: Tensor, cfg: SSDConfig) -> tuple[Tensor, Tensor]:
    """Training targets of a whole batch: match every image's boxes to the anchors, then encode them.

    Introduced in: 05_loss.ipynb

    All images are matched at once: boxes are padded to the largest M of the batch with zero-size
    boxes (IoU 0 with every anchor, so never matched); no Python loop over images.

    Args:
        targets: B dicts ``{"boxes": Tensor[M, 4] xyxy pixels, "labels": Tensor[M] long in 1..C-1}``;
            M may be 0 and may differ per image. They may live on any device: everything follows the
            anchors (the article's code asks the labels for a CUDA device, which fails on a CPU).
        anchors_cxcywh: Tensor[A, 4] cxcywh pixels, the unclipped default boxes (``model.anchors``).
        cfg: uses ``iou_threshold``, ``variances`` and ``num_classes``.

    Returns:
        loc_targets: Tensor[B, A, 4] offsets (see :func:`~ssd_tutorial.boxes.encode_boxes`), 0 for background.
        cls_targets: Tensor[B, A] long, 0 for background.
        Both on the anchors' device; loc_targets in the anchors' dtype.
    """
    anchors, boxes, labels = _padded_targets(targets, anchors_cxcywh, cfg)  # [A, 4], [B, M, 4], [B, M]
    batch, num_boxes, _ = boxes.shape
    iou = box_iou(boxes.view(-1, 4), cxcywh_to_xyxy(anchors)).view(batch, num_boxes, len(anchors))  # [B, M, A]
    matches = _match_batch(iou, cfg.iou_threshold)  # [B, A]
    image, anchor = (matches >= 0).nonzero(as_tuple=True)  # [P] each
    steps = [(image, anchor, matches[image, anchor])]
    return _encode_matches(steps, len(anchors), anchors, boxes, labels, cfg.variances, anchors_cxcywh.dtype)


def _encode_matches(steps: list[tuple[Tensor, Tensor, Tensor]], num_anchors: int, anchors: Tensor, boxes: Tensor,
                    labels: Tensor, variances: tuple[float, float],
                    dtype: torch.dtype) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Targets from matches given as (image [P], anchor [P], box [P]) index tensors, written in order.

    Only the matched anchors are encoded; the rest stays 0 (background). A later step overwrites an earlier
    one where both matched the same anchor.
    """
    batch = boxes.shape[0]
    loc_targets = anchors.new_zeros(batch, num_anchors, 4)  # [B, A, 4]
    cls_targets = torch.zeros(batch, num_anchors, dtype=torch.long, device=anchors.device)  # [B, A]
    for image, anchor, box in steps:
        gt_cxcywh = xyxy_to_cxcywh(boxes[image, box])  # [P, 4]
        loc_targets[image, anchor] = encode_boxes(gt_cxcywh, anchors[anchor], variances)
        cls_targets[image, anchor] = labels[image, box]
    return loc_targets.to(dtype), cls_targets


def _padded_targets(targets: list[dict], anchors_cxcywh: Tensor, cfg: SSDConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Check the inputs of encode_targets; pad the boxes to the largest M of the batch.

    Returns anchors Tensor[A, 4] in the working dtype, boxes Tensor[B, M, 4] xyxy (padding: zero-size
    boxes at the origin, after the real ones) and labels Tensor[B, M] long (padding: 0).
    """
    if not isinstance(cfg, SSDConfig):
        raise TypeError(f"cfg must be an SSDConfig, got {type(cfg).__name__}")
    _check_anchors_cxcywh(anchors_cxcywh)
    device, dtype = anchors_cxcywh.device, _work_dtype(anchors_cxcywh.dtype)
    boxes, labels, counts = _gather_targets(targets, cfg.num_classes, device, dtype)
    batch, num_boxes = len(counts), max(counts, default=0)
    counts_t = torch.tensor(counts, dtype=torch.long, device=device)  # [B]
    image = torch.repeat_interleave(torch.arange(batch, device=device), counts_t, output_size=boxes.shape[0])  # [N]
    slot = torch.arange(boxes.shape[0], device=device) - (counts_t.cumsum(0) - counts_t)[image]  # [N]
    padded_boxes = boxes.new_zeros(batch, num_boxes, 4)  # [B, M, 4]
    padded_boxes[image, slot] = boxes
    padded_labels = labels.new_zeros(batch, num_boxes)  # [B, M]
    padded_labels[image, slot] = labels
    return anchors_cxcywh.to(dtype), padded_boxes, padded_labels


# ---------------------------------------------------------------- input checks (shared with fast.py)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # float16 areas overflow at ~256 px; float64 stays float64 so its ties are exact too.
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_threshold(iou_threshold: float) -> None:
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) or not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be a number in (0, 1], got {iou_threshold!r}")


def _check_anchors_cxcywh(anchors_cxcywh: Tensor) -> None:
    if not isinstance(anchors_cxcywh, Tensor) or anchors_cxcywh.ndim != 2 or anchors_cxcywh.shape[1] != 4:
        got = list(anchors_cxcywh.shape) if isinstance(anchors_cxcywh, Tensor) else type(anchors_cxcywh).__name__
        raise ValueError(f"anchors_cxcywh must be a Tensor [A, 4] cxcywh pixels, got {got}")
    if not anchors_cxcywh.is_floating_point():
        raise ValueError(f"anchors_cxcywh must be a floating-point tensor, got {anchors_cxcywh.dtype}")
    if not bool(torch.isfinite(anchors_cxcywh).all() & (anchors_cxcywh[:, 2:] > 0).all()):
        raise ValueError("anchors_cxcywh must be finite with positive widths and heights (cxcywh pixels)")


def _check_box_tensor(boxes: Tensor, name: str, rows: str = "M") -> None:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [{rows}, 4] of xyxy pixels, got {type(boxes).__name__}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must be [{rows}, 4] xyxy pixels, got shape {list(boxes.shape)}")
    if not boxes.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {boxes.dtype}")


def _check_box_values(boxes: Tensor, locate: Callable[[int], str]) -> None:
    """One vectorized check of [N, 4] xyxy boxes; the error names ``locate(i)`` of the first bad box."""
    x1, y1, x2, y2 = boxes.unbind(1)  # [N] each
    not_finite = ~torch.isfinite(boxes).all(dim=1)
    inverted = (x2 < x1) | (y2 < y1)
    zero_area = (x2 == x1) | (y2 == y1)
    problems = (
        (not_finite, "finite coordinates (no NaN or inf)"),
        (inverted, "x1 <= x2 and y1 <= y2 (xyxy, not xywh or cxcywh)"),
        (zero_area, "a positive area (x2 > x1 and y2 > y1); zero-area boxes can never be matched"),
    )
    if not bool((not_finite | inverted | zero_area).any()):
        return
    for mask, expected in problems:
        bad = mask.nonzero()
        if bad.numel():
            i = int(bad[0, 0])
            raise ValueError(f"{locate(i)} must have {expected}, got {boxes[i].tolist()}")


def _gather_targets(
    targets: list[dict], num_classes: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor, list[int]]:
    """Check the structure of each target, concatenate, then check all values at once.

    Returns (boxes Tensor[N, 4], labels Tensor[N] long, counts list[int]) on ``device``.
    """
    if not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets must be a list of dicts with 'boxes' and 'labels', got {type(targets).__name__}")
    counts = []
    for b, target in enumerate(targets):
        if not isinstance(target, Mapping) or "boxes" not in target or "labels" not in target:
            got = sorted(target) if isinstance(target, Mapping) else type(target).__name__
            raise ValueError(f"targets[{b}] must be a dict with 'boxes' and 'labels', got {got}")
        boxes, labels = target["boxes"], target["labels"]
        _check_box_tensor(boxes, f"targets[{b}]['boxes']")
        if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.shape[0] != boxes.shape[0]:
            got = list(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"targets[{b}]['labels'] must be a Tensor [{boxes.shape[0]}] (one per box), got {got}")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"targets[{b}]['labels'] must be an integer tensor, got {labels.dtype}")
        counts.append(boxes.shape[0])
    if not targets:
        return torch.zeros(0, 4, device=device, dtype=dtype), torch.zeros(0, dtype=torch.long, device=device), counts
    boxes = torch.cat([t["boxes"].to(device=device, dtype=dtype) for t in targets])  # [N, 4]
    labels = torch.cat([t["labels"].to(device=device, dtype=torch.long) for t in targets])  # [N]
    offsets = [0]
    for count in counts:
        offsets.append(offsets[-1] + count)

    def locate(i: int, key: str = "boxes") -> str:
        b = bisect.bisect_right(offsets, i) - 1
        return f"targets[{b}]['{key}'][{i - offsets[b]}]"

    _check_box_values(boxes, locate)
    bad_label = (labels < 1) | (labels >= num_classes)
    if bool(bad_label.any()):
        i = int(bad_label.nonzero()[0, 0])
        raise ValueError(f"{locate(i, 'labels')} must be a class id in 1..{num_classes - 1} (0 is background), "
                         f"got {int(labels[i])}")  # fmt: skip
    return boxes, labels, counts
