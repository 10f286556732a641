"""Tests for the exercises of 07_evaluation_and_inference: right answers pass, wrong ones get a teaching message."""

from __future__ import annotations

import pytest
import torch

from ssd_tutorial import exercises
from ssd_tutorial.evaluate import average_precision
from ssd_tutorial.exercises.nb07 import compare_tensor


def precision_recall(tp, num_gt):
    hits = torch.tensor(tp, dtype=torch.float64).cumsum(0)
    ranks = torch.arange(1, len(tp) + 1, dtype=torch.float64)
    return hits / ranks, hits / num_gt


def ap11(precision, recall):
    total = 0.0
    for k in range(11):
        mask = recall >= k / 10
        total += float(precision[mask].max()) if bool(mask.any()) else 0.0
    return total / 11


def test_registered_with_question_hint_solution():
    for name in ("07_precision_recall", "07_voc07_ap"):
        exercise = exercises.get_exercise(name)
        assert exercise is not None and exercise.question and exercise.hint and exercise.solution


def test_hand_worked_curve_and_ap():
    precision, recall = precision_recall([True, False, True, True, False], 4)
    torch.testing.assert_close(precision, torch.tensor([1, 1 / 2, 2 / 3, 3 / 4, 3 / 5], dtype=torch.float64))
    torch.testing.assert_close(recall, torch.tensor([1 / 4, 1 / 4, 2 / 4, 3 / 4, 3 / 4], dtype=torch.float64))
    # t = 0 … 0.2: 1.0 (3 points); t = 0.3 … 0.7: 0.75 (5 points); t = 0.8 … 1.0: nothing reaches it (3 points)
    assert ap11(precision, recall) == pytest.approx((3 * 1.0 + 5 * 0.75) / 11)
    assert average_precision(precision, recall, "voc07") == pytest.approx((3 * 1.0 + 5 * 0.75) / 11)


def test_precision_recall_right(capsys):
    assert exercises.check("07_precision_recall", precision_recall) is True
    assert "correct" in capsys.readouterr().out
    as_lists = lambda tp, n: tuple(v.tolist() for v in precision_recall(tp, n))  # noqa: E731
    assert exercises.check("07_precision_recall", as_lists) is True


def test_precision_recall_recall_over_detections_is_explained(capsys):
    def wrong(tp, num_gt):
        precision, _ = precision_recall(tp, num_gt)
        hits = torch.tensor(tp, dtype=torch.float64).cumsum(0)
        return precision, hits / len(tp)

    assert exercises.check("07_precision_recall", wrong) is False
    out = capsys.readouterr().out
    assert "recall for tp=" in out and "first mismatch at index [0]" in out and "number of ground-truth" in out


def test_precision_recall_wrong_shapes_and_types(capsys):
    assert exercises.check("07_precision_recall", lambda tp, n: precision_recall(tp, n)[0]) is False
    assert "(precision, recall)" in capsys.readouterr().out
    assert exercises.check("07_precision_recall", lambda tp, n: (torch.zeros(2), torch.zeros(2))) is False
    assert "should have shape [5]" in capsys.readouterr().out
    assert exercises.check("07_precision_recall", [0.5, 1.0]) is False
    assert "give a function" in capsys.readouterr().out
    assert exercises.check("07_precision_recall", lambda tp, n: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_voc07_ap_right(capsys):
    assert exercises.check("07_voc07_ap", ap11) is True
    assert "correct" in capsys.readouterr().out


def test_voc07_ap_recall_exactly_at_threshold_is_caught(capsys):
    def wrong(precision, recall):  # 0.1 * k instead of k / 10: recall 0.3 misses t = 0.30000000000000004
        return sum(float(precision[recall >= 0.1 * k].max()) if bool((recall >= 0.1 * k).any()) else 0.0
                   for k in range(11)) / 11  # fmt: skip

    assert exercises.check("07_voc07_ap", wrong) is False
    assert "ap11 for tp=" in capsys.readouterr().out


def test_voc07_ap_equal_recall_instead_of_at_least(capsys):
    def wrong(precision, recall):  # precision at the first point with recall >= t, not the best beyond
        values = []
        for k in range(11):
            at = (recall >= k / 10).nonzero()
            values.append(float(precision[at[0, 0]]) if len(at) else 0.0)
        return sum(values) / 11

    assert exercises.check("07_voc07_ap", wrong) is False
    out = capsys.readouterr().out
    assert "should be" in out and "best precision at recall >= t" in out


def test_compare_tensor_messages():
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert compare_tensor(expected, [[1.0, 2.0], [3.0, 4.0]], what="x") is None
    assert "shape [2, 2], got [4]" in compare_tensor(expected, [1.0, 2.0, 3.0, 4.0], what="x")
    message = compare_tensor(expected, [[1.0, 2.0], [3.5, 4.0]], what="x")
    assert "index [1, 0]" in message and "expected 3" in message and "got 3.5" in message
    assert "should be a tensor" in compare_tensor(expected, "abc", what="x")
