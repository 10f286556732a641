"""Exercises of 05_loss.ipynb: matching by hand, negatives kept by hard negative mining, smooth-L1, one encoded box.

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
            problem += ": 3 per positive is more negatives than this image has; it can keep at most A - P"
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


# ---- 05_match: the two-step matching rule, written by the learner on an IoU matrix ----------------------------

_MIN_IOU = 1e-6  # the greedy step stops below this IoU (as ``matching.match_anchors`` does)

# Hand-made anchors (xyxy px) for the cases that show one feature of the rule each.
_SMALL_ANCHORS = ((0, 0, 10, 10), (10, 0, 20, 10), (0, 10, 10, 20), (10, 10, 20, 20), (0, 0, 20, 20),
                  (5, 5, 15, 15), (0, 0, 10, 20), (30, 30, 40, 40))  # fmt: skip
_CRAFTED_CASES = (
    # (name, boxes xyxy, threshold)
    ("two boxes whose best anchor is the same one", ((4, 4, 15, 15), (6, 6, 16, 16)), 0.5),
    ("a box that no anchor reaches at IoU 0.5", ((11, 1, 17, 7),), 0.5),
    ("a box that overlaps no anchor at all", ((4, 4, 15, 15), (50, 50, 60, 60)), 0.5),
    ("a step-1 anchor that another box overlaps better", ((0, 0, 20, 20), (0, 0, 20, 18)), 0.5),
)
_EDGE_CASES = (
    ("an anchor whose IoU is exactly the threshold", ((0, 0, 10, 10),), 0.5),
    ("an image without objects (M = 0)", (), 0.5),
)


def _match_cases() -> list[tuple[str, Any, Any, float]]:
    """(name, boxes [M, 4], anchors [A, 4], threshold): crafted cases, then shapes images on TINY_SHAPES anchors
    at three thresholds (so an answer that ignores ``threshold`` fails)."""
    import torch

    from ..anchors import default_boxes
    from ..boxes import cxcywh_to_xyxy
    from ..config import TINY_SHAPES
    from ..data import ShapesDataset

    small = torch.tensor(_SMALL_ANCHORS, dtype=torch.float32)

    def crafted(table: tuple) -> list[tuple[str, Any, Any, float]]:
        return [(name, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), small, t) for name, boxes, t in table]

    anchors = cxcywh_to_xyxy(default_boxes(TINY_SHAPES))  # [1524, 4]
    shapes = ShapesDataset(40, image_size=TINY_SHAPES.image_size, seed=5)
    busy = [i for i in range(len(shapes)) if len(shapes[i][1]["boxes"]) >= 3][:2]

    def on_shapes(index: int, threshold: float) -> tuple[str, Any, Any, float]:
        boxes = shapes[index][1]["boxes"]
        return f"shapes image {index} ({len(boxes)} boxes) on TINY_SHAPES' anchors", boxes, anchors, threshold

    return [*crafted(_CRAFTED_CASES), on_shapes(busy[0], 0.5), *crafted(_EDGE_CASES), on_shapes(busy[1], 0.3),
            on_shapes(busy[0], 0.7)]


def match_from_iou(iou: Any, threshold: float) -> Any:
    """The two-step rule on an IoU matrix [M, A] (what ``match_anchors`` computes from boxes): Tensor[A] long."""
    import torch

    num_boxes, num_anchors = iou.shape
    matches = torch.full((num_anchors,), -1, dtype=torch.long)
    if num_boxes == 0:
        return matches
    best_iou, best_box = iou.max(dim=0)  # [A] each
    matches[best_iou >= threshold] = best_box[best_iou >= threshold]  # step 2
    remaining = iou.clone()
    for _ in range(num_boxes):  # step 1, greedy: it wins over step 2
        if remaining.max() < _MIN_IOU:
            break
        m, a = divmod(int(remaining.argmax()), num_anchors)
        matches[a] = m
        remaining[m, :] = -1.0
        remaining[:, a] = -1.0
    return matches


def _as_matches(answer: Any, num_anchors: int) -> tuple[Any, str | None]:
    import torch

    if isinstance(answer, (str, bytes, dict)) or not hasattr(answer, "__len__"):
        return None, f"should return a Tensor[A] (one box index or -1 per anchor), got {type(answer).__name__}"
    try:
        got = torch.as_tensor(answer)
    except (TypeError, ValueError, RuntimeError):
        return None, f"should return a Tensor[A] of integers, got {type(answer).__name__} that is not one"
    if got.dtype.is_floating_point or got.dtype == torch.bool or got.ndim != 1 or len(got) != num_anchors:
        return None, (f"should return a 1-D integer Tensor with one entry per anchor (A = {num_anchors}), "
                      f"got {got.dtype} of shape {list(got.shape)}")  # fmt: skip
    return got.long(), None


def _explain_match_miss(iou: Any, threshold: float, want: Any, got: Any) -> str:
    """The kind of mistake, from the first anchor where ``got`` differs from ``want`` (never the whole answer)."""
    num_boxes = iou.shape[0]
    for m in range(num_boxes):  # a box left without any anchor is the worst outcome: say it first
        if (want == m).any() and not (got == m).any():
            step1 = int((want == m).nonzero()[0]) if int((want == m).sum()) == 1 else None
            if step1 is not None and int(got[step1]) == int(iou[:, step1].argmax()):
                return (f"box {m} ends with no anchor at all: its step-1 anchor {step1} went to box {int(got[step1])}, "
                        "which overlaps it better. Step 1 wins over step 2: write the greedy step's anchors last")
            if step1 is not None and int(got[step1]) >= 0:
                return (f"box {m} ends with no anchor at all: its best anchor went to box {int(got[step1])}. When "
                        "two boxes want the same anchor, the higher IoU wins and the other box takes its best "
                        "*remaining* anchor: cross out the taken anchor's column (greedy bipartite step)")
            return (f"box {m} ends with no anchor at all. Step 1 gives every box its best anchor even when that IoU "
                    "is below the threshold")
    diff = (want != got).nonzero().flatten()
    a = int(diff[0])
    w, g = int(want[a]), int(got[a])
    column = iou[:, a]
    best = float(column.max()) if num_boxes else 0.0
    if w == -1 and g >= 0:
        if float(iou[g, a]) < _MIN_IOU:
            return (f"anchor {a} does not overlap box {g} at all (IoU 0), yet it is matched: a box that overlaps no "
                    "anchor stays unmatched (step 1 stops when the largest IoU left is 0)")
        return (f"anchor {a} is matched to box {g} although its best IoU ({best:.3f}) is below the threshold "
                f"{threshold} and step 1 did not pick it: does your function use its threshold argument?")
    if w >= 0 and g == -1:
        if best == threshold:
            return (f"anchor {a} has an IoU exactly equal to the threshold: the package counts it (IoU >= threshold, "
                    "not >; the paper's 'higher than 0.5' differs only there)")
        if best >= threshold:
            return (f"anchor {a} overlaps box {w} with IoU {best:.3f} >= {threshold} but is background in your "
                    "answer: step 2 gives every such anchor to its best box (does it use the threshold argument?)")
        return f"anchor {a} is box {w}'s step-1 anchor (its best one left) but is background in your answer"
    if float(iou[w, a]) < float(iou[g, a]):
        return (f"anchor {a} goes to box {g} in your answer, but step 1 gave it to box {w}: step 1 (one anchor per "
                "box) wins over step 2 (best box per anchor)")
    return (f"anchor {a} goes to box {g} in your answer; it should go to another box: in step 2 an anchor takes "
            "the box it overlaps best, in step 1 the pair with the largest IoU left goes first")


@register(
    "05_match",
    question="Write match(iou, threshold): from the IoU matrix iou [M, A] (box m, anchor a) return a Tensor[A] "
    "long with the box of every anchor (-1 for background), by the two-step rule of the SSD paper (Sec. 2.2): "
    "greedy bipartite step, then every other anchor with IoU >= threshold takes its best box.",
    hint="Step 2 first is easiest: best_iou, best_box = iou.max(dim=0), keep the anchors with best_iou >= "
    "threshold. Then step 1 overwrites: repeat M times, take the largest IoU left (stop if it is below 1e-6), give "
    "that anchor to that box, and set the box's row and the anchor's column to -1. Mind M = 0: iou.max(dim=0) fails "
    "on an empty matrix.",
    solution="""
def match(iou, threshold):
    M, A = iou.shape
    matches = torch.full((A,), -1)
    if M == 0:
        return matches
    best_iou, best_box = iou.max(dim=0)                          # [A] each
    matches[best_iou >= threshold] = best_box[best_iou >= threshold]   # step 2
    remaining = iou.clone()
    for _ in range(M):                                           # step 1 wins over step 2
        if remaining.max() < 1e-6:                               # nothing overlaps any more
            break
        m, a = divmod(int(remaining.argmax()), A)                # row = box, column = anchor
        matches[a] = m
        remaining[m, :] = -1.0                                   # box m is served
        remaining[:, a] = -1.0                                   # anchor a is taken
    return matches
""",
)
def _check_match(answer: Any) -> str | None:
    from torchvision.ops import box_iou

    from ..matching import match_anchors

    if not callable(answer):
        return f"the answer should be a function match(iou, threshold), got {type(answer).__name__}"
    right_on: list[str] = []
    for name, boxes, anchors, threshold in _match_cases():
        iou = box_iou(boxes, anchors)  # [M, A]
        want = match_anchors(boxes, anchors, threshold)
        try:
            raw = answer(iou.clone(), threshold)
        except NotImplementedError:
            raise
        except Exception as error:
            return f"on {name}, match(iou, {threshold}) raised {type(error).__name__}: {error}"
        got, problem = _as_matches(raw, len(anchors))
        if problem is None and not bool((got == want).all()):
            problem = _explain_match_miss(iou, threshold, want, got)
        if problem is not None:
            where = f"on {name} (iou of shape {list(iou.shape)}, threshold {threshold}): "
            if right_on and "threshold" not in problem and name.startswith("shapes image"):
                problem += f" (it was right on {right_on[0]}: does it use every argument?)"
            return where + problem
        right_on.append(name)
    return None
