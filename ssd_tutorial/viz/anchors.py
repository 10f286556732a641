"""Anchor pictures: counts per level, box sizes, shapes at one location, level grids, pixel coverage.

Introduced in: 01_constants.ipynb (counts, sizes, shapes) and 02_anchor_tiling.ipynb (grids, coverage)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..config import SSDConfig
from .images import new_figure, palette_color, show_image

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_anchor_counts", "plot_box_sizes", "plot_anchor_shapes", "draw_level_grid", "pixel_anchor_counts",
           "plot_level_grids", "plot_anchor_coverage"]


def plot_anchor_counts(cfgs: SSDConfig | Sequence[SSDConfig], *, log: bool = True) -> Figure:
    """Bar chart of the number of anchors at each level, one group of bars per config.

    Introduced in: 01_constants.ipynb
    """
    configs = [cfgs] if isinstance(cfgs, SSDConfig) else list(cfgs)
    if not configs or not all(isinstance(c, SSDConfig) for c in configs):
        raise TypeError(f"cfgs must be an SSDConfig or a non-empty sequence of them, got {cfgs!r}")
    fig = new_figure((7.0, 3.5))
    ax = fig.add_subplot()
    width = 0.8 / len(configs)
    for index, cfg in enumerate(configs):
        offset = (index - (len(configs) - 1) / 2) * width
        positions = [level + offset for level in range(cfg.num_levels)]
        bars = ax.bar(positions, cfg.anchors_per_level, width=width, color=palette_color(index),
                      label=f"{cfg.name} ({cfg.num_anchors} anchors)")  # fmt: skip
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(range(max(c.num_levels for c in configs)))
    ax.set_xlabel("level k (feature map, finest first)")
    ax.set_ylabel("anchors")
    if log:
        ax.set_yscale("log")
    ax.legend()
    ax.set_title("Anchors per level")
    return fig


def plot_box_sizes(series: Mapping[str, Sequence[float]], *, image_size: float | None = None) -> Figure:
    """Box sizes s_k (pixels) against k, one line per named series (e.g. article vs the paper's rule).

    With ``image_size`` a dashed line marks the input side.

    Introduced in: 01_constants.ipynb
    """
    if not isinstance(series, Mapping) or not series:
        raise TypeError(f"series must be a non-empty mapping name -> sizes, got {type(series).__name__}")
    fig = new_figure((6.0, 3.5))
    ax = fig.add_subplot()
    for index, (name, sizes) in enumerate(series.items()):
        values = [float(s) for s in sizes]
        ax.plot(range(len(values)), values, marker="o", color=palette_color(index), label=name)
    if image_size is not None:
        ax.axhline(image_size, color="gray", linestyle="--", linewidth=1, label=f"image side {image_size:g}")
    ax.set_xlabel("k (index into box_sizes)")
    ax.set_ylabel("s_k (pixels)")
    ax.legend()
    ax.set_title("Box sizes")
    return fig


def plot_anchor_shapes(cfg: SSDConfig, levels: Sequence[int] | None = None) -> Figure:
    """The anchors of one location of each level, drawn around a common centre, to scale.

    Shows the two squares (s_k and sqrt(s_k s_{k+1})) and the lying/standing rectangle of each ratio.

    Introduced in: 01_constants.ipynb
    """
    from matplotlib.patches import Rectangle

    from ..anchors import level_box_shapes

    chosen = list(range(cfg.num_levels)) if levels is None else list(levels)
    if not chosen:
        raise ValueError("levels must name at least one level")
    columns = min(4, len(chosen))
    rows = math.ceil(len(chosen) / columns)
    fig = new_figure((3.0 * columns, 3.0 * rows))
    for index, level in enumerate(chosen):
        shapes = level_box_shapes(cfg, level)
        ax = fig.add_subplot(rows, columns, index + 1)
        half = max(max(w, h) for w, h in shapes) / 2 * 1.05
        for shape_index, (w, h) in enumerate(shapes):
            edge = palette_color(shape_index)
            ax.add_patch(Rectangle((-w / 2, -h / 2), w, h, fill=False, edgecolor=edge, linewidth=1.5))
        ax.set_xlim(-half, half)
        ax.set_ylim(half, -half)
        ax.set_aspect("equal")
        fm = cfg.feature_map_sizes[level]
        ax.set_title(f"level {level}: {fm}x{fm}, {len(shapes)} per location", fontsize=9)
    fig.suptitle(f"{cfg.name}: anchor shapes at one location (pixels)")
    return fig


def draw_level_grid(ax: Axes, cfg: SSDConfig, level: int, *, color: Any = "white", centers: bool = True,
                    linewidth: float = 0.6, marker_size: float | None = None,
                    center_color: Any = None) -> Axes:  # fmt: skip
    """Draw the cells of one feature-map level (lines every ``step`` pixels) and, optionally, their centres
    (in ``center_color``, default ``color``).

    Cell (i, j) spans ``[j·step, (j+1)·step) x [i·step, (i+1)·step)``; its centre ``((j + 0.5)·step,
    (i + 0.5)·step)`` is where the level's anchors sit. With a fractional or rounded-up step the last
    cells may reach past the image edge; they are drawn as they are.

    Introduced in: 02_anchor_tiling.ipynb
    """
    from matplotlib.collections import LineCollection

    if not 0 <= level < cfg.num_levels:
        raise ValueError(f"level must be in [0, {cfg.num_levels - 1}], got {level}")
    fm, step = cfg.feature_map_sizes[level], cfg.steps[level]
    edges = [j * step for j in range(fm + 1)]
    end = fm * step
    segments = [[(e, 0.0), (e, end)] for e in edges] + [[(0.0, e), (end, e)] for e in edges]
    ax.add_collection(LineCollection(segments, colors=color, linewidths=linewidth, alpha=0.8 if fm <= 16 else 0.4))
    if centers:
        middle = (torch.arange(fm, dtype=torch.float64) + 0.5) * step  # [fm]
        cy, cx = torch.meshgrid(middle, middle, indexing="ij")  # [fm, fm] each
        size = marker_size if marker_size is not None else min(30.0, max(0.5, 1000.0 / fm**2))
        ax.scatter(cx.reshape(-1).numpy(), cy.reshape(-1).numpy(), s=size,
                   color=color if center_color is None else center_color, edgecolors="black",
                   linewidths=0.3, zorder=3)  # fmt: skip
    return ax


def pixel_anchor_counts(boxes_xyxy: Tensor, image_size: int | tuple[int, int]) -> Tensor:
    """How many boxes cover each pixel: Tensor[H, W] int64.

    Pixel (row r, column c) counts box (x1, y1, x2, y2) when its centre (c + 0.5, r + 0.5) lies in
    [x1, x2) x [y1, y2) (the pixel convention of :func:`show_image`); parts of boxes outside the image
    are ignored. Computed with a 2-D difference array, so the cost does not depend on box sizes.

    Args:
        boxes_xyxy (Tensor[N, 4]): xyxy pixels, x2 >= x1 and y2 >= y1; N may be 0.
        image_size: S for an S x S image, or (H, W).

    Introduced in: 02_anchor_tiling.ipynb
    """
    boxes = torch.as_tensor(boxes_xyxy)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes_xyxy must be [N, 4], got {list(boxes.shape)}")
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    boxes = boxes.detach().to(torch.float64)
    if not bool(torch.isfinite(boxes).all()) or bool((boxes[:, 2:] < boxes[:, :2]).any()):
        raise ValueError("boxes_xyxy must be finite with x2 >= x1 and y2 >= y1")
    # first covered pixel and first pixel past the box, per axis: centre c + 0.5 in [x1, x2)
    c0, c1 = torch.ceil(boxes[:, 0::2] - 0.5).clamp(0, width).long().unbind(-1)  # [N] each
    r0, r1 = torch.ceil(boxes[:, 1::2] - 0.5).clamp(0, height).long().unbind(-1)  # [N] each
    diff = torch.zeros(height + 1, width + 1, dtype=torch.int64, device=boxes.device)
    ones = torch.ones_like(r0)
    for rows, cols, sign in ((r0, c0, 1), (r0, c1, -1), (r1, c0, -1), (r1, c1, 1)):
        diff.index_put_((rows, cols), sign * ones, accumulate=True)
    return diff.cumsum(0).cumsum(1)[:height, :width]  # [H, W]


def plot_level_grids(cfg: SSDConfig, image: Tensor | None = None, levels: Sequence[int] | None = None) -> Figure:
    """One panel per level: the image (or a blank canvas) with the level's cells and anchor centres.

    Introduced in: 02_anchor_tiling.ipynb
    """
    chosen = list(range(cfg.num_levels)) if levels is None else list(levels)
    if not chosen:
        raise ValueError("levels must name at least one level")
    size = cfg.image_size
    canvas = image if image is not None else torch.full((3, size, size), 0.92)
    columns = min(4, len(chosen))
    rows = math.ceil(len(chosen) / columns)
    fig = new_figure((2.9 * columns, 3.0 * rows))
    for index, level in enumerate(chosen):
        ax = fig.add_subplot(rows, columns, index + 1)
        show_image(ax, canvas)
        draw_level_grid(ax, cfg, level, color="white", center_color=palette_color(level))
        end = max(size, cfg.feature_map_sizes[level] * cfg.steps[level])
        ax.set_xlim(0, end)
        ax.set_ylim(end, 0)
        fm = cfg.feature_map_sizes[level]
        ax.set_title(f"level {level}: {fm}x{fm}, step {cfg.steps[level]:g} px", fontsize=9)
        ax.set_xlabel("x (px)", fontsize=8)
        ax.set_ylabel("y (px)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{cfg.name}: feature-map cells and anchor centres over the {size}x{size} input")
    return fig


def plot_anchor_coverage(cfg: SSDConfig, *, per_level: bool = True) -> Figure:
    """Heatmaps of how many default boxes cover each pixel (:func:`pixel_anchor_counts`), per level and in all.

    Introduced in: 02_anchor_tiling.ipynb
    """
    from ..anchors import default_boxes
    from ..boxes import cxcywh_to_xyxy

    anchors = cxcywh_to_xyxy(default_boxes(cfg))  # [A, 4]
    size = cfg.image_size
    panels: list[tuple[str, Tensor]] = []
    if per_level:
        start = 0
        for level, count in enumerate(cfg.anchors_per_level):
            fm = cfg.feature_map_sizes[level]
            panels.append((f"level {level} ({fm}x{fm}, {count} anchors)", anchors[start:start + count]))
            start += count
    panels.append((f"all {cfg.num_levels} levels ({cfg.num_anchors} anchors)", anchors))
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = new_figure((3.1 * columns, 2.8 * rows))
    for index, (title, boxes) in enumerate(panels):
        ax = fig.add_subplot(rows, columns, index + 1)
        counts = pixel_anchor_counts(boxes, size)  # [S, S]
        shown = ax.imshow(counts.numpy(), cmap="viridis", extent=(0, size, size, 0), interpolation="nearest")
        bar = fig.colorbar(shown, ax=ax, shrink=0.8)
        bar.set_label("anchors covering the pixel", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        ax.set_title(f"{title}\nmin {int(counts.min())}, max {int(counts.max())}", fontsize=8)
        ax.set_xlabel("x (px)", fontsize=8)
        ax.set_ylabel("y (px)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{cfg.name}: how many default boxes cover each pixel")
    return fig
