"""Matplotlib pictures for the notebooks. Every function returns a Figure or Axes and never calls ``plt.show``.

Figures are built with ``matplotlib.figure.Figure`` (not pyplot), so nothing piles up in pyplot's global
state; in a notebook, end a cell with the figure (after ``%matplotlib inline``) to show it.
Images are drawn in pixel coordinates with the origin at the top-left corner: pixel (row i, column j)
covers [j, j + 1) x [i, i + 1), the convention of ``*_xyxy`` boxes in this package.

Introduced in: 01_constants.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .config import SSDConfig

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["show_image", "draw_boxes", "plot_anchor_counts", "plot_box_sizes", "plot_anchor_shapes"]


def _new_figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _color(index: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab10"](index % 10)


def show_image(ax: Axes, image_chw: Tensor) -> Axes:
    """Draw an image on ``ax`` in pixel coordinates, origin top-left (y grows downwards).

    Args:
        image_chw (Tensor[3, H, W] or [1, H, W] or [H, W]): float in [0, 1] or uint8 in [0, 255], RGB.

    Introduced in: 01_constants.ipynb
    """
    if not isinstance(image_chw, Tensor):
        raise TypeError(f"image_chw must be a torch.Tensor, got {type(image_chw).__name__}")
    image = image_chw.detach().cpu()
    if image.ndim == 2:
        image = image.unsqueeze(0)  # [1, H, W]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image_chw must be [3, H, W], [1, H, W] or [H, W], got {list(image_chw.shape)}")
    image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    height, width = image.shape[-2:]
    pixels = image.permute(1, 2, 0).clamp(0.0, 1.0).numpy()  # [H, W, 1 or 3]
    if pixels.shape[-1] == 1:
        ax.imshow(pixels[..., 0], cmap="gray", vmin=0.0, vmax=1.0, extent=(0, width, height, 0))
    else:
        ax.imshow(pixels, extent=(0, width, height, 0))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    return ax


def draw_boxes(
    ax: Axes,
    boxes_xyxy: Tensor,
    labels: Tensor | Sequence[int] | None = None,
    scores: Tensor | Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    color: Any = None,
) -> Axes:
    """Draw boxes as rectangles, with an optional caption ``"name 0.87"`` at each top-left corner.

    Args:
        boxes_xyxy (Tensor[N, 4]): xyxy pixels; N may be 0.
        labels (Tensor[N] or list of N ints): class ids, 0 is background; colours follow the label.
        scores (Tensor[N] or list of N floats): shown with two decimals.
        class_names: names indexed by label (e.g. ``cfg.class_names``); without it the id is shown.
        color: one matplotlib colour for every box; default: a colour per label (or one colour).

    Introduced in: 01_constants.ipynb
    """
    from matplotlib.patches import Rectangle

    boxes = torch.as_tensor(boxes_xyxy).detach().cpu()
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes_xyxy must be [N, 4], got {list(boxes.shape)}")
    count = boxes.shape[0]
    label_list = None if labels is None else [int(v) for v in torch.as_tensor(labels).reshape(-1).tolist()]
    score_list = None if scores is None else [float(v) for v in torch.as_tensor(scores).reshape(-1).tolist()]
    for name, values in (("labels", label_list), ("scores", score_list)):
        if values is not None and len(values) != count:
            raise ValueError(f"{name} must have one value per box ({count}), got {len(values)}")
    for index, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        label = None if label_list is None else label_list[index]
        box_color = color if color is not None else _color(label if label is not None else 0)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=box_color, linewidth=1.5))
        caption = []
        if label is not None:
            in_range = class_names is not None and 0 <= label < len(class_names)
            caption.append(class_names[label] if in_range else str(label))
        if score_list is not None:
            caption.append(f"{score_list[index]:.2f}")
        if caption:
            ax.text(x1, y1, " ".join(caption), color="white", fontsize=8, va="bottom",
                    bbox={"facecolor": box_color, "alpha": 0.8, "pad": 1, "edgecolor": "none"})  # fmt: skip
    return ax


def plot_anchor_counts(cfgs: SSDConfig | Sequence[SSDConfig], *, log: bool = True) -> Figure:
    """Bar chart of the number of anchors at each level, one group of bars per config.

    Introduced in: 01_constants.ipynb
    """
    configs = [cfgs] if isinstance(cfgs, SSDConfig) else list(cfgs)
    if not configs or not all(isinstance(c, SSDConfig) for c in configs):
        raise TypeError(f"cfgs must be an SSDConfig or a non-empty sequence of them, got {cfgs!r}")
    fig = _new_figure((7.0, 3.5))
    ax = fig.add_subplot()
    width = 0.8 / len(configs)
    for index, cfg in enumerate(configs):
        offset = (index - (len(configs) - 1) / 2) * width
        positions = [level + offset for level in range(cfg.num_levels)]
        bars = ax.bar(positions, cfg.anchors_per_level, width=width, color=_color(index),
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
    fig = _new_figure((6.0, 3.5))
    ax = fig.add_subplot()
    for index, (name, sizes) in enumerate(series.items()):
        values = [float(s) for s in sizes]
        ax.plot(range(len(values)), values, marker="o", color=_color(index), label=name)
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

    from .anchors import level_box_shapes

    chosen = list(range(cfg.num_levels)) if levels is None else list(levels)
    if not chosen:
        raise ValueError("levels must name at least one level")
    columns = min(4, len(chosen))
    rows = math.ceil(len(chosen) / columns)
    fig = _new_figure((3.0 * columns, 3.0 * rows))
    for index, level in enumerate(chosen):
        shapes = level_box_shapes(cfg, level)
        ax = fig.add_subplot(rows, columns, index + 1)
        half = max(max(w, h) for w, h in shapes) / 2 * 1.05
        for shape_index, (w, h) in enumerate(shapes):
            ax.add_patch(Rectangle((-w / 2, -h / 2), w, h, fill=False, edgecolor=_color(shape_index), linewidth=1.5))
        ax.set_xlim(-half, half)
        ax.set_ylim(half, -half)
        ax.set_aspect("equal")
        fm = cfg.feature_map_sizes[level]
        ax.set_title(f"level {level}: {fm}x{fm}, {len(shapes)} per location", fontsize=9)
    fig.suptitle(f"{cfg.name}: anchor shapes at one location (pixels)")
    return fig
