"""Exercises of 02_anchor_tiling.ipynb: where an anchor sits in the flat order, its shape and its centre.

Introduced in: 02_anchor_tiling.ipynb
"""

from __future__ import annotations

import math
from typing import Any

from . import _as_number, _describe, compare_number, register

# (level, i, j, k) cases for SSD512_VOC: first and last anchors, each level's first, off-diagonal cells.
_INDEX_CASES = [(0, 0, 0, 0), (0, 0, 0, 3), (0, 0, 1, 0), (0, 1, 0, 0), (0, 2, 5, 1), (1, 0, 0, 0), (1, 3, 7, 5),
                (2, 6, 5, 4), (3, 7, 2, 5), (4, 1, 3, 2), (5, 1, 0, 3), (6, 0, 0, 3)]  # fmt: skip
# (level, i, j) cases for the centre exercise.
_CENTER_CASES = [(0, 0, 0), (0, 3, 10), (2, 6, 5), (3, 0, 7), (6, 0, 0)]


def _expected_index(cfg: Any, level: int, i: int, j: int, k: int) -> int:
    fm, per_location = cfg.feature_map_sizes[level], cfg.anchors_per_location[level]
    return sum(cfg.anchors_per_level[:level]) + (i * fm + j) * per_location + k


def _index_mistake(cfg: Any, level: int, i: int, j: int, k: int, got: float) -> str:
    """A sentence naming a common mistake that gives ``got``, or '' if none matches."""
    fm, per_location = cfg.feature_map_sizes[level], cfg.anchors_per_location[level]
    offset = sum(cfg.anchors_per_level[:level])
    if level > 0 and got == (i * fm + j) * per_location + k:
        return (f" That is the index inside level {level}; the {offset} anchors of levels 0…{level - 1} come first, "
                "so add them.")  # fmt: skip
    if i != j and got == offset + (j * fm + i) * per_location + k:
        return " Rows and columns are swapped: row i (over y) is the slow index, column j (over x) the fast one."
    if got == offset + k * fm * fm + i * fm + j:
        return " The anchors of one location are neighbours in the order: k is the fastest index, not the slowest."
    if got == offset + (i * fm + j) * per_location:
        return " You found the first anchor of the location; add k."
    return ""


@register(
    "02_flat_index",
    question="Write flat_index(level, i, j, k) -> int: the position of anchor k at row i, column j of `level` in "
    "default_boxes(SSD512_VOC).",
    hint="Skip the anchors of the earlier levels (sum of cfg.anchors_per_level[:level]); inside the level, each "
    "location (i, j) holds cfg.anchors_per_location[level] anchors and the locations go row by row: location "
    "number i * fm + j.",
    solution="""
def flat_index(level, i, j, k, cfg=ssd_tutorial.SSD512_VOC):
    fm = cfg.feature_map_sizes[level]
    per_location = cfg.anchors_per_location[level]
    offset = sum(cfg.anchors_per_level[:level])  # anchors of the earlier levels
    return offset + (i * fm + j) * per_location + k

flat_index(2, 6, 5, 4)  # 16384 + 6144 + (6 * 16 + 5) * 6 + 4 = 23138
""",
)
def _check_flat_index(answer: Any) -> str | None:
    from ..config import SSD512_VOC

    if not callable(answer):
        return f"the answer should be a function flat_index(level, i, j, k), got {_describe(answer)}"
    for level, i, j, k in _INDEX_CASES:
        want = _expected_index(SSD512_VOC, level, i, j, k)
        try:
            got = answer(level, i, j, k)
        except Exception as error:
            return f"calling flat_index({level}, {i}, {j}, {k}) raised {type(error).__name__}: {error}"
        problem = compare_number(want, got, what=f"flat_index({level}, {i}, {j}, {k})")
        if problem is not None:
            number = _as_number(got)
            mistake = "" if number is None else _index_mistake(SSD512_VOC, level, i, j, k, number)
            return problem + ("." + mistake if mistake else "")
    return None


def _standing_box(s_k: float, ratio: float) -> tuple[float, float]:
    return s_k / math.sqrt(ratio), s_k * math.sqrt(ratio)


@register(
    "02_box_1to3",
    question="What are the width and height in pixels, (w, h), of the standing 1:3 anchor of level 2 of SSD512_VOC? "
    "Give two numbers (to 0.01 px).",
    hint="Level 2 has s_k = cfg.box_sizes[2] = 153.6. A ratio r gives boxes of the same area as the s_k square: "
    "the lying one s_k*sqrt(r) wide and s_k/sqrt(r) tall, the standing one the other way round.",
    solution="""
s_k = ssd_tutorial.SSD512_VOC.box_sizes[2]          # 153.6
w, h = s_k / math.sqrt(3), s_k * math.sqrt(3)      # (88.68, 266.04): standing, so w < h
ssd_tutorial.level_box_shapes(ssd_tutorial.SSD512_VOC, 2)[5]  # the same pair, k = 5
""",
)
def _check_box_1to3(answer: Any) -> str | None:
    from ..config import SSD512_VOC

    values = answer.tolist() if hasattr(answer, "tolist") else answer
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__") or len(values) != 2:
        return f"the answer should be two numbers (w, h) in pixels, got {_describe(answer)}: {answer!r}"
    numbers = [_as_number(v) for v in values]
    if None in numbers:
        return f"w and h should be numbers, got {values!r}"
    w, h = numbers
    s_k, s_next = SSD512_VOC.box_sizes[2], SSD512_VOC.box_sizes[3]
    want_w, want_h = _standing_box(s_k, 3.0)

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= 0.01

    if close(w, want_w) and close(h, want_h):
        return None
    if close(w, want_h) and close(h, want_w):
        return f"({w:.2f}, {h:.2f}) is the lying 3:1 box; the standing 1:3 box is taller than wide (w < h)."
    if close(w, s_k / 3) and close(h, s_k * 3):
        return ("dividing and multiplying by 3 changes the area; use sqrt(3) so the box keeps the area of the "
                f"s_k square ({s_k:g}² px²).")  # fmt: skip
    s_prime = math.sqrt(s_k * s_next)
    if close(w, s_prime / math.sqrt(3)) and close(h, s_prime * math.sqrt(3)):
        return f"the rectangles use s_k = {s_k:g}, not s'_k = sqrt(s_k * s_k+1) = {s_prime:.2f}."
    return f"expected (w, h) = ({want_w:.2f}, {want_h:.2f}) px, got ({w:.2f}, {h:.2f})."


@register(
    "02_anchor_center",
    question="Write anchor_center(level, i, j, cfg) -> (cx, cy): the centre in pixels of the anchors at row i, "
    "column j of `level`. It must work for any config, also one with fractional steps.",
    hint="Row i runs over y and column j over x; cell (i, j) spans [j*step, (j+1)*step) in x and the anchors sit "
    "in its middle. Read the step from cfg.steps[level].",
    solution="""
def anchor_center(level, i, j, cfg=ssd_tutorial.SSD512_VOC):
    step = cfg.steps[level]
    return ((j + 0.5) * step, (i + 0.5) * step)
""",
)
def _check_anchor_center(answer: Any) -> str | None:
    from ..config import SSD300_VOC, SSD512_VOC

    if not callable(answer):
        return f"the answer should be a function anchor_center(level, i, j, cfg), got {_describe(answer)}"
    fractional = SSD300_VOC.replace(steps=tuple(SSD300_VOC.image_size / fm for fm in SSD300_VOC.feature_map_sizes))
    for cfg, label in ((SSD512_VOC, "SSD512_VOC"), (fractional, "SSD300 with steps 300 / fm")):
        for level, i, j in _CENTER_CASES:
            if level >= cfg.num_levels or max(i, j) >= cfg.feature_map_sizes[level]:
                continue
            step = cfg.steps[level]
            want = ((j + 0.5) * step, (i + 0.5) * step)
            call = f"anchor_center({level}, {i}, {j}, cfg={label})"
            try:
                got = answer(level, i, j, cfg=cfg)
            except TypeError as error:
                return f"{call} raised TypeError: {error}. Take the config as a keyword argument: cfg=..."
            except Exception as error:
                return f"{call} raised {type(error).__name__}: {error}"
            values = got.tolist() if hasattr(got, "tolist") else got
            if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__") or len(values) != 2:
                return f"{call} should return two numbers (cx, cy), got {_describe(got)}: {got!r}"
            pair = [_as_number(v) for v in values]
            if None in pair:
                return f"{call} should return two numbers (cx, cy), got {values!r}"
            cx, cy = pair
            if math.isclose(cx, want[0], abs_tol=1e-6) and math.isclose(cy, want[1], abs_tol=1e-6):
                continue
            message = f"{call} should be ({want[0]:g}, {want[1]:g}) px, got ({cx:g}, {cy:g})."
            if i != j and math.isclose(cx, want[1], abs_tol=1e-6) and math.isclose(cy, want[0], abs_tol=1e-6):
                message += " x and y are swapped: cx goes with column j, cy with row i."
            elif math.isclose(cx, j * step, abs_tol=1e-6) and math.isclose(cy, i * step, abs_tol=1e-6):
                message += " That is the cell's top-left corner; the anchors sit in the middle: (j + 0.5) * step."
            elif cfg is fractional:
                message += f" This config's step at level {level} is {step:.4f} px (fractional): use cfg.steps."
            return message
    return None
