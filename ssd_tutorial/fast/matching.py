"""Fast anchor matching and target encoding: the same targets as :mod:`ssd_tutorial.matching`, faster.

Introduced in: 05_loss.ipynb (the taught version); the model trains with this one.

Two tricks (the rule and its tie-breaking are unchanged; tests/test_fast.py checks equality):

* **Blocked IoU maxima.** Both steps start from maxima of the IoU tensor: each anchor's best IoU, each box's
  best IoU and anchor. :func:`_iou_maxima` computes them a block of anchors at a time, with in-place
  operations in one workspace, instead of keeping the [B, M, A] tensor. On a CPU a block stays in the cache.
* **Greedy rounds only where boxes compete.** When box m is picked in round t, at most t - 1 <= M - 1
  anchors have been removed, so its pick is among its M best anchors: the rounds run on [B, M, M]
  candidates (top M anchors per box), not on [B, M, A]. And when no two boxes of an image share their
  best anchor (most images), the rounds are skipped: each box simply takes its best anchor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..boxes import cxcywh_to_xyxy
from ..config import SSDConfig
from ..matching import (
    MIN_IOU,
    _encode_matches,
    _padded_targets,
    checked_match_inputs,
)

__all__ = ["match_anchors", "encode_targets"]

# IoU values per block in _iou_maxima: on a CPU 1 MiB of float32, which stays in the cache; on a GPU
# enough for a whole batch in one block (fewer kernel launches), within bounded memory.
_BLOCK_VALUES = {"cpu": 2**18, "other": 2**24}


def _columns(boxes_xyxy: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(x1, y1, x2, y2, area) of boxes [..., N, 4], each a contiguous Tensor[..., N]: what IoU is built from."""
    x1, y1, x2, y2 = boxes_xyxy.movedim(-1, 0).contiguous()  # [..., N] each
    return x1, y1, x2, y2, (x2 - x1) * (y2 - y1)


def _iou_from_columns(boxes: tuple[Tensor, ...], anchors: tuple[Tensor, ...], workspace: Tensor) -> Tensor:
    """IoU from :func:`_columns`: box columns shaped [..., M, 1], anchor columns [..., 1, A] -> [..., M, A].

    Same values as ``torchvision.ops.box_iou`` (same operations in the same order), built with in-place
    operations in ``workspace`` (Tensor[3, ..., M, A]; the result is ``workspace[0]``): box_iou materializes
    [M, A, 2] corner tensors, which makes it ~10x slower for a batch of boxes against 8732 anchors.
    """
    bx1, by1, bx2, by2, box_area = boxes
    ax1, ay1, ax2, ay2, anchor_area = anchors
    inter, scratch, scratch2 = workspace  # [..., M, A] each
    torch.minimum(bx2, ax2, out=inter)
    inter.sub_(torch.maximum(bx1, ax1, out=scratch)).clamp_(min=0)  # intersection width
    torch.minimum(by2, ay2, out=scratch)
    scratch.sub_(torch.maximum(by1, ay1, out=scratch2)).clamp_(min=0)  # intersection height
    inter.mul_(scratch)  # intersection area
    union = torch.add(box_area, anchor_area, out=scratch).sub_(inter)
    return inter.div_(union)


def _pairwise_iou(boxes_xyxy: Tensor, anchors_xyxy: Tensor) -> Tensor:
    """IoU of every box with every anchor: boxes [..., M, 4], anchors [..., A, 4] -> [..., M, A]."""
    boxes = [c.unsqueeze(-1) for c in _columns(boxes_xyxy)]  # [..., M, 1] each
    anchors = [c.unsqueeze(-2) for c in _columns(anchors_xyxy)]  # [..., 1, A] each
    workspace = boxes[0].new_empty(3, *torch.broadcast_shapes(boxes[0].shape, anchors[0].shape))
    return _iou_from_columns(boxes, anchors, workspace)


def _iou_maxima(boxes_xyxy: Tensor, anchors_xyxy: Tensor, block: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The IoU maxima both matching steps start from, without keeping the [B, M, A] IoU tensor.

    The IoU is computed for a block of anchors at a time. On a CPU a block is small enough to stay in
    the cache: the ~10 passes over it then cost far less than over a [B, M, A] tensor in main memory.
    Columns and areas are computed once, outside the loop, and one workspace serves every block.

    Args:
        boxes_xyxy: Tensor[B, M, 4].
        anchors_xyxy: Tensor[A, 4].
        block: anchors per block; default: from ``_BLOCK_VALUES`` IoU values per block.

    Returns:
        anchor_best: Tensor[B, A], best IoU of each anchor over the boxes of its image.
        box_best: Tensor[B, M], best IoU of each box over the anchors.
        box_best_anchor: Tensor[B, M] long, that anchor (ties -> lowest anchor index); 0 where box_best is 0.
    """
    batch, num_boxes, _ = boxes_xyxy.shape
    num_anchors = anchors_xyxy.shape[0]
    if block is None:
        values = _BLOCK_VALUES["cpu" if anchors_xyxy.device.type == "cpu" else "other"]
        block = max(256, values // max(batch * num_boxes, 1))
    boxes = [c.unsqueeze(-1) for c in _columns(boxes_xyxy)]  # [B, M, 1] each
    anchors = _columns(anchors_xyxy)  # [A] each
    anchor_best = boxes_xyxy.new_empty(batch, num_anchors)
    # From 0, not -1: a box that overlaps no anchor of a block (IoU 0) then skips the argmax of that block.
    box_best = boxes_xyxy.new_zeros(batch, num_boxes)
    box_best_anchor = torch.zeros(batch, num_boxes, dtype=torch.long, device=boxes_xyxy.device)
    workspace = boxes_xyxy.new_empty(3, batch * num_boxes * min(block, num_anchors))
    for start in range(0, num_anchors, block):
        size = min(block, num_anchors - start)
        work = workspace[:, : batch * num_boxes * size].view(3, batch, num_boxes, size)  # [3, B, M, size]
        iou = _iou_from_columns(boxes, [c[start : start + size] for c in anchors], work)  # [B, M, size]
        torch.amax(iou, dim=1, out=anchor_best[:, start : start + size])  # [B, size]
        value = iou.amax(dim=-1)  # [B, M]
        better = value > box_best  # strict: an earlier block (lower anchor index) keeps a tie
        box_best = torch.maximum(value, box_best)
        # argmax is ~7x slower than amax on a CPU: run it only on the rows of the boxes that improved.
        rows = better.view(-1).nonzero().squeeze(1)  # [R]
        box_best_anchor.view(-1)[rows] = iou.view(-1, size)[rows].argmax(dim=1) + start  # ties -> lowest
    return anchor_best, box_best, box_best_anchor


def _ranked_candidates(iou: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k best anchors of each box, ordered by IoU descending then anchor index ascending.

    Args:
        iou: Tensor[B, M, A].
        k: candidates per box, 1 <= k <= A.

    Returns:
        (values Tensor[B, M, k], anchor indices Tensor[B, M, k] long).
    """
    num_anchors = iou.shape[-1]
    k_plus = min(k + 1, num_anchors)
    values, index = iou.topk(k_plus, dim=-1)  # [B, M, k+1]; topk orders ties arbitrarily
    if k_plus > k:
        # The top-k *set* is ambiguous only when the (k+1)-th value equals the k-th one. Such a row takes
        # every anchor above the k-th value, then the lowest-index anchors equal to it (a running count
        # picks them, cheaper than sorting the row). Below MIN_IOU the candidates are never taken, so
        # ties there do not matter.
        ambiguous = (values[..., k] == values[..., k - 1]) & (values[..., k - 1] >= MIN_IOU)  # [B, M]
        values, index = values[..., :k].contiguous(), index[..., :k].contiguous()  # [B, M, k]
        if bool(ambiguous.any()):
            rows = ambiguous.flatten().nonzero().squeeze(1)  # [R]
            row_iou = iou.flatten(0, 1)[rows]  # [R, A]
            kth = values.view(-1, k)[rows, k - 1 :]  # [R, 1]
            above, tied = row_iou > kth, row_iou == kth  # [R, A] each
            free = k - above.sum(dim=1, keepdim=True)  # [R, 1] places left for tied anchors
            chosen = above | (tied & (tied.cumsum(dim=1) <= free))  # [R, A], k per row
            row_index = chosen.nonzero()[:, 1].view(-1, k)  # [R, k] anchor ids, ascending
            index.view(-1, k)[rows] = row_index
            values.view(-1, k)[rows] = row_iou.gather(1, row_index)
    # Order inside the set: anchor index ascending, then a stable sort by IoU descending.
    index, order = index.sort(dim=-1)
    values = values.gather(-1, order)
    values, order = values.sort(dim=-1, descending=True, stable=True)
    return values, index.gather(-1, order)


def _greedy_on_candidates(values: Tensor, index: Tensor) -> Tensor:
    """The greedy bipartite step on ranked candidate lists (see :func:`_ranked_candidates`).

    Args:
        values: Tensor[B, M, k] IoU of each box's k best anchors.
        index: Tensor[B, M, k] long, those anchors.

    Returns:
        Tensor[B, M] long: the anchor each box takes, -1 if none.
    """
    batch, num_boxes, k = values.shape
    values = values.clone()  # [B, M, k], entries are set to -1 as they are removed
    flat_values = values.view(batch, num_boxes * k)  # [B, M*k], shares memory with values
    flat_index = index.reshape(batch, num_boxes * k)  # [B, M*k]
    images = torch.arange(batch, device=values.device)
    taken = torch.full((batch, num_boxes), -1, dtype=torch.long, device=values.device)
    for _ in range(min(num_boxes, k)):
        # max returns the first maximum: the lowest box, then its best-ranked (lowest-index) anchor.
        best, position = flat_values.max(dim=1)  # [B]
        box = torch.div(position, k, rounding_mode="floor")  # [B]
        anchor = flat_index.gather(1, position.unsqueeze(1)).squeeze(1)  # [B]
        keep = best >= MIN_IOU  # [B]; an image whose best is below is finished
        taken[images, box] = torch.where(keep, anchor, taken[images, box])
        values[images, box] = -1.0  # remove box m's column
        values.masked_fill_(index == anchor.view(batch, 1, 1), -1.0)  # remove anchor a's row from every box
    return taken


def _greedy_anchors(boxes_xyxy: Tensor, anchors_xyxy: Tensor, box_best: Tensor, box_best_anchor: Tensor) -> Tensor:
    """Greedy bipartite step on a batch -> Tensor[B, M] long, the anchor each box takes or -1.

    Shortcut: if no two boxes of an image share their best anchor, the greedy step gives every box its
    best anchor (no pick ever removes another box's best). Only images where two boxes compete run
    the rounds, on their M best anchors per box.

    Args:
        boxes_xyxy: Tensor[B, M, 4]; anchors_xyxy: Tensor[A, 4]; box_best, box_best_anchor: Tensor[B, M]
            from :func:`_iou_maxima`.
    """
    num_boxes, num_anchors = boxes_xyxy.shape[1], anchors_xyxy.shape[0]
    taken = torch.where(box_best >= MIN_IOU, box_best_anchor, -1)  # [B, M]
    clash = (taken.unsqueeze(2) == taken.unsqueeze(1)) & (taken >= 0).unsqueeze(2)  # [B, M, M]
    clash &= ~torch.eye(num_boxes, dtype=torch.bool, device=taken.device)
    competing = clash.flatten(1).any(dim=1)  # [B]
    if bool(competing.any()):
        images = competing.nonzero().squeeze(1)  # [b]
        iou = _pairwise_iou(boxes_xyxy[images], anchors_xyxy)  # [b, M, A], only for these images
        values, index = _ranked_candidates(iou, min(num_boxes, num_anchors))  # [b, M, k] each
        taken[images] = _greedy_on_candidates(values, index)
    return taken


def _match_steps(boxes_xyxy: Tensor, anchors_xyxy: Tensor, iou_threshold: float) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Both matching steps on a batch: boxes Tensor[B, M, 4], anchors Tensor[A, 4].

    Returns the matches of the threshold step, then those of the greedy step, each as index tensors
    (image [P], anchor [P], box [P]). Write them in this order, so the greedy step wins where both
    matched the same anchor. Padding boxes must come after the real ones and overlap no anchor.
    """
    if boxes_xyxy.shape[1] == 0 or anchors_xyxy.shape[0] == 0:
        return []
    anchor_best, box_best, box_best_anchor = _iou_maxima(boxes_xyxy, anchors_xyxy)
    # Threshold step, on the few anchors above the threshold (argmax: ties -> lowest box index).
    image, anchor = (anchor_best >= iou_threshold).nonzero(as_tuple=True)  # [P] each
    iou = _pairwise_iou(boxes_xyxy[image], anchors_xyxy[anchor].unsqueeze(1))  # [P, M, 1]
    threshold_step = (image, anchor, iou.squeeze(2).argmax(dim=1))
    taken = _greedy_anchors(boxes_xyxy, anchors_xyxy, box_best, box_best_anchor)  # [B, M]
    image, box = (taken >= 0).nonzero(as_tuple=True)  # [G] each
    return [threshold_step, (image, taken[image, box], box)]


def _match_batch(boxes_xyxy: Tensor, anchors_xyxy: Tensor, iou_threshold: float) -> Tensor:
    """Both matching steps on boxes Tensor[B, M, 4] and anchors Tensor[A, 4] -> Tensor[B, A] long, box or -1."""
    batch, num_anchors = boxes_xyxy.shape[0], anchors_xyxy.shape[0]
    matches = torch.full((batch, num_anchors), -1, dtype=torch.long, device=anchors_xyxy.device)  # [B, A]
    for image, anchor, box in _match_steps(boxes_xyxy, anchors_xyxy, iou_threshold):
        matches[image, anchor] = box  # the greedy step comes last: it wins
    return matches


def match_anchors(gt_boxes_xyxy: Tensor, anchors_xyxy: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Same as :func:`ssd_tutorial.matching.match_anchors` (same arguments, same result), faster."""
    gt, anchors = checked_match_inputs(gt_boxes_xyxy, anchors_xyxy, iou_threshold)
    return _match_batch(gt.unsqueeze(0), anchors, iou_threshold).squeeze(0)  # [A]


def encode_targets(targets: list[dict], anchors_cxcywh: Tensor, cfg: SSDConfig) -> tuple[Tensor, Tensor]:
    """Same as :func:`ssd_tutorial.matching.encode_targets` (same arguments, same result), faster.

    The padding boxes of the taught version have zero size: IoU exactly 0, so never matched here either.
    """
    anchors, boxes, labels = _padded_targets(targets, anchors_cxcywh, cfg)  # [A, 4], [B, M, 4], [B, M]
    # The threshold step's matches, then the greedy step's, which overwrite them where both matched an anchor.
    steps = _match_steps(boxes, cxcywh_to_xyxy(anchors), cfg.iou_threshold)
    return _encode_matches(steps, len(anchors), anchors, boxes, labels, cfg.variances, anchors_cxcywh.dtype)
