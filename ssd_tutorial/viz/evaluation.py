"""Evaluation pictures: detections over images and precision-recall curves.

Introduced in: 07_evaluation_and_inference.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .images import draw_boxes, new_figure, palette_color, show_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_detections", "plot_pr_curves"]


def plot_detections(
    images: Tensor | Sequence[Tensor],
    detections: Sequence[Mapping[str, Tensor]],
    targets: Sequence[Mapping[str, Tensor]] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    min_score: float = 0.5,
    columns: int = 4,
    titles: Sequence[str] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """A grid of images with their detections (coloured by class, with scores) and ground truth (dashed white).

    Args:
        images (Tensor[B, 3, H, W] or B tensors [3, H, W]): float in [0, 1].
        detections: B dicts ``{"boxes": Tensor[N, 4] xyxy px, "scores": Tensor[N], "labels": Tensor[N]}``.
        targets: optional B dicts ``{"boxes": Tensor[M, 4] xyxy px, "labels": Tensor[M]}``.
        class_names: names indexed by label.
        min_score: detections below this score are not drawn.
        titles: one title per image; default ``"image b: n detections >= min_score"``.
        figsize: inches (default 2.8 x 2.9 per image).

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
    fig = new_figure(figsize if figsize is not None else (2.8 * columns, 2.9 * rows))
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
    fig = new_figure((5.5, 4.0))
    ax = fig.add_subplot()
    for label, curve in sorted(curves.items()):
        precision = torch.as_tensor(curve["precision"], dtype=torch.float64).reshape(-1)
        recall = torch.as_tensor(curve["recall"], dtype=torch.float64).reshape(-1)
        name = class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)
        if ap is not None and label in ap:
            name += f" (AP {ap[label]:.3f})"
        color = palette_color(label)
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
