"""The MultiBox loss: smooth-L1 on positive anchors plus cross-entropy with hard negative mining.

Introduced in: 05_loss.ipynb
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import SSDConfig

__all__ = ["multibox_loss", "hard_negative_mask"]


def _check_shapes(loc_preds: Tensor, cls_logits: Tensor, loc_targets: Tensor, cls_targets: Tensor) -> None:
    named = {"loc_preds": loc_preds, "cls_logits": cls_logits, "loc_targets": loc_targets, "cls_targets": cls_targets}
    for name, value in named.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if cls_logits.ndim != 3 or cls_logits.shape[-1] < 2:
        raise ValueError(f"cls_logits must be [B, A, C] with C >= 2, got {list(cls_logits.shape)}")
    B, A, C = cls_logits.shape
    expected = {"loc_preds": [B, A, 4], "loc_targets": [B, A, 4], "cls_targets": [B, A]}
    for name, shape in expected.items():
        if list(named[name].shape) != shape:
            raise ValueError(f"{name} must be {shape} (from cls_logits [B, A, C] = {[B, A, C]}), "
                             f"got {list(named[name].shape)}")  # fmt: skip
    if cls_targets.dtype.is_floating_point or cls_targets.dtype == torch.bool:
        raise TypeError(f"cls_targets must be an integer tensor of class ids, got {cls_targets.dtype}")


def _check_labels(cls_targets: Tensor, num_classes: int) -> None:
    """Class ids in [0, C-1]; reads two values back to the host (a sync on an accelerator)."""
    if cls_targets.numel() == 0:
        return
    low, high = (int(v) for v in torch.aminmax(cls_targets))
    if not 0 <= low <= high < num_classes:
        raise ValueError(f"cls_targets must be class ids in [0, {num_classes - 1}] (C = {num_classes}), "
                         f"got values in [{low}, {high}]")  # fmt: skip


def _check_finite(**tensors: Tensor) -> None:
    """NaN / inf in a prediction or target would make both losses NaN: name the tensor instead."""
    for name, tensor in tensors.items():
        if tensor.numel() and not bool(torch.isfinite(tensor.sum())):  # one sum; count only when it fails
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise ValueError(f"{name} must be finite, got {bad} NaN or inf values of {tensor.numel()}")


def _check_ratio(neg_pos_ratio: float) -> None:
    if isinstance(neg_pos_ratio, bool) or not isinstance(neg_pos_ratio, (int, float)) or not neg_pos_ratio >= 0:
        raise ValueError(f"neg_pos_ratio must be a number >= 0 (negatives kept per positive; SSD paper: 3), "
                         f"got {neg_pos_ratio!r}")  # fmt: skip
    if neg_pos_ratio == float("inf"):
        raise ValueError("neg_pos_ratio must be finite, got inf (to keep every negative, use a large number)")


def hard_negative_mask(ce: Tensor, positive: Tensor, neg_pos_ratio: float) -> Tensor:
    """Which negatives each image keeps: its ``neg_pos_ratio * P_i`` with the largest loss.

    An image without positives keeps its ``neg_pos_ratio`` hardest negatives (SSD paper, section
    2.2 "Hard negative mining", plus the empty-image rule of this tutorial). Ties are broken by
    the sort, which never changes the summed loss.

    Args:
        ce: Tensor[B, A] per-anchor classification loss.
        positive: Tensor[B, A] bool, anchors matched to an object.
        neg_pos_ratio: negatives kept per positive (``cfg.neg_pos_ratio``), a number >= 0.

    Returns:
        Tensor[B, A] bool, the kept negatives (never a positive).

    Introduced in: 05_loss.ipynb
    """
    _check_ratio(neg_pos_ratio)
    num_pos = positive.sum(dim=1)  # [B]
    num_neg = torch.floor(neg_pos_ratio * num_pos.clamp(min=1).to(torch.float64)).long()  # [B]
    neg_loss = ce.detach().masked_fill(positive, float("-inf"))  # positives sort last
    order = neg_loss.argsort(dim=1, descending=True)  # [B, A] anchor ids, hardest first
    # Mark the first num_neg of each row, then scatter the marks back to anchor order (cheaper than
    # a second argsort to get each anchor's rank).
    first = torch.arange(order.shape[1], device=order.device) < num_neg[:, None]  # [B, A] by rank
    return torch.zeros_like(positive).scatter_(1, order, first) & ~positive


def multibox_loss(
    loc_preds: Tensor,
    cls_logits: Tensor,
    loc_targets: Tensor,
    cls_targets: Tensor,
    neg_pos_ratio: float = SSDConfig.neg_pos_ratio,
    *,
    check_inputs: bool | None = None,
) -> dict[str, Tensor]:
    """SSD's training objective (SSD paper, eq. 1-3), both terms divided by the positives of the batch.

    Args:
        loc_preds: Tensor[B, A, 4] predicted offsets (see ``boxes.encode_boxes``).
        cls_logits: Tensor[B, A, C] class scores before softmax, class 0 is background.
        loc_targets: Tensor[B, A, 4] encoded offsets of the matched boxes (0 for background).
        cls_targets: Tensor[B, A] long, class of the matched box, 0 for background.
        neg_pos_ratio: negatives kept per positive in hard negative mining, a number >= 0; the default is
            SSDConfig's (the paper's 3). The model passes ``cfg.neg_pos_ratio``.
        check_inputs: check that ``cls_targets`` are class ids in [0, C-1] and that predictions and targets
            are finite (ValueError naming the tensor). Default: on a CPU only, where it costs little; on an
            accelerator it would wait for the GPU every step (pass True to debug). ``encode_targets`` only
            writes valid targets, and ``fit`` stops on a non-finite loss either way.

    Returns:
        ``{"loss_loc": Tensor[], "loss_cls": Tensor[]}``: with P the positives of the whole batch,
        loss_loc = Σ smooth-L1 (β = 1) over positives and their 4 coordinates / max(P, 1);
        loss_cls = Σ cross-entropy over positives and kept negatives / max(P, 1). Never NaN, also
        for a batch without objects.

    Introduced in: 05_loss.ipynb
    """
    _check_shapes(loc_preds, cls_logits, loc_targets, cls_targets)
    _check_ratio(neg_pos_ratio)
    if check_inputs or (check_inputs is None and cls_targets.device.type == "cpu"):
        _check_labels(cls_targets, cls_logits.shape[-1])
        _check_finite(loc_preds=loc_preds, cls_logits=cls_logits, loc_targets=loc_targets)
    dtype = torch.promote_types(cls_logits.dtype, torch.float32)  # fp16 logits under autocast
    positive = cls_targets > 0  # [B, A]
    num_pos = positive.sum().clamp(min=1).to(dtype)

    loss_loc = F.smooth_l1_loss(loc_preds[positive].to(dtype), loc_targets[positive].to(dtype),
                                reduction="sum", beta=1.0)  # fmt: skip
    # Classes on dim 1 ([B, C, A] view, no copy): log-softmax then runs along the contiguous anchors; on a
    # CPU that is ~5x faster (forward and backward) than over B*A rows of only C values.
    ce = F.cross_entropy(cls_logits.transpose(1, 2).to(dtype), cls_targets.long(), reduction="none")  # [B, A]
    keep = positive | hard_negative_mask(ce, positive, neg_pos_ratio)  # [B, A]
    loss_cls = ce[keep].sum()
    return {"loss_loc": loss_loc / num_pos, "loss_cls": loss_cls / num_pos}
