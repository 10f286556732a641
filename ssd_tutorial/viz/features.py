"""Pictures of a source feature map: the image with the map's grid, the mean |activation|, single channels.

Introduced in: 03_heads.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor

from .images import new_figure, show_image

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_feature_maps"]


def plot_feature_maps(image: Tensor, feature: Tensor, channels: Sequence[int], *, title: str = "",
                      grid_title: str = "image and grid", width: float = 9.2,
                      panel_height: float = 2.0) -> Figure:  # fmt: skip
    """One source's activations for one image, every map stretched over the image (origin top-left).

    Panels, at most five a row: the image with the map's cell grid, the mean |activation| over the channels
    over the image, then each channel of ``channels``.

    Args:
        image (Tensor[3, S, S]): float in [0, 1].
        feature (Tensor[C, H, W]): the source's activations for that image.
        channels: which channels to draw, one panel each.
        width, panel_height: figure width and height of one row of panels, inches.

    Introduced in: 03_heads.ipynb
    """
    C, H, W = feature.shape
    S = int(image.shape[-1])
    step = S / W
    extent = (0, S, S, 0)  # left, right, bottom, top: the map covers the image, origin top-left
    panels = 2 + len(channels)
    columns = min(5, panels)
    rows = math.ceil(panels / columns)
    fig = new_figure((width, panel_height * rows + 0.4))

    def panel(index: int, text: str) -> Axes:
        ax = fig.add_subplot(rows, columns, index)
        ax.set_title(text, fontsize=8)
        ax.tick_params(labelsize=7)
        return ax

    ax = panel(1, f"{grid_title}\n(step {step:g} px)")
    show_image(ax, image)
    if W <= 32:
        for t in range(1, W):
            ax.axvline(t * step, color="white", linewidth=0.5, alpha=0.6)
            ax.axhline(t * step, color="white", linewidth=0.5, alpha=0.6)
    ax.set_ylabel("y (px)", fontsize=8)

    ax = panel(2, f"mean |activation|\nover {C} channels")
    show_image(ax, image)
    shown = ax.imshow(feature.abs().mean(dim=0).numpy(), extent=extent, cmap="magma", alpha=0.6,
                      interpolation="nearest")  # fmt: skip
    fig.colorbar(shown, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)
    for index, channel in enumerate(channels):
        ax = panel(3 + index, f"channel {channel}")
        shown = ax.imshow(feature[channel].numpy(), extent=extent, cmap="viridis", interpolation="nearest")
        fig.colorbar(shown, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
