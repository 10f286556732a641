"""Tests for the exercises of 04_forward_pass.ipynb: right answers pass, wrong ones get a message that teaches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssd_tutorial import exercises
from ssd_tutorial.boxes import decode_boxes, encode_boxes, xyxy_to_cxcywh
from ssd_tutorial.config import SSD512_VOC

RIGHT = [1.25, -0.625, math.log(1.5) / 0.2, 0.0]  # box (44, 52, 48, 64) against anchor (40, 56, 32, 64)


def _fails(name, answer, capsys):
    assert exercises.check(name, answer) is False
    return capsys.readouterr().out


def test_exercises_are_registered_with_hint_and_solution():
    for name in ("04_encode_box", "04_decode_boxes"):
        exercise = exercises.get_exercise(name)
        assert exercise is not None and exercise.question and exercise.hint and exercise.solution


def test_encode_box_hand_worked_value_is_the_package_value():
    box = xyxy_to_cxcywh(torch.tensor([20.0, 20.0, 68.0, 84.0]))
    assert box.tolist() == [44.0, 52.0, 48.0, 64.0]
    deltas = encode_boxes(box, torch.tensor([40.0, 56.0, 32.0, 64.0]), SSD512_VOC.variances)
    torch.testing.assert_close(deltas, torch.tensor(RIGHT))


@pytest.mark.parametrize("answer", [RIGHT, tuple(RIGHT), torch.tensor(RIGHT), np.array(RIGHT),
                                    [1.25, -0.625, 2.0273, 0.0]])  # fmt: skip
def test_encode_box_right(answer, capsys):
    assert exercises.check("04_encode_box", answer) is True


def test_encode_box_wrong(capsys):
    out = _fails("04_encode_box", [0.125, -0.0625, math.log(1.5), 0.0], capsys)
    assert "element [0] (0.125) is too small by a factor of 10" in out and "variances" in out
    assert "1.25" not in out  # the expected value is only in solution()
    as_if_cxcywh = [(20 - 40) / 3.2, (20 - 56) / 6.4, math.log(68 / 32) / 0.2, math.log(84 / 64) / 0.2]
    out = _fails("04_encode_box", as_if_cxcywh, capsys)
    assert "convert it to (cx, cy, w, h) first" in out
    out = _fails("04_encode_box", [1.25, -0.625, 1.5 / 0.2, 1 / 0.2], capsys)
    assert "element [2]" in out and "natural log" in out
    out = _fails("04_encode_box", RIGHT[:3], capsys)
    assert "4 values" in out


def _decode(deltas, anchors, variances=(0.1, 0.2)):
    v0, v1 = variances
    centre = anchors[:, :2] + deltas[:, :2] * v0 * anchors[:, 2:]
    size = anchors[:, 2:] * torch.exp(deltas[:, 2:] * v1)
    return torch.cat([centre, size], dim=1)


def test_decode_boxes_right(capsys):
    assert exercises.check("04_decode_boxes", _decode) is True
    assert exercises.check("04_decode_boxes", decode_boxes) is True


def test_decode_boxes_wrong(capsys):
    out = _fails("04_decode_boxes", lambda d, a, v=(0.1, 0.2): _decode(d, a), capsys)
    assert "variances=(0.2, 0.5)" in out and "use the variances argument" in out
    out = _fails("04_decode_boxes", lambda d, a, v=(0.1, 0.2): _decode(d, a, (1.0, 1.0)), capsys)
    assert "multiply the offsets by the variances" in out
    from ssd_tutorial.boxes import cxcywh_to_xyxy

    out = _fails("04_decode_boxes", lambda d, a, v=(0.1, 0.2): cxcywh_to_xyxy(_decode(d, a, v)), capsys)
    assert "(x1, y1, x2, y2)" in out

    def no_exp(d, a, v=(0.1, 0.2)):
        return torch.cat([a[:, :2] + d[:, :2] * v[0] * a[:, 2:], a[:, 2:] * (1 + d[:, 2:] * v[1])], dim=1)

    out = _fails("04_decode_boxes", no_exp, capsys)
    assert "first mismatch at box 0, w" in out and "is too small" in out and "anchor [" in out and "expected" not in out
    out = _fails("04_decode_boxes", lambda d, a, v: _decode(d, a, v)[:, :2], capsys)
    assert "[6, 4]" in out and "[6, 2]" in out
    out = _fails("04_decode_boxes", lambda d, a, v: _decode(d, a, v).tolist(), capsys)
    assert "torch.Tensor" in out
    out = _fails("04_decode_boxes", lambda d: d, capsys)
    assert "raised TypeError" in out


def test_decode_boxes_written_differently(capsys):
    def by_columns(deltas, anchors, variances):
        (tx, ty, tw, th), (ax, ay, aw, ah) = deltas.unbind(1), anchors.unbind(1)
        return torch.stack([ax + tx * variances[0] * aw, ay + ty * variances[0] * ah,
                            aw * (tw * variances[1]).exp(), ah * (th * variances[1]).exp()], dim=1)

    assert exercises.check("04_decode_boxes", by_columns) is True


def test_best_shape_widget_task(capsys):
    from ssd_tutorial.exercises.nb04 import _task_cell_probabilities

    (i, j), p_triangle = _task_cell_probabilities()
    assert (i, j) == (62 // 32, 52 // 32)  # the triangle (18, 28, 87, 97) has its centre at (52.5, 62.5)
    assert len(p_triangle) == 6
    best = max(range(len(p_triangle)), key=lambda d: p_triangle[d])
    assert exercises.check("04_best_shape", best) is True
    assert exercises.check("04_best_shape", float(best)) is True
    for wrong in set(range(len(p_triangle))) - {best}:
        out = _fails("04_best_shape", wrong, capsys)
        assert f"shape d = {wrong} gives P(triangle)" in out and "(i, j) = (1, 1)" in out
    assert "d = 0 … 5" in _fails("04_best_shape", 6, capsys)
    assert "shape index d" in _fails("04_best_shape", "1", capsys)
