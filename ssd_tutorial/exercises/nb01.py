"""Exercises of 01_constants.ipynb.

Introduced in: 01_constants.ipynb
"""

from __future__ import annotations

import inspect
from typing import Any

from . import _as_number, compare_function, compare_number, compare_sequence, register


def _anchors_per_level_512() -> tuple[int, ...]:
    from ..config import SSD512_VOC

    return SSD512_VOC.anchors_per_level


@register(
    "01_anchors_per_level",
    question="How many anchors does level k of a config have? Give a function anchors_at_level(k, cfg) (checked on "
    "every level of SSD512_VOC, SSD300_VOC and TINY_SHAPES) or SSD512_VOC's 7 counts as a list / tensor.",
    hint="A level with an f x f feature map has f*f locations, and every location has 2 + 2*len(ratios) anchors "
    "(two squares, then a lying and a standing rectangle per aspect ratio).",
    solution="""
def anchors_at_level(k, cfg=ssd_tutorial.SSD512_VOC):
    fm = cfg.feature_map_sizes[k]
    per_location = 2 + 2 * len(cfg.aspect_ratios[k])
    return fm * fm * per_location

[anchors_at_level(k) for k in range(7)]  # [16384, 6144, 1536, 384, 96, 16, 4]
""",
)
def _check_anchors_per_level(answer: Any) -> str | None:
    from ..config import SSD300_VOC, SSD512_VOC, TINY_SHAPES

    if not callable(answer):
        return compare_sequence(_anchors_per_level_512(), answer, what="the anchor counts per level")
    # every level of every preset: a function that ignores its cfg argument is right for SSD512 only
    cases = [({"k": level, "cfg": cfg}, cfg.anchors_per_level[level])
             for cfg in (SSD512_VOC, SSD300_VOC, TINY_SHAPES) for level in range(cfg.num_levels)]  # fmt: skip
    return compare_function(_positional(answer), cases, what="anchors_at_level")


def _positional(answer: Any) -> Any:
    """Call a learner's ``f(k, cfg)`` whatever its parameters are named."""
    try:
        inspect.signature(answer).bind(0, None)
    except TypeError:
        return _takes_two
    except ValueError:  # no signature (a builtin): just try it
        pass
    return lambda k, cfg: answer(k, cfg)


def _takes_two(k: int, cfg: Any) -> None:
    raise TypeError("anchors_at_level should take two arguments, (k, cfg), so it works for any config")


def _all_six_300() -> Any:
    """SSD300_VOC with aspect ratios (2, 3) on every level: 6 anchors per location everywhere."""
    from ..config import SSD300_VOC

    return SSD300_VOC.replace(aspect_ratios=((2, 3),) * SSD300_VOC.num_levels)


@register(
    "01_total_anchors",
    question="How many anchors in all does SSD300_VOC have when every level uses the aspect ratios (2, 3), i.e. "
    "ssd_tutorial.SSD300_VOC.replace(aspect_ratios=((2, 3),) * 6)?",
    hint="Sum f_k^2 * (2 + 2*len(ratios_k)) over the 6 levels; feature maps 38, 19, 10, 5, 3, 1, and now every "
    "level has 2 + 2*2 = 6 anchors per location. Your anchors_at_level(k, cfg) does it with the new cfg.",
    solution="""
cfg = ssd_tutorial.SSD300_VOC.replace(aspect_ratios=((2, 3),) * 6)
# with your anchors_at_level: sum(anchors_at_level(k, cfg) for k in range(cfg.num_levels))
sum(fm * fm * (2 + 2 * len(r)) for fm, r in zip(cfg.feature_map_sizes, cfg.aspect_ratios))  # 11640
""",
)
def _check_total_anchors(answer: Any) -> str | None:
    from ..config import SSD300_VOC, SSD512_VOC

    problem = compare_number(_all_six_300().num_anchors, answer, what="the total")
    got = _as_number(answer)
    if problem is not None and got == SSD300_VOC.num_anchors:
        problem += " (that is SSD300_VOC's own total, with ratios (2,) on levels 0, 4 and 5; use the replaced cfg)"
    elif problem is not None and got == SSD512_VOC.num_anchors:
        problem += " (that is SSD512's total; this asks for SSD300 with ratios (2, 3) everywhere)"
    return problem
