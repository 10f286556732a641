"""Pictures of the anchors of one location and of the anchors that overlap a box (the widgets of 02).

Both draw in the image's pixel coordinates, origin top-left, over the image or a light grey canvas, and put the
legend under the axes so the figure's width is the image's.

Introduced in: 02_anchor_tiling.ipynb
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..config import SSDConfig
from .anchors import draw_level_grid
from .images import new_figure, palette_color, show_image

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["draw_ground_truth", "plot_location_anchors", "plot_positive_anchors"]


def draw_ground_truth(ax: Axes, box_xyxy: Tensor | Sequence[float], label: str = "ground truth") -> Axes:
    """A ground-truth box as a dashed black line on a white one, visible on any background.

    Introduced in: 02_anchor_tiling.ipynb
    """
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = torch.as_tensor(box_xyxy, dtype=torch.float64).reshape(4).tolist()
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="white", linewidth=4.0))
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="black", linewidth=2.0,
                           linestyle="--", label=label))  # fmt: skip
    return ax


def _canvas(fig: Figure, image: Tensor | None, size: int) -> Axes:
    ax = fig.add_subplot()
    show_image(ax, image if image is not None else torch.full((3, size, size), 0.92))
    ax.set_xlabel("x (pixels)", fontsize=8)
    ax.set_ylabel("y (pixels)", fontsize=8)
    ax.tick_params(labelsize=7)
    return ax


def _fit_view(ax: Axes, size: int, boxes_xyxy: Tensor) -> None:
    """Axes limits: the whole image plus every box, a small margin, origin top-left."""
    lo = min(0.0, float(boxes_xyxy[:, :2].min())) if len(boxes_xyxy) else 0.0
    hi = max(float(size), float(boxes_xyxy[:, 2:].max())) if len(boxes_xyxy) else float(size)
    margin = 0.02 * (hi - lo)
    ax.set_xlim(lo - margin, hi + margin)
    ax.set_ylim(hi + margin, lo - margin)
    ax.set_aspect("equal")


def _legend_below(fig: Figure, ax: Axes, columns: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=columns, fontsize=7, frameon=False,
               handlelength=1.6, columnspacing=1.0)  # fmt: skip


def plot_location_anchors(cfg: SSDConfig, level: int, row: int, col: int, boxes_xyxy: Tensor,
                          labels: Sequence[str], solid: Sequence[bool], *, image: Tensor | None = None,
                          gt_box_xyxy: Tensor | None = None, title: str = "",
                          figsize: tuple[float, float] = (4.3, 4.8)) -> Figure:  # fmt: skip
    """The anchors of cell (``row``, ``col``) of ``level``: the level's grid, the cell, one box per anchor.

    Args:
        boxes_xyxy (Tensor[k, 4]): the anchors of the location, xyxy pixels; anchor ``k`` has colour ``k``.
        labels: a legend entry per anchor; solid: per anchor, a solid line (else dotted: e.g. does not fit).
        image (Tensor[3, S, S]): under the anchors (default a blank canvas); gt_box_xyxy: a box drawn dashed.

    Introduced in: 02_anchor_tiling.ipynb
    """
    from matplotlib.patches import Rectangle

    fm, step = cfg.feature_map_sizes[level], cfg.steps[level]
    fig = new_figure(figsize)
    ax = _canvas(fig, image, cfg.image_size)
    draw_level_grid(ax, cfg, level, color="white", centers=fm <= 16)
    ax.add_patch(Rectangle((col * step, row * step), step, step, facecolor="yellow", alpha=0.45, edgecolor="black",
                           linewidth=1.0, label=f"cell ({row}, {col})"))  # fmt: skip
    cx, cy = (col + 0.5) * step, (row + 0.5) * step
    ax.plot([cx], [cy], marker="+", color="black", markersize=10, markeredgewidth=2)
    for k, ((x1, y1, x2, y2), label, line) in enumerate(zip(boxes_xyxy.tolist(), labels, solid)):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=palette_color(k), linewidth=2.0,
                               linestyle="-" if line else ":", label=label))  # fmt: skip
    if gt_box_xyxy is not None:
        draw_ground_truth(ax, gt_box_xyxy)
    everything = torch.cat([boxes_xyxy, gt_box_xyxy.reshape(1, 4)]) if gt_box_xyxy is not None else boxes_xyxy
    _fit_view(ax, cfg.image_size, everything)
    _legend_below(fig, ax, 3)
    ax.set_title(title, fontsize=9)
    return fig


def plot_positive_anchors(cfg: SSDConfig, anchors_xyxy: Tensor, ious: Tensor, box_xyxy: Tensor, *,
                          levels: Sequence[int], threshold: float, image: Tensor | None = None, title: str = "",
                          figsize: tuple[float, float] = (4.3, 4.8)) -> Figure:  # fmt: skip
    """The anchors of ``levels`` whose IoU with ``box_xyxy`` is at least ``threshold``, coloured by level, the best
    anchor of all in bold black and the box dashed.

    Args:
        anchors_xyxy (Tensor[A, 4]): every anchor of ``cfg``, xyxy pixels, in ``default_boxes`` order.
        ious (Tensor[A]): each anchor's IoU with the box.

    Introduced in: 02_anchor_tiling.ipynb
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Rectangle

    fig = new_figure(figsize)
    ax = _canvas(fig, image, cfg.image_size)
    starts = [sum(cfg.anchors_per_level[:k]) for k in range(cfg.num_levels)]
    for k in levels:
        level = slice(starts[k], starts[k] + cfg.anchors_per_level[k])
        selected = anchors_xyxy[level][ious[level] >= threshold]  # [P_k, 4]
        if len(selected) == 0:
            continue
        x1, y1, x2, y2 = selected.unbind(-1)
        corners = torch.stack([x1, y1, x2, y1, x2, y2, x1, y2], dim=-1).reshape(-1, 4, 2)  # [P_k, 4, 2]
        ax.add_collection(PolyCollection(corners.numpy(), facecolors="none", edgecolors=[palette_color(k)],
                                         linewidths=1.0, label=f"level {k}: {len(selected)}"))  # fmt: skip
    best = int(ious.argmax())
    bx1, by1, bx2, by2 = anchors_xyxy[best].tolist()
    ax.add_patch(Rectangle((bx1, by1), bx2 - bx1, by2 - by1, fill=False, edgecolor="black", linewidth=2.5,
                           label=f"best #{best}, IoU {float(ious[best]):.2f}"))  # fmt: skip
    draw_ground_truth(ax, box_xyxy)
    ax.set_xlim(0, cfg.image_size)
    ax.set_ylim(cfg.image_size, 0)
    _legend_below(fig, ax, 3)
    ax.set_title(title, fontsize=9)
    return fig
