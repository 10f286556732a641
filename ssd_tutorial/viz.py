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


# --- 02_anchor_tiling ------------------------------------------------------------------------------------------------
__all__ += ["draw_level_grid", "anchor_coverage", "plot_level_grids", "plot_anchor_coverage"]


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


def anchor_coverage(boxes_xyxy: Tensor, image_size: int | tuple[int, int]) -> Tensor:
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
    fig = _new_figure((2.9 * columns, 3.0 * rows))
    for index, level in enumerate(chosen):
        ax = fig.add_subplot(rows, columns, index + 1)
        show_image(ax, canvas)
        draw_level_grid(ax, cfg, level, color="white", center_color=_color(level))
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
    """Heatmaps of how many default boxes cover each pixel (:func:`anchor_coverage`), per level and in all.

    Introduced in: 02_anchor_tiling.ipynb
    """
    from .anchors import default_boxes
    from .boxes import cxcywh_to_xyxy

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
    fig = _new_figure((3.1 * columns, 2.8 * rows))
    for index, (title, boxes) in enumerate(panels):
        ax = fig.add_subplot(rows, columns, index + 1)
        counts = anchor_coverage(boxes, size)  # [S, S]
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


# --- 07_evaluation_and_inference -------------------------------------------------------------------------------------
__all__ += ["plot_detections", "plot_pr_curves"]


def plot_detections(
    images: Tensor | Sequence[Tensor],
    detections: Sequence[Mapping[str, Tensor]],
    targets: Sequence[Mapping[str, Tensor]] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    min_score: float = 0.5,
    columns: int = 4,
    titles: Sequence[str] | None = None,
) -> Figure:
    """A grid of images with their detections (coloured by class, with scores) and ground truth (dashed white).

    Args:
        images (Tensor[B, 3, H, W] or B tensors [3, H, W]): float in [0, 1].
        detections: B dicts ``{"boxes": Tensor[N, 4] xyxy px, "scores": Tensor[N], "labels": Tensor[N]}``.
        targets: optional B dicts ``{"boxes": Tensor[M, 4] xyxy px, "labels": Tensor[M]}``.
        class_names: names indexed by label.
        min_score: detections below this score are not drawn.
        titles: one title per image; default ``"image b: n detections >= min_score"``.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    count = len(images)
    if count == 0:
        raise ValueError("images must hold at least one image")
    if len(detections) != count or (targets is not None and len(targets) != count):
        got = f"{len(detections)} detections" + ("" if targets is None else f", {len(targets)} targets")
        raise ValueError(f"need one detection dict (and target dict) per image: {count} images, got {got}")
    if titles is not None and len(titles) != count:
        raise ValueError(f"titles must have one entry per image ({count}), got {len(titles)}")
    columns = max(1, min(int(columns), count))
    rows = math.ceil(count / columns)
    fig = _new_figure((2.8 * columns, 2.9 * rows))
    for b in range(count):
        ax = fig.add_subplot(rows, columns, b + 1)
        show_image(ax, images[b])
        if targets is not None:
            draw_boxes(ax, torch.as_tensor(targets[b]["boxes"]).reshape(-1, 4), color="white")
            for patch in ax.patches:
                patch.set_linestyle("--")
        keep = torch.as_tensor(detections[b]["scores"]) >= min_score
        draw_boxes(ax, torch.as_tensor(detections[b]["boxes"]).reshape(-1, 4)[keep],
                   labels=torch.as_tensor(detections[b]["labels"])[keep],
                   scores=torch.as_tensor(detections[b]["scores"])[keep], class_names=class_names)  # fmt: skip
        title = titles[b] if titles is not None else f"image {b}: {int(keep.sum())} det. >= {min_score:g}"
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if targets is not None:
        fig.suptitle("detections (colour = class, with score); ground truth dashed white", fontsize=9)
    return fig


def plot_pr_curves(
    curves: Mapping[int, Mapping[str, Tensor]],
    *,
    class_names: Sequence[str] | None = None,
    ap: Mapping[int, float] | None = None,
    envelope: bool = True,
) -> Figure:
    """Precision against recall, one line per class (from ``evaluate.precision_recall_curve``).

    With ``envelope`` the interpolated precision (best precision at this recall or beyond, the curve VOC
    AP integrates) is drawn dashed over the raw zig-zag.

    Args:
        curves: ``{label: {"precision": Tensor[K], "recall": Tensor[K]}}`` ordered by descending score.
        class_names: names indexed by label.
        ap: optional ``{label: AP}`` shown in the legend.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty mapping label -> {'precision', 'recall'}")
    fig = _new_figure((5.5, 4.0))
    ax = fig.add_subplot()
    for label, curve in sorted(curves.items()):
        precision = torch.as_tensor(curve["precision"], dtype=torch.float64).reshape(-1)
        recall = torch.as_tensor(curve["recall"], dtype=torch.float64).reshape(-1)
        name = class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)
        if ap is not None and label in ap:
            name += f" (AP {ap[label]:.3f})"
        color = _color(label)
        ax.plot(recall.numpy(), precision.numpy(), color=color, linewidth=1.2, label=name)
        if envelope and precision.numel():
            best_after = precision.flip(0).cummax(0).values.flip(0)  # [K] best precision at this recall or beyond
            ax.plot(recall.numpy(), best_after.numpy(), color=color, linewidth=1.0, linestyle="--", alpha=0.8)
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall (share of ground-truth boxes found)")
    ax.set_ylabel("precision (share of detections that are right)")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Precision-recall per class" + (" (dashed: interpolated)" if envelope else ""))
    return fig


# --- 08_your_own_dataset ---------------------------------------------------------------------------------------------
__all__ += ["draw_box_shapes", "plot_box_shapes"]


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
        ax.scatter(wh[:, 0].numpy(), wh[:, 1].numpy(), s=6, alpha=0.4, color=_color(0), label=f"boxes ({len(wh)})")
    else:
        flags = torch.as_tensor(covered, dtype=torch.bool).reshape(-1).cpu()
        if flags.numel() != wh.shape[0]:
            raise ValueError(f"covered must have one flag per box ({wh.shape[0]}), got {flags.numel()}")
        for value, name, color in ((True, "covered", _color(2)), (False, "not covered", _color(3))):
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
        ax.scatter(more[:, 0].numpy(), more[:, 1].numpy(), marker="*", s=120, color=_color(4 + index),
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
    ax.set_title("box sizes (dotted: w/h = 1/3, 1/2, 1, 2, 3)", fontsize=9)
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

    fig = _new_figure((10.0, 4.2))
    ax, hist = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    draw_box_shapes(ax, boxes_wh, anchor_wh, covered=covered, extra=extra)
    wh = torch.as_tensor(boxes_wh, dtype=torch.float64).detach().cpu()
    ratios = (wh[:, 0] / wh[:, 1]).numpy()
    edges = torch.logspace(math.log10(0.2), math.log10(5.0), 41).numpy()
    hist.hist(ratios.clip(0.2, 5.0), bins=edges, color=_color(0), alpha=0.8, label="boxes")
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


__all__ += ["draw_matches", "plot_anchor_values"]


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
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=_color(int(matched[a])),
                               linewidth=2.0 if bold else 1.0, linestyle="-" if bold else "--", alpha=0.9))  # fmt: skip
    label_list = None if labels is None else [int(v) for v in torch.as_tensor(labels).reshape(-1).tolist()]
    for m, (x1, y1, x2, y2) in enumerate(gt.tolist()):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=_color(m), linewidth=3.0))
        caption = str(m)
        if label_list is not None:
            label = label_list[m]
            name = class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)
            caption = f"{m}: {name}"
        ax.text(x1, y1, caption, color="white", fontsize=8, va="bottom",
                bbox={"facecolor": _color(m), "alpha": 0.9, "pad": 1, "edgecolor": "none"})  # fmt: skip
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
    fig = _new_figure((3.2 * len(chosen) + 0.8, 3.4))
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


__all__ += ["plot_history"]


def plot_history(history: Sequence[Mapping[str, float]], *, epochs: int | None = None,
                 title: str | None = None) -> Figure:  # fmt: skip
    """Training curves from ``fit``'s history: the losses per epoch and, where present, validation mAP@0.5.

    Args:
        history: one dict per epoch with ``epoch``, ``loss``, ``loss_loc``, ``loss_cls`` and optionally ``map``
            (what :func:`~ssd_tutorial.train.fit` returns); may be empty (empty axes, e.g. before epoch 1).
        epochs: x-axis extent (the planned number of epochs), so a live plot does not rescale every epoch.
        title: figure title.

    Introduced in: 06_training.ipynb
    """
    records = list(history)
    for record in records:
        missing = [k for k in ("epoch", "loss", "loss_loc", "loss_cls") if k not in record]
        if missing:
            raise ValueError(f"every history record needs epoch, loss, loss_loc and loss_cls; missing {missing} "
                             f"in {dict(record)}")  # fmt: skip
    fig = _new_figure((10.0, 3.6))
    loss_ax, map_ax = fig.subplots(1, 2)
    xs = [int(r["epoch"]) for r in records]
    for key, style in (("loss", "-o"), ("loss_loc", "--s"), ("loss_cls", ":^")):
        loss_ax.plot(xs, [float(r[key]) for r in records], style, label=key, markersize=4)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("mean training loss")
    loss_ax.set_title("training loss")
    loss_ax.legend(fontsize=8)
    with_map = [(int(r["epoch"]), float(r["map"])) for r in records if r.get("map") is not None]
    map_ax.plot([e for e, _ in with_map], [m for _, m in with_map], "-o", color=_color(3), markersize=4,
                label="validation mAP@0.5")  # fmt: skip
    map_ax.set_ylim(0.0, 1.0)
    map_ax.set_xlabel("epoch")
    map_ax.set_ylabel("mAP@0.5")
    map_ax.set_title("validation mAP@0.5" + (f" (last {with_map[-1][1]:.3f})" if with_map else ""))
    map_ax.grid(alpha=0.3)
    last = max([epochs or 0, *xs, 1])
    for ax in (loss_ax, map_ax):
        ax.set_xlim(0.5, last + 0.5)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title is not None:
        fig.suptitle(title)
    return fig
