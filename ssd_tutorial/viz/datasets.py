"""Dataset pictures: where a dataset's box shapes sit among the anchor shapes.

Introduced in: 08_your_own_dataset.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .images import new_figure, palette_color

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["draw_box_shapes", "plot_box_shapes"]


def draw_box_shapes(
    ax: Axes,
    boxes_wh: Tensor,
    anchor_wh: Tensor | None = None,
    *,
    covered: Tensor | None = None,
    extra: Mapping[str, Tensor] | None = None,
) -> Axes:
    """Width against height of boxes on log axes, with anchor shapes as black crosses.

    Size grows along the diagonal and elongation across it; dotted lines mark w/h = 1/3, 1/2, 1, 2, 3.

    Args:
        boxes_wh (Tensor[N, 2]): (w, h) pixels of the ground-truth boxes, N >= 1.
        anchor_wh (Tensor[K, 2]): (w, h) of the anchor shapes, e.g. ``level_box_shapes`` of every level.
        covered (Tensor[N] bool): colour the boxes by whether an anchor covers them (see ``analysis``).
        extra: more named point sets ``{name: Tensor[P, 2]}`` drawn as stars (e.g. k-means centroids).

    Introduced in: 08_your_own_dataset.ipynb
    """
    wh = torch.as_tensor(boxes_wh, dtype=torch.float64).detach().cpu()
    if wh.ndim != 2 or wh.shape[-1] != 2 or wh.shape[0] == 0:
        raise ValueError(f"boxes_wh must be [N, 2] with N >= 1, got {list(wh.shape)}")
    if not bool((wh > 0).all()):
        raise ValueError("boxes_wh must hold positive widths and heights")
    if covered is None:
        ax.scatter(wh[:, 0].numpy(), wh[:, 1].numpy(), s=6, alpha=0.4, color=palette_color(0),
                   label=f"boxes ({len(wh)})")  # fmt: skip
    else:
        flags = torch.as_tensor(covered, dtype=torch.bool).reshape(-1).cpu()
        if flags.numel() != wh.shape[0]:
            raise ValueError(f"covered must have one flag per box ({wh.shape[0]}), got {flags.numel()}")
        for value, name, color in ((True, "covered", palette_color(2)), (False, "not covered", palette_color(3))):
            pick = flags == value
            ax.scatter(wh[pick, 0].numpy(), wh[pick, 1].numpy(), s=6, alpha=0.5, color=color,
                       label=f"{name} ({int(pick.sum())})")  # fmt: skip
    points = [wh]
    if anchor_wh is not None:
        anchors = torch.as_tensor(anchor_wh, dtype=torch.float64).reshape(-1, 2).cpu()
        ax.scatter(anchors[:, 0].numpy(), anchors[:, 1].numpy(), marker="x", s=40, color="black",
                   label=f"anchor shapes ({len(anchors)})", zorder=3)  # fmt: skip
        points.append(anchors)
    for index, (name, values) in enumerate((extra or {}).items()):
        more = torch.as_tensor(values, dtype=torch.float64).reshape(-1, 2).cpu()
        ax.scatter(more[:, 0].numpy(), more[:, 1].numpy(), marker="*", s=120, color=palette_color(4 + index),
                   edgecolors="black", linewidths=0.5, label=name, zorder=4)  # fmt: skip
        points.append(more)
    every = torch.cat(points)
    lo, hi = float(every.min()) / 1.3, float(every.max()) * 1.3
    for ratio in (1 / 3, 1 / 2, 1.0, 2.0, 3.0):  # lines h = w / ratio
        ax.plot([lo, hi], [lo / ratio, hi / ratio], color="gray", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("box width w (px)")
    ax.set_ylabel("box height h (px)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("box sizes\n(dotted: w/h = 1/3, 1/2, 1, 2, 3)", fontsize=8)
    return ax


def plot_box_shapes(
    boxes_wh: Tensor,
    anchor_wh: Tensor | None = None,
    *,
    covered: Tensor | None = None,
    extra: Mapping[str, Tensor] | None = None,
    title: str | None = None,
) -> Figure:
    """Where the boxes of a dataset sit among the anchor shapes: (w, h) scatter and aspect-ratio histogram.

    Left: :func:`draw_box_shapes`. Right: histogram of w/h on a log axis, with the anchors' ratios as
    dashed vertical lines.

    Introduced in: 08_your_own_dataset.ipynb
    """
    from matplotlib.ticker import NullFormatter

    fig = new_figure((10.0, 4.2))
    ax, hist = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    draw_box_shapes(ax, boxes_wh, anchor_wh, covered=covered, extra=extra)
    wh = torch.as_tensor(boxes_wh, dtype=torch.float64).detach().cpu()
    ratios = (wh[:, 0] / wh[:, 1]).numpy()
    edges = torch.logspace(math.log10(0.2), math.log10(5.0), 41).numpy()
    hist.hist(ratios.clip(0.2, 5.0), bins=edges, color=palette_color(0), alpha=0.8, label="boxes")
    if anchor_wh is not None:
        anchors = torch.as_tensor(anchor_wh, dtype=torch.float64).reshape(-1, 2).cpu()
        for k, r in enumerate(sorted({round(float(w / h), 4) for w, h in anchors.tolist()})):
            hist.axvline(r, color="black", linestyle="--", linewidth=1, label="anchor ratios" if k == 0 else None)
    hist.set_xscale("log")
    ticks = [0.25, 1 / 3, 0.5, 1.0, 2.0, 3.0, 4.0]
    hist.set_xticks(ticks, ["1/4", "1/3", "1/2", "1", "2", "3", "4"])
    hist.xaxis.set_minor_formatter(NullFormatter())
    hist.set_xlabel("aspect ratio w / h (log scale; < 1 standing, > 1 lying)")
    hist.set_ylabel("boxes")
    hist.legend(fontsize=7)
    hist.set_title("aspect ratios", fontsize=9)
    if title is not None:
        fig.suptitle(title)
    return fig
