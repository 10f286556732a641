"""Tests for the exercises of 03_heads.ipynb: right answers pass, wrong ones get a message that teaches."""

from __future__ import annotations

import pytest
import torch

from ssd_tutorial import exercises
from ssd_tutorial.widgets.nb03 import receptive_field

LOC = [16, 24, 24, 24, 24, 16, 16]
CLS = [84, 126, 126, 126, 126, 84, 84]


def _fails(name, answer, capsys):
    assert exercises.check(name, answer) is False
    return capsys.readouterr().out


def test_exercises_are_registered_with_hint_and_solution():
    for name in ("03_head_channels", "03_flatten_head", "03_receptive_field"):
        exercise = exercises.get_exercise(name)
        assert exercise is not None and exercise.question and exercise.hint and exercise.solution


@pytest.mark.parametrize("answer", [(LOC, CLS), [tuple(LOC), torch.tensor(CLS)], (torch.tensor(LOC), CLS)])
def test_head_channels_right(answer, capsys):
    assert exercises.check("03_head_channels", answer) is True
    assert "correct" in capsys.readouterr().out


def test_head_channels_wrong(capsys):
    out = _fails("03_head_channels", (LOC, [20 * c // 21 for c in CLS]), capsys)
    assert "cls_channels" in out and "element [0] (80) is too small" in out and "C = 21, not 20" in out
    assert "84" not in out  # the expected value is only in solution()
    out = _fails("03_head_channels", ([4, 6, 6, 6, 6, 4, 4], CLS), capsys)
    assert "loc_channels" in out and "anchors per location" in out and "4 numbers" in out
    out = _fails("03_head_channels", (LOC, CLS[:6]), capsys)
    assert "7 values" in out
    out = _fails("03_head_channels", LOC, capsys)
    assert "pair (loc_channels, cls_channels)" in out


def _flatten(head_map, n):
    return head_map.permute(0, 2, 3, 1).reshape(head_map.shape[0], -1, n)


def test_flatten_head_right(capsys):
    assert exercises.check("03_flatten_head", _flatten) is True
    alternative = lambda x, n: x.permute(0, 2, 3, 1).flatten(1, 2).reshape(x.shape[0], -1, n)  # noqa: E731
    assert exercises.check("03_flatten_head", alternative) is True


def test_flatten_head_wrong(capsys):
    out = _fails("03_flatten_head", lambda x, n: x.reshape(x.shape[0], -1, n), capsys)
    assert "permute(0, 2, 3, 1)" in out and "different cells" in out
    # channels last but H and W swapped: rows and columns come out transposed
    out = _fails("03_flatten_head", lambda x, n: x.permute(0, 3, 2, 1).reshape(x.shape[0], -1, n), capsys)
    assert "first mismatch at [0, 3, 0]" in out
    assert "expected the value of image 0, row 0, col 1, shape d=0, channel 0" in out
    assert "got image 0, row 1, col 0" in out
    out = _fails("03_flatten_head", lambda x, n: x.permute(0, 2, 3, 1), capsys)
    assert "[B, H*W*n_k, n] = [2, 45, 4]" in out and "[2, 3, 5, 12]" in out
    out = _fails("03_flatten_head", lambda x, n: x.numpy(), capsys)
    assert "torch.Tensor" in out
    out = _fails("03_flatten_head", lambda x: x, capsys)
    assert "raised TypeError" in out
    out = _fails("03_flatten_head", 3, capsys)
    assert "function flatten_head" in out


def _rf(layers):
    rf, jump = 1, 1
    for kernel, stride, dilation in layers:
        rf += dilation * (kernel - 1) * jump
        jump *= stride
    return rf


def test_receptive_field_right_and_agrees_with_the_package(capsys):
    assert exercises.check("03_receptive_field", _rf) is True
    assert exercises.check("03_receptive_field", lambda layers: receptive_field(layers)[0]) is True
    from ssd_tutorial.exercises.nb03 import _CONV4_3, _CONV7

    assert _rf(_CONV4_3) == 92 and _rf(_CONV7) == 420


def test_receptive_field_wrong(capsys):
    no_jump = lambda layers: 1 + sum(d * (k - 1) for k, _, d in layers)  # noqa: E731
    out = _fails("03_receptive_field", no_jump, capsys)
    assert "a 2x2 stride-2 pool, then a 3x3 conv" in out and "(4) is too small" in out and "jump" in out
    assert "6" not in out.replace("hint(", "")  # never the expected value
    no_dilation = lambda layers: _rf([(k, s, 1) for k, s, _ in layers])  # noqa: E731
    out = _fails("03_receptive_field", no_dilation, capsys)
    assert "dilation 6" in out and "(3) is too small" in out and "d * (kernel - 1) + 1" in out and "13" not in out
    out = _fails("03_receptive_field", lambda layers: receptive_field(layers), capsys)
    assert "not a tuple" in out and "expected" not in out
    out = _fails("03_receptive_field", lambda layers: 92, capsys)
    assert "no layer" in out and "(92) is too large" in out


def test_receptive_field_written_differently(capsys):
    def recursive(layers, jump=1):
        if not layers:
            return 1
        (kernel, stride, dilation), *rest = layers
        return dilation * (kernel - 1) * jump + recursive(rest, jump * stride)

    assert exercises.check("03_receptive_field", recursive) is True


def test_strongest_level_widget_task(capsys):
    from ssd_tutorial.exercises.nb03 import _mean_abs_per_level

    means = _mean_abs_per_level()
    best = max(range(len(means)), key=lambda k: means[k])
    assert exercises.check("03_strongest_level", best) is True
    assert exercises.check("03_strongest_level", torch.tensor(best)) is True
    for wrong in set(range(len(means))) - {best}:
        out = _fails("03_strongest_level", wrong, capsys)
        assert f"level {wrong} has a mean |activation|" in out and "larger one" in out
    assert "levels 0" in _fails("03_strongest_level", 9, capsys)
    assert "level number" in _fails("03_strongest_level", "4", capsys)
    assert "level number" in _fails("03_strongest_level", 1.5, capsys)
