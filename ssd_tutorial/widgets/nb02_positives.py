"""Widget of 02_anchor_tiling.ipynb: which anchors overlap a ground-truth box, level by level.

The picture and the table come from :func:`positive_anchors_view`, a plain function that takes numbers and
returns ``(Figure, rows)``; :func:`positive_anchors_widget` only wires sliders to it and shows a message, not a
traceback, for settings that make no sense (a box of width 0, a threshold of 0).

Introduced in: 02_anchor_tiling.ipynb
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..anchors import default_boxes
from ..boxes import cxcywh_to_xyxy
from ..config import SSDConfig
from .common import (
    check_image,
    check_level,
    control_columns,
    figure_area,
    redraw,
    resolve_config,
    rows_to_html,
    slider_tooltip,
    widget_box,
)
from .nb02 import sample_shapes_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ALL_LEVELS", "positive_anchors_view", "positive_anchors_widget"]

POSITIVES_CLASS = "ssd-positive-anchors"
POSITIVES_TABLE_CLASS = "ssd-positive-table"
POSITIVES_COLUMNS = (("level", "level", ""), ("feature_map", "map", ""), ("anchors", "anchors", ""),
                     ("positives", "IoU ≥ thr", ""), ("best_iou", "best IoU", ".3f"),
                     ("best_index", "best anchor", ""))  # fmt: skip


@functools.lru_cache(maxsize=8)
def _anchors_xyxy(cfg: SSDConfig) -> Tensor:
    return cxcywh_to_xyxy(default_boxes(cfg))  # [A, 4]


def positive_anchors_view(preset: str | SSDConfig = "ssd512_voc", cx: float = 256.0, cy: float = 256.0,
                          w: float = 128.0, h: float = 128.0, level: int | None = None, threshold: float = 0.5, *,
                          image: Tensor | None = None) -> tuple[Figure, list[dict]]:  # fmt: skip
    """Which anchors of ``preset`` overlap the box (cx, cy, w, h) with IoU >= ``threshold``.

    Draws the box, the anchors at or above the threshold (of ``level`` only, or of every level when
    ``level`` is None) coloured by level with their count in the legend, and the single best anchor in bold.

    Returns:
        ``(figure, rows)``: one row per level with keys ``level``, ``feature_map``, ``anchors`` (of that
        level), ``positives`` (IoU >= threshold), ``best_iou`` and ``best_index`` (position in
        ``default_boxes(cfg)`` of the level's best anchor).

    Raises:
        ValueError: w or h <= 0, threshold outside (0, 1], bad level.

    Introduced in: 02_anchor_tiling.ipynb
    """
    from torchvision.ops import box_iou

    from ..viz import plot_positive_anchors

    cfg = resolve_config(preset)
    if level is not None:
        check_level(cfg, level)
    values = (cx, cy, w, h)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ValueError(f"cx, cy, w, h must be finite numbers in pixels, got {values}")
    if w <= 0 or h <= 0:
        raise ValueError(f"the box needs w > 0 and h > 0 pixels, got w={w:g}, h={h:g}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be an IoU in (0, 1], got {threshold!r}")
    check_image(image, cfg.image_size)

    anchors = _anchors_xyxy(cfg)  # [A, 4]
    gt = cxcywh_to_xyxy(torch.tensor([[cx, cy, w, h]], dtype=torch.float32))  # [1, 4]
    ious = box_iou(anchors, gt)[:, 0]  # [A]
    rows, start = [], 0
    for k, count in enumerate(cfg.anchors_per_level):
        level_ious = ious[start:start + count]
        best = int(level_ious.argmax())
        rows.append({"level": k, "feature_map": cfg.feature_map_sizes[k], "anchors": count,
                     "positives": int((level_ious >= threshold).sum()), "best_iou": float(level_ious[best]),
                     "best_index": start + best})  # fmt: skip
        start += count
    shown = [k for k in range(cfg.num_levels) if level is None or k == level]
    total = sum(rows[k]["positives"] for k in shown)
    which = "all levels" if level is None else f"level {level}"
    fig = plot_positive_anchors(cfg, anchors, ious, gt[0], levels=shown, threshold=threshold, image=image,
                                title=f"{cfg.name}: {total} anchors ({which})\nwith IoU >= {threshold:g}")  # fmt: skip
    return fig, rows


ALL_LEVELS = -1  # the level dropdown's value for "every level" (None would show as no selection)


def positive_anchors_widget(preset: str = "ssd512_voc", *, seed: int = 0, index: int = 0,
                            box_cxcywh: Sequence[float] | None = None) -> Any:  # fmt: skip
    """Sliders for a ground-truth box (cx, cy, w, h), a level (or all) and the IoU threshold over
    :func:`positive_anchors_view`. Output CSS class ``ssd-positive-anchors``, table ``ssd-positive-table``.

    The box sliders step by 4 px (type an exact value into the number); the level dropdown's "all levels" has
    the value :data:`ALL_LEVELS`. Returns an ``ipywidgets.VBox`` with ``.controls``, ``.state`` and ``.output``
    like :func:`anchor_explorer_widget`.

    Introduced in: 02_anchor_tiling.ipynb
    """
    import ipywidgets as widgets

    cfg = resolve_config(preset)
    size = cfg.image_size
    image, gt = sample_shapes_image(size, seed, index)
    if box_cxcywh is None:
        if gt is not None:
            x1, y1, x2, y2 = gt.tolist()
            box_cxcywh = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
        else:
            box_cxcywh = (size / 2, size / 2, size / 4, size / 4)
    style = {"description_width": "90px"}
    step = float(max(1, round(size / 128)))  # 4 px on a 512 px image: one key press visibly moves the box

    def slider(description: str, value: float, low: float) -> Any:
        return widgets.FloatSlider(float(value), min=low, max=float(size), step=step, description=description,
                                   continuous_update=False, readout_format=".0f", style=style,
                                   tooltip=slider_tooltip(f"{step:g} px"))  # fmt: skip

    levels = [("all levels", ALL_LEVELS)] + [(f"level {k}", k) for k in range(cfg.num_levels)]
    controls = {
        "cx": slider("centre x", box_cxcywh[0], 0.0),
        "cy": slider("centre y", box_cxcywh[1], 0.0),
        "w": slider("width", box_cxcywh[2], 1.0),
        "h": slider("height", box_cxcywh[3], 1.0),
        "level": widgets.Dropdown(options=levels, value=ALL_LEVELS, description="level", style=style),
        "threshold": widgets.FloatSlider(cfg.iou_threshold, min=0.05, max=1.0, step=0.05, description="IoU ≥",
                                         continuous_update=False, readout_format=".2f", style=style,
                                         tooltip=slider_tooltip("0.05")),  # fmt: skip
    }
    out = figure_area(POSITIVES_CLASS)
    state: dict[str, Any] = {"figure": None, "rows": None, "error": None}

    def render(*_: Any) -> None:
        values = {name: control.value for name, control in controls.items()}
        level = None if values["level"] == ALL_LEVELS else values["level"]

        def make() -> tuple[Figure, list[dict]]:
            return positive_anchors_view(cfg, values["cx"], values["cy"], values["w"], values["h"], level,
                                         values["threshold"], image=image)  # fmt: skip

        def table(rows: list[dict]) -> str:
            total = sum(r["positives"] for r in rows)
            caption = f"{total} of {cfg.num_anchors} anchors have IoU ≥ {values['threshold']:.2f}"
            return rows_to_html(rows, POSITIVES_COLUMNS, POSITIVES_TABLE_CLASS, caption)

        redraw(out, state, make, table)

    for control in controls.values():
        control.observe(render, names="value")
    top = control_columns([controls["cx"], controls["cy"], controls["w"]],
                          [controls["h"], controls["level"], controls["threshold"]])
    box = widget_box([top, out], title="Positive anchors")
    box.controls, box.state, box.output = controls, state, out
    render()
    return box
