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
        (lambda P, A: 3 * P, ["negatives_kept(0, 1524) (0) is too small", "empty images"]),
        (lambda P, A: 3 * max(P, 1), ["negatives_kept(400, 1524) (1200) is too large", "at most A - P"]),
        (lambda P, A: 3 * max(P, 1) + 1, ["negatives_kept(0, 1524) (4) is off by one (too large)"]),
        (lambda P: 3, ["raised TypeError"]),
        (15, ["should be a function"]),
    ],
)
def test_negatives_kept_wrong(answer, needles, capsys):
    assert exercises.check("05_negatives_kept", answer) is False
    out = capsys.readouterr().out
    for needle in needles:
        assert needle in out, out
    assert "1124" not in out and "should be 3" not in out  # the expected value is only in solution()


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
        (2.6, "the smooth-L1 loss (2.6) is too small"),
        ("2.645", "should be a number"),
    ],
)
def test_smooth_l1_wrong(answer, needle, capsys):
    assert exercises.check("05_smooth_l1", answer) is False
    out = capsys.readouterr().out
    assert needle in out and "2.645" not in out.replace(repr(answer), "")
    assert "exercises.hint('05_smooth_l1')" in out


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
    assert "element [3] (3) is too small" in out and "3.14" not in out
    assert exercises.check("05_encode_box", right[:3]) is False
    assert "should have 4 values" in capsys.readouterr().out


# ---- 05_match --------------------------------------------------------------------------------------------------


def _match_loop(iou, threshold):
    """A right answer written differently from the solution: step 1 first, then step 2 fills the free anchors."""
    num_boxes, num_anchors = iou.shape
    step1 = {}
    left = iou.clone()
    while len(step1) < num_boxes:
        value, flat = left.flatten().max(dim=0)
        if value < 1e-6:
            break
        m, a = int(flat) // num_anchors, int(flat) % num_anchors
        step1[a] = m
        left[m], left[:, a] = -1, -1
    out = []
    for a in range(num_anchors):
        if a in step1:
            out.append(step1[a])
        elif num_boxes and float(iou[:, a].max()) >= threshold:
            out.append(int(iou[:, a].argmax()))
        else:
            out.append(-1)
    return out  # a plain list is accepted too


def _step2_only(iou, threshold):
    out = torch.full((iou.shape[1],), -1)
    if len(iou):
        best, box = iou.max(dim=0)
        out[best >= threshold] = box[best >= threshold]
    return out


def _torchvision_like(iou, threshold):
    out = _step2_only(iou, threshold)
    if len(iou):
        out[iou.argmax(dim=1)] = torch.arange(len(iou))  # independent best anchors: the box written last wins
    return out


def _step2_wins(iou, threshold):
    out = nb05.match_from_iou(iou, 2.0)  # greedy step only
    if len(iou):
        best, box = iou.max(dim=0)
        out[best >= threshold] = box[best >= threshold]  # written after step 1: overwrites it
    return out


def _strict(iou, threshold):
    out = nb05.match_from_iou(iou, 2.0)
    if len(iou):
        best, box = iou.max(dim=0)
        keep = (best > threshold) & (out < 0)
        out[keep] = box[keep]
    return out


def _forced(iou, threshold):
    out = _step2_only(iou, threshold)
    left = iou.clone()
    for _ in range(len(iou)):  # never stops: a box that overlaps nothing still takes an anchor
        m, a = divmod(int(left.argmax()), iou.shape[1])
        out[a] = m
        left[m], left[:, a] = -1, -1
    return out


def _no_empty(iou, threshold):
    iou.max(dim=0)  # fails on [0, A]
    return nb05.match_from_iou(iou, threshold)


def test_match_reference_equals_match_anchors_on_random_images():
    from torchvision.ops import box_iou

    from ssd_tutorial import cxcywh_to_xyxy, default_boxes, match_anchors
    from ssd_tutorial.config import TINY_SHAPES

    anchors = cxcywh_to_xyxy(default_boxes(TINY_SHAPES))
    generator = torch.Generator().manual_seed(0)
    for trial in range(30):
        m = trial % 6  # 0 ... 5 boxes, M = 0 included
        corner = torch.rand(m, 2, generator=generator) * 100
        size = 4 + torch.rand(m, 2, generator=generator) * 60
        boxes = torch.cat([corner, corner + size], dim=1)
        if trial % 5 == 4 and m >= 2:
            boxes[1] = boxes[0] + 1.0  # two nearly equal boxes: they want the same anchor
        for threshold in (0.3, 0.5, 0.7):
            want = match_anchors(boxes, anchors, threshold)
            assert torch.equal(nb05.match_from_iou(box_iou(boxes, anchors), threshold), want)


def test_match_cases_cover_the_features():
    from torchvision.ops import box_iou

    from ssd_tutorial import match_anchors

    names = [case[0] for case in nb05._match_cases()]
    assert any("M = 0" in n for n in names) and any("exactly" in n for n in names)
    assert {case[3] for case in nb05._match_cases()} == {0.3, 0.5, 0.7}
    for name, boxes, anchors, threshold in nb05._match_cases():
        iou = box_iou(boxes, anchors)
        assert torch.equal(nb05.match_from_iou(iou, threshold), match_anchors(boxes, anchors, threshold)), name
        if "exactly" in name:
            assert (iou == threshold).any()


@pytest.mark.parametrize("answer", [nb05.match_from_iou, _match_loop,
                                    lambda iou, t: nb05.match_from_iou(iou.double(), t).int()])
def test_match_right(answer, capsys):
    assert exercises.check("05_match", answer) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer, needles",
    [
        (_step2_only, ["box 1 ends with no anchor at all", "even when that IoU is below the threshold"]),
        (_torchvision_like, ["box 0 ends with no anchor at all", "cross out the taken anchor's column"]),
        (_step2_wins, ["Step 1 wins over step 2"]),
        (_strict, ["exactly equal to the threshold", "IoU >= threshold"]),
        (_forced, ["overlaps no anchor", "stays unmatched"]),
        (_no_empty, ["M = 0", "raised IndexError"]),
        (lambda iou, t: nb05.match_from_iou(iou, 2.0), ["is background in your answer", "step 2"]),
        (lambda iou, t: nb05.match_from_iou(iou, 0.5), ["threshold 0.3", "does it use the threshold argument"]),
        (lambda iou, t: nb05.match_from_iou(iou, t).float(), ["1-D integer Tensor"]),
        (lambda iou, t: nb05.match_from_iou(iou, t)[:-1], ["one entry per anchor"]),
        (lambda iou: iou, ["raised TypeError"]),
        ("match", ["should be a function"]),
    ],
)
def test_match_wrong(answer, needles, capsys):
    assert exercises.check("05_match", answer) is False
    out = capsys.readouterr().out
    for needle in needles:
        assert needle in out, out
    assert "exercises.hint('05_match')" in out
