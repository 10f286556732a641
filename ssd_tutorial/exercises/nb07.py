"""Exercises of 07_evaluation_and_inference.ipynb: precision/recall from ranked detections, VOC07 11-point AP.

Introduced in: 07_evaluation_and_inference.ipynb
"""

from __future__ import annotations

from typing import Any

import torch

from . import compare_number, register

# Ranked detections of one class (descending score): True = true positive. Hand-checkable cases first.
PR_CASES: list[tuple[list[bool], int]] = [
    ([True, False, True, True, False], 4),
    ([False, False, True], 2),
    ([True, True, True], 3),
    ([], 3),
    ([True, False, False, True, False, True, False, False, True, True], 6),
    ([True, True, False, True, False], 10),  # recall ends at exactly 3/10: t = 0.3 must count
]


def _expected_pr(tp: list[bool], num_gt: int) -> tuple[torch.Tensor, torch.Tensor]:
    flags = torch.tensor(tp, dtype=torch.float64)
    hits = flags.cumsum(0)  # [K]
    ranks = torch.arange(1, len(tp) + 1, dtype=torch.float64)  # [K]
    return hits / ranks, hits / num_gt


def compare_tensor(expected: torch.Tensor, answer: Any, *, what: str, atol: float = 1e-6) -> str | None:
    """``None`` if ``answer`` (tensor, array or nested list) equals ``expected`` in shape and values, else a
    message naming the expected shape or the first mismatching element.

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
        return (f"{what}: first mismatch at index {list(index)}: expected {float(expected[index]):.6g}, "
                f"got {float(got[index]):.6g}")  # fmt: skip
    return None


@register(
    "07_precision_recall",
    question="Write precision_recall(tp, num_gt): tp lists the detections of one class by descending score "
    "(True = true positive), num_gt is the number of ground-truth boxes. Return (precision, recall) after "
    "each detection, as two 1-D tensors of len(tp).",
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


def _voc07(precision: torch.Tensor, recall: torch.Tensor) -> float:
    from ..evaluate import average_precision

    return average_precision(precision, recall, method="voc07")


@register(
    "07_voc07_ap",
    question="Write ap11(precision, recall) for 1-D tensors ordered by descending score: the PASCAL VOC 2007 "
    "11-point average precision, the mean over t = 0, 0.1, …, 1.0 of the best precision at any recall >= t "
    "(0 when no point reaches t).",
    hint="For each t in [k / 10 for k in range(11)]: mask = recall >= t; p_t = precision[mask].max() if "
    "mask.any() else 0. Return the mean of the 11 values as a float. Use k / 10, not 0.1 * k: 0.1 * 3 is "
    "0.30000000000000004, and a recall of exactly 0.3 must count.",
    solution="""
def ap11(precision, recall):
    total = 0.0
    for k in range(11):
        mask = recall >= k / 10
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
        problem = compare_number(_voc07(precision, recall), got, what=f"ap11 for tp={tp}, num_gt={num_gt}")
        if problem is not None:
            return problem + " (the precision at t is the best precision at recall >= t, not at recall == t)"
    return None
