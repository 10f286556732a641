"""Tests for the exercises of 06_training.ipynb: right answers pass, wrong ones get a message that teaches."""

from __future__ import annotations

import copy
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
        (lambda t, b, w: b * t / w, ["warmup_lr(0, 0.003, 50) (0) is too small", "not at 0"]),
        (lambda t, b, w: b * (0.001 + t / w), ["warmup_lr(1, 0.003, 50) (6.3e-05) is too large"]),
        (lambda t, b, w: _right_warmup(t, b, w) * 1.0001, ["warmup_lr(0, 0.003, 50) (3.0003e-06) is too large"]),
        (lambda t, b, w: b, ["warmup_lr(0, 0.003, 50) (0.003) is too large"]),
        (lambda t: t, ["raised TypeError"]),
        (0.003, ["should be a function"]),
    ],
)
def test_warmup_wrong(answer, needles, capsys):
    assert exercises.check("06_warmup_lr", answer) is False
    out = capsys.readouterr().out
    for needle in needles:
        assert needle in out, out
    assert "should be 3e-06" not in out and "6.294" not in out  # the expected value is only in solution()


def test_total_iterations_reference_equals_len_of_dataloader():
    for num_train, batch_size, epochs in nb06._STEP_CASES:
        loader = torch.utils.data.DataLoader(range(num_train), batch_size=batch_size)
        assert math.ceil(num_train / batch_size) * epochs == len(loader) * epochs
    assert nb06.total_iterations(TRAIN_RECIPES["tiny_shapes"]) == 800
    assert any(n % b for n, b, _ in nb06._STEP_CASES)  # sizes that do not divide: floor and ceil differ


@pytest.mark.parametrize("answer", [
    lambda n, b, e: math.ceil(n / b) * e,
    lambda n, b, e: (n + b - 1) // b * e,
    lambda n, b, e: -(-n // b) * e,
    lambda n, b, e: len(torch.utils.data.DataLoader(range(n), batch_size=b)) * e,
])  # fmt: skip
def test_total_iterations_right(answer, capsys):
    assert exercises.check("06_total_iterations", answer) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer, needles",
    [
        (lambda n, b, e: n // b * e, ["total_steps(3000, 32, 8) (744) is too small", "last partial batch is still"]),
        (lambda n, b, e: math.ceil(n * e / b), ["(750) is too small", "every epoch ends with its own partial batch"]),
        (lambda n, b, e: math.ceil(n / b), ["(94) is too small", "multiply by the number of epochs"]),
        (lambda n, b, e: math.ceil(n / b) * 8, ["total_steps(100, 32, 1)", "does it use every argument"]),
        (lambda n, b, e: math.ceil(n / b) * e + 1, ["(753) is off by one (too large)"]),
        (lambda n, b: n, ["raised TypeError"]),
        (752, ["should be a function"]),
    ],
)
def test_total_iterations_wrong(answer, needles, capsys):
    assert exercises.check("06_total_iterations", answer) is False
    out = capsys.readouterr().out
    for needle in needles:
        assert needle in out, out
    assert "752" not in out.replace("(753)", "") or "should be a function" in out  # no expected value
    assert "exercises.hint('06_total_iterations')" in out


# ---- 06_train_step ----------------------------------------------------------------------------------------------


def _step_written_differently(model, images, targets, optimizer, scheduler, grad_clip=None):
    for p in model.parameters():  # zeroing by hand instead of optimizer.zero_grad()
        p.grad = None
    total = sum(model(images, targets).values())  # 0 + loss_loc + loss_cls
    total.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), max_norm=grad_clip)
    optimizer.step()
    scheduler.step()
    return total.item()


def test_reference_step_equals_fit_on_one_batch():
    # fit's own inner step: a loader of one batch, 2 epochs = 2 steps; the reference with the same optimizer,
    # schedule and batch must leave the same weights.
    from ssd_tutorial.train import build_optimizer, fit

    model, batches = nb06._step_setup()
    kwargs = dict(optimizer="adamw", lr=1e-2, weight_decay=1e-4, warmup_iters=1, schedule="cosine", grad_clip=1.0)
    by_fit = copy.deepcopy(model)
    from ssd_tutorial.config import TINY_SHAPES
    from ssd_tutorial.data import ShapesDataset, collate_detection

    first = ShapesDataset(2, image_size=TINY_SHAPES.image_size, seed=3)[0]  # the checker's first batch
    loader = torch.utils.data.DataLoader([first], batch_size=1, collate_fn=collate_detection)
    fit(by_fit, loader, epochs=2, **kwargs, progress=False, log_fn=lambda line: None)
    by_hand = copy.deepcopy(model).train()
    optimizer = build_optimizer(by_hand, "adamw", lr=1e-2, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(
        it, iters_per_epoch=1, total_iters=2, warmup_iters=1, schedule="cosine", step_size=3, gamma=0.1))
    for _ in range(2):
        nb06.reference_step(by_hand, *batches[0], optimizer, scheduler, grad_clip=1.0)
    for a, b in zip(by_fit.parameters(), by_hand.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not torch.equal(next(model.parameters()), next(by_hand.parameters()))  # the steps moved the weights


def test_clip_is_active_in_the_checker():
    model, batches = nb06._step_setup()
    plain = nb06._run_steps(nb06.reference_step, model, batches, None)[1]
    clipped = nb06._run_steps(nb06.reference_step, model, batches, nb06.STEP_CLIP)[1]
    assert not nb06._same(plain[0], clipped[0])


@pytest.mark.parametrize("answer", [nb06.reference_step, _step_written_differently])
def test_train_step_right(answer, capsys):
    assert exercises.check("06_train_step", answer) is True


def _named(order, terms="both"):
    return nb06._variant(tuple(order.split()), terms)


@pytest.mark.parametrize(
    "answer, needle",
    [
        (_named("forward backward clip step scheduler"), "call optimizer.zero_grad() at the start"),
        (_named("zero_grad forward clip step backward scheduler"), "the weights never move"),
        (_named("forward backward zero_grad clip step scheduler"), "the weights never move"),
        (_named("zero_grad forward backward clip scheduler step"), "scheduler.step() runs before optimizer.step()"),
        (_named("zero_grad forward backward clip step"), "the learning rate never changes"),
        (_named("zero_grad forward backward clip step scheduler", "cls"), "only loss_cls is trained"),
        (_named("zero_grad forward backward clip step scheduler", "loc"), "only loss_loc is trained"),
        (_named("zero_grad forward backward clip step scheduler", "mean"), "you averaged the two losses"),
        (_named("zero_grad forward backward step scheduler"), "grad_clip has no effect"),
        (_named("zero_grad forward backward step clip scheduler"), "grad_clip has no effect"),
        (lambda model, images, targets, optimizer, scheduler, grad_clip=None: None, "the weights never move"),
        (lambda model, images, targets, optimizer, scheduler: None, "raised TypeError"),
        ("step", "should be a function"),
    ],
)
def test_train_step_wrong(answer, needle, capsys):
    assert exercises.check("06_train_step", answer) is False
    out = capsys.readouterr().out
    assert needle in out, out
    assert "exercises.hint('06_train_step')" in out


def test_train_step_must_return_the_loss(capsys):
    def no_return(model, images, targets, optimizer, scheduler, grad_clip=None):
        nb06.reference_step(model, images, targets, optimizer, scheduler, grad_clip)

    assert exercises.check("06_train_step", no_return) is False
    assert "should return the summed loss" in capsys.readouterr().out
