"""Exercises of 07_evaluation_and_inference.ipynb: precision/recall from ranked detections, VOC07 11-point AP,
the TP/FP verdict of the VOC devkit.

Introduced in: 07_evaluation_and_inference.ipynb
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision.ops import box_iou

from . import compare_number, describe_miss, register

# Ranked detections of one class (descending score): True = true positive. Hand-checkable cases first.
PR_CASES: list[tuple[list[bool], int]] = [
    ([True, False, True, True, False], 4),
    ([False, False, True], 2),
    ([True, True, True], 3),
    ([], 3),
    ([True, False, False, True, False, True, False, False, True, True], 6),
    ([True, True, False, True, False], 10),  # recall ends at exactly 3/10: the threshold forms differ at 0.3
    ([True] * 7 + [False], 10),  # recall ends at exactly 7/10: np.arange's 0.7000000000000001 is not reached
]

# The three ways of writing the 11 recall thresholds t = 0, 0.1, ..., 1 that a learner may use.
# - k / 10: exact decimal steps (0.3 is the double nearest 0.3);
# - the official VOC devkit (VOCevaldet.m, MATLAB `t = 0:0.1:1`): MATLAB builds a colon range from both ends,
#   k * 0.1 for the first half and 1 - (10 - k) * 0.1 for the second, so t(4) is 0.30000000000000004;
# - py-faster-rcnn's voc_eval.py (`np.arange(0., 1.1, 0.1)`): k * 0.1 throughout (0.3, 0.6 and 0.7 are one
#   ulp above the decimal).
THRESHOLDS: dict[str, list[float]] = {
    "k / 10": [k / 10 for k in range(11)],
    "VOC devkit 0:0.1:1": [k * 0.1 if k <= 5 else 1 - (10 - k) * 0.1 for k in range(11)],
    "np.arange(0, 1.1, 0.1)": [k * 0.1 for k in range(11)],
}


def _expected_pr(tp: list[bool], num_gt: int) -> tuple[torch.Tensor, torch.Tensor]:
    flags = torch.tensor(tp, dtype=torch.float64)
    hits = flags.cumsum(0)  # [K]
    ranks = torch.arange(1, len(tp) + 1, dtype=torch.float64)  # [K]
    return hits / ranks, hits / num_gt


def compare_tensor(expected: torch.Tensor, answer: Any, *, what: str, atol: float = 1e-6) -> str | None:
    """``None`` if ``answer`` (tensor, array or nested list) equals ``expected`` in shape and values, else a
    message naming the expected shape or the first mismatching element and the kind of mistake (too large, too
    small, by a factor …), never the expected value.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    try:
        got = torch.as_tensor(answer.detach().cpu() if isinstance(answer, torch.Tensor) else answer,
                              dtype=torch.float64)  # fmt: skip
    except (TypeError, ValueError, RuntimeError):
        return f"{what} should be a tensor of shape {list(expected.shape)}, got {type(answer).__name__}"
    expected = expected.to(torch.float64)
    if got.shape != expected.shape:
        return f"{what} should have shape {list(expected.shape)}, got {list(got.shape)}"
    close = torch.isclose(got, expected, atol=atol, rtol=1e-6) | (got.isnan() & expected.isnan())
    if not bool(close.all()):
        index = tuple(int(i) for i in (~close).nonzero()[0])
        value = float(got[index])
        kind = "is NaN" if value != value else describe_miss(float(expected[index]), value)
        return f"{what}: first mismatch at index {list(index)}: your value {value:.6g} {kind}"
    return None


@register(
    "07_precision_recall",
    question="Write precision_recall(tp, num_gt): tp lists the detections of one class by descending score "
    "(True = true positive), num_gt is the number of ground-truth boxes (at least 1). Return (precision, "
    "recall) after each detection, as two 1-D tensors of len(tp).",
    hint="After the k-th detection, TP_k = number of True among the first k. precision_k = TP_k / k, "
    "recall_k = TP_k / num_gt. torch.cumsum does all k at once.",
    solution="""
def precision_recall(tp, num_gt):
    hits = torch.tensor(tp, dtype=torch.float64).cumsum(0)        # TP after each detection
    ranks = torch.arange(1, len(tp) + 1, dtype=torch.float64)     # detections so far
    return hits / ranks, hits / num_gt
""",
)
def _check_precision_recall(answer: Any) -> str | None:
    if not callable(answer):
        return f"give a function precision_recall(tp, num_gt), got {type(answer).__name__}"
    for tp, num_gt in PR_CASES:
        try:
            result = answer(list(tp), num_gt)
        except Exception as error:
            return f"precision_recall({tp}, {num_gt}) raised {type(error).__name__}: {error}"
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            return f"precision_recall({tp}, {num_gt}) should return (precision, recall), got {type(result).__name__}"
        want_p, want_r = _expected_pr(tp, num_gt)
        for name, want, got in (("precision", want_p, result[0]), ("recall", want_r, result[1])):
            problem = compare_tensor(want, got, what=f"{name} for tp={tp}, num_gt={num_gt}")
            if problem is not None:
                if name == "recall" and len(tp) and want.numel() == torch.as_tensor(got).numel():
                    problem += " (recall divides by the number of ground-truth boxes, not of detections)"
                return problem
    return None


def _ap11(precision: torch.Tensor, recall: torch.Tensor, thresholds: list[float]) -> float:
    total = 0.0
    for t in thresholds:
        reach = recall >= t
        total += float(precision[reach].max()) if bool(reach.any()) else 0.0
    return total / 11


def _ap11_mistakes(precision: torch.Tensor, recall: torch.Tensor) -> dict[float, str]:
    """Known wrong answers on one curve and what each one means."""
    thresholds = THRESHOLDS["k / 10"]
    mistakes = {}
    at_first = []  # precision at the first point reaching t, not the best beyond
    for t in thresholds:
        hits = (recall >= t).nonzero()
        at_first.append(float(precision[hits[0, 0]]) if len(hits) else 0.0)
    mistakes[sum(at_first) / 11] = ("takes the precision at the first point that reaches t; the interpolated "
                                    "precision is the best precision at any recall >= t")  # fmt: skip
    full = _ap11(precision, recall, thresholds) * 11
    mistakes[full / 10] = "divides by 10, but there are 11 thresholds (t = 0 and t = 1 both count)"
    mistakes[full] = "is the sum of the 11 sampled precisions; AP is their mean"
    return mistakes


@register(
    "07_voc07_ap",
    question="Write ap11(precision, recall) for 1-D tensors ordered by descending score: the PASCAL VOC 2007 "
    "11-point average precision, the mean over t = 0, 0.1, …, 1.0 of the best precision at any recall >= t "
    "(0 when no point reaches t).",
    hint="For each of the 11 thresholds t: mask = recall >= t; p_t = precision[mask].max() if mask.any() else 0. "
    "Return the sum of the 11 values divided by 11, as a float. Any one of i / 10, the devkit's 0:0.1:1 or "
    "np.arange(0, 1.1, 0.1), used for all 11 steps, is accepted for t.",
    solution="""
def ap11(precision, recall):
    total = 0.0
    for i in range(11):
        mask = recall >= i / 10          # the devkit's t = 0:0.1:1 and np.arange(0, 1.1, 0.1) are accepted too
        total += float(precision[mask].max()) if bool(mask.any()) else 0.0
    return total / 11
""",
)
def _check_voc07_ap(answer: Any) -> str | None:
    if not callable(answer):
        return f"give a function ap11(precision, recall), got {type(answer).__name__}"
    for tp, num_gt in PR_CASES:
        if not tp:
            continue
        precision, recall = _expected_pr(tp, num_gt)
        try:
            got = answer(precision.clone(), recall.clone())
        except Exception as error:
            return f"ap11 on the curve of tp={tp}, num_gt={num_gt} raised {type(error).__name__}: {error}"
        what = f"ap11 for tp={tp}, num_gt={num_gt}"
        if any(compare_number(_ap11(precision, recall, ts), got, what=what) is None for ts in THRESHOLDS.values()):
            continue  # right with one of the three ways to write the thresholds
        return compare_number(_ap11(precision, recall, THRESHOLDS["k / 10"]), got, what=what,
                              mistakes=_ap11_mistakes(precision, recall))  # fmt: skip
    return None


def _box(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    return [x1, y1, x2, y2]


# (name, detections of one class in one image by descending score, ground truth of that class, difficult flags,
#  what to look at when a verdict is wrong). IoUs are chosen to be exact in floating point.
TP_FP_CASES: list[tuple[str, list[list[float]], list[list[float]], list[bool], str]] = [
    ("two objects, two good detections", [_box(0, 0, 10, 10), _box(20, 0, 30, 10)],
     [_box(20, 0, 30, 10), _box(0, 0, 10, 10)], [False, False], "each detection's best box"),
    ("a duplicate", [_box(0, 0, 10, 10), _box(0, 0, 10, 9), _box(40, 40, 50, 50)],
     [_box(0, 0, 10, 10)], [False], "whether a better-scored detection already claimed the box"),
    ("IoU exactly 0.5, then 0.4", [_box(0, 0, 10, 10), _box(20, 0, 30, 10)],
     [_box(0, 0, 10, 5), _box(20, 0, 24, 10)], [False, False], "the rule IoU >= 0.5 (0.5 itself counts)"),
    ("a difficult box", [_box(0, 0, 10, 10), _box(0, 0, 10, 9), _box(20, 0, 30, 10)],
     [_box(0, 0, 10, 10), _box(20, 0, 30, 10)], [True, False],
     "the difficult flag of the best box (a detection there is neither TP nor FP, however many there are)"),
    ("no ground truth", [_box(0, 0, 10, 10), _box(5, 5, 15, 15)], [], [], "what a detection with no box to match is"),
    ("no detections", [], [_box(0, 0, 10, 10)], [False], "the length of the list (one verdict per detection)"),
    ("best box already claimed", [_box(0, 0, 10, 10), _box(0, 0, 10, 9)], [_box(0, 0, 10, 10), _box(0, 0, 10, 8)],
     [False, False], "the devkit compares a detection only with its BEST box; if that one is claimed, it is a "
     "duplicate, even when another box overlaps it by 0.5 or more"),
]


def voc_verdicts(det_boxes: torch.Tensor, gt_boxes: torch.Tensor, difficult: torch.Tensor,
                 iou_threshold: float = 0.5) -> list[str]:  # fmt: skip
    """The devkit's verdict for detections of one class in one image, ``det_boxes`` Tensor[N, 4] sorted by
    descending score: "TP", "FP" or "ignored" (best box difficult), following VOCevaldet.m.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    if len(gt_boxes) == 0:
        return ["FP"] * len(det_boxes)
    iou = box_iou(det_boxes, gt_boxes)  # [N, M]
    claimed = [False] * len(gt_boxes)
    verdicts = []
    for n in range(len(det_boxes)):
        best_iou, m = (float(v) for v in iou[n].max(dim=0))
        m = int(m)
        if best_iou < iou_threshold:
            verdicts.append("FP")
        elif bool(difficult[m]):
            verdicts.append("ignored")
        elif claimed[m]:
            verdicts.append("FP")
        else:
            claimed[m] = True
            verdicts.append("TP")
    return verdicts


def _normalise_verdict(value: Any) -> str | None:
    if isinstance(value, str):
        text = value.strip().lower()
        return {"tp": "TP", "fp": "FP", "ignored": "ignored", "ignore": "ignored"}.get(text)
    return None


@register(
    "07_tp_fp",
    question="Write verdicts(det_boxes, gt_boxes, difficult): det_boxes Tensor[N, 4] are the detections of one "
    "class in one image sorted by descending score, gt_boxes Tensor[M, 4] the ground-truth boxes of that class, "
    "difficult Tensor[M] bool their VOC 'difficult' flags. Return a list of N strings, 'TP', 'FP' or 'ignored', "
    "following the VOC devkit.",
    hint="Go through the detections in order. For each, find its best box (highest IoU, box_iou). IoU < 0.5 (or "
    "no box at all): 'FP'. Else, if that box is difficult: 'ignored'. Else, if that box was already claimed: "
    "'FP' (a duplicate). Else: 'TP', and mark the box as claimed. Only the best box is looked at.",
    solution="""
def verdicts(det_boxes, gt_boxes, difficult):
    if len(gt_boxes) == 0:
        return ["FP"] * len(det_boxes)
    iou = box_iou(det_boxes, gt_boxes)                  # [N, M]
    claimed = [False] * len(gt_boxes)
    out = []
    for n in range(len(det_boxes)):
        best_iou, m = iou[n].max(dim=0)                 # the best box only
        if best_iou < 0.5:
            out.append("FP")
        elif difficult[m]:
            out.append("ignored")                       # neither TP nor FP
        elif claimed[m]:
            out.append("FP")                            # duplicate
        else:
            claimed[m] = True
            out.append("TP")
    return out
""",
)
def _check_tp_fp(answer: Any) -> str | None:
    if not callable(answer):
        return f"give a function verdicts(det_boxes, gt_boxes, difficult), got {type(answer).__name__}"
    right_on: list[str] = []
    for name, dets, gts, flags, look_at in TP_FP_CASES:
        det_boxes = torch.tensor(dets, dtype=torch.float32).reshape(-1, 4)  # [N, 4]
        gt_boxes = torch.tensor(gts, dtype=torch.float32).reshape(-1, 4)  # [M, 4]
        difficult = torch.tensor(flags, dtype=torch.bool)
        want = voc_verdicts(det_boxes, gt_boxes, difficult)
        try:
            got = answer(det_boxes.clone(), gt_boxes.clone(), difficult.clone())
        except Exception as error:
            return f"on the case '{name}' your function raised {type(error).__name__}: {error}"
        if isinstance(got, (str, bytes)) or not isinstance(got, (list, tuple)):
            return f"on the case '{name}' return a list of strings ('TP', 'FP', 'ignored'), got {type(got).__name__}"
        if len(got) != len(want):
            return (f"on the case '{name}' ({len(want)} detections) return one verdict per detection, got "
                    f"{len(got)}")  # fmt: skip
        for n, (w, g) in enumerate(zip(want, got)):
            verdict = _normalise_verdict(g)
            if verdict is None:
                return f"on the case '{name}' verdict {n} is {g!r}: use 'TP', 'FP' or 'ignored'"
            if verdict != w:
                earlier = f" (it was right on '{right_on[0]}')" if right_on else ""
                return f"on the case '{name}' detection {n} gets the wrong verdict{earlier}: look at {look_at}"
        right_on.append(name)
    return None
