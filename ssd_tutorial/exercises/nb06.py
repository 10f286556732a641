"""Exercises of 06_training.ipynb: the learning rate during warm-up, and the number of optimizer steps of a run.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import math
from typing import Any

from . import _as_number, compare_number, register

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
                problem = f"{what} should be {want:g}, got {value:g}"  # lrs are tiny: no absolute tolerance
            if problem is None:
                continue
            if t == 0 and _as_number(got) == 0:
                problem += ": the warm-up starts at base_lr * 0.001, not at 0 (a zero lr would waste a step)"
            return problem
    return None


def total_iterations(recipe: dict[str, Any]) -> int:
    """Optimizer steps of a shapes run: ceil(num_train / batch_size) per epoch (the last batch is partial)."""
    return math.ceil(recipe["num_train"] / recipe["batch_size"]) * recipe["epochs"]


def _tiny_recipe() -> dict[str, Any]:
    from ..train import TRAIN_RECIPES

    return TRAIN_RECIPES["tiny_shapes"]


@register(
    "06_total_iterations",
    question="How many optimizer steps does the tiny_shapes recipe (TRAIN_RECIPES['tiny_shapes']: num_train "
    "images, batch_size, epochs) take in all? The DataLoader keeps the last, smaller batch.",
    hint="One step per batch. Batches per epoch = ceil(num_train / batch_size) because the last partial batch "
    "counts; multiply by the number of epochs.",
    solution="""
recipe = TRAIN_RECIPES["tiny_shapes"]
steps = math.ceil(recipe["num_train"] / recipe["batch_size"]) * recipe["epochs"]
""",
)
def _check_total_iterations(answer: Any) -> str | None:
    recipe = _tiny_recipe()
    want = total_iterations(recipe)
    problem = compare_number(want, answer, what="the number of steps")
    if problem is None:
        return None
    got = _as_number(answer)
    floor_steps = recipe["num_train"] // recipe["batch_size"] * recipe["epochs"]
    if got is not None and floor_steps != want and math.isclose(got, floor_steps):
        problem += "; the last, partial batch is a step too: use ceil, not floor"
    elif got is not None and math.isclose(got, math.ceil(recipe["num_train"] / recipe["batch_size"])):
        problem += f"; that is one epoch: the recipe runs {recipe['epochs']} epochs"
    return problem
