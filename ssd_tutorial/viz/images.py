"""Figures, colours, images and boxes: the drawing pieces every other ``viz`` module builds on.

Figures are built with ``matplotlib.figure.Figure`` (not pyplot), so nothing piles up in pyplot's global
state; in a notebook, end a cell with the figure (after ``%matplotlib inline``) to show it.
Images are drawn in pixel coordinates with the origin at the top-left corner: pixel (row i, column j)
covers [j, j + 1) x [i, i + 1), the convention of ``*_xyxy`` boxes in this package.

Introduced in: 01_constants.ipynb
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["new_figure", "palette_color", "show_image", "draw_boxes"]


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-free ``Figure`` of ``figsize`` inches with constrained layout.

    Introduced in: 01_constants.ipynb
    """
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def palette_color(index: int) -> Any:
    """Colour ``index`` of the tab10 palette (wraps around after 10): the colour of a class, level or box.

    Introduced in: 01_constants.ipynb
    """
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
        box_color = color if color is not None else palette_color(label if label is not None else 0)
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
