"""Tests for the exercises of 02_anchor_tiling.ipynb: right answers pass, wrong ones get a teaching message."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssd_tutorial import exercises
from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC


def flat_index(level, i, j, k, cfg=SSD512_VOC):
    offset = sum(cfg.anchors_per_level[:level])
    return offset + (i * cfg.feature_map_sizes[level] + j) * cfg.anchors_per_location[level] + k


def anchor_center(level, i, j, cfg=SSD512_VOC):
    step = cfg.steps[level]
    return (j + 0.5) * step, (i + 0.5) * step


def _fails(name, answer, capsys) -> str:
    assert exercises.check(name, answer) is False
    return capsys.readouterr().out


def test_registered_with_question_hint_solution():
    for name in ("02_flat_index", "02_box_1to3", "02_anchor_center"):
        exercise = exercises.get_exercise(name)
        assert exercise is not None and exercise.question and exercise.hint and exercise.solution


def test_reference_answers_agree_with_default_boxes():
    anchors = default_boxes(SSD512_VOC)
    assert flat_index(2, 6, 5, 4) == 23138 and flat_index(6, 0, 0, 3) == SSD512_VOC.num_anchors - 1
    for level, i, j, k in [(0, 0, 1, 2), (1, 3, 7, 5), (3, 7, 2, 5), (5, 1, 0, 3)]:
        cx, cy, w, h = anchors[flat_index(level, i, j, k)].tolist()
        assert (cx, cy) == pytest.approx(anchor_center(level, i, j))
    assert tuple(anchors[flat_index(2, 0, 0, 5), 2:].tolist()) == pytest.approx((153.6 / math.sqrt(3),
                                                                                 153.6 * math.sqrt(3)))  # fmt: skip


# --- 02_flat_index --------------------------------------------------------------------------------------------------


def test_flat_index_right(capsys):
    assert exercises.check("02_flat_index", flat_index) is True
    assert "02_flat_index: correct" in capsys.readouterr().out
    assert exercises.check("02_flat_index", lambda *a: torch.tensor(flat_index(*a))) is True


@pytest.mark.parametrize("wrong, needle", [
    (lambda level, i, j, k: flat_index(level, i, j, k) - sum(SSD512_VOC.anchors_per_level[:level]),
     "index inside level"),
    (lambda level, i, j, k: flat_index(level, j, i, k), "Rows and columns are swapped"),
    (lambda level, i, j, k: sum(SSD512_VOC.anchors_per_level[:level]) + k * SSD512_VOC.feature_map_sizes[level] ** 2
     + i * SSD512_VOC.feature_map_sizes[level] + j, "k is the fastest index"),
    (lambda level, i, j, k: flat_index(level, i, j, 0), "add k"),
    (lambda level, i, j, k: flat_index(level, i, j, k) + 1, "should be 0, got 1"),
])  # fmt: skip
def test_flat_index_wrong_gets_a_diagnosis(wrong, needle, capsys):
    out = _fails("02_flat_index", wrong, capsys)
    assert needle in out and "hint(" in out


def test_flat_index_not_a_function_or_raising(capsys):
    assert "should be a function" in _fails("02_flat_index", 23138, capsys)
    assert "raised ZeroDivisionError" in _fails("02_flat_index", lambda *a: 1 / 0, capsys)
    assert "should be a number" in _fails("02_flat_index", lambda *a: "0", capsys)


# --- 02_box_1to3 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [(88.68, 266.04), [153.6 / math.sqrt(3), 153.6 * math.sqrt(3)],
                                    torch.tensor([88.681, 266.043]), np.array([88.681, 266.043])])
def test_box_1to3_right(answer, capsys):
    assert exercises.check("02_box_1to3", answer) is True


@pytest.mark.parametrize("answer, needle", [
    ((266.04, 88.68), "lying 3:1 box"),
    ((51.2, 460.8), "use sqrt(3)"),
    ((math.sqrt(153.6 * 230.4) / math.sqrt(3), math.sqrt(153.6 * 230.4) * math.sqrt(3)), "not s'_k"),
    ((88.0, 266.0), "expected (w, h) = (88.68, 266.04)"),
    ((88.68,), "two numbers"),
    ("88.68, 266.04", "two numbers"),
    ((None, 1.0), "should be numbers"),
])  # fmt: skip
def test_box_1to3_wrong(answer, needle, capsys):
    assert needle in _fails("02_box_1to3", answer, capsys)


# --- 02_anchor_center -----------------------------------------------------------------------------------------------


def test_anchor_center_right(capsys):
    assert exercises.check("02_anchor_center", anchor_center) is True
    assert exercises.check("02_anchor_center", lambda l, i, j, cfg: torch.tensor(anchor_center(l, i, j, cfg))) is True


def _floor_step_center(level, i, j, cfg=SSD512_VOC):
    step = cfg.image_size // cfg.feature_map_sizes[level]
    return (j + 0.5) * step, (i + 0.5) * step


@pytest.mark.parametrize("wrong, needle", [
    (lambda level, i, j, cfg=SSD512_VOC: anchor_center(level, j, i, cfg), "x and y are swapped"),
    (lambda level, i, j, cfg=SSD512_VOC: (j * cfg.steps[level], i * cfg.steps[level]), "top-left corner"),
    (_floor_step_center, "fractional"),
    (lambda level, i, j: anchor_center(level, i, j), "keyword argument: cfg"),
    (lambda level, i, j, cfg=SSD512_VOC: anchor_center(level, i, j, cfg)[0], "two numbers"),
])  # fmt: skip
def test_anchor_center_wrong(wrong, needle, capsys):
    out = _fails("02_anchor_center", wrong, capsys)
    assert needle in out, out


def test_anchor_center_fractional_case_names_the_config(capsys):
    out = _fails("02_anchor_center", _floor_step_center, capsys)
    assert "SSD300 with steps 300 / fm" in out and f"{SSD300_VOC.image_size / 38:.4f}" in out
