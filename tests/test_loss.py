"""Tests for ssd_tutorial.loss: a hand-worked case, a slow reference written from the formula,
empty batches, gradients and input validation."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from ssd_tutorial.config import SSDConfig
from ssd_tutorial.loss import hard_negative_mask, multibox_loss


def reference_loss(loc_preds, cls_logits, loc_targets, cls_targets, neg_pos_ratio=3):
    """DESIGN.md's formula with plain Python loops over images and anchors (float64)."""
    B, A, C = cls_logits.shape
    num_pos = int((cls_targets > 0).sum())
    loc_sum, cls_sum = 0.0, 0.0
    for b in range(B):
        negatives = []
        positives_here = 0
        for a in range(A):
            logits = cls_logits[b, a].double()
            ce = float(torch.logsumexp(logits, 0) - logits[int(cls_targets[b, a])])
            if cls_targets[b, a] > 0:
                positives_here += 1
                cls_sum += ce
                for d in range(4):
                    diff = abs(float(loc_preds[b, a, d]) - float(loc_targets[b, a, d]))
                    loc_sum += 0.5 * diff * diff if diff < 1 else diff - 0.5
            else:
                negatives.append(ce)
        keep = math.floor(neg_pos_ratio * max(positives_here, 1))
        cls_sum += sum(sorted(negatives, reverse=True)[:keep])
    return loc_sum / max(num_pos, 1), cls_sum / max(num_pos, 1)


def random_batch(seed, B=3, A=40, C=5, positive_rate=0.1):
    g = torch.Generator().manual_seed(seed)
    loc_preds = torch.randn(B, A, 4, generator=g) * 1.5
    cls_logits = torch.randn(B, A, C, generator=g) * 2
    loc_targets = torch.randn(B, A, 4, generator=g)
    cls_targets = torch.randint(1, C, (B, A), generator=g)
    cls_targets[torch.rand(B, A, generator=g) > positive_rate] = 0
    cls_targets[0] = 0  # one image without objects
    loc_targets[cls_targets == 0] = 0
    return loc_preds, cls_logits, loc_targets, cls_targets


def test_hand_worked():
    """One image, 4 anchors, 2 classes, ratio 1: anchor 0 is positive, the hardest negative is anchor 2."""
    loc_preds = torch.tensor([[[0.5, -2.0, 0.0, 0.0], [9.0] * 4, [9.0] * 4, [0.0] * 4]])
    loc_targets = torch.zeros(1, 4, 4)
    cls_logits = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    cls_targets = torch.tensor([[1, 0, 0, 0]])
    losses = multibox_loss(loc_preds, cls_logits, loc_targets, cls_targets, neg_pos_ratio=1)
    # smooth-L1: 0.5 * 0.5² + (2 - 0.5) = 1.625; negatives of background anchors never count.
    assert losses["loss_loc"].item() == pytest.approx(1.625)
    # CE: positive log 2; negatives log 2, log(1 + e), log(1 + 1/e): keep log(1 + e).
    assert losses["loss_cls"].item() == pytest.approx(math.log(2) + math.log(1 + math.e))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ratio", [3, 1, 2.5])
def test_matches_reference(seed, ratio):
    batch = random_batch(seed, positive_rate=0.05 + 0.1 * seed)
    losses = multibox_loss(*batch, neg_pos_ratio=ratio)
    loc, cls = reference_loss(*batch, neg_pos_ratio=ratio)
    assert losses["loss_loc"].item() == pytest.approx(loc, rel=1e-5)
    assert losses["loss_cls"].item() == pytest.approx(cls, rel=1e-5)


def test_more_negatives_asked_than_exist():
    """An image that is mostly positive keeps all of its negatives, no more."""
    loc_preds, cls_logits, loc_targets, cls_targets = random_batch(7, A=8)
    cls_targets[1] = torch.tensor([1, 2, 3, 1, 2, 3, 0, 0])
    losses = multibox_loss(loc_preds, cls_logits, loc_targets, cls_targets)
    loc, cls = reference_loss(loc_preds, cls_logits, loc_targets, cls_targets)
    assert losses["loss_cls"].item() == pytest.approx(cls, rel=1e-5)
    assert losses["loss_loc"].item() == pytest.approx(loc, rel=1e-5)


def test_all_empty_batch_is_finite():
    loc_preds, cls_logits, loc_targets, _ = random_batch(0)
    cls_targets = torch.zeros(3, 40, dtype=torch.long)
    loc_preds.requires_grad_(True)
    cls_logits.requires_grad_(True)
    losses = multibox_loss(loc_preds, cls_logits, loc_targets, cls_targets)
    assert losses["loss_loc"].item() == 0.0
    _, cls = reference_loss(loc_preds.detach(), cls_logits.detach(), loc_targets, cls_targets)
    assert losses["loss_cls"].item() == pytest.approx(cls, rel=1e-5) and cls > 0  # 3 hardest per image
    (losses["loss_loc"] + losses["loss_cls"]).backward()
    assert torch.isfinite(loc_preds.grad).all() and torch.equal(loc_preds.grad, torch.zeros_like(loc_preds))
    assert torch.isfinite(cls_logits.grad).all()
    assert int((cls_logits.grad.abs().sum(-1) > 0).sum()) == 3 * 3  # only the kept negatives learn


def test_gradients_finite_and_only_on_kept_anchors():
    loc_preds, cls_logits, loc_targets, cls_targets = random_batch(3, positive_rate=0.2)
    loc_preds.requires_grad_(True)
    cls_logits.requires_grad_(True)
    losses = multibox_loss(loc_preds, cls_logits, loc_targets, cls_targets)
    (losses["loss_loc"] + losses["loss_cls"]).backward()
    assert torch.isfinite(loc_preds.grad).all() and torch.isfinite(cls_logits.grad).all()
    positive = cls_targets > 0
    assert (loc_preds.grad[~positive] == 0).all()
    pos_per_image = positive.sum(1).clamp(min=1)
    kept = (cls_logits.grad.abs().sum(-1) > 0).sum(1)
    assert torch.equal(kept, positive.sum(1) + (3 * pos_per_image).clamp(max=40 - positive.sum(1)))


def test_hard_negative_mask_counts():
    ce = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7, 0.2], [0.4, 0.3, 0.2, 0.1, 0.6, 0.5]])
    positive = torch.tensor([[True, False, False, False, False, False], [False] * 6])
    mask = hard_negative_mask(ce, positive, neg_pos_ratio=2)
    assert mask.tolist() == [[False, True, False, False, True, False],  # 2 * 1 hardest: 0.9, 0.7
                             [False, False, False, False, True, True]]  # empty image: 2 hardest  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
def test_hard_negative_mask_equals_rank_by_double_argsort(seed):
    """Same anchors as ranking every anchor (argsort of the argsort), also with ties everywhere."""
    g = torch.Generator().manual_seed(seed)
    ce = torch.randint(0, 6, (4, 300), generator=g).float() / 5  # coarse values: many ties
    positive = torch.rand(4, 300, generator=g) < 0.05
    positive[1] = False  # an empty image
    order = ce.masked_fill(positive, float("-inf")).argsort(dim=1, descending=True)
    num_neg = (3 * positive.sum(1).clamp(min=1))[:, None]
    expected = (order.argsort(dim=1) < num_neg) & ~positive
    assert torch.equal(hard_negative_mask(ce, positive, neg_pos_ratio=3), expected)


def test_half_precision_logits_give_float32_loss():
    batch = random_batch(1)
    batch = (batch[0].bfloat16(), batch[1].bfloat16(), batch[2], batch[3])
    losses = multibox_loss(*batch)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


def test_float64_follows():
    batch = [t.double() if t.is_floating_point() else t for t in random_batch(2)]
    losses = multibox_loss(*batch)
    assert all(v.dtype == torch.float64 for v in losses.values())


def test_bad_inputs():
    loc_preds, cls_logits, loc_targets, cls_targets = random_batch(0)
    with pytest.raises(ValueError, match=r"loc_preds must be \[3, 40, 4\].*got \[3, 39, 4\]"):
        multibox_loss(loc_preds[:, :39], cls_logits, loc_targets, cls_targets)
    with pytest.raises(ValueError, match=r"cls_targets must be \[3, 40\].*got \[3, 40, 1\]"):
        multibox_loss(loc_preds, cls_logits, loc_targets, cls_targets[..., None])
    with pytest.raises(ValueError, match=r"cls_logits must be \[B, A, C\]"):
        multibox_loss(loc_preds, cls_logits[0], loc_targets, cls_targets)
    with pytest.raises(TypeError, match="integer tensor"):
        multibox_loss(loc_preds, cls_logits, loc_targets, cls_targets.float())
    for bad_id, got in ((5, r"\[0, 5\]"), (-1, r"\[-1, ")):
        bad = cls_targets.clone()
        bad[1, 0] = bad_id
        with pytest.raises(ValueError, match=r"class ids in \[0, 4\] \(C = 5\), got values in " + got):
            multibox_loss(loc_preds, cls_logits, loc_targets, bad)
    with pytest.raises(TypeError, match="loc_targets must be a torch.Tensor"):
        multibox_loss(loc_preds, cls_logits, loc_targets.tolist(), cls_targets)


def test_neg_pos_ratio_default_is_the_configs():
    batch = random_batch(4)
    assert inspect.signature(multibox_loss).parameters["neg_pos_ratio"].default == SSDConfig.neg_pos_ratio == 3
    default, explicit = multibox_loss(*batch), multibox_loss(*batch, neg_pos_ratio=SSDConfig.neg_pos_ratio)
    assert all(torch.equal(default[k], explicit[k]) for k in default)
    assert multibox_loss(*batch, neg_pos_ratio=1)["loss_cls"] < default["loss_cls"]  # the ratio is used


@pytest.mark.parametrize("ratio", [-1, -0.5, float("nan"), float("inf"), True, "3", None])
def test_bad_neg_pos_ratio(ratio):
    batch = random_batch(0)
    with pytest.raises(ValueError, match="neg_pos_ratio must be"):
        multibox_loss(*batch, neg_pos_ratio=ratio)
    ce, positive = torch.rand(2, 10), torch.zeros(2, 10, dtype=torch.bool)
    with pytest.raises(ValueError, match="neg_pos_ratio must be"):
        hard_negative_mask(ce, positive, ratio)


def test_zero_ratio_keeps_only_positives():
    loc_preds, cls_logits, loc_targets, cls_targets = random_batch(5, positive_rate=0.3)
    positive = cls_targets > 0
    losses = multibox_loss(loc_preds, cls_logits, loc_targets, cls_targets, neg_pos_ratio=0)
    ce = torch.nn.functional.cross_entropy(cls_logits.transpose(1, 2), cls_targets, reduction="none")
    assert losses["loss_cls"].item() == pytest.approx(float(ce[positive].sum() / positive.sum()), rel=1e-6)


def test_label_check_on_cpu_by_default_and_skippable(monkeypatch):
    import ssd_tutorial.loss as loss

    checked = []
    check = loss._check_labels
    monkeypatch.setattr(loss, "_check_labels", lambda *args: checked.append(args[1]) or check(*args))
    batch = random_batch(1)
    multibox_loss(*batch)
    multibox_loss(*batch, check_inputs=False)
    assert checked == [5]  # only the first call: C = 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_label_check_on_cuda_unless_asked(monkeypatch):
    import ssd_tutorial.loss as loss

    checked = []
    monkeypatch.setattr(loss, "_check_labels", lambda *args: checked.append(args[1]))
    batch = [t.cuda() for t in random_batch(1)]
    multibox_loss(*batch)
    assert checked == []
    multibox_loss(*batch, check_inputs=True)
    assert checked == [5]


@pytest.mark.parametrize("name", ["loc_preds", "cls_logits", "loc_targets"])
def test_non_finite_predictions_or_targets_are_named(name):
    B, A, C = 2, 6, 3
    tensors = {"loc_preds": torch.zeros(B, A, 4), "cls_logits": torch.zeros(B, A, C),
               "loc_targets": torch.zeros(B, A, 4)}
    tensors[name][1, 2, 0] = float("nan")
    cls_targets = torch.zeros(B, A, dtype=torch.long)
    cls_targets[0, 0] = 1
    with pytest.raises(ValueError, match=rf"{name} must be finite, got 1 NaN or inf values"):
        multibox_loss(tensors["loc_preds"], tensors["cls_logits"], tensors["loc_targets"], cls_targets, 3)
