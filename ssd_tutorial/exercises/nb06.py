"""Exercises of 06_training.ipynb: one training step, the warm-up learning rate, the number of optimizer steps.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import functools
import math
from typing import Any

from . import _as_number, compare_number, describe_miss, register

# (base lr, warm-up iterations) the checker tries; the iterations t run over the whole warm-up.
_WARMUP_CASES = ((3e-3, 50), (0.005, 500), (1.0, 7))


def _expected_warmup_lr(t: int, base_lr: float, warmup_iters: int) -> float:
    from ..train import lr_factor

    return base_lr * lr_factor(t, iters_per_epoch=10**9, total_iters=10**9, warmup_iters=warmup_iters,
                               schedule="constant", step_size=1, gamma=1.0)  # fmt: skip


@register(
    "06_warmup_lr",
    question="Write warmup_lr(t, base_lr, warmup_iters): the learning rate fit uses at iteration t "
    "(0, 1, …, warmup_iters - 1) of its linear warm-up, before the schedule (cosine or step) multiplies it.",
    hint="The warm-up starts at base_lr * 0.001 at t = 0 and grows linearly; it would reach base_lr at "
    "t = warmup_iters. Factor = 0.001 + (1 - 0.001) * t / warmup_iters.",
    solution="""
def warmup_lr(t, base_lr, warmup_iters):
    return base_lr * (0.001 + (1 - 0.001) * t / warmup_iters)

warmup_lr(0, 3e-3, 50), warmup_lr(25, 3e-3, 50)  # (3e-06, 0.0015015)
""",
)
def _check_warmup_lr(answer: Any) -> str | None:
    if not callable(answer):
        return f"the answer should be a function warmup_lr(t, base_lr, warmup_iters), got {type(answer).__name__}"
    for base_lr, warmup_iters in _WARMUP_CASES:
        for t in range(warmup_iters):
            try:
                got = answer(t, base_lr, warmup_iters)
            except Exception as error:
                return f"warmup_lr({t}, {base_lr}, {warmup_iters}) raised {type(error).__name__}: {error}"
            want = _expected_warmup_lr(t, base_lr, warmup_iters)
            what = f"warmup_lr({t}, {base_lr}, {warmup_iters})"
            problem = compare_number(want, got, what=what)
            value = _as_number(got)
            if problem is None and value is not None and not math.isclose(value, want, rel_tol=1e-6, abs_tol=0.0):
                problem = f"{what} ({value:g}) {describe_miss(want, value)}"  # lrs are tiny: no absolute tolerance
            if problem is None:
                continue
            if t == 0 and _as_number(got) == 0:
                problem += ": the warm-up starts at base_lr * 0.001, not at 0 (a zero lr would waste a step)"
            return problem
    return None


def total_iterations(recipe: dict[str, Any]) -> int:
    """Optimizer steps of a shapes run: ceil(num_train / batch_size) per epoch (the last batch is partial)."""
    return math.ceil(recipe["num_train"] / recipe["batch_size"]) * recipe["epochs"]


# (num_train, batch_size, epochs) the checker tries: sizes that do not divide (3000 / 32 leaves 24 images), one
# that does, a set smaller than one batch, and one epoch.
_STEP_CASES = ((3000, 32, 8), (100, 32, 1), (3200, 32, 8), (20, 32, 3), (1000, 64, 5))


@register(
    "06_total_iterations",
    question="Write total_steps(num_train, batch_size, epochs): how many optimizer steps a run takes when the "
    "DataLoader keeps the last, smaller batch of every epoch (drop_last=False, the default).",
    hint="One step per batch. An epoch of num_train images has ceil(num_train / batch_size) batches: the last "
    "partial batch is still a step. Every epoch ends with its own partial batch, so multiply by epochs after the "
    "ceil, not before.",
    solution="""
def total_steps(num_train, batch_size, epochs):
    return math.ceil(num_train / batch_size) * epochs      # = len(DataLoader(...)) * epochs

total_steps(3000, 32, 8)  # 94 batches per epoch (93 full + 1 of 24 images) x 8 = 752
""",
)
def _check_total_iterations(answer: Any) -> str | None:
    if not callable(answer):
        return (f"the answer should be a function total_steps(num_train, batch_size, epochs), got "
                f"{type(answer).__name__}")  # fmt: skip
    right_on: list[str] = []
    for num_train, batch_size, epochs in _STEP_CASES:
        call = f"total_steps({num_train}, {batch_size}, {epochs})"
        try:
            got = answer(num_train, batch_size, epochs)
        except Exception as error:
            return f"{call} raised {type(error).__name__}: {error}"
        want = math.ceil(num_train / batch_size) * epochs
        problem = compare_number(want, got, what=call)
        if problem is None:
            right_on.append(call)
            continue
        value = _as_number(got)
        if value == num_train // batch_size * epochs:
            problem += ": the last partial batch is still a step (floor drops it; use ceil)"
        elif value == math.ceil(num_train * epochs / batch_size):
            problem += (": you counted the images of all epochs together, but every epoch ends with its own "
                        "partial batch: ceil per epoch, then times epochs")
        elif value == math.ceil(num_train / batch_size):
            problem += ": that is one epoch; multiply by the number of epochs"
        elif right_on:
            problem += f" — it was right at {right_on[0]}: does it use every argument?"
        return problem
    return None


# ---- 06_train_step: the body of one training step --------------------------------------------------------------

STEP_LR, STEP_MOMENTUM = 0.01, 0.9  # plain SGD in the checker: its update shows every mistake (Adam's hides scale)
STEP_LR_FACTORS = (1.0, 0.5, 0.4)  # the scheduler's factor at iterations 0, 1, 2 (not geometric: a halved loss
# would then look like a scheduler stepped too early)
STEP_CLIP = 1.0  # below the gradient norm of the checker's first batch, so clipping really changes the step


def reference_step(model: Any, images: Any, targets: Any, optimizer: Any, scheduler: Any,
                   grad_clip: float | None = None) -> Any:  # fmt: skip
    """One training step, in the order of ``fit``'s inner loop (``train._train_epoch``, without AMP): returns the
    summed loss."""
    from torch import nn

    optimizer.zero_grad()
    losses = model(images, targets)  # {"loss_loc", "loss_cls"}
    loss = losses["loss_loc"] + losses["loss_cls"]
    loss.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return loss


@functools.cache
def _step_setup() -> tuple[Any, list[tuple[Any, Any]]]:
    """A fixed TINY_SHAPES model (seed 0) and two batches of one shapes image each."""
    import torch

    from ..config import TINY_SHAPES
    from ..data import ShapesDataset, collate_detection
    from ..model import build_ssd

    torch.manual_seed(0)
    model = build_ssd(TINY_SHAPES)
    data = ShapesDataset(2, image_size=TINY_SHAPES.image_size, seed=3)
    batches = [collate_detection([data[0]]), collate_detection([data[1]])]  # one image each: cheap to check
    return model, batches


def _run_steps(step: Any, model: Any, batches: list, grad_clip: float | None) -> tuple[Any, list, list, int]:
    """Copy ``model``, run ``step`` on each batch: (model after, parameters after each call, returned values,
    scheduler.last_epoch)."""
    import copy
    import warnings

    import torch

    net = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=STEP_LR, momentum=STEP_MOMENTUM)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: STEP_LR_FACTORS[min(it, 2)])
    states, returned = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns when scheduler.step() comes first
        for images, targets in batches:
            returned.append(step(net, images, targets, optimizer, scheduler, grad_clip))
            states.append([p.detach().clone() for p in net.parameters()])
    return net, states, returned, scheduler.last_epoch


@functools.lru_cache(maxsize=2)
def _reference_run(grad_clip: float | None) -> tuple[list, list]:
    """Parameters after each of the two reference calls, and the returned losses (computed once per process)."""
    model, batches = _step_setup()
    _, states, returned, _ = _run_steps(reference_step, model, batches, grad_clip)
    return states, [float(loss.detach()) for loss in returned]


@functools.cache
def _mistake_run(index: int, grad_clip: float | None) -> list:
    """Parameters after two calls of known mistake ``index`` (computed once per process)."""
    order, terms, _ = _KNOWN_MISTAKES[index]
    model, batches = _step_setup()
    return _run_steps(_variant(order, terms), model, batches, grad_clip)[1][1]


def _same(a: list, b: list) -> bool:
    import torch

    return all(torch.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(a, b))


def _variant(order: tuple[str, ...], terms: str = "both") -> Any:
    """A wrong step built from named pieces, to recognise a learner's mistake by its result."""
    from torch import nn

    def step(model: Any, images: Any, targets: Any, optimizer: Any, scheduler: Any, grad_clip: Any) -> Any:
        loss = None
        for piece in order:
            if piece == "zero_grad":
                optimizer.zero_grad()
            elif piece == "forward":
                losses = model(images, targets)
                loss = {"both": losses["loss_loc"] + losses["loss_cls"], "cls": losses["loss_cls"],
                        "loc": losses["loss_loc"], "mean": (losses["loss_loc"] + losses["loss_cls"]) / 2}[terms]
            elif piece == "backward":
                loss.backward()
            elif piece == "clip" and grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            elif piece == "step":
                optimizer.step()
            elif piece == "scheduler":
                scheduler.step()
        return loss

    return step


_RIGHT = ("zero_grad", "forward", "backward", "clip", "step", "scheduler")
_NO_MOVE = ("the weights never move: optimizer.step() must run after loss.backward() (which makes the gradients) "
            "and before any zero_grad() (which deletes them)")
_KNOWN_MISTAKES = (
    (("forward", "backward", "clip", "step", "scheduler"), "both",
     "the gradients of the two calls add up: call optimizer.zero_grad() at the start of every step"),
    (("forward", "backward", "zero_grad", "clip", "step", "scheduler"), "both", _NO_MOVE),
    (("zero_grad", "forward", "clip", "step", "backward", "scheduler"), "both", _NO_MOVE),
    (("zero_grad", "forward", "backward", "clip", "scheduler", "step"), "both",
     "scheduler.step() runs before optimizer.step(), so the step already uses the next learning rate"),
    (("zero_grad", "forward", "backward", "clip", "step"), "both",
     "the learning rate never changes: call scheduler.step() after optimizer.step()"),
    (_RIGHT, "cls", "only loss_cls is trained: the loss is loss_loc + loss_cls (both terms of the dict)"),
    (_RIGHT, "loc", "only loss_loc is trained: the loss is loss_loc + loss_cls (both terms of the dict)"),
    (_RIGHT, "mean", "you averaged the two losses: the package sums them (SSD paper, eq. 1 with alpha = 1)"),
    (("zero_grad", "forward", "backward", "step", "scheduler"), "both",
     "grad_clip has no effect on the step: when it is not None, clip with "
     "torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) between backward() and optimizer.step() (after "
     "the step is too late)"),
)


@register(
    "06_train_step",
    question="Write train_step(model, images, targets, optimizer, scheduler, grad_clip=None): one training step of "
    "SSD (the model in train mode returns {'loss_loc', 'loss_cls'}); return the summed loss.",
    hint="Six lines, in this order: optimizer.zero_grad(); losses = model(images, targets); loss = "
    "losses['loss_loc'] + losses['loss_cls']; loss.backward(); if grad_clip is not None: "
    "torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip); optimizer.step(); scheduler.step().",
    solution="""
def train_step(model, images, targets, optimizer, scheduler, grad_clip=None):
    optimizer.zero_grad()                        # forget the previous step's gradients
    losses = model(images, targets)              # forward: {"loss_loc": Tensor[], "loss_cls": Tensor[]}
    loss = losses["loss_loc"] + losses["loss_cls"]
    loss.backward()                              # gradients of every weight
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()                             # move the weights
    scheduler.step()                             # learning rate of the next step
    return loss
""",
)
def _check_train_step(answer: Any) -> str | None:
    if not callable(answer):
        return f"the answer should be a function train_step(model, images, targets, ...), got {type(answer).__name__}"
    model, batches = _step_setup()
    for grad_clip in (None, STEP_CLIP):
        call = f"two calls with grad_clip={grad_clip}"
        try:
            _, states, returned, last_epoch = _run_steps(answer, model, batches, grad_clip)
        except NotImplementedError:
            raise
        except Exception as error:
            return f"{call}: train_step raised {type(error).__name__}: {error}"
        want_states, want_returned = _reference_run(grad_clip)
        if _same(states[0], want_states[0]) and _same(states[1], want_states[1]):
            for got, want in zip(returned, want_returned):
                got_value = _as_number(got.detach() if hasattr(got, "detach") else got)
                if got_value is None or abs(got_value - want) > 1e-5 * abs(want):
                    return (f"{call}: the weights are right, but train_step should return the summed loss "
                            "(loss_loc + loss_cls) of the batch")
            if last_epoch != len(batches):
                return f"{call}: the scheduler should step once per call"
            continue
        initial = [p.detach() for p in model.parameters()]
        for index, (_, _, meaning) in enumerate(_KNOWN_MISTAKES):
            mistake_after = _mistake_run(index, grad_clip)
            if _same(states[1], mistake_after) and not _same(mistake_after, want_states[1]):
                return f"{call}: {meaning}"
        if _same(states[1], initial):
            return f"{call}: {_NO_MOVE}"
        which = "first" if not _same(states[0], want_states[0]) else "second"
        return (f"{call}: after the {which} call the weights differ from one correct step; the order is zero_grad, "
                "forward, sum both losses, backward, clip (if grad_clip), optimizer.step, scheduler.step")
    return None
