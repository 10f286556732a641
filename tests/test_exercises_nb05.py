"""Tests for the exercises of 05_loss.ipynb: right answers pass, wrong ones get a message that teaches."""

from __future__ import annotations

import math

import pytest
import torch

from ssd_tutorial import exercises
from ssd_tutorial.boxes import encode_boxes, xyxy_to_cxcywh
from ssd_tutorial.exercises import nb05
from ssd_tutorial.loss import hard_negative_mask


def _right_negatives(P, A):
    return min(3 * max(P, 1), A - P)


def test_registered():
    for name in ("05_negatives_kept", "05_smooth_l1", "05_encode_box"):
        exercise = exercises.get_exercise(name)
        assert exercise is not None and exercise.question and exercise.hint and exercise.solution


@pytest.mark.parametrize("P, A", [(0, 20), (1, 20), (4, 20), (5, 20), (6, 20), (20, 20), (0, 2), (3, 1524)])
def test_reference_rule_equals_hard_negative_mask(P, A):
    # The checker's rule is the package's: count what hard_negative_mask keeps on a random image.
    ce = torch.rand(1, A, generator=torch.Generator().manual_seed(P * 100 + A))
    positive = torch.zeros(1, A, dtype=torch.bool)
    positive[0, :P] = True
    kept = int(hard_negative_mask(ce, positive, neg_pos_ratio=3).sum())
    assert kept == nb05.negatives_kept(P, A) == _right_negatives(P, A)


def test_negatives_kept_right(capsys):
    assert exercises.check("05_negatives_kept", _right_negatives) is True
    assert exercises.check("05_negatives_kept", lambda P, A: torch.tensor(_right_negatives(P, A))) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer, needles",
    [
        (lambda P, A: 3 * P, ["negatives_kept(0, 1524) should be 3, got 0", "empty images"]),
        (lambda P, A: 3 * max(P, 1), ["negatives_kept(400, 1524) should be 1124, got 1200", "only A - P = 1124"]),
        (lambda P, A: 3 * max(P, 1) + 1, ["negatives_kept(0, 1524) should be 3, got 4"]),
        (lambda P: 3, ["raised TypeError"]),
        (15, ["should be a function"]),
    ],
)
def test_negatives_kept_wrong(answer, needles, capsys):
    assert exercises.check("05_negatives_kept", answer) is False
    out = capsys.readouterr().out
    for needle in needles:
        assert needle in out, out


def test_smooth_l1_hand_value_and_torch():
    assert nb05.smooth_l1(nb05.SMOOTH_L1_PRED, nb05.SMOOTH_L1_TARGET) == pytest.approx(0.02 + 1.0 + 1.5 + 0.125)
    pred, target = torch.tensor(nb05.SMOOTH_L1_PRED), torch.tensor(nb05.SMOOTH_L1_TARGET)
    ref = torch.nn.functional.smooth_l1_loss(pred, target, reduction="sum", beta=1.0)
    assert float(ref) == pytest.approx(2.645, rel=1e-6)


@pytest.mark.parametrize("answer", [2.645, torch.tensor(2.645), torch.tensor(2.645, dtype=torch.float64)])
def test_smooth_l1_right(answer, capsys):
    assert exercises.check("05_smooth_l1", answer) is True


@pytest.mark.parametrize(
    "answer, needle",
    [
        (0.5 * (0.2**2 + 1.5**2 + 2.0**2 + 0.5**2), "(L2)"),
        (0.2 + 1.5 + 2.0 + 0.5, "plain L1"),
        (0.02 + 1.0 + 2.5 + 0.125, "subtract the target"),
        (2.6, "should be 2.645, got 2.6"),
        ("2.645", "should be a number"),
    ],
)
def test_smooth_l1_wrong(answer, needle, capsys):
    assert exercises.check("05_smooth_l1", answer) is False
    assert needle in capsys.readouterr().out


def test_encode_box_equals_package():
    gt = xyxy_to_cxcywh(torch.tensor([nb05.ENCODE_GT_XYXY]))
    anchor = torch.tensor([nb05.ENCODE_ANCHOR_CXCYWH])
    deltas = encode_boxes(gt, anchor, nb05.ENCODE_VARIANCES)[0]
    assert torch.allclose(deltas, torch.tensor(nb05.encode_one()), atol=1e-6)
    assert nb05.encode_one() == pytest.approx((0.625, 1.875, math.log(1.25) / 0.2, math.log(1.875) / 0.2))


@pytest.mark.parametrize("answer", [nb05.encode_one(), list(nb05.encode_one()), torch.tensor(nb05.encode_one())])
def test_encode_box_right(answer):
    assert exercises.check("05_encode_box", answer) is True


def test_encode_box_wrong_messages(capsys):
    right = nb05.encode_one()
    assert exercises.check("05_encode_box", [right[0] * 0.1, right[1] * 0.1, right[2] * 0.2, right[3] * 0.2]) is False
    assert "left out the variances" in capsys.readouterr().out
    corners = [(30 - 48) / 3.2, (40 - 64) / 3.2, right[2], right[3]]
    assert exercises.check("05_encode_box", corners) is False
    assert "cxcywh" in capsys.readouterr().out
    wrong = list(right)
    wrong[3] = 3.0
    assert exercises.check("05_encode_box", wrong) is False
    out = capsys.readouterr().out
    assert "element [3]" in out and "3.14" in out
    assert exercises.check("05_encode_box", right[:3]) is False
    assert "should have 4 values" in capsys.readouterr().out
