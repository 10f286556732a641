"""Exercises of 03_heads.ipynb: head channels, flattening a head map, receptive fields.

Introduced in: 03_heads.ipynb
"""

from __future__ import annotations

from typing import Any

import torch

from . import _describe, compare_number, compare_sequence, register

# VGG16 up to conv4_3 and up to conv7 as (kernel, stride, dilation), the SSD paper's split (section 3).
_CONV4_3 = [(3, 1, 1)] * 2 + [(2, 2, 1)] + [(3, 1, 1)] * 2 + [(2, 2, 1)] + [(3, 1, 1)] * 3 + [(2, 2, 1)] + \
    [(3, 1, 1)] * 3  # fmt: skip
_CONV7 = _CONV4_3 + [(2, 2, 1)] + [(3, 1, 1)] * 3 + [(3, 1, 1), (3, 1, 6), (1, 1, 1)]


def _head_channels() -> tuple[list[int], list[int]]:
    from ..config import SSD512_VOC

    per_location = SSD512_VOC.anchors_per_location
    return [4 * k for k in per_location], [SSD512_VOC.num_classes * k for k in per_location]


@register(
    "03_head_channels",
    question="How many output channels do the localisation and the classification heads of SSD512_VOC have at "
    "each of its 7 levels? Give a pair (loc_channels, cls_channels) of two lists of 7 ints.",
    hint="Each head is a 3x3 conv that predicts, at every cell, something for each of the n_k anchors of that cell: "
    "4 offsets per anchor for the loc head, one score per class per anchor for the cls head. SSD512_VOC has "
    "n_k = (4, 6, 6, 6, 6, 4, 4) anchors per location and C = 21 classes (background included).",
    solution="""
cfg = ssd_tutorial.SSD512_VOC
loc_channels = [4 * k for k in cfg.anchors_per_location]                # [16, 24, 24, 24, 24, 16, 16]
cls_channels = [cfg.num_classes * k for k in cfg.anchors_per_location]  # [84, 126, 126, 126, 126, 84, 84]
""",
)
def _check_head_channels(answer: Any) -> str | None:
    if isinstance(answer, (str, bytes, dict)) or not hasattr(answer, "__len__") or len(answer) != 2:
        return ("the answer should be a pair (loc_channels, cls_channels) of two lists of 7 ints, "
                f"got {_describe(answer)}")
    expected_loc, expected_cls = _head_channels()
    loc, cls = answer
    per_location = [c // 4 for c in expected_loc]
    for name, got, expected in (("loc_channels", loc, expected_loc), ("cls_channels", cls, expected_cls)):
        problem = compare_sequence(expected, got, what=name)
        if problem is None:
            continue
        values = got.tolist() if hasattr(got, "tolist") else list(got) if hasattr(got, "__len__") else None
        if values == per_location:
            problem += " — those are the anchors per location; each anchor needs "
            problem += "4 numbers (loc)" if name == "loc_channels" else "C = 21 numbers (cls)"
        elif name == "cls_channels" and values == [20 * k for k in per_location]:
            problem += " — C counts the background too: SSD512_VOC has C = 21, not 20"
        return problem
    return None


def _coded_map(batch: int, n_k: int, n: int, height: int, width: int) -> torch.Tensor:
    """Tensor[B, n_k*n, H, W] whose value at (b, d*n + c, i, j) is a unique id of (b, i, j, d, c)."""
    b = torch.arange(batch).view(batch, 1, 1, 1, 1)
    i = torch.arange(height).view(1, height, 1, 1, 1)
    j = torch.arange(width).view(1, 1, width, 1, 1)
    d = torch.arange(n_k).view(1, 1, 1, n_k, 1)
    c = torch.arange(n).view(1, 1, 1, 1, n)
    ids = (((b * height + i) * width + j) * n_k + d) * n + c  # [B, H, W, n_k, n], channels-last order
    return ids.permute(0, 3, 4, 1, 2).reshape(batch, n_k * n, height, width).float()  # [B, n_k*n, H, W]


def _decode_id(value: float, batch: int, n_k: int, n: int, height: int, width: int) -> str:
    rest = int(round(value))
    if not 0 <= rest < batch * height * width * n_k * n or rest != value:
        return f"a value {value:g} that is not in the head map"
    rest, c = divmod(rest, n)
    rest, d = divmod(rest, n_k)
    rest, j = divmod(rest, width)
    b, i = divmod(rest, height)
    return f"image {b}, row {i}, col {j}, shape d={d}, channel {c}"


@register(
    "03_flatten_head",
    question="Write flatten_head(head_map, n) that turns one head's output Tensor[B, n_k*n, H, W] (channel d*n + c "
    "holds value c of anchor d) into Tensor[B, H*W*n_k, n], anchors in the order row i, column j, shape d.",
    hint="Move the channel axis last first, so the n_k*n values of one cell sit together: head_map.permute(0, 2, 3, 1) "
    "is [B, H, W, n_k*n]; a reshape to [B, -1, n] then cuts each cell's n_k*n values into n_k rows of n. "
    "A reshape without the permute mixes values of different cells.",
    solution="""
def flatten_head(head_map, n):
    B = head_map.shape[0]
    x = head_map.permute(0, 2, 3, 1)  # [B, H, W, n_k*n]
    return x.reshape(B, -1, n)        # [B, H*W*n_k, n]
""",
)
def _check_flatten_head(answer: Any) -> str | None:
    if not callable(answer):
        return f"the answer should be a function flatten_head(head_map, n), got {_describe(answer)}"
    for batch, k, n, height, width in ((2, 3, 4, 3, 5), (1, 2, 5, 4, 4)):
        head_map = _coded_map(batch, k, n, height, width)
        expected = head_map.permute(0, 2, 3, 1).reshape(batch, -1, n)  # [B, H*W*k, n]
        try:
            got = answer(head_map.clone(), n)
        except Exception as error:
            return f"flatten_head(Tensor{list(head_map.shape)}, n={n}) raised {type(error).__name__}: {error}"
        if not isinstance(got, torch.Tensor):
            return f"flatten_head should return a torch.Tensor, got {_describe(got)}"
        if got.shape != expected.shape:
            return (f"for a head map of shape {list(head_map.shape)} (B={batch}, n_k={k}, n={n}, H={height}, "
                    f"W={width}) the result should be [B, H*W*n_k, n] = {list(expected.shape)}, got {list(got.shape)}")
        if not torch.equal(got.float(), expected):
            if torch.equal(got.float(), head_map.reshape(batch, -1, n)):
                return ("the values are in channel-first order: a reshape of [B, k*n, H, W] without moving the "
                        "channels last (permute(0, 2, 3, 1)) puts values of different cells in one row")
            wrong = (got.float() != expected).nonzero()[0].tolist()
            b, a, c = wrong
            return (f"first mismatch at [{b}, {a}, {c}]: expected the value of "
                    f"{_decode_id(expected[b, a, c].item(), batch, k, n, height, width)}, got "
                    f"{_decode_id(got[b, a, c].item(), batch, k, n, height, width)} (head map {list(head_map.shape)}, "
                    f"n_k={k}, n={n})")  # fmt: skip
    return None


def _reference_rf(layers: list[tuple[int, int, int]]) -> int:
    """The rule of ``widgets.nb03.receptive_field`` (kept here so checking needs no widget module)."""
    rf, jump = 1, 1
    for kernel, stride, dilation in layers:
        rf += dilation * (kernel - 1) * jump
        jump *= stride
    return rf


@register(
    "03_receptive_field",
    question="Write receptive_field_px(layers) that returns the receptive field in input pixels (an int) of the "
    "last layer of a stack, given as a list of (kernel, stride, dilation), first layer first.",
    hint="Keep two numbers while walking the layers: rf (start 1) and jump, the input pixels between two "
    "neighbouring cells of the current map (start 1). A layer adds dilation * (kernel - 1) cells of its input, "
    "each jump pixels apart: rf += dilation * (kernel - 1) * jump; then jump *= stride.",
    solution="""
def receptive_field_px(layers):
    rf, jump = 1, 1
    for kernel, stride, dilation in layers:
        rf += dilation * (kernel - 1) * jump
        jump *= stride
    return rf
""",
)
def _check_receptive_field(answer: Any) -> str | None:
    if not callable(answer):
        return f"the answer should be a function receptive_field_px(layers), got {_describe(answer)}"
    cases = [
        ("no layer", []),
        ("one 3x3 conv", [(3, 1, 1)]),
        ("two 3x3 convs", [(3, 1, 1), (3, 1, 1)]),
        ("a 2x2 stride-2 pool, then a 3x3 conv", [(2, 2, 1), (3, 1, 1)]),
        ("a 3x3 conv with dilation 6", [(3, 1, 6)]),
        ("VGG16 up to conv4_3", _CONV4_3),
        ("VGG16 up to conv7 (pool5 3x3/1, conv6 3x3 dilation 6)", _CONV7),
    ]
    for what, layers in cases:
        expected = _reference_rf(layers)
        try:
            got = answer(list(layers))
        except Exception as error:
            return f"receptive_field_px({layers}) ({what}) raised {type(error).__name__}: {error}"
        if isinstance(got, tuple):
            return f"return only the receptive field (an int), not a tuple: for {what} you returned {got}"
        problem = compare_number(expected, got, what=f"for {what} {layers if len(layers) <= 3 else ''}".rstrip())
        if problem is None:
            continue
        value = float(got) if isinstance(got, (int, float)) else None
        no_jump = 1 + sum(d * (kk - 1) for kk, _, d in layers)
        no_dilation = _reference_rf([(kk, s, 1) for kk, s, _ in layers])
        if value == no_jump and no_jump != expected:
            problem += " — each kernel spans cells of its input, which are jump pixels apart (jump = product of " \
                       "the strides before it)"  # fmt: skip
        elif value == no_dilation and no_dilation != expected:
            problem += " — a dilation d spreads a kernel's taps d cells apart: it covers d * (kernel - 1) + 1 cells"
        return problem
    return None


# The widget task of 03: image 0 of the feature-map explorer (ShapesDataset seed 3, item 1, as in the notebook).
EXPLORER_SEED, EXPLORER_ITEM = 3, 1


def _explorer_model_and_image() -> tuple[Any, torch.Tensor]:
    from ..checkpoints import load_pretrained
    from ..data.shapes import ShapesDataset

    model = load_pretrained("tiny_shapes")
    image = ShapesDataset(EXPLORER_ITEM + 1, image_size=model.cfg.image_size, seed=EXPLORER_SEED)[EXPLORER_ITEM][0]
    return model, image


def _mean_abs_per_level() -> list[float]:
    model, image = _explorer_model_and_image()
    with torch.no_grad():
        x = (image[None] - model.image_mean) / model.image_std  # [1, 3, S, S], as forward_heads normalizes
        sources = model.backbone(x)
    return [float(f.abs().mean()) for f in sources]


@register(
    "03_strongest_level",
    question="With the feature-map explorer (the shipped tiny_shapes model, image 0): which level k has the largest "
    "mean |activation| over all its channels and cells? Give the level number.",
    hint="Move the level slider from 0 to the last level and read the row 'mean |activation|' of the table under "
    "the figure at each level; the answer is the level where it is largest.",
    solution="""
model = ssd_tutorial.load_pretrained("tiny_shapes")
image = ssd_tutorial.ShapesDataset(2, image_size=128, seed=3)[1][0]
with torch.no_grad():
    sources = model.backbone((image[None] - model.image_mean) / model.image_std)
max(range(len(sources)), key=lambda k: sources[k].abs().mean())
""",
)
def _check_strongest_level(answer: Any) -> str | None:
    from . import _as_number

    got = _as_number(answer)
    if got is None or not float(got).is_integer():
        return f"the answer should be a level number (an int), got {_describe(answer)}: {answer!r}"
    means = _mean_abs_per_level()
    level = int(got)
    if not 0 <= level < len(means):
        return f"the tiny model has levels 0 … {len(means) - 1}, got {level}"
    best = max(range(len(means)), key=lambda k: means[k])
    if level == best:
        return None
    return (f"level {level} has a mean |activation| of {means[level]:.4f}, and another level has a larger one: "
            "read the table at every level")  # fmt: skip
