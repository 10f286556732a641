"""Tests for the exercises of 07_evaluation_and_inference: right answers pass (also written differently from the
solution), wrong ones get the kind of mistake and a pointer to hint(), never the expected value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from ssd_tutorial import exercises
from ssd_tutorial.evaluate import average_precision
from ssd_tutorial.exercises.nb07 import THRESHOLDS, TP_FP_CASES, compare_tensor, voc_verdicts


def precision_recall(tp, num_gt):
    hits = torch.tensor(tp, dtype=torch.float64).cumsum(0)
    ranks = torch.arange(1, len(tp) + 1, dtype=torch.float64)
    return hits / ranks, hits / num_gt


def ap11_with(thresholds):
    def ap11(precision, recall):
        total = 0.0
        for t in thresholds:
            mask = recall >= t
            total += float(precision[mask].max()) if bool(mask.any()) else 0.0
        return total / 11

    return ap11


ap11 = ap11_with([k / 10 for k in range(11)])


def test_registered_with_question_hint_solution():
    for name in ("07_precision_recall", "07_voc07_ap", "07_tp_fp"):
        exercise = exercises.get_exercise(name)
        assert exercise is not None and exercise.question and exercise.hint and exercise.solution


def test_hand_worked_curve_and_ap():
    precision, recall = precision_recall([True, False, True, True, False], 4)
    torch.testing.assert_close(precision, torch.tensor([1, 1 / 2, 2 / 3, 3 / 4, 3 / 5], dtype=torch.float64))
    torch.testing.assert_close(recall, torch.tensor([1 / 4, 1 / 4, 2 / 4, 3 / 4, 3 / 4], dtype=torch.float64))
    # t = 0 … 0.2: 1.0 (3 points); t = 0.3 … 0.7: 0.75 (5 points); t = 0.8 … 1.0: nothing reaches it (3 points)
    assert ap11(precision, recall) == pytest.approx((3 * 1.0 + 5 * 0.75) / 11)
    assert average_precision(precision, recall, "voc07") == pytest.approx((3 * 1.0 + 5 * 0.75) / 11)


def test_threshold_forms_are_what_the_references_compute():
    assert THRESHOLDS["np.arange(0, 1.1, 0.1)"] == np.arange(0, 1.1, 0.1).tolist()
    devkit, decimal, arange = (THRESHOLDS[k] for k in ("VOC devkit 0:0.1:1", "k / 10", "np.arange(0, 1.1, 0.1)"))
    assert devkit[3] == 0.30000000000000004 != decimal[3]
    assert [k for k in range(11) if arange[k] != decimal[k]] == [3, 6, 7]
    assert [k for k in range(11) if devkit[k] != decimal[k]] == [3]


def test_precision_recall_right(capsys):
    assert exercises.check("07_precision_recall", precision_recall) is True
    assert "correct" in capsys.readouterr().out
    as_lists = lambda tp, n: tuple(v.tolist() for v in precision_recall(tp, n))  # noqa: E731
    assert exercises.check("07_precision_recall", as_lists) is True

    def with_a_loop(tp, num_gt):  # written differently: a running count, float32
        hits, precision, recall = 0, [], []
        for k, flag in enumerate(tp, start=1):
            hits += bool(flag)
            precision.append(hits / k)
            recall.append(hits / num_gt)
        return torch.tensor(precision), torch.tensor(recall)

    assert exercises.check("07_precision_recall", with_a_loop) is True


def test_precision_recall_recall_over_detections_is_explained(capsys):
    def wrong(tp, num_gt):
        precision, _ = precision_recall(tp, num_gt)
        hits = torch.tensor(tp, dtype=torch.float64).cumsum(0)
        return precision, hits / len(tp)

    assert exercises.check("07_precision_recall", wrong) is False
    out = capsys.readouterr().out
    assert "recall for tp=" in out and "first mismatch at index [0]" in out and "number of ground-truth" in out
    assert "too small" in out and "exercises.hint('07_precision_recall')" in out
    assert "expected" not in out and "0.25" not in out  # the right value (1/4) is not given away


def test_precision_recall_wrong_shapes_and_types(capsys):
    assert exercises.check("07_precision_recall", lambda tp, n: precision_recall(tp, n)[0]) is False
    assert "(precision, recall)" in capsys.readouterr().out
    assert exercises.check("07_precision_recall", lambda tp, n: (torch.zeros(2), torch.zeros(2))) is False
    assert "should have shape [5]" in capsys.readouterr().out
    assert exercises.check("07_precision_recall", [0.5, 1.0]) is False
    assert "give a function" in capsys.readouterr().out
    assert exercises.check("07_precision_recall", lambda tp, n: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out


@pytest.mark.parametrize("form", sorted(THRESHOLDS))
def test_voc07_ap_accepts_every_threshold_form(form, capsys):
    assert exercises.check("07_voc07_ap", ap11_with(THRESHOLDS[form])) is True
    assert "correct" in capsys.readouterr().out


def test_voc07_ap_accepts_numpy_and_searchsorted(capsys):
    def with_numpy(precision, recall):  # written differently: numpy, searchsorted, a reversed running max
        p, r = precision.numpy(), recall.numpy()
        best_after = np.maximum.accumulate(p[::-1])[::-1]
        first = np.searchsorted(r, np.arange(0, 1.1, 0.1), side="left")
        return float(sum(best_after[i] for i in first if i < len(p)) / 11)

    assert exercises.check("07_voc07_ap", with_numpy) is True
    assert exercises.check("07_voc07_ap", lambda p, r: torch.tensor(ap11(p, r))) is True  # a 0-d tensor is fine


def test_the_threshold_forms_really_differ_on_the_cases():
    precision, recall = precision_recall([True, True, False, True, False], 10)  # recall ends at exactly 0.3
    values = {form: ap11_with(ts)(precision, recall) for form, ts in THRESHOLDS.items()}
    assert values["k / 10"] > values["VOC devkit 0:0.1:1"] == values["np.arange(0, 1.1, 0.1)"]
    precision, recall = precision_recall([True] * 7 + [False], 10)  # recall ends at exactly 0.7
    values = {form: ap11_with(ts)(precision, recall) for form, ts in THRESHOLDS.items()}
    assert values["k / 10"] == values["VOC devkit 0:0.1:1"] > values["np.arange(0, 1.1, 0.1)"]


def test_voc07_ap_equal_recall_instead_of_at_least(capsys):
    def wrong(precision, recall):  # precision at the first point with recall >= t, not the best beyond
        values = []
        for k in range(11):
            at = (recall >= k / 10).nonzero()
            values.append(float(precision[at[0, 0]]) if len(at) else 0.0)
        return sum(values) / 11

    assert exercises.check("07_voc07_ap", wrong) is False
    out = capsys.readouterr().out
    assert "first point that reaches t" in out and "best precision at any recall >= t" in out
    assert "exercises.hint('07_voc07_ap')" in out and "should be" not in out


def test_voc07_ap_divide_by_ten_and_sum(capsys):
    assert exercises.check("07_voc07_ap", lambda p, r: ap11(p, r) * 11 / 10) is False
    assert "divides by 10" in capsys.readouterr().out
    assert exercises.check("07_voc07_ap", lambda p, r: ap11(p, r) * 11) is False
    assert "their mean" in capsys.readouterr().out
    assert exercises.check("07_voc07_ap", lambda p, r: [ap11(p, r)]) is False
    assert "should be a number" in capsys.readouterr().out


def verdicts(det_boxes, gt_boxes, difficult):
    if len(gt_boxes) == 0:
        return ["FP"] * len(det_boxes)
    iou = box_iou(det_boxes, gt_boxes)
    claimed = [False] * len(gt_boxes)
    out = []
    for n in range(len(det_boxes)):
        best_iou, m = iou[n].max(dim=0)
        if best_iou < 0.5:
            out.append("FP")
        elif difficult[m]:
            out.append("ignored")
        elif claimed[m]:
            out.append("FP")
        else:
            claimed[m] = True
            out.append("TP")
    return out


def test_tp_fp_hand_worked_cases():
    got = {name: voc_verdicts(torch.tensor(d).reshape(-1, 4), torch.tensor(g).reshape(-1, 4),
                              torch.tensor(f, dtype=torch.bool))
           for name, d, g, f, _ in TP_FP_CASES}  # fmt: skip
    assert got["a duplicate"] == ["TP", "FP", "FP"]
    assert got["IoU exactly 0.5, then 0.4"] == ["TP", "FP"]
    assert got["a difficult box"] == ["ignored", "ignored", "TP"]
    assert got["no ground truth"] == ["FP", "FP"] and got["no detections"] == []
    assert got["best box already claimed"] == ["TP", "FP"]


def test_tp_fp_right(capsys):
    assert exercises.check("07_tp_fp", verdicts) is True

    def lower_case_tuple(det_boxes, gt_boxes, difficult):  # written differently: lower case, a tuple, a set
        taken = set()
        result = []
        for box in det_boxes:
            ious = box_iou(box[None], gt_boxes)[0] if len(gt_boxes) else torch.zeros(0)
            m = int(ious.argmax()) if len(ious) else -1
            if m < 0 or ious[m] < 0.5:
                result.append("fp")
            elif difficult[m]:
                result.append("ignore")
            elif m in taken:
                result.append("fp")
            else:
                taken.add(m)
                result.append("tp")
        return tuple(result)

    assert exercises.check("07_tp_fp", lower_case_tuple) is True
    assert capsys.readouterr().out.count("correct") == 2


def test_tp_fp_difficult_counted_as_tp_is_caught(capsys):
    def no_difficult(det_boxes, gt_boxes, difficult):
        return verdicts(det_boxes, gt_boxes, torch.zeros_like(difficult))

    assert exercises.check("07_tp_fp", no_difficult) is False
    out = capsys.readouterr().out
    assert "'a difficult box'" in out and "difficult flag" in out and "it was right on" in out
    assert "exercises.hint('07_tp_fp')" in out


def test_tp_fp_duplicates_as_tp_is_caught(capsys):
    def no_claims(det_boxes, gt_boxes, difficult):
        if len(gt_boxes) == 0:
            return ["FP"] * len(det_boxes)
        best = box_iou(det_boxes, gt_boxes).max(dim=1)
        return ["ignored" if v >= 0.5 and difficult[m] else "TP" if v >= 0.5 else "FP" for v, m in zip(*best)]

    assert exercises.check("07_tp_fp", no_claims) is False
    assert "'a duplicate'" in capsys.readouterr().out


def test_tp_fp_strict_threshold_and_fallback_are_caught(capsys):
    def strict(det_boxes, gt_boxes, difficult):  # IoU > 0.5 instead of >= 0.5
        return [("FP" if v != "FP" and float(box_iou(det_boxes[n : n + 1], gt_boxes).max()) <= 0.5 else v)
                for n, v in enumerate(verdicts(det_boxes, gt_boxes, difficult))]  # fmt: skip

    assert exercises.check("07_tp_fp", strict) is False
    assert "0.5 itself counts" in capsys.readouterr().out

    def fallback(det_boxes, gt_boxes, difficult):  # takes the best *unclaimed* box: not the devkit's rule
        if len(gt_boxes) == 0:
            return ["FP"] * len(det_boxes)
        iou = box_iou(det_boxes, gt_boxes)
        claimed, out = torch.zeros(len(gt_boxes), dtype=torch.bool), []
        for n in range(len(det_boxes)):
            free = iou[n].masked_fill(claimed, -1.0)
            v, m = free.max(dim=0)
            if v < 0.5:
                out.append("FP")
            elif difficult[m]:
                out.append("ignored")
            else:
                claimed[m] = True
                out.append("TP")
        return out

    assert exercises.check("07_tp_fp", fallback) is False
    assert "'best box already claimed'" in capsys.readouterr().out


def test_tp_fp_wrong_types(capsys):
    assert exercises.check("07_tp_fp", "TP") is False
    assert "give a function" in capsys.readouterr().out
    assert exercises.check("07_tp_fp", lambda d, g, f: "TP") is False
    assert "return a list of strings" in capsys.readouterr().out
    assert exercises.check("07_tp_fp", lambda d, g, f: [True] * len(d)) is False
    assert "use 'TP', 'FP' or 'ignored'" in capsys.readouterr().out
    assert exercises.check("07_tp_fp", lambda d, g, f: ["TP"]) is False
    assert "one verdict per detection" in capsys.readouterr().out


def test_compare_tensor_messages():
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert compare_tensor(expected, [[1.0, 2.0], [3.0, 4.0]], what="x") is None
    assert "shape [2, 2], got [4]" in compare_tensor(expected, [1.0, 2.0, 3.0, 4.0], what="x")
    message = compare_tensor(expected, [[1.0, 2.0], [6.0, 4.0]], what="x")
    assert "index [1, 0]" in message and "6" in message and "too large by a factor of 2" in message
    assert "3" not in message.replace("[1, 0]", "")  # the expected value is not given away
    assert "should be a tensor" in compare_tensor(expected, "abc", what="x")
