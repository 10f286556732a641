"""Tests for the exercises of 08_your_own_dataset: right answers pass, wrong ones get a teaching message."""

from __future__ import annotations

import torch

from ssd_tutorial import analysis, exercises


def centered_iou(wh_a, wh_b):
    inter = torch.minimum(wh_a[:, None, 0], wh_b[None, :, 0]) * torch.minimum(wh_a[:, None, 1], wh_b[None, :, 1])
    union = wh_a.prod(1)[:, None] + wh_b.prod(1)[None, :] - inter
    return inter / union


def kmeans_step(wh, centroids):
    assignment = analysis.centered_iou(wh, centroids).argmax(dim=1)
    new = torch.stack([wh[assignment == j].mean(dim=0) for j in range(len(centroids))])
    return assignment, new


def test_registered_with_question_hint_solution():
    for name in ("08_centered_iou", "08_kmeans_step"):
        exercise = exercises.get_exercise(name)
        assert exercise is not None and exercise.question and exercise.hint and exercise.solution


def test_centered_iou_right(capsys):
    assert exercises.check("08_centered_iou", centered_iou) is True
    assert exercises.check("08_centered_iou", analysis.centered_iou) is True
    assert capsys.readouterr().out.count("correct") == 2


def test_centered_iou_intersection_over_min_area_is_caught(capsys):
    def wrong(wh_a, wh_b):  # forgot the union: divides by the smaller area
        inter = torch.minimum(wh_a[:, None, 0], wh_b[None, :, 0]) * torch.minimum(wh_a[:, None, 1], wh_b[None, :, 1])
        return inter / torch.minimum(wh_a.prod(1)[:, None], wh_b.prod(1)[None, :])

    assert exercises.check("08_centered_iou", wrong) is False
    out = capsys.readouterr().out
    assert "first mismatch at index [0, 0]" in out and "too large" in out and "min(w) x min(h)" in out
    assert "0.333" not in out and "1/3" not in out  # the right IoU is not given away
    assert "exercises.hint('08_centered_iou')" in out


def test_centered_iou_transposed_is_caught(capsys):
    assert exercises.check("08_centered_iou", lambda a, b: centered_iou(b, a)) is False
    assert "should have shape [5, 3], got [3, 5]" in capsys.readouterr().out
    assert exercises.check("08_centered_iou", 0.5) is False
    assert "give a function" in capsys.readouterr().out


def test_kmeans_step_right(capsys):
    assert exercises.check("08_kmeans_step", kmeans_step) is True
    assert "correct" in capsys.readouterr().out


def test_kmeans_step_euclidean_is_explained(capsys):
    def euclidean(wh, centroids):
        assignment = torch.cdist(wh, centroids).argmin(dim=1)
        return assignment, torch.stack([wh[assignment == j].mean(dim=0) for j in range(len(centroids))])

    assert exercises.check("08_kmeans_step", euclidean) is False
    out = capsys.readouterr().out
    assert "assignment: first mismatch" in out and "not Euclidean distance" in out


def test_kmeans_step_wrong_update_and_shape(capsys):
    assert exercises.check("08_kmeans_step", lambda wh, c: (kmeans_step(wh, c)[0], c)) is False
    assert "new_centroids: first mismatch" in capsys.readouterr().out
    assert exercises.check("08_kmeans_step", lambda wh, c: kmeans_step(wh, c)[0]) is False
    assert "(assignment, new_centroids)" in capsys.readouterr().out
