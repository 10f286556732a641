"""Exercises of 04_forward_pass.ipynb: encode one box by hand, decode offsets into boxes.

Introduced in: 04_forward_pass.ipynb
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..config import SSD512_VOC
from . import _as_number, _describe, compare_sequence, describe_miss, register

# The numbers of exercise 04_encode_box (also stated in its question).
ENCODE_ANCHOR_CXCYWH = (40.0, 56.0, 32.0, 64.0)
ENCODE_BOX_XYXY = (20.0, 20.0, 68.0, 84.0)
ENCODE_VARIANCES = SSD512_VOC.variances  # (0.1, 0.2), as in the paper's reference code


def _encode(box_cxcywh: tuple[float, ...], anchor: tuple[float, ...], variances: tuple[float, float]) -> list[float]:
    (gx, gy, gw, gh), (ax, ay, aw, ah), (v0, v1) = box_cxcywh, anchor, variances
    return [(gx - ax) / (aw * v0), (gy - ay) / (ah * v0), math.log(gw / aw) / v1, math.log(gh / ah) / v1]


def _values(answer: Any) -> list[float] | None:
    try:
        values = torch.as_tensor(answer, dtype=torch.float64).reshape(-1).tolist()
    except (TypeError, ValueError, RuntimeError):
        return None
    return values if len(values) == 4 else None


@register(
    "04_encode_box",
    question="Encode the ground-truth box (x1, y1, x2, y2) = (20, 20, 68, 84) relative to the anchor "
    "(cx, cy, w, h) = (40, 56, 32, 64) with variances (0.1, 0.2): give the 4 offsets (tx, ty, tw, th).",
    hint="Convert the box to (cx, cy, w, h) first: (44, 52, 48, 64). Then tx = (gx - ax) / (aw * 0.1), "
    "ty = (gy - ay) / (ah * 0.1), tw = log(gw / aw) / 0.2, th = log(gh / ah) / 0.2 (natural log).",
    solution="""
gx, gy, gw, gh = (20 + 68) / 2, (20 + 84) / 2, 68 - 20, 84 - 20   # 44, 52, 48, 64
ax, ay, aw, ah = 40, 56, 32, 64
offsets = [(gx - ax) / (aw * 0.1), (gy - ay) / (ah * 0.1), math.log(gw / aw) / 0.2, math.log(gh / ah) / 0.2]
# [1.25, -0.625, 2.0273, 0.0]
""",
)
def _check_encode_box(answer: Any) -> str | None:
    x1, y1, x2, y2 = ENCODE_BOX_XYXY
    box = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    expected = _encode(box, ENCODE_ANCHOR_CXCYWH, ENCODE_VARIANCES)
    problem = compare_sequence(expected, answer, what="the offsets (tx, ty, tw, th)", rel_tol=1e-4)
    if problem is None:
        return None
    values = _values(answer)
    if values is not None:
        def close(other: list[float]) -> bool:
            return all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4) for a, b in zip(values, other))

        if close(_encode(box, ENCODE_ANCHOR_CXCYWH, (1.0, 1.0))):
            problem += " — divide the centre offsets by 0.1 and the log-size offsets by 0.2 (the variances)"
        elif close(_encode(ENCODE_BOX_XYXY, ENCODE_ANCHOR_CXCYWH, ENCODE_VARIANCES)):
            problem += " — the box is given as (x1, y1, x2, y2): convert it to (cx, cy, w, h) first"
        elif close([expected[0], expected[1], box[2] / 32.0 / 0.2, box[3] / 64.0 / 0.2]):
            problem += " — the size offsets use the natural log: tw = log(gw / aw) / 0.2"
    return problem


def _reference_decode(deltas: torch.Tensor, anchors: torch.Tensor, variances: tuple[float, float]) -> torch.Tensor:
    from ..boxes import decode_boxes

    return decode_boxes(deltas, anchors, variances)


@register(
    "04_decode_boxes",
    question="Write my_decode(deltas, anchors, variances) that turns offsets Tensor[N, 4] (tx, ty, tw, th) and "
    "anchors Tensor[N, 4] (cx, cy, w, h) into boxes Tensor[N, 4] (cx, cy, w, h) — the inverse of the encoding.",
    hint="Undo each step of the encoding: cx = ax + tx * v0 * aw, cy = ay + ty * v0 * ah, w = aw * exp(tw * v1), "
    "h = ah * exp(th * v1), with (v0, v1) = variances. Slice columns with deltas[:, 0] … or deltas[:, :2] and "
    "put them back together with torch.stack or torch.cat.",
    solution="""
def my_decode(deltas, anchors, variances):
    v0, v1 = variances
    centre = anchors[:, :2] + deltas[:, :2] * v0 * anchors[:, 2:]
    size = anchors[:, 2:] * torch.exp(deltas[:, 2:] * v1)
    return torch.cat([centre, size], dim=1)
""",
)
def _check_decode_boxes(answer: Any) -> str | None:
    if not callable(answer):
        return f"the answer should be a function my_decode(deltas, anchors, variances), got {_describe(answer)}"
    generator = torch.Generator().manual_seed(4)
    N = 6
    anchors = torch.cat([torch.rand(N, 2, generator=generator) * 300,
                         10 + torch.rand(N, 2, generator=generator) * 200], dim=1)  # fmt: skip
    deltas = torch.randn(N, 4, generator=generator)
    for variances in (ENCODE_VARIANCES, (0.2, 0.5)):
        expected = _reference_decode(deltas, anchors, variances)
        try:
            got = answer(deltas.clone(), anchors.clone(), variances)
        except Exception as error:
            return f"my_decode(deltas [{N}, 4], anchors [{N}, 4], variances={variances}) raised " \
                   f"{type(error).__name__}: {error}"  # fmt: skip
        if not isinstance(got, torch.Tensor):
            return f"my_decode should return a torch.Tensor [N, 4], got {_describe(got)}"
        if list(got.shape) != [N, 4]:
            return f"for {N} anchors my_decode should return [{N}, 4] (cx, cy, w, h), got {list(got.shape)}"
        got = got.detach().double()
        expected = expected.double()
        if torch.allclose(got, expected, rtol=1e-5, atol=1e-4):
            continue
        from ..boxes import cxcywh_to_xyxy

        if torch.allclose(got, cxcywh_to_xyxy(expected), rtol=1e-5, atol=1e-4):
            return "your boxes are (x1, y1, x2, y2); return them as (cx, cy, w, h) (cxcywh_to_xyxy comes later)"
        default_boxes = _reference_decode(deltas, anchors, ENCODE_VARIANCES).double()
        if variances != ENCODE_VARIANCES and torch.allclose(got, default_boxes, rtol=1e-5, atol=1e-4):
            return (f"with variances={variances} your boxes match variances {ENCODE_VARIANCES}: "
                    "use the variances argument")
        if torch.allclose(got, _reference_decode(deltas, anchors, (1.0, 1.0)).double(), rtol=1e-5, atol=1e-4):
            return "multiply the offsets by the variances: cx = ax + tx * v0 * aw, w = aw * exp(tw * v1)"
        row, col = (~torch.isclose(got, expected, rtol=1e-5, atol=1e-4)).nonzero()[0].tolist()
        name = ("cx", "cy", "w", "h")[col]
        anchor = [round(v, 2) for v in anchors[row].tolist()]
        offsets = [round(v, 3) for v in deltas[row].tolist()]
        miss = describe_miss(expected[row, col].item(), got[row, col].item(), rel_tol=1e-5)
        return (f"with variances={variances}, first mismatch at box {row}, {name}: your {got[row, col].item():.4f} "
                f"{miss} (anchor {anchor}, offsets {offsets})")
    return None


# The widget task of 04: the image of the notebook (ShapesDataset seed 1, item 0) and its triangle (box 0), whose
# best anchor the notebook does not print (it prints the small circle's).
TASK_SEED, TASK_ITEM, TASK_BOX, TASK_LEVEL, TASK_CLASS = 1, 0, 0, 2, "triangle"


def _task_cell_probabilities() -> tuple[tuple[int, int], list[float]]:
    """(i, j) of the level-2 cell under the triangle's centre, and P(triangle) of its anchors d = 0 … n_2 - 1
    for the shipped tiny_shapes model."""
    from ..boxes import xyxy_to_cxcywh
    from ..checkpoints import load_pretrained
    from ..data.shapes import ShapesDataset

    model = load_pretrained("tiny_shapes")
    cfg = model.cfg
    image, target = ShapesDataset(TASK_ITEM + 1, image_size=cfg.image_size, seed=TASK_SEED)[TASK_ITEM]
    cx, cy = xyxy_to_cxcywh(target["boxes"][TASK_BOX])[:2].tolist()
    k = TASK_LEVEL
    step = cfg.steps[k]
    i, j = int(cy // step), int(cx // step)
    with torch.no_grad():
        _, cls_logits = model.forward_heads(image[None])  # [1, A, C]
    n_k = cfg.anchors_per_location[k]
    first = sum(cfg.anchors_per_level[:k]) + (i * cfg.feature_map_sizes[k] + j) * n_k
    probs = cls_logits[0, first:first + n_k].softmax(dim=-1)  # [n_k, C]
    label = list(cfg.class_names).index(TASK_CLASS)
    return (i, j), probs[:, label].tolist()


@register(
    "04_best_shape",
    question="With the anchor explorer (the shipped tiny_shapes model): go to the level-2 cell (i, j) under the "
    "centre of the triangle and try d = 0 … 5. Which shape d gives the highest probability of 'triangle'?",
    hint="The triangle is ground-truth box 0; its centre is ((x1 + x2) / 2, (y1 + y2) / 2). Level 2 has step 32, "
    "so the cell is i = cy // 32 (row, over y) and j = cx // 32 (column, over x). Set level 2, that row and column, "
    "then read the 'triangle' bar for each d. Which shape is closest to the triangle's size?",
    solution="""
from ssd_tutorial.exercises.nb04 import _task_cell_probabilities
(i, j), p_triangle = _task_cell_probabilities()   # the cell and P(triangle) of its 6 anchors
max(range(len(p_triangle)), key=lambda d: p_triangle[d])
""",
)
def _check_best_shape(answer: Any) -> str | None:
    got = _as_number(answer)
    if got is None or not float(got).is_integer():
        return f"the answer should be a shape index d (an int), got {_describe(answer)}: {answer!r}"
    (i, j), p_triangle = _task_cell_probabilities()
    d = int(got)
    if not 0 <= d < len(p_triangle):
        return f"level 2 has n_2 = {len(p_triangle)} anchors per location, d = 0 … {len(p_triangle) - 1}; got {d}"
    best = max(range(len(p_triangle)), key=lambda s: p_triangle[s])
    if d == best:
        return None
    return (f"at the cell under the triangle's centre, shape d = {d} gives P(triangle) = {p_triangle[d]:.3f}, and "
            f"another shape gives more: is your cell (i, j) = ({i}, {j})? Then compare the 'triangle' bar of "
            "every d")  # fmt: skip
