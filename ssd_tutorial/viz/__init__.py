"""Matplotlib pictures for the notebooks. Every function returns a Figure or Axes and never calls ``plt.show``.

One module per topic; every public name is re-exported here, so ``from ssd_tutorial import viz; viz.X`` and
``from ssd_tutorial.viz import X`` work for all of them:

- ``images``: ``new_figure``, ``palette_color``, ``show_image``, ``draw_boxes``
- ``anchors``: anchor counts, box sizes and shapes, level grids, ``pixel_anchor_counts`` and its heatmaps
- ``tiling``: the anchors of one location, the anchors that overlap a box (the widgets of 02)
- ``features``: ``plot_feature_maps`` (03)
- ``matching``: ``draw_matches``, ``plot_anchor_values`` (05)
- ``training``: ``plot_history`` (06)
- ``evaluation``: ``plot_detections``, ``plot_pr_curves`` (07)
- ``datasets``: ``draw_box_shapes``, ``plot_box_shapes`` (08)

Introduced in: 01_constants.ipynb
"""

from __future__ import annotations

from .anchors import (
    draw_level_grid,
    pixel_anchor_counts,
    plot_anchor_counts,
    plot_anchor_coverage,
    plot_anchor_shapes,
    plot_box_sizes,
    plot_level_grids,
)
from .architecture import architecture_rows, plot_architecture
from .datasets import draw_box_shapes, plot_box_shapes
from .evaluation import plot_detections, plot_pr_curves
from .features import plot_feature_maps
from .images import draw_boxes, new_figure, palette_color, show_image
from .matching import draw_matches, plot_anchor_values
from .tiling import draw_ground_truth, plot_location_anchors, plot_positive_anchors
from .training import plot_history

__all__ = [
    "new_figure", "palette_color", "show_image", "draw_boxes",
    "plot_anchor_counts", "plot_box_sizes", "plot_anchor_shapes", "draw_level_grid", "pixel_anchor_counts",
    "plot_level_grids", "plot_anchor_coverage",
    "draw_ground_truth", "plot_location_anchors", "plot_positive_anchors",
    "plot_feature_maps",
    "draw_matches", "plot_anchor_values",
    "plot_history",
    "plot_detections", "plot_pr_curves",
    "draw_box_shapes", "plot_box_shapes",
    "plot_architecture", "architecture_rows",
]  # fmt: skip

