"""Exercises of 05_loss.ipynb: negatives kept by hard negative mining, smooth-L1 by hand, one encoded box.

Introduced in: 05_loss.ipynb
"""

from __future__ import annotations

import math
from typing import Any

from ..config import SSD512_VOC
from . import _as_number, compare_number, compare_sequence, register

NEG_POS_RATIO = 3  # SSD paper, section 2.2 "Hard negative mining"
# (positives P, anchors A) pairs the checker tries: empty image, a few objects, and more positives than 3:1 allows.
_MINING_CASES = ((0, 1524), (1, 1524), (5, 1524), (12, 8732), (381, 1524), (400, 1524), (500, 1524), (1524, 1524))

SMOOTH_L1_PRED = (0.2, -1.5, 3.0, 0.5)
SMOOTH_L1_TARGET = (0.0, 0.0, 1.0, 0.0)

ENCODE_GT_XYXY = (30.0, 40.0, 70.0, 100.0)
ENCODE_ANCHOR_CXCYWH = (48.0, 64.0, 32.0, 32.0)
ENCODE_VARIANCES = SSD512_VOC.variances  # (0.1, 0.2), as in the paper's reference code


def negatives_kept(num_pos: int, num_anchors: int, neg_pos_ratio: int = NEG_POS_RATIO) -> int:
    """What ``loss.hard_negative_mask`` keeps: ratio x max(P, 1) negatives, but never more than there are."""
    return min(neg_pos_ratio * max(num_pos, 1), num_anchors - num_pos)


@register(
    "05_negatives_kept",
    question="An image has A anchors, P of them positive. How many negatives does hard negative mining keep "
    "(neg_pos_ratio = 3, the package's rule)? Write negatives_kept(P, A).",
    hint="3 negatives per positive; an image without objects still keeps 3 (as if P were 1); and an image "
    "cannot keep more negatives than it has: A - P.",
    solution="""
def negatives_kept(P, A):
    return min(3 * max(P, 1), A - P)

negatives_kept(0, 1524), negatives_kept(5, 1524), negatives_kept(500, 1524)  # (3, 15, 1024)
""",
)
def _check_negatives_kept(answer: Any) -> str | None:
    if not callable(answer):
        return f"the answer should be a function negatives_kept(P, A), got {type(answer).__name__}"
    for num_pos, num_anchors in _MINING_CASES:
        try:
            got = answer(num_pos, num_anchors)
        except Exception as error:
            return f"negatives_kept({num_pos}, {num_anchors}) raised {type(error).__name__}: {error}"
        want = negatives_kept(num_pos, num_anchors)
        problem = compare_number(want, got, what=f"negatives_kept({num_pos}, {num_anchors})")
        if problem is None:
            continue
        if num_pos == 0 and _as_number(got) == 0:
            problem += (": an image without objects keeps its 3 hardest negatives, so empty images still teach "
                        "'background' (and the loss never divides 0 by 0)")  # fmt: skip
        elif _as_number(got) == NEG_POS_RATIO * num_pos:
            problem += f": there are only A - P = {num_anchors - num_pos} negatives to keep"
        return problem
    return None


def smooth_l1(pred: tuple[float, ...], target: tuple[float, ...], beta: float = 1.0) -> float:
    """Σ smooth-L1: 0.5 x² / β where |x| < β, else |x| − 0.5 β (Fast R-CNN, eq. 3; SSD paper, eq. 2)."""
    total = 0.0
    for p, t in zip(pred, target):
        x = abs(p - t)
        total += 0.5 * x * x / beta if x < beta else x - 0.5 * beta
    return total


@register(
    "05_smooth_l1",
    question=f"Compute by hand the smooth-L1 loss (beta = 1, summed over the 4 coordinates) of the prediction "
    f"{SMOOTH_L1_PRED} against the target {SMOOTH_L1_TARGET}.",
    hint="Per coordinate x = prediction - target: 0.5 * x**2 if |x| < 1, else |x| - 0.5. Then add the four.",
    solution="""
# x = (0.2, -1.5, 2.0, 0.5)
# 0.5 * 0.2**2 + (1.5 - 0.5) + (2.0 - 0.5) + 0.5 * 0.5**2 = 0.02 + 1.0 + 1.5 + 0.125
loss = 2.645
""",
)
def _check_smooth_l1(answer: Any) -> str | None:
    want = smooth_l1(SMOOTH_L1_PRED, SMOOTH_L1_TARGET)
    problem = compare_number(want, answer, what="the smooth-L1 loss")
    if problem is None:
        return None
    got = _as_number(answer)
    diffs = [p - t for p, t in zip(SMOOTH_L1_PRED, SMOOTH_L1_TARGET)]
    if got is not None and math.isclose(got, sum(0.5 * x * x for x in diffs), rel_tol=1e-6):
        problem += "; that is 0.5 x² everywhere (L2): for |x| >= 1 smooth-L1 grows like |x| - 0.5"
    elif got is not None and math.isclose(got, sum(abs(x) for x in diffs), rel_tol=1e-6):
        problem += "; that is plain L1 (Σ|x|): for |x| < 1 smooth-L1 is 0.5 x², for |x| >= 1 it is |x| - 0.5"
    elif got is not None and math.isclose(got, smooth_l1(SMOOTH_L1_PRED, (0.0,) * 4), rel_tol=1e-6):
        problem += "; did you forget to subtract the target (x = prediction - target)?"
    return problem


def encode_one() -> tuple[float, float, float, float]:
    """The SSD encoding of ENCODE_GT_XYXY against ENCODE_ANCHOR_CXCYWH (see ``boxes.encode_boxes``)."""
    x1, y1, x2, y2 = ENCODE_GT_XYXY
    gx, gy, gw, gh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    ax, ay, aw, ah = ENCODE_ANCHOR_CXCYWH
    v0, v1 = ENCODE_VARIANCES
    return ((gx - ax) / (aw * v0), (gy - ay) / (ah * v0), math.log(gw / aw) / v1, math.log(gh / ah) / v1)


@register(
    "05_encode_box",
    question=f"Encode the ground-truth box xyxy {ENCODE_GT_XYXY} for the anchor cxcywh {ENCODE_ANCHOR_CXCYWH} "
    f"with variances {ENCODE_VARIANCES}: the 4 regression targets (dx, dy, dw, dh).",
    hint="First turn the box into cxcywh (centre and size). Then dx = (gx - ax) / (aw * 0.1), "
    "dy = (gy - ay) / (ah * 0.1), dw = log(gw / aw) / 0.2, dh = log(gh / ah) / 0.2.",
    solution="""
# box cxcywh: (50, 70, 40, 60)
dx = (50 - 48) / (32 * 0.1)          # 0.625
dy = (70 - 64) / (32 * 0.1)          # 1.875
dw = math.log(40 / 32) / 0.2         # 1.1157
dh = math.log(60 / 32) / 0.2         # 3.1430
deltas = (dx, dy, dw, dh)
""",
)
def _check_encode_box(answer: Any) -> str | None:
    want = encode_one()
    problem = compare_sequence(want, answer, what="(dx, dy, dw, dh)", rel_tol=1e-4)
    if problem is None:
        return None
    values = answer.tolist() if hasattr(answer, "tolist") else list(answer) if hasattr(answer, "__len__") else None
    if values is not None and len(values) == 4 and all(_as_number(v) is not None for v in values):
        v0, v1 = ENCODE_VARIANCES
        no_variance = (want[0] * v0, want[1] * v0, want[2] * v1, want[3] * v1)
        corner_dx = (ENCODE_GT_XYXY[0] - ENCODE_ANCHOR_CXCYWH[0]) / (ENCODE_ANCHOR_CXCYWH[2] * v0)
        if all(math.isclose(float(v), w, rel_tol=1e-4) for v, w in zip(values, no_variance)):
            problem += "; you left out the variances: divide the centre offsets by 0.1 and the log sizes by 0.2"
        elif math.isclose(float(values[0]), corner_dx, rel_tol=1e-4):
            problem += "; the box is given as xyxy corners: convert it to centre + size (cxcywh) first"
    return problem
