"""Exercises of 02_anchor_tiling.ipynb: where an anchor sits in the flat order, its shape and its centre.

Introduced in: 02_anchor_tiling.ipynb
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from . import _as_number, _describe, compare_function, compare_number, describe_miss, register

# (level k, row i, column j, shape d) cases: first and last anchors, each level's first, off-diagonal cells. Cases
# outside a preset's levels or maps are skipped for that preset.
_INDEX_CASES = [(0, 0, 0, 0), (0, 0, 0, 3), (0, 0, 1, 0), (0, 1, 0, 0), (0, 2, 5, 1), (1, 0, 0, 0), (1, 3, 7, 5),
                (2, 6, 5, 4), (3, 7, 2, 5), (3, 2, 4, 3), (4, 1, 3, 2), (5, 1, 0, 3), (5, 0, 0, 3),
                (6, 0, 0, 3)]  # fmt: skip
# (level k, row i, column j) cases for the centre exercise.
_CENTER_CASES = [(0, 0, 0), (0, 3, 10), (2, 6, 5), (3, 0, 2), (4, 1, 0), (6, 0, 0)]


def _presets() -> list[Any]:
    from ..config import SSD300_VOC, SSD512_VOC, TINY_SHAPES

    return [SSD512_VOC, SSD300_VOC, TINY_SHAPES]


def _fits(cfg: Any, level: int, i: int, j: int) -> bool:
    return level < cfg.num_levels and max(i, j) < cfg.feature_map_sizes[level]


def _expected_index(cfg: Any, level: int, i: int, j: int, d: int) -> int:
    fm, per_location = cfg.feature_map_sizes[level], cfg.anchors_per_location[level]
    return sum(cfg.anchors_per_level[:level]) + (i * fm + j) * per_location + d


def _index_mistake(cfg: Any, level: int, i: int, j: int, d: int, got: float) -> str:
    """A sentence naming a common mistake that gives ``got``, or '' if none matches."""
    fm, per_location = cfg.feature_map_sizes[level], cfg.anchors_per_location[level]
    offset = sum(cfg.anchors_per_level[:level])
    if level > 0 and got == (i * fm + j) * per_location + d:
        return (f" That is the index inside level {level}; the anchors of levels 0…{level - 1} come first, "
                "so add them.")  # fmt: skip
    if i != j and got == offset + (j * fm + i) * per_location + d:
        return " Rows and columns are swapped: row i (over y) is the slow index, column j (over x) the fast one."
    if d > 0 and got == offset + d * fm * fm + i * fm + j:
        return " The anchors of one location are neighbours in the order: d is the fastest index, not the slowest."
    if d > 0 and got == offset + (i * fm + j) * per_location:
        return " You found the first anchor of the location; add d."
    return ""


def _index_compare(cfg: Any, level: int, i: int, j: int, d: int) -> Any:
    def compare(expected: float, got: Any, what: str) -> str | None:
        problem = compare_number(expected, got, what=what)
        number = _as_number(got)
        if problem is None or number is None:
            return problem
        mistake = _index_mistake(cfg, level, i, j, d, number)
        return problem + ("." + mistake if mistake else "")

    return compare


@register(
    "02_flat_index",
    question="Write flat_index(k, i, j, d, cfg) -> int: the position of shape d at row i, column j of level k in "
    "default_boxes(cfg) (checked on SSD512_VOC, SSD300_VOC and TINY_SHAPES).",
    hint="Skip the anchors of the earlier levels (sum of cfg.anchors_per_level[:k]); inside the level, each "
    "location (i, j) holds n_k = cfg.anchors_per_location[k] anchors and the locations go row by row: location "
    "number i * f_k + j, with f_k = cfg.feature_map_sizes[k]. The shape d changes fastest.",
    solution="""
def flat_index(k, i, j, d, cfg=ssd_tutorial.SSD512_VOC):
    f_k = cfg.feature_map_sizes[k]
    n_k = cfg.anchors_per_location[k]
    offset = sum(cfg.anchors_per_level[:k])  # anchors of the earlier levels
    return offset + (i * f_k + j) * n_k + d

flat_index(2, 6, 5, 4)  # 16384 + 6144 + (6 * 16 + 5) * 6 + 4 = 23138
""",
)
def _check_flat_index(answer: Any) -> str | None:
    if not callable(answer):
        return f"the answer should be a function flat_index(k, i, j, d, cfg), got {_describe(answer)}"
    positional = _positional(answer, 5, "flat_index should take five arguments, (k, i, j, d, cfg)")
    # every preset: a function that reads a global config instead of its cfg argument fails on the second one
    cases = [({"k": level, "i": i, "j": j, "d": d, "cfg": cfg}, (_expected_index(cfg, level, i, j, d), cfg, level, i,
                                                                 j, d))
             for cfg in _presets() for level, i, j, d in _INDEX_CASES
             if _fits(cfg, level, i, j) and d < cfg.anchors_per_location[level]]  # fmt: skip

    def compare(expected: tuple, got: Any, what: str) -> str | None:
        return _index_compare(*expected[1:])(expected[0], got, what)

    return compare_function(positional, cases, what="flat_index", compare=compare)


def _positional(answer: Any, count: int, message: str) -> Any:
    """Call a learner's function positionally whatever its parameters are named; a TypeError naming the arity
    when it cannot take ``count`` arguments."""
    try:
        inspect.signature(answer).bind(*range(count))
    except TypeError:
        def wrong_arity(**kwargs: Any) -> None:
            raise TypeError(message)

        return wrong_arity
    except ValueError:  # no signature (a builtin): just try it
        pass
    return lambda **kwargs: answer(*kwargs.values())


BOX_1TO3_LEVEL = 4  # the level the exercise asks about (notebook 02 prints level 2's shapes before it)


def _standing_box(s_k: float, ratio: float) -> tuple[float, float]:
    return s_k / math.sqrt(ratio), s_k * math.sqrt(ratio)


@register(
    "02_box_1to3",
    question="What are the width and height in pixels, (w, h), of the standing 1:3 anchor of level 4 of SSD512_VOC? "
    "Give two numbers (to 0.01 px).",
    hint="Level 4 has s_k = cfg.box_sizes[4]. A ratio r gives boxes of the same area as the s_k square: "
    "the lying one s_k*sqrt(r) wide and s_k/sqrt(r) tall, the standing one the other way round.",
    solution="""
s_k = ssd_tutorial.SSD512_VOC.box_sizes[4]          # 307.2
w, h = s_k / math.sqrt(3), s_k * math.sqrt(3)      # (177.36, 532.09): standing, so w < h
ssd_tutorial.level_box_shapes(ssd_tutorial.SSD512_VOC, 4)[5]  # the same pair, d = 5
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
    s_k, s_next = SSD512_VOC.box_sizes[BOX_1TO3_LEVEL], SSD512_VOC.box_sizes[BOX_1TO3_LEVEL + 1]
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
    wrong = [f"{name} ({got:.2f} px) {describe_miss(want, got, rel_tol=1e-4)}"
             for name, want, got in (("w", want_w, w), ("h", want_h, h)) if not close(got, want)]  # fmt: skip
    return "; ".join(wrong) + ". The standing 1:3 box has w = s_k / sqrt(3) and h = s_k * sqrt(3)."


def _center_presets() -> list[tuple[Any, str]]:
    from ..config import SSD300_VOC, SSD512_VOC, TINY_SHAPES

    fractional = SSD300_VOC.replace(steps=tuple(SSD300_VOC.image_size / fm for fm in SSD300_VOC.feature_map_sizes))
    return [(SSD512_VOC, "SSD512_VOC"), (SSD300_VOC, "SSD300_VOC"), (fractional, "SSD300 with steps 300 / fm"),
            (TINY_SHAPES, "TINY_SHAPES")]


def _pair(value: Any) -> list[float] | None:
    values = value.tolist() if hasattr(value, "tolist") else value
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__") or len(values) != 2:
        return None
    pair = [_as_number(v) for v in values]
    return None if None in pair else pair  # type: ignore[return-value]


@register(
    "02_anchor_center",
    question="Write anchor_center(k, i, j, cfg) -> (cx, cy): the centre in pixels of the anchors at row i, "
    "column j of level k. It must work for any config, also one with fractional steps.",
    hint="Row i runs over y and column j over x; cell (i, j) spans [j*step, (j+1)*step) in x and the anchors sit "
    "in its middle. Read the step from cfg.steps[k].",
    solution="""
def anchor_center(k, i, j, cfg=ssd_tutorial.SSD512_VOC):
    step = cfg.steps[k]
    return ((j + 0.5) * step, (i + 0.5) * step)
""",
)
def _check_anchor_center(answer: Any) -> str | None:
    if not callable(answer):
        return f"the answer should be a function anchor_center(k, i, j, cfg), got {_describe(answer)}"
    positional = _positional(answer, 4, "anchor_center should take four arguments, (k, i, j, cfg)")
    cases = []
    for cfg, label in _center_presets():
        for level, i, j in _CENTER_CASES:
            if _fits(cfg, level, i, j):
                step = cfg.steps[level]
                cases.append(({"k": level, "i": i, "j": j, "cfg": cfg}, (((j + 0.5) * step, (i + 0.5) * step),
                                                                          cfg, label, level, i, j)))  # fmt: skip

    def compare(expected: tuple, got: Any, what: str) -> str | None:
        (want_x, want_y), cfg, label, level, i, j = expected
        what = what.replace(f"cfg={cfg.name}", f"cfg={label}")
        pair = _pair(got)
        if pair is None:
            return f"{what} should return two numbers (cx, cy), got {_describe(got)}: {got!r}"
        cx, cy = pair
        if math.isclose(cx, want_x, abs_tol=1e-6) and math.isclose(cy, want_y, abs_tol=1e-6):
            return None
        step = cfg.steps[level]
        if i != j and math.isclose(cx, want_y, abs_tol=1e-6) and math.isclose(cy, want_x, abs_tol=1e-6):
            return f"{what}: x and y are swapped: cx goes with column j, cy with row i"
        if math.isclose(cx, j * step, abs_tol=1e-6) and math.isclose(cy, i * step, abs_tol=1e-6):
            return f"{what} is the cell's top-left corner; the anchors sit in the middle of the cell"
        parts = [f"{name} ({value:g} px) {describe_miss(want, value)}"
                 for name, want, value in (("cx", want_x, cx), ("cy", want_y, cy))
                 if not math.isclose(value, want, abs_tol=1e-6)]  # fmt: skip
        message = f"{what}: " + "; ".join(parts)
        if not float(step).is_integer():
            message += f". This config's step at level {level} is fractional ({step:.4f} px): read it from cfg.steps"
        elif step != cfg.image_size // cfg.feature_map_sizes[level]:
            message += (f". This config's step at level {level} is {step:g} px, not image_size // f_k: "
                        "read it from cfg.steps")  # fmt: skip
        return message

    return compare_function(positional, cases, what="anchor_center", compare=compare)


# The widget task of 02: a square ground-truth box centred here (a level-0 anchor centre of SSD512_VOC).
SQUARE_CENTER = (260.0, 260.0)


def _best_iou_of_square(side: float) -> float:
    """The best IoU of any SSD512_VOC anchor with the square of side ``side`` px centred at SQUARE_CENTER."""
    import torch
    from torchvision.ops import box_iou

    from ..anchors import default_boxes
    from ..boxes import cxcywh_to_xyxy
    from ..config import SSD512_VOC

    anchors = cxcywh_to_xyxy(default_boxes(SSD512_VOC))  # [A, 4]
    box = cxcywh_to_xyxy(torch.tensor([[*SQUARE_CENTER, side, side]], dtype=torch.float32))  # [1, 4]
    return float(box_iou(anchors, box).max())


def _smallest_positive_square() -> int:
    return next(side for side in range(1, 513) if _best_iou_of_square(float(side)) >= 0.5)


@register(
    "02_smallest_square",
    question="With the positive-anchors widget (SSD512_VOC, IoU >= 0.5), centre a square box at (260, 260) and "
    "shrink it: what is the smallest side, in whole pixels, for which at least one anchor still has IoU >= 0.5?",
    hint="Set w = h and lower both one pixel at a time until the widget shows no positive anchor; the answer is "
    "the last side that still had one. The smallest anchors are level 0's (s_0 = 35.84 px): a box smaller than an "
    "anchor can still overlap it with IoU 0.5, since IoU = (box area) / (anchor area) when the box lies inside it.",
    solution="""
# By hand: a w x w square inside the 35.84 px square anchor at the same centre has IoU w² / 35.84².
# IoU >= 0.5 needs w >= 35.84 / sqrt(2) = 25.34 px, so 26 whole pixels (the rectangles of level 0 give the same).
smallest_side = 26
""",
)
def _check_smallest_square(answer: Any) -> str | None:
    got = _as_number(answer)
    if got is None:
        return f"the answer should be a number of pixels, got {_describe(answer)}: {answer!r}"
    expected = _smallest_positive_square()
    if math.isclose(got, expected, abs_tol=1e-6):
        return None
    if not float(got).is_integer():
        return f"give the side in whole pixels (the widget's sliders move 1 px at a time), got {got:g}"
    if not 1 <= got <= 512:
        return f"a side of {got:g} px does not fit the 512 px image"
    best = _best_iou_of_square(got)
    if best < 0.5:
        return (f"at a side of {got:g} px the best anchor's IoU is {best:.3f}, below 0.5: no anchor is positive. "
                "Grow the square again")  # fmt: skip
    if math.isclose(got, 35.84, abs_tol=0.5) or math.isclose(got, 36, abs_tol=1e-6):
        return (f"{got:g} px is the size of the smallest anchor, but a smaller box still reaches IoU 0.5 with it "
                f"(here IoU {best:.3f}): keep shrinking")  # fmt: skip
    return (f"at a side of {got:g} px an anchor still has IoU {best:.3f} >= 0.5, and so does a smaller square: "
            "keep shrinking, one pixel at a time")  # fmt: skip


# The explorer task of 02: the notebook's example image (ShapesDataset seed 0, item 6) and its largest box.
EXPLORER_SEED, EXPLORER_INDEX = 0, 6


def _best_iou_per_level() -> list[float]:
    """For each level k of SSD512_VOC: the best IoU with the image's largest box among the n_k anchors of the cell
    under that box's centre."""
    from torchvision.ops import box_iou

    from ..anchors import default_boxes
    from ..boxes import cxcywh_to_xyxy
    from ..config import SSD512_VOC
    from ..data.shapes import ShapesDataset

    cfg = SSD512_VOC
    boxes = ShapesDataset(EXPLORER_INDEX + 1, image_size=cfg.image_size, seed=EXPLORER_SEED)[EXPLORER_INDEX][1]["boxes"]
    largest = boxes[((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).argmax()]  # [4] xyxy
    cx, cy = float(largest[0] + largest[2]) / 2, float(largest[1] + largest[3]) / 2
    anchors = cxcywh_to_xyxy(default_boxes(cfg))  # [A, 4]
    best = []
    for k, (f_k, step, n_k) in enumerate(zip(cfg.feature_map_sizes, cfg.steps, cfg.anchors_per_location)):
        i, j = int(cy // step), int(cx // step)
        first = sum(cfg.anchors_per_level[:k]) + (i * f_k + j) * n_k
        best.append(float(box_iou(anchors[first:first + n_k], largest[None]).max()))
    return best


def _levels_by_iou() -> list[int]:
    """SSD512_VOC's levels, best IoU at the cell under the large square's centre first."""
    best = _best_iou_per_level()
    return sorted(range(len(best)), key=lambda k: -best[k])


@register(
    "02_explorer_best_level",
    question="With the anchor explorer (SSD512_VOC, the notebook's image): at the cell under the centre of the large "
    "square, level 2 has the anchor with the highest IoU with the dashed box. Which level k comes second?",
    hint="For each level k, move the row and column sliders to the cell under the box's centre (row i = cy // step_k, "
    "column j = cx // step_k) and read the largest IoU in the table. Compare the best IoU of every level but 2.",
    solution="""
from ssd_tutorial.exercises.nb02 import _best_iou_per_level
best = _best_iou_per_level()          # best IoU at the cell under the centre, per level
sorted(range(len(best)), key=lambda k: -best[k])[1]
""",
)
def _check_explorer_best_level(answer: Any) -> str | None:
    got = _as_number(answer)
    if got is None or not float(got).is_integer():
        return f"the answer should be a level number k (an int), got {_describe(answer)}: {answer!r}"
    best = _best_iou_per_level()
    order = _levels_by_iou()
    k = int(got)
    if not 0 <= k < len(best):
        return f"SSD512_VOC has levels 0 … {len(best) - 1}, got {k}"
    if k == order[1]:
        return None
    if k == order[0]:
        return f"level {k} is the best level; the question asks for the runner-up"
    return (f"the best anchor of level {k} at that cell has IoU {best[k]:.3f} with the box; another level does "
            "better. Look at each level's table")  # fmt: skip
