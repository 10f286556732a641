"""Widgets of 02_anchor_tiling.ipynb: the anchor explorer and the positive-anchors view.

The pictures and tables come from plain functions (:func:`anchor_explorer_view`,
:func:`positive_anchors_view`) that take numbers and return ``(Figure, rows)``; the ``*_widget``
builders only wire ipywidgets controls to them and show a message, not a traceback, for settings that
make no sense (an aspect ratio <= 0, a scale that makes no box fit the image).

Introduced in: 02_anchor_tiling.ipynb
"""

from __future__ import annotations

import functools
import html
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..anchors import default_boxes, level_box_shapes
from ..boxes import cxcywh_to_xyxy
from ..config import PRESETS, SSDConfig, get_config

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "parse_aspect_ratios",
    "explorer_config",
    "anchor_shape_labels",
    "anchor_explorer_view",
    "positive_anchors_view",
    "sample_shapes_image",
    "rows_to_html",
    "anchor_explorer_widget",
    "positive_anchors_widget",
]

EXPLORER_CLASS = "ssd-anchor-explorer"
EXPLORER_TABLE_CLASS = "ssd-anchor-table"
POSITIVES_CLASS = "ssd-positive-anchors"
POSITIVES_TABLE_CLASS = "ssd-positive-table"
ERROR_CLASS = "ssd-widget-error"


def _resolve(preset: str | SSDConfig) -> SSDConfig:
    if isinstance(preset, SSDConfig):
        return preset
    if isinstance(preset, str):
        return get_config(preset)
    raise TypeError(f"preset must be a preset name or an SSDConfig, got {type(preset).__name__}")


def _check_level(cfg: SSDConfig, level: int) -> None:
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < cfg.num_levels:
        raise ValueError(f"level must be an int in [0, {cfg.num_levels - 1}] for {cfg.name}, got {level!r}")


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
    cfg = _resolve(preset)
    _check_level(cfg, level)
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
    _check_level(cfg, level)
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


def _check_image(image: Tensor | None, size: int) -> None:
    if image is not None and (not isinstance(image, Tensor) or tuple(image.shape[-2:]) != (size, size)):
        got = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be [3, {size}, {size}] for this preset, got {got}")


def _canvas(ax: Any, image: Tensor | None, size: int) -> None:
    from ..viz import show_image

    show_image(ax, image if image is not None else torch.full((3, size, size), 0.92))
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")


def _draw_gt(ax: Any, gt_xyxy: Tensor) -> None:
    """The ground-truth box as a dashed line on a white one, visible on any background."""
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = gt_xyxy.tolist()
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="white", linewidth=4.0))
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="black", linewidth=2.0,
                           linestyle="--", label="ground truth"))  # fmt: skip


def _fit_view(ax: Any, size: int, boxes_xyxy: Tensor) -> None:
    """Axes limits: the whole image plus every box, a small margin, origin top-left."""
    lo = min(0.0, float(boxes_xyxy[:, :2].min())) if len(boxes_xyxy) else 0.0
    hi = max(float(size), float(boxes_xyxy[:, 2:].max())) if len(boxes_xyxy) else float(size)
    margin = 0.02 * (hi - lo)
    ax.set_xlim(lo - margin, hi + margin)
    ax.set_ylim(hi + margin, lo - margin)
    ax.set_aspect("equal")


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
    from matplotlib.patches import Rectangle
    from torchvision.ops import box_iou

    from ..viz import draw_level_grid, new_figure, palette_color

    cfg = explorer_config(preset, level, ratios, scale)
    size = cfg.image_size
    fm, step = cfg.feature_map_sizes[level], cfg.steps[level]
    for name, value in (("row", row), ("col", col)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < fm:
            raise ValueError(f"{name} must be an int in [0, {fm - 1}] (level {level} is {fm}x{fm}), got {value!r}")
    _check_image(image, size)
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

    fig = new_figure((6.4, 5.6))
    ax = fig.add_subplot()
    _canvas(ax, image, size)
    draw_level_grid(ax, cfg, level, color="white", centers=fm <= 16)
    ax.add_patch(Rectangle((col * step, row * step), step, step, facecolor="yellow", alpha=0.45, edgecolor="black",
                           linewidth=1.0, label=f"cell (row {row}, col {col})"))  # fmt: skip
    ax.plot([cx], [cy], marker="+", color="black", markersize=10, markeredgewidth=2)
    for r, (x1, y1, x2, y2) in zip(rows, boxes_xyxy.tolist()):
        iou_text = "" if r["iou"] is None else f", IoU {r['iou']:.2f}"
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=palette_color(r["k"]), linewidth=2.0,
                               linestyle="-" if r["fits"] else ":",
                               label=f"k={r['k']} {r['shape']}: {r['w']:.0f}x{r['h']:.0f}{iou_text}"))  # fmt: skip
    if gt is not None:
        _draw_gt(ax, gt)
    everything = torch.cat([boxes_xyxy, gt[None]]) if gt is not None else boxes_xyxy
    _fit_view(ax, size, everything)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.set_title(f"{cfg.name} level {level} ({fm}x{fm} cells, step {step:g} px)\n"
                 f"anchors {first}…{first + len(shapes) - 1} of {cfg.num_anchors}", fontsize=10)  # fmt: skip
    return fig, rows


@functools.lru_cache(maxsize=8)
def _anchors_xyxy(cfg: SSDConfig) -> Tensor:
    return cxcywh_to_xyxy(default_boxes(cfg))  # [A, 4]


def positive_anchors_view(preset: str | SSDConfig = "ssd512_voc", cx: float = 256.0, cy: float = 256.0,
                          w: float = 128.0, h: float = 128.0, level: int | None = None, threshold: float = 0.5, *,
                          image: Tensor | None = None) -> tuple[Figure, list[dict]]:  # fmt: skip
    """Which anchors of ``preset`` overlap the box (cx, cy, w, h) with IoU >= ``threshold``.

    Draws the box, the anchors at or above the threshold (of ``level`` only, or of every level when
    ``level`` is None) coloured by level, the single best anchor in bold, and a bar chart of the counts.

    Returns:
        ``(figure, rows)``: one row per level with keys ``level``, ``feature_map``, ``anchors`` (of that
        level), ``positives`` (IoU >= threshold), ``best_iou`` and ``best_index`` (position in
        ``default_boxes(cfg)`` of the level's best anchor).

    Raises:
        ValueError: w or h <= 0, threshold outside (0, 1], bad level.

    Introduced in: 02_anchor_tiling.ipynb
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator
    from torchvision.ops import box_iou

    from ..viz import new_figure, palette_color

    cfg = _resolve(preset)
    if level is not None:
        _check_level(cfg, level)
    values = (cx, cy, w, h)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ValueError(f"cx, cy, w, h must be finite numbers in pixels, got {values}")
    if w <= 0 or h <= 0:
        raise ValueError(f"the box needs w > 0 and h > 0 pixels, got w={w:g}, h={h:g}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be an IoU in (0, 1], got {threshold!r}")
    _check_image(image, cfg.image_size)

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
    best_index = int(ious.argmax())

    fig = new_figure((11.0, 4.8))
    grid = fig.add_gridspec(1, 3)
    ax = fig.add_subplot(grid[0, :2])
    _canvas(ax, image, cfg.image_size)
    shown = [r for r in rows if level is None or r["level"] == level]
    start_of = [sum(cfg.anchors_per_level[:k]) for k in range(cfg.num_levels)]
    for r in shown:
        k = r["level"]
        if r["positives"] == 0:
            continue
        level_slice = slice(start_of[k], start_of[k] + r["anchors"])
        selected = anchors[level_slice][ious[level_slice] >= threshold]  # [P_k, 4]
        x1, y1, x2, y2 = selected.unbind(-1)
        corners = torch.stack([x1, y1, x2, y1, x2, y2, x1, y2], dim=-1).reshape(-1, 4, 2)  # [P_k, 4, 2]
        ax.add_collection(PolyCollection(corners.numpy(), facecolors="none", edgecolors=[palette_color(k)],
                                         linewidths=1.0, label=f"level {k}: {r['positives']}"))  # fmt: skip
    bx1, by1, bx2, by2 = anchors[best_index].tolist()
    ax.add_patch(Rectangle((bx1, by1), bx2 - bx1, by2 - by1, fill=False, edgecolor="black", linewidth=2.5,
                           label=f"best anchor #{best_index}, IoU {float(ious[best_index]):.2f}"))  # fmt: skip
    _draw_gt(ax, gt[0])
    ax.set_xlim(0, cfg.image_size)
    ax.set_ylim(cfg.image_size, 0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    total = sum(r["positives"] for r in shown)
    which = "all levels" if level is None else f"level {level}"
    ax.set_title(f"{cfg.name}: {total} anchors ({which}) with IoU >= {threshold:g}", fontsize=10)

    bars_ax = fig.add_subplot(grid[0, 2])
    bars = bars_ax.bar([r["level"] for r in rows], [r["positives"] for r in rows],
                       color=[palette_color(r["level"]) for r in rows])  # fmt: skip
    bars_ax.bar_label(bars, fontsize=8)
    bars_ax.set_xticks([r["level"] for r in rows])
    bars_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    bars_ax.set_xlabel("level k")
    bars_ax.set_ylabel(f"anchors with IoU >= {threshold:g}")
    bars_ax.set_title("positives per level", fontsize=10)
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


def rows_to_html(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]], css_class: str,
                 caption: str = "") -> str:  # fmt: skip
    """An HTML table of ``rows``: ``columns`` are (key, header, format spec such as ``".1f"``); None shows "—".

    Introduced in: 02_anchor_tiling.ipynb
    """

    def cell(value: Any, spec: str) -> str:
        if value is None:
            return "—"
        return html.escape(format(value, spec) if spec else str(value))

    head = "".join(f"<th>{html.escape(header)}</th>" for _, header, _ in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(row.get(key), spec)}</td>" for key, _, spec in columns) + "</tr>"
                   for row in rows)  # fmt: skip
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="{html.escape(css_class)}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


EXPLORER_COLUMNS = (("k", "k", ""), ("index", "flat index", ""), ("shape", "shape", ""), ("w", "w (px)", ".1f"),
                    ("h", "h (px)", ".1f"), ("iou", "IoU with gt", ".3f"), ("fits", "fits image", ""))  # fmt: skip
POSITIVES_COLUMNS = (("level", "level", ""), ("feature_map", "map", ""), ("anchors", "anchors", ""),
                     ("positives", "IoU ≥ thr", ""), ("best_iou", "best IoU", ".3f"),
                     ("best_index", "best anchor", ""))  # fmt: skip


def _error_html(error: Exception) -> str:
    return f'<div class="{ERROR_CLASS}" style="color:#b00020">⚠ {html.escape(str(error))}</div>'


def _figure_bytes(fig: Figure) -> bytes:
    """The figure as JPEG bytes (the noisy shapes images compress badly as PNG)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=90, bbox_inches="tight", pil_kwargs={"quality": 85})
    return buffer.getvalue()


def _view_area(css_class: str) -> Any:
    """A VBox(Image, HTML) carrying ``css_class``: the picture and the table (or an error message).

    Plain Image/HTML widgets instead of an ``ipywidgets.Output``: updating them needs no output capture, which
    keeps headless runs (nbclient/papermill) from stalling on Output-widget messages.
    """
    import ipywidgets as widgets

    area = widgets.VBox([widgets.Image(format="jpeg"), widgets.HTML()])
    area.add_class(css_class)
    return area


def _show(area: Any, state: dict, make: Any, table: Any) -> None:
    """Run ``make()`` -> (fig, rows); show the figure and ``table(rows)`` in ``area``, or the error message."""
    image, text = area.children
    try:
        fig, rows = make()
    except (ValueError, TypeError) as error:
        state.update(figure=None, rows=None, error=str(error))
        image.layout.display = "none"
        text.value = _error_html(error)
        return
    state.update(figure=fig, rows=rows, error=None)  # the previous Figure is dropped here (not in pyplot: no leak)
    image.value = _figure_bytes(fig)
    image.layout.display = None
    text.value = table(rows)


def anchor_explorer_widget(preset: str = "ssd512_voc", level: int = 0, row: int = 0, col: int = 0, *, seed: int = 0,
                           index: int = 0) -> Any:  # fmt: skip
    """Sliders for preset, level, row, column, aspect ratios and scale over :func:`anchor_explorer_view`.

    The image is ``sample_shapes_image(cfg.image_size, seed, index)`` and its largest box is the ground truth.
    Returns an ``ipywidgets.VBox`` with ``.controls`` (name -> control), ``.state`` (last ``figure``, ``rows``,
    ``error``) and ``.output``, the VBox(Image, HTML) that shows them: CSS class ``ssd-anchor-explorer``; the
    table inside has class ``ssd-anchor-table``, an error message ``ssd-widget-error``.

    Introduced in: 02_anchor_tiling.ipynb
    """
    import ipywidgets as widgets

    cfg = get_config(preset)  # a preset name: the dropdown lists presets
    _check_level(cfg, level)
    fm = cfg.feature_map_sizes[level]
    if not (0 <= row < fm and 0 <= col < fm):
        raise ValueError(f"row and col must be in [0, {fm - 1}] at level {level}, got row={row}, col={col}")
    images: dict[str, tuple[Tensor, Tensor | None]] = {}
    style = {"description_width": "90px"}
    controls = {
        "preset": widgets.Dropdown(options=sorted(PRESETS), value=cfg.name, description="preset", style=style),
        "level": widgets.IntSlider(level, 0, cfg.num_levels - 1, description="level", continuous_update=False,
                                   style=style),  # fmt: skip
        "row": widgets.IntSlider(row, 0, fm - 1, description="row i (y)", continuous_update=False, style=style),
        "col": widgets.IntSlider(col, 0, fm - 1, description="col j (x)", continuous_update=False, style=style),
        "ratios": widgets.Text(_ratios_text(cfg.aspect_ratios[level]), description="ratios",
                               continuous_update=False, placeholder="e.g. 2, 3 (Enter to apply)",
                               style=style),  # fmt: skip
        "scale": widgets.FloatSlider(1.0, min=0.01, max=3.0, step=0.01, description="box scale",
                                     continuous_update=False, readout_format=".2f", style=style),  # fmt: skip
    }
    out = _view_area(EXPLORER_CLASS)
    state: dict[str, Any] = {"figure": None, "rows": None, "error": None, "busy": False}

    def image_for(name: str) -> tuple[Tensor, Tensor | None]:
        if name not in images:
            images[name] = sample_shapes_image(get_config(name).image_size, seed, index)
        return images[name]

    def render(*_: Any) -> None:
        if state["busy"]:
            return
        name = controls["preset"].value
        image, gt = image_for(name)
        level = controls["level"].value

        def make() -> tuple[Figure, list[dict]]:
            return anchor_explorer_view(name, level, controls["row"].value, controls["col"].value,
                                        controls["ratios"].value, controls["scale"].value, image=image,
                                        gt_box_xyxy=gt)  # fmt: skip

        def table(rows: list[dict]) -> str:
            current = get_config(name)
            fm = current.feature_map_sizes[level]
            caption = (f"level {level}: {fm}x{fm} cells x {len(rows)} anchors = {fm * fm * len(rows)} anchors; "
                       f"location (row {controls['row'].value}, col {controls['col'].value}), "
                       f"centre ({rows[0]['cx']:.1f}, {rows[0]['cy']:.1f}) px")  # fmt: skip
            return rows_to_html(rows, EXPLORER_COLUMNS, EXPLORER_TABLE_CLASS, caption)

        _show(out, state, make, table)

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
    box = widgets.VBox([widgets.HBox([widgets.VBox([controls["preset"], controls["level"], controls["row"]]),
                                      widgets.VBox([controls["col"], controls["ratios"], controls["scale"]])]),
                        out])  # fmt: skip
    box.controls, box.state, box.output = controls, state, out
    render()
    return box


def _ratios_text(ratios: Sequence[float]) -> str:
    return ", ".join(f"{r:g}" for r in ratios)


def positive_anchors_widget(preset: str = "ssd512_voc", *, seed: int = 0, index: int = 0,
                            box_cxcywh: Sequence[float] | None = None) -> Any:  # fmt: skip
    """Sliders for a ground-truth box (cx, cy, w, h), a level (or all) and the IoU threshold over
    :func:`positive_anchors_view`. Output CSS class ``ssd-positive-anchors``, table ``ssd-positive-table``.

    Returns an ``ipywidgets.VBox`` with ``.controls`` and ``.state`` like :func:`anchor_explorer_widget`.

    Introduced in: 02_anchor_tiling.ipynb
    """
    import ipywidgets as widgets

    cfg = _resolve(preset)
    size = cfg.image_size
    image, gt = sample_shapes_image(size, seed, index)
    if box_cxcywh is None:
        if gt is not None:
            x1, y1, x2, y2 = gt.tolist()
            box_cxcywh = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
        else:
            box_cxcywh = (size / 2, size / 2, size / 4, size / 4)
    style = {"description_width": "90px"}

    def slider(description: str, value: float, low: float) -> Any:
        return widgets.FloatSlider(float(value), min=low, max=float(size), step=1.0, description=description,
                                   continuous_update=False, readout_format=".0f", style=style)  # fmt: skip

    controls = {
        "cx": slider("centre x", box_cxcywh[0], 0.0),
        "cy": slider("centre y", box_cxcywh[1], 0.0),
        "w": slider("width", box_cxcywh[2], 1.0),
        "h": slider("height", box_cxcywh[3], 1.0),
        "level": widgets.Dropdown(options=[("all", None)] + [(str(k), k) for k in range(cfg.num_levels)],
                                  value=None, description="level", style=style),  # fmt: skip
        "threshold": widgets.FloatSlider(cfg.iou_threshold, min=0.05, max=1.0, step=0.05, description="IoU ≥",
                                         continuous_update=False, readout_format=".2f", style=style),  # fmt: skip
    }
    out = _view_area(POSITIVES_CLASS)
    state: dict[str, Any] = {"figure": None, "rows": None, "error": None}

    def render(*_: Any) -> None:
        values = {name: control.value for name, control in controls.items()}

        def make() -> tuple[Figure, list[dict]]:
            return positive_anchors_view(cfg, values["cx"], values["cy"], values["w"], values["h"], values["level"],
                                         values["threshold"], image=image)  # fmt: skip

        def table(rows: list[dict]) -> str:
            total = sum(r["positives"] for r in rows)
            caption = f"{total} of {cfg.num_anchors} anchors have IoU ≥ {values['threshold']:.2f}"
            return rows_to_html(rows, POSITIVES_COLUMNS, POSITIVES_TABLE_CLASS, caption)

        _show(out, state, make, table)

    for control in controls.values():
        control.observe(render, names="value")
    box = widgets.VBox([widgets.HBox([widgets.VBox([controls["cx"], controls["cy"], controls["w"]]),
                                      widgets.VBox([controls["h"], controls["level"], controls["threshold"]])]),
                        out])  # fmt: skip
    box.controls, box.state, box.output = controls, state, out
    render()
    return box
