"""Matching and loss pictures: matched anchors per box, one value per anchor as a heatmap per level.

Introduced in: 05_loss.ipynb
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..config import SSDConfig
from .images import new_figure, palette_color, show_image

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["draw_matches", "plot_anchor_values"]


def draw_matches(
    ax: Axes,
    image_chw: Tensor,
    gt_boxes_xyxy: Tensor,
    anchors_xyxy: Tensor,
    matches: Tensor,
    *,
    highlight: Tensor | None = None,
    labels: Tensor | Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> Axes:
    """Ground-truth boxes and the anchors matched to each, one colour per box.

    Args:
        image_chw (Tensor[3, S, S]): the image, drawn in pixel coordinates (origin top-left).
        gt_boxes_xyxy (Tensor[M, 4]): xyxy pixels, drawn thick; box m has colour m.
        anchors_xyxy (Tensor[A, 4]): xyxy pixels, unclipped (parts outside the image are cut by the axes).
        matches (Tensor[A] long): index of the matched box, -1 for background (see ``match_anchors``).
        highlight (Tensor[A] bool): anchors drawn solid and thicker (e.g. those of the greedy step);
            the other matched anchors are dashed.
        labels, class_names: optional caption per box, ``"m: name"``.

    Introduced in: 05_loss.ipynb
    """
    from matplotlib.patches import Rectangle

    gt = torch.as_tensor(gt_boxes_xyxy).detach().cpu().reshape(-1, 4)
    anchors = torch.as_tensor(anchors_xyxy).detach().cpu()
    matched = torch.as_tensor(matches).detach().cpu().long()
    if anchors.ndim != 2 or anchors.shape[-1] != 4 or matched.shape != anchors.shape[:1]:
        raise ValueError(f"anchors_xyxy must be [A, 4] and matches [A], got {list(anchors.shape)} and "
                         f"{list(matched.shape)}")  # fmt: skip
    if len(matched) and int(matched.max()) >= len(gt):
        raise ValueError(f"matches refer to box {int(matched.max())} but there are {len(gt)} boxes")
    strong = torch.zeros_like(matched, dtype=torch.bool) if highlight is None else torch.as_tensor(highlight).cpu()
    if strong.shape != matched.shape or strong.dtype != torch.bool:
        raise ValueError(f"highlight must be a bool Tensor[{len(matched)}], got {strong.dtype} {list(strong.shape)}")
    show_image(ax, image_chw)
    height, width = image_chw.shape[-2:]
    for a in (matched >= 0).nonzero().flatten().tolist():
        x1, y1, x2, y2 = anchors[a].tolist()
        bold = bool(strong[a])
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=palette_color(int(matched[a])),
                               linewidth=2.0 if bold else 1.0, linestyle="-" if bold else "--", alpha=0.9))  # fmt: skip
    label_list = None if labels is None else [int(v) for v in torch.as_tensor(labels).reshape(-1).tolist()]
    for m, (x1, y1, x2, y2) in enumerate(gt.tolist()):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=palette_color(m), linewidth=3.0))
        caption = str(m)
        if label_list is not None:
            label = label_list[m]
            name = class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)
            caption = f"{m}: {name}"
        ax.text(x1, y1, caption, color="white", fontsize=8, va="bottom",
                bbox={"facecolor": palette_color(m), "alpha": 0.9, "pad": 1, "edgecolor": "none"})  # fmt: skip
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    return ax


def plot_anchor_values(
    image_chw: Tensor,
    values: Tensor,
    cfg: SSDConfig,
    *,
    levels: Sequence[int] | None = None,
    mark: Tensor | None = None,
    value_label: str = "value",
    title: str | None = None,
    vmax: float | None = None,
    log: bool = False,
) -> Figure:
    """One value per anchor (e.g. its cross-entropy) as a heatmap over the image, one panel per level.

    Each cell of a level's feature map is coloured with the largest value among its anchors; cells are
    ``step`` pixels wide, so the heatmap lies exactly over the part of the image the cell is centred on.
    NaN values are left out (a cell whose anchors are all NaN stays transparent).

    Args:
        image_chw (Tensor[3, S, S]): the image under the heatmaps.
        values (Tensor[A]): one number per anchor, in ``default_boxes(cfg)`` order.
        cfg: the config the anchors come from.
        levels: the levels to draw (default: every level).
        mark (Tensor[A] bool): anchors to mark with a dot at their cell centre (e.g. the kept negatives).
        value_label: colour-bar label; title: figure title.
        vmax: top of the colour scale (default: the largest value shown).
        log: logarithmic colour scale, from vmax / 10^4 to vmax (losses span several decades).

    Introduced in: 05_loss.ipynb
    """
    vals = torch.as_tensor(values).detach().cpu().float().reshape(-1)
    if vals.numel() != cfg.num_anchors:
        raise ValueError(f"values must have one entry per anchor ({cfg.num_anchors} for {cfg.name}), "
                         f"got {vals.numel()}")  # fmt: skip
    marked = None if mark is None else torch.as_tensor(mark).detach().cpu().reshape(-1).bool()
    if marked is not None and marked.numel() != cfg.num_anchors:
        raise ValueError(f"mark must have one entry per anchor ({cfg.num_anchors}), got {marked.numel()}")
    chosen = list(range(cfg.num_levels)) if levels is None else list(levels)
    if not chosen or any(not 0 <= k < cfg.num_levels for k in chosen):
        raise ValueError(f"levels must be a non-empty list of levels in [0, {cfg.num_levels - 1}], got {levels}")
    starts = [sum(cfg.anchors_per_level[:k]) for k in range(cfg.num_levels)]
    S = cfg.image_size
    grids, dots = [], []
    for k in chosen:
        fm, per_loc = cfg.feature_map_sizes[k], cfg.anchors_per_location[k]
        level = vals[starts[k]:starts[k] + cfg.anchors_per_level[k]].view(fm, fm, per_loc)  # [i (y), j (x), anchor]
        cell_max = level.nan_to_num(nan=-torch.inf).amax(dim=-1)  # [fm, fm]
        grids.append(torch.where(torch.isinf(cell_max) & (cell_max < 0), torch.nan, cell_max))
        if marked is not None:
            cells = marked[starts[k]:starts[k] + cfg.anchors_per_level[k]].view(fm, fm, per_loc).any(dim=-1)
            i, j = cells.nonzero(as_tuple=True)  # row (y), column (x) of cells with a marked anchor
            step = cfg.steps[k]
            dots.append(((j.float() + 0.5) * step, (i.float() + 0.5) * step))
    finite = [g[~g.isnan()] for g in grids]
    top = float(max((f.max() for f in finite if f.numel()), default=1.0)) if vmax is None else float(vmax)
    if log and not top > 0:
        raise ValueError(f"log=True needs a positive largest value, got {top}")
    from matplotlib.colors import LogNorm, Normalize

    norm = LogNorm(vmin=top * 1e-4, vmax=top, clip=True) if log else Normalize(vmin=0.0, vmax=top)
    fig = new_figure((3.2 * len(chosen) + 0.8, 3.4))
    axes = fig.subplots(1, len(chosen), squeeze=False)[0]
    for n, (k, grid) in enumerate(zip(chosen, grids)):
        ax = axes[n]
        show_image(ax, image_chw)
        shown = ax.imshow(grid.numpy(), extent=(0, S, S, 0), cmap="magma", alpha=0.65, norm=norm,
                          interpolation="nearest")  # fmt: skip
        if marked is not None:
            xs, ys = dots[n]
            ax.scatter(xs.numpy(), ys.numpy(), s=14, c="cyan", edgecolors="black", linewidths=0.5,
                       label="kept" if n == 0 else None)  # fmt: skip
        ax.set_xlim(0, S)
        ax.set_ylim(S, 0)
        fm = cfg.feature_map_sizes[k]
        ax.set_title(f"level {k} ({fm}x{fm}), max per cell", fontsize=9)
        ax.set_xlabel("x (pixels)")
        if n == 0:
            ax.set_ylabel("y (pixels)")
    fig.colorbar(shown, ax=list(axes), label=value_label, shrink=0.85)
    if marked is not None and len(axes):
        axes[0].legend(fontsize=7, loc="lower left")
    if title is not None:
        fig.suptitle(title)
    return fig
