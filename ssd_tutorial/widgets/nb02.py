"""Widget of 02_anchor_tiling.ipynb: the anchor explorer (the positive-anchors widget is in ``nb02_positives``).

The picture and the table come from a plain function (:func:`anchor_explorer_view`) that takes numbers and
returns ``(Figure, rows)``; :func:`anchor_explorer_widget` only wires ipywidgets controls to it and shows a
message, not a traceback, for settings that make no sense (an aspect ratio <= 0, a scale that makes no box fit
the image).

Introduced in: 02_anchor_tiling.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..anchors import level_box_shapes
from ..boxes import cxcywh_to_xyxy
from ..config import PRESETS, SSDConfig, get_config
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

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "parse_aspect_ratios",
    "explorer_config",
    "anchor_shape_labels",
    "anchor_explorer_view",
    "sample_shapes_image",
    "rows_to_html",
    "anchor_explorer_widget",
]

EXPLORER_CLASS = "ssd-anchor-explorer"
EXPLORER_TABLE_CLASS = "ssd-anchor-table"


def parse_aspect_ratios(ratios: str | Sequence[float]) -> tuple[float, ...]:
    """Aspect ratios from text like ``"2, 3"`` (or a sequence of numbers); ``""`` gives ``()`` (squares only).

    Raises ValueError naming the bad entry when one is not a number or not a finite ratio > 0.

    Introduced in: 02_anchor_tiling.ipynb
    """
    if isinstance(ratios, str):
        parts = [p for p in ratios.replace(";", ",").replace(" ", ",").split(",") if p]
        values = []
        for part in parts:
            try:
                values.append(float(part))
            except ValueError:
                raise ValueError(f"aspect ratios must be numbers separated by commas, like '2, 3'; "
                                 f"got {part!r} in {ratios!r}") from None  # fmt: skip
    elif isinstance(ratios, Sequence):
        values = []
        for value in ratios:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"aspect ratios must be numbers, got {value!r} in {ratios!r}")
            values.append(float(value))
    else:
        raise TypeError(f"ratios must be text like '2, 3' or a sequence of numbers, got {type(ratios).__name__}")
    for value in values:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"an aspect ratio must be a finite number > 0 (w:h of the lying box), got {value:g}")
    return tuple(values)


def explorer_config(preset: str | SSDConfig, level: int, ratios: str | Sequence[float] | None = None,
                    scale: float = 1.0) -> SSDConfig:  # fmt: skip
    """``preset`` with the aspect ratios of ``level`` replaced (``None``: keep them) and every box size times ``scale``.

    The result is validated by :class:`SSDConfig`; bad ratios or scales raise ValueError.

    Introduced in: 02_anchor_tiling.ipynb
    """
    cfg = resolve_config(preset)
    check_level(cfg, level)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite number > 0 (it multiplies every box size), got {scale!r}")
    changes: dict[str, Any] = {}
    if ratios is not None:
        per_level = list(cfg.aspect_ratios)
        per_level[level] = parse_aspect_ratios(ratios)
        changes["aspect_ratios"] = tuple(per_level)
    if scale != 1.0:
        changes["box_sizes"] = tuple(s * scale for s in cfg.box_sizes)
    return cfg.replace(**changes) if changes else cfg


def anchor_shape_labels(cfg: SSDConfig, level: int) -> list[str]:
    """A name for each anchor of one location, in anchor order: ``"1:1 s_k"``, ``"1:1 s'_k"``, ``"2:1"``, ``"1:2"`` …

    ``r:1`` is the lying box (w = s_k·√r), ``1:r`` the standing one.

    Introduced in: 02_anchor_tiling.ipynb
    """
    check_level(cfg, level)
    labels = ["1:1 s_k", "1:1 s'_k"]
    for ratio in cfg.aspect_ratios[level]:
        labels += [f"{ratio:g}:1", f"1:{ratio:g}"]
    return labels


def _box_fits(w: float, h: float, image_size: float) -> bool:
    return 1.0 <= w <= image_size and 1.0 <= h <= image_size


def _gt_tensor(gt_box_xyxy: Sequence[float] | Tensor | None) -> Tensor | None:
    if gt_box_xyxy is None:
        return None
    gt = torch.as_tensor(gt_box_xyxy, dtype=torch.float32).reshape(-1)
    if gt.numel() != 4 or not bool(torch.isfinite(gt).all()) or gt[2] <= gt[0] or gt[3] <= gt[1]:
        raise ValueError(f"gt_box_xyxy must be 4 finite numbers x1 < x2, y1 < y2 in pixels, got {gt.tolist()}")
    return gt


def anchor_explorer_view(preset: str | SSDConfig = "ssd512_voc", level: int = 0, row: int = 0, col: int = 0,
                         ratios: str | Sequence[float] | None = None, scale: float = 1.0, *,
                         image: Tensor | None = None,
                         gt_box_xyxy: Sequence[float] | Tensor | None = None) -> tuple[Figure, list[dict]]:  # fmt: skip
    """The anchors at cell (``row``, ``col``) of ``level``, drawn over the image with the level's grid.

    Args:
        preset: preset name (``"ssd512_voc"`` …) or an SSDConfig.
        level, row, col: the location; row i runs over y, column j over x.
        ratios: aspect ratios of this level (text ``"2, 3"`` or numbers); ``None`` keeps the preset's.
        scale: factor on every box size (1 = the preset's sizes).
        image (Tensor[3, S, S]): drawn under the anchors; default a blank canvas.
        gt_box_xyxy: a ground-truth box (x1, y1, x2, y2) in pixels; the table gives each anchor's IoU with it.

    Returns:
        ``(figure, rows)``: one row per anchor of the location, in anchor order, with keys ``k`` (0 …),
        ``index`` (position in ``default_boxes`` of the edited config), ``shape``, ``cx``, ``cy``, ``w``, ``h``
        (pixels), ``iou`` (None without a gt box) and ``fits`` (1 px <= w, h <= image side).

    Raises:
        ValueError: bad level/row/col, ratios <= 0, scale <= 0, or a scale with which no box of the
        location fits in the image.

    Introduced in: 02_anchor_tiling.ipynb
    """
    from torchvision.ops import box_iou

    from ..viz import plot_location_anchors

    cfg = explorer_config(preset, level, ratios, scale)
    size = cfg.image_size
    fm, step = cfg.feature_map_sizes[level], cfg.steps[level]
    for name, value in (("row", row), ("col", col)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < fm:
            raise ValueError(f"{name} must be an int in [0, {fm - 1}] (level {level} is {fm}x{fm}), got {value!r}")
    check_image(image, size)
    gt = _gt_tensor(gt_box_xyxy)

    shapes = level_box_shapes(cfg, level)
    fits = [_box_fits(w, h, size) for w, h in shapes]
    if not any(fits):
        sides = ", ".join(f"{w:.1f}x{h:.1f}" for w, h in shapes)
        raise ValueError(f"with scale {scale:g} no box of level {level} fits in the {size}x{size} image "
                         f"(boxes {sides} px; each side must be between 1 and {size} px): choose a "
                         f"{'smaller' if shapes[0][0] > size else 'larger'} scale")  # fmt: skip
    cx, cy = (col + 0.5) * step, (row + 0.5) * step  # SSD paper, section 2.2: centre of cell (i, j)
    boxes_cxcywh = torch.tensor([[cx, cy, w, h] for w, h in shapes], dtype=torch.float32)  # [k, 4]
    boxes_xyxy = cxcywh_to_xyxy(boxes_cxcywh)  # [k, 4]
    ious = box_iou(boxes_xyxy, gt[None])[:, 0].tolist() if gt is not None else [None] * len(shapes)
    first = sum(cfg.anchors_per_level[:level]) + (row * fm + col) * len(shapes)
    rows = [
        {"k": k, "index": first + k, "shape": label, "cx": cx, "cy": cy, "w": w, "h": h, "iou": iou, "fits": fit}
        for k, (label, (w, h), iou, fit) in enumerate(zip(anchor_shape_labels(cfg, level), shapes, ious, fits))
    ]

    title = (f"{cfg.name} level {level} ({fm}x{fm} cells, step {step:g} px)\n"
             f"anchors {first}…{first + len(shapes) - 1} of {cfg.num_anchors}")  # fmt: skip
    fig = plot_location_anchors(cfg, level, row, col, boxes_xyxy, [f"k={r['k']} {r['shape']}" for r in rows],
                                fits, image=image, gt_box_xyxy=gt, title=title)  # fmt: skip
    return fig, rows


def sample_shapes_image(image_size: int, seed: int = 0, index: int = 0) -> tuple[Tensor, Tensor | None]:
    """Image ``index`` of ``ShapesDataset(seed=seed, image_size=image_size)`` and its largest box (xyxy px, or None).

    Introduced in: 02_anchor_tiling.ipynb
    """
    from ..data import ShapesDataset

    image, target = ShapesDataset(index + 1, image_size=image_size, seed=seed)[index]
    boxes = target["boxes"]  # [M, 4]
    if len(boxes) == 0:
        return image, None
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # [M]
    return image, boxes[int(areas.argmax())]


EXPLORER_COLUMNS = (("k", "k", ""), ("index", "flat index", ""), ("shape", "shape", ""), ("w", "w (px)", ".1f"),
                    ("h", "h (px)", ".1f"), ("iou", "IoU with gt", ".3f"), ("fits", "fits image", ""))  # fmt: skip
def _ratios_text(ratios: Sequence[float]) -> str:
    return ", ".join(f"{r:g}" for r in ratios)


def anchor_explorer_widget(preset: str = "ssd512_voc", level: int = 0, row: int = 0, col: int = 0, *, seed: int = 0,
                           index: int = 0) -> Any:  # fmt: skip
    """Sliders for preset, level, row, column, aspect ratios and scale over :func:`anchor_explorer_view`.

    The image is ``sample_shapes_image(cfg.image_size, seed, index)`` and its largest box is the ground truth.
    Returns an ``ipywidgets.VBox`` with ``.controls`` (name -> control), ``.state`` (last ``figure``, ``rows``,
    ``error``) and ``.output``, the :func:`~ssd_tutorial.widgets.common.figure_area` (CSS class
    ``ssd-anchor-explorer``) showing the figure, the table (class ``ssd-anchor-table``) or a message
    (``ssd-widget-error``).

    Introduced in: 02_anchor_tiling.ipynb
    """
    import ipywidgets as widgets

    cfg = get_config(preset)  # a preset name: the dropdown lists presets
    check_level(cfg, level)
    fm = cfg.feature_map_sizes[level]
    if not (0 <= row < fm and 0 <= col < fm):
        raise ValueError(f"row and col must be in [0, {fm - 1}] at level {level}, got row={row}, col={col}")
    images: dict[str, tuple[Tensor, Tensor | None]] = {}
    style = {"description_width": "90px"}
    cells = slider_tooltip("one cell")

    def int_slider(value: int, high: int, description: str, tooltip: str) -> Any:
        return widgets.IntSlider(value, 0, high, description=description, continuous_update=False, style=style,
                                 tooltip=tooltip)  # fmt: skip

    controls = {
        "preset": widgets.Dropdown(options=sorted(PRESETS), value=cfg.name, description="preset", style=style),
        "level": int_slider(level, cfg.num_levels - 1, "level", slider_tooltip("one level")),
        "row": int_slider(row, fm - 1, "row i (y)", cells),
        "col": int_slider(col, fm - 1, "col j (x)", cells),
        "ratios": widgets.Text(_ratios_text(cfg.aspect_ratios[level]), description="ratios",
                               continuous_update=False, placeholder="e.g. 2, 3 (Enter to apply)",
                               style=style),  # fmt: skip
        "scale": widgets.FloatSlider(1.0, min=0.05, max=3.0, step=0.05, description="box scale",
                                     continuous_update=False, readout_format=".2f", style=style,
                                     tooltip=slider_tooltip("0.05")),  # fmt: skip
    }
    out = figure_area(EXPLORER_CLASS)
    state: dict[str, Any] = {"figure": None, "rows": None, "error": None, "busy": False}

    def image_for(name: str) -> tuple[Tensor, Tensor | None]:
        if name not in images:
            images[name] = sample_shapes_image(get_config(name).image_size, seed, index)
        return images[name]

    def render(*_: Any) -> None:
        if state["busy"]:
            return
        name, level = controls["preset"].value, controls["level"].value
        row, col = controls["row"].value, controls["col"].value
        image, gt = image_for(name)

        def make() -> tuple[Figure, list[dict]]:
            return anchor_explorer_view(name, level, row, col, controls["ratios"].value, controls["scale"].value,
                                        image=image, gt_box_xyxy=gt)  # fmt: skip

        def table(rows: list[dict]) -> str:
            fm = get_config(name).feature_map_sizes[level]
            caption = (f"level {level}: {fm}x{fm} cells x {len(rows)} anchors = {fm * fm * len(rows)} anchors; "
                       f"location (row {row}, col {col}), centre ({rows[0]['cx']:.1f}, {rows[0]['cy']:.1f}) px")
            return rows_to_html(rows, EXPLORER_COLUMNS, EXPLORER_TABLE_CLASS, caption)

        redraw(out, state, make, table)

    def on_structure(change: dict) -> None:
        """Preset or level changed: fit the slider ranges and reset the ratios to the preset's, then draw once."""
        current = get_config(controls["preset"].value)
        outer = state["busy"]  # changing a slider's max may clamp its value and call this again
        state["busy"] = True
        try:
            controls["level"].max = current.num_levels - 1
            level = controls["level"].value
            fm = current.feature_map_sizes[level]
            for name in ("row", "col"):
                controls[name].value = min(controls[name].value, fm - 1)
                controls[name].max = fm - 1
            controls["ratios"].value = _ratios_text(current.aspect_ratios[level])
        finally:
            state["busy"] = outer
        render()

    controls["preset"].observe(on_structure, names="value")
    controls["level"].observe(on_structure, names="value")
    for name in ("row", "col", "ratios", "scale"):
        controls[name].observe(render, names="value")
    top = control_columns([controls["preset"], controls["level"], controls["row"]],
                          [controls["col"], controls["ratios"], controls["scale"]])
    box = widget_box([top, out], title="Anchor explorer")
    box.controls, box.state, box.output = controls, state, out
    render()
    return box
