"""Tests for the exercises of 02_anchor_tiling.ipynb: right answers pass, wrong ones get a teaching message that
names the kind of mistake and the input, never the expected value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssd_tutorial import exercises
from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC, TINY_SHAPES


def flat_index(k, i, j, d, cfg=SSD512_VOC):
    offset = sum(cfg.anchors_per_level[:k])
    return offset + (i * cfg.feature_map_sizes[k] + j) * cfg.anchors_per_location[k] + d


def anchor_center(k, i, j, cfg=SSD512_VOC):
    step = cfg.steps[k]
    return (j + 0.5) * step, (i + 0.5) * step


def _fails(name, answer, capsys) -> str:
    assert exercises.check(name, answer) is False
    out = capsys.readouterr().out
    assert "hint(" in out and "solution(" in out
    return out


def test_registered_with_question_hint_solution():
    for name in ("02_flat_index", "02_box_1to3", "02_anchor_center", "02_smallest_square"):
        exercise = exercises.get_exercise(name)
        assert exercise is not None and exercise.question and exercise.hint and exercise.solution


def test_reference_answers_agree_with_default_boxes():
    for cfg in (SSD512_VOC, SSD300_VOC, TINY_SHAPES):
        anchors = default_boxes(cfg)
        assert flat_index(cfg.num_levels - 1, 0, 0, cfg.anchors_per_location[-1] - 1, cfg) == cfg.num_anchors - 1
        for k in range(cfg.num_levels):
            i = cfg.feature_map_sizes[k] - 1
            cx, cy, _, _ = anchors[flat_index(k, i, 0, 1, cfg)].tolist()
            assert (cx, cy) == pytest.approx(anchor_center(k, i, 0, cfg))
    assert flat_index(2, 6, 5, 4) == 23138
    anchors = default_boxes(SSD512_VOC)
    assert tuple(anchors[flat_index(2, 0, 0, 5), 2:].tolist()) == pytest.approx((153.6 / math.sqrt(3),
                                                                                 153.6 * math.sqrt(3)))  # fmt: skip


# --- 02_flat_index --------------------------------------------------------------------------------------------------


def test_flat_index_right(capsys):
    assert exercises.check("02_flat_index", flat_index) is True
    assert "02_flat_index: correct" in capsys.readouterr().out
    # written differently: other argument names, a tensor result, the level offset from the cumulative sum
    def other(level, row, col, shape, c):
        start = torch.tensor(c.anchors_per_level).cumsum(0)[level] - c.anchors_per_level[level]
        return start + c.anchors_per_location[level] * (row * c.feature_map_sizes[level] + col) + shape

    assert exercises.check("02_flat_index", other) is True
    assert exercises.check("02_flat_index", lambda *a: torch.tensor(flat_index(*a))) is True


@pytest.mark.parametrize("wrong, needle", [
    (lambda k, i, j, d, cfg: flat_index(k, i, j, d, cfg) - sum(cfg.anchors_per_level[:k]), "index inside level"),
    (lambda k, i, j, d, cfg: flat_index(k, j, i, d, cfg), "Rows and columns are swapped"),
    (lambda k, i, j, d, cfg: sum(cfg.anchors_per_level[:k]) + d * cfg.feature_map_sizes[k] ** 2
     + i * cfg.feature_map_sizes[k] + j, "d is the fastest index"),
    (lambda k, i, j, d, cfg: flat_index(k, i, j, 0, cfg), "add d"),
    (lambda k, i, j, d, cfg: flat_index(k, i, j, d, cfg) + 1, "off by one (too large)"),
])  # fmt: skip
def test_flat_index_wrong_gets_a_diagnosis(wrong, needle, capsys):
    out = _fails("02_flat_index", wrong, capsys)
    assert needle in out, out


def test_flat_index_never_shows_the_expected_value(capsys):
    out = _fails("02_flat_index", lambda k, i, j, d, cfg: flat_index(k, i, j, d, cfg) + 7, capsys)
    assert "flat_index at k=0, i=0, j=0, d=0, cfg=ssd512_voc (7) is too large" in out
    assert "should be" not in out and "expected" not in out


def test_flat_index_that_ignores_cfg_fails_on_another_preset(capsys):
    out = _fails("02_flat_index", lambda k, i, j, d, cfg: flat_index(k, i, j, d, SSD512_VOC), capsys)
    assert "cfg=ssd300_voc" in out and "does it use every argument" in out


def test_flat_index_not_a_function_or_raising(capsys):
    assert "should be a function" in _fails("02_flat_index", 23138, capsys)
    assert "raised ZeroDivisionError" in _fails("02_flat_index", lambda *a: 1 / 0, capsys)
    assert "should be a number" in _fails("02_flat_index", lambda *a: "0", capsys)
    assert "five arguments" in _fails("02_flat_index", lambda k, i, j, d: flat_index(k, i, j, d), capsys)


# --- 02_box_1to3 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [(177.36, 532.09), [307.2 / math.sqrt(3), 307.2 * math.sqrt(3)],
                                    torch.tensor([177.362, 532.086]), np.array([177.362, 532.086]),
                                    (307.2 * 3 ** -0.5, 307.2 * 3 ** 0.5)])  # fmt: skip
def test_box_1to3_right(answer, capsys):
    assert exercises.check("02_box_1to3", answer) is True


@pytest.mark.parametrize("answer, needle", [
    ((532.09, 177.36), "lying 3:1 box"),
    ((102.4, 921.6), "use sqrt(3)"),
    ((math.sqrt(307.2 * 384.0) / math.sqrt(3), math.sqrt(307.2 * 384.0) * math.sqrt(3)), "not s'_k"),
    ((177.0, 532.0), "w (177.00 px) is too small; h (532.00 px) is too small"),
    ((88.68, 266.04), "too small"),  # level 2's box, printed earlier in the notebook
    ((177.36,), "two numbers"),
    ("177.36, 532.09", "two numbers"),
    ((None, 1.0), "should be numbers"),
])  # fmt: skip
def test_box_1to3_wrong(answer, needle, capsys):
    out = _fails("02_box_1to3", answer, capsys)
    assert needle in out and "should be (" not in out and "expected" not in out, out
    if len(answer) == 2 and None not in answer and answer != (532.09, 177.36):  # not the learner's own numbers
        assert "177.36" not in out.replace("(177.36,)", "") and "532.09" not in out, out


# --- 02_anchor_center -----------------------------------------------------------------------------------------------


def test_anchor_center_right(capsys):
    assert exercises.check("02_anchor_center", anchor_center) is True
    assert exercises.check("02_anchor_center", lambda l, i, j, cfg: torch.tensor(anchor_center(l, i, j, cfg))) is True
    assert exercises.check("02_anchor_center",
                           lambda k, i, j, c: [c.steps[k] * j + c.steps[k] / 2, c.steps[k] * (i + 0.5)]) is True


def _floor_step_center(k, i, j, cfg=SSD512_VOC):
    step = cfg.image_size // cfg.feature_map_sizes[k]
    return (j + 0.5) * step, (i + 0.5) * step


@pytest.mark.parametrize("wrong, needle", [
    (lambda k, i, j, cfg=SSD512_VOC: anchor_center(k, j, i, cfg), "x and y are swapped"),
    (lambda k, i, j, cfg=SSD512_VOC: (j * cfg.steps[k], i * cfg.steps[k]), "top-left corner"),
    (_floor_step_center, "read it from cfg.steps"),
    (lambda k, i, j: anchor_center(k, i, j), "four arguments"),
    (lambda k, i, j, cfg=SSD512_VOC: anchor_center(k, i, j, cfg)[0], "two numbers"),
])  # fmt: skip
def test_anchor_center_wrong(wrong, needle, capsys):
    out = _fails("02_anchor_center", wrong, capsys)
    assert needle in out, out


def test_anchor_center_ignoring_cfg_fails_and_names_the_input(capsys):
    out = _fails("02_anchor_center", lambda k, i, j, cfg: anchor_center(k, i, j, SSD512_VOC), capsys)
    assert "cfg=SSD300_VOC" in out and "does it use every argument" in out and "too large" in out


def test_anchor_center_fractional_case_names_the_config_not_the_answer(capsys):
    def floor_unless_8(k, i, j, cfg):  # right where the step is an integer, 300 // f_k where it is fractional
        step = cfg.steps[k] if float(cfg.steps[k]).is_integer() else cfg.image_size // cfg.feature_map_sizes[k]
        return (j + 0.5) * step, (i + 0.5) * step

    out = _fails("02_anchor_center", floor_unless_8, capsys)
    assert "SSD300 with steps 300 / fm" in out and f"{SSD300_VOC.image_size / 38:.4f}" in out and "fractional" in out
    assert "should be (" not in out and "3.947" not in out  # the expected centre (0.5 * 300 / 38) is not shown


# --- 02_smallest_square (the widget task) ---------------------------------------------------------------------------


def test_smallest_square_by_hand():
    from ssd_tutorial.exercises.nb02 import _best_iou_of_square, _smallest_positive_square

    # a w x w square inside the 35.84 px anchor at the same centre: IoU = w² / 35.84², 0.5 at w = 25.34
    assert _smallest_positive_square() == math.ceil(35.84 / math.sqrt(2)) == 26
    assert _best_iou_of_square(26.0) == pytest.approx(26.0 ** 2 / 35.84 ** 2, rel=1e-5)
    assert _best_iou_of_square(25.0) < 0.5


@pytest.mark.parametrize("answer", [26, 26.0, torch.tensor(26), np.int64(26)])
def test_smallest_square_right(answer, capsys):
    assert exercises.check("02_smallest_square", answer) is True


@pytest.mark.parametrize("answer, needle", [
    (25, "below 0.5"),
    (36, "size of the smallest anchor"),
    (30, "keep shrinking"),
    (25.5, "whole pixels"),
    (600, "does not fit"),
    ("26", "should be a number"),
])  # fmt: skip
def test_smallest_square_wrong(answer, needle, capsys):
    out = _fails("02_smallest_square", answer, capsys)
    assert needle in out and "26" not in out.replace(f"{answer}", ""), out


# --- 02_explorer_best_level (the anchor explorer's task) ------------------------------------------------------------


def test_explorer_best_level_by_hand():
    from ssd_tutorial.exercises.nb02 import _best_iou_per_level

    best = _best_iou_per_level()
    assert len(best) == SSD512_VOC.num_levels
    # the large square is 159 x 159 px (342, 338, 501, 497), centred at (421.5, 417.5): on level 2 (step 32) the
    # cell is (13, 13), centred at (432, 432); its s_2 = 153.6 square [355.2, 508.8]² overlaps it on
    # x in [355.2, 501] and y in [355.2, 497]
    inter = (501 - 355.2) * (497 - 355.2)
    assert best[2] == pytest.approx(inter / (159 ** 2 + 153.6 ** 2 - inter), rel=1e-5)
    assert max(range(len(best)), key=lambda k: best[k]) == 2
    # the runner-up, the answer: level 3 (s_3 = 230.4, IoU 0.476) just ahead of level 1 (s_1 = 76.8, IoU 0.467)
    assert sorted(range(len(best)), key=lambda k: -best[k])[:3] == [2, 3, 1]
    assert best[3] == pytest.approx(0.4762, abs=1e-4) and best[1] == pytest.approx(0.4666, abs=1e-4)


@pytest.mark.parametrize("answer", [3, 3.0, torch.tensor(3), np.int64(3)])
def test_explorer_best_level_right(answer, capsys):
    assert exercises.check("02_explorer_best_level", answer) is True


@pytest.mark.parametrize("answer, needle", [(1, "level 1 at that cell has IoU"), (2, "runner-up"),
                                            (4, "another level does better"), (7, "levels 0 … 6"),
                                            (1.5, "level number"), ("3", "level number")])
def test_explorer_best_level_wrong(answer, needle, capsys):
    out = _fails("02_explorer_best_level", answer, capsys)
    assert needle in out and "0.476" not in out, out
