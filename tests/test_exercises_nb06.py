"""Tests for the exercises of 06_training.ipynb: right answers pass, wrong ones get a message that teaches."""

from __future__ import annotations

import math

import pytest
import torch

from ssd_tutorial import exercises
from ssd_tutorial.exercises import nb06
from ssd_tutorial.train import TRAIN_RECIPES, lr_factor


def _right_warmup(t, base_lr, warmup_iters):
    return base_lr * (0.001 + (1 - 0.001) * t / warmup_iters)


def test_registered():
    for name in ("06_warmup_lr", "06_total_iterations"):
        exercise = exercises.get_exercise(name)
        assert exercise is not None and exercise.question and exercise.hint and exercise.solution


def test_hand_warmup_equals_scheduler_of_fit():
    # What fit's LambdaLR gives during warm-up, with the cosine schedule of the tiny recipe.
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=3e-3)
    total = 400
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(
        it, iters_per_epoch=50, total_iters=total, warmup_iters=50, schedule="cosine", step_size=3, gamma=0.1))
    for t in range(50):
        cosine = 0.5 * (1 + math.cos(math.pi * t / total))
        assert optimizer.param_groups[0]["lr"] == pytest.approx(_right_warmup(t, 3e-3, 50) * cosine, rel=1e-9)
        optimizer.step()
        scheduler.step()


def test_warmup_right(capsys):
    assert exercises.check("06_warmup_lr", _right_warmup) is True
    assert exercises.check("06_warmup_lr", lambda t, b, w: torch.tensor(_right_warmup(t, b, w))) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer, needles",
    [
        (lambda t, b, w: b * t / w, ["warmup_lr(0, 0.003, 50) should be 3e-06, got 0", "not at 0"]),
        (lambda t, b, w: b * (0.001 + t / w), ["warmup_lr(1, 0.003, 50) should be"]),
        (lambda t, b, w: b * (0.001 + (1 - 0.001) * t / w) * 1.0001, ["should be 3e-06, got 3.0003e-06"]),
        (lambda t, b, w: b, ["should be 3e-06, got 0.003"]),
        (lambda t: t, ["raised TypeError"]),
        (0.003, ["should be a function"]),
    ],
)
def test_warmup_wrong(answer, needles, capsys):
    assert exercises.check("06_warmup_lr", answer) is False
    out = capsys.readouterr().out
    for needle in needles:
        assert needle in out, out


def test_total_iterations_reference():
    recipe = TRAIN_RECIPES["tiny_shapes"]
    loader = torch.utils.data.DataLoader(range(recipe["num_train"]), batch_size=recipe["batch_size"])
    assert nb06.total_iterations(recipe) == len(loader) * recipe["epochs"]
    assert nb06.total_iterations({"num_train": 2000, "batch_size": 32, "epochs": 8}) == 504


def test_total_iterations_right_and_wrong(capsys):
    recipe = TRAIN_RECIPES["tiny_shapes"]
    right = nb06.total_iterations(recipe)
    assert exercises.check("06_total_iterations", right) is True
    per_epoch = math.ceil(recipe["num_train"] / recipe["batch_size"])
    assert exercises.check("06_total_iterations", per_epoch) is False
    assert f"runs {recipe['epochs']} epochs" in capsys.readouterr().out
    assert exercises.check("06_total_iterations", right + 1) is False
    assert f"should be {right}, got {right + 1}" in capsys.readouterr().out
    floor_steps = recipe["num_train"] // recipe["batch_size"] * recipe["epochs"]
    if floor_steps != right:
        assert exercises.check("06_total_iterations", floor_steps) is False
        assert "use ceil" in capsys.readouterr().out
