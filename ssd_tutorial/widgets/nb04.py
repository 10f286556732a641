"""Helpers and widgets of 04_forward_pass.ipynb: one anchor's prediction, the box coding picture, an explorer.

The plain functions (``anchor_index``, ``anchor_prediction``, ``anchor_prediction_view``, ``box_coding_view``)
hold the logic and are tested with pytest; ``anchor_prediction_explorer`` only wires sliders to them.

Introduced in: 04_forward_pass.ipynb
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..boxes import cxcywh_to_xyxy, decode_boxes, encode_boxes
from ..config import SSDConfig
from .common import figure_area, pairs_to_html, redraw, slider_tooltip, widget_box

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "anchor_index",
    "anchor_location",
    "anchor_prediction",
    "anchor_prediction_view",
    "anchor_prediction_explorer",
    "box_coding_view",
]


def _check_int(name: str, value: Any, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < high:
        raise ValueError(f"{name} must be an int in [0, {high - 1}], got {value!r}")


def anchor_index(cfg: SSDConfig, level: int, row: int, col: int, k: int) -> int:
    """Position of anchor (level, row i, column j, shape k) in ``default_boxes(cfg)`` and in the flattened
    head outputs: the anchors of the levels before, then ``(row * fm + col) * anchors_per_location + k``.

    Raises ValueError naming the valid range when an index is out of it.

    Introduced in: 04_forward_pass.ipynb
    """
    _check_int("level", level, cfg.num_levels)
    fm, per_location = cfg.feature_map_sizes[level], cfg.anchors_per_location[level]
    _check_int(f"row (level {level} is {fm}x{fm})", row, fm)
    _check_int(f"col (level {level} is {fm}x{fm})", col, fm)
    _check_int(f"k (level {level} has {per_location} anchors per location)", k, per_location)
    return sum(cfg.anchors_per_level[:level]) + (row * fm + col) * per_location + k


def anchor_location(cfg: SSDConfig, index: int) -> tuple[int, int, int, int]:
    """Inverse of :func:`anchor_index`: ``(level, row, col, k)`` of anchor ``index``.

    Introduced in: 04_forward_pass.ipynb
    """
    _check_int("index", index, cfg.num_anchors)
    rest = index
    for level, count in enumerate(cfg.anchors_per_level):
        if rest < count:
            fm, per_location = cfg.feature_map_sizes[level], cfg.anchors_per_location[level]
            cell, k = divmod(rest, per_location)
            row, col = divmod(cell, fm)
            return level, row, col, k
        rest -= count
    raise AssertionError("unreachable: index was checked against num_anchors")


def _squeeze_batch(name: str, value: Tensor, last: int) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim == 3 and value.shape[0] == 1:
        value = value[0]  # [A, last]
    if value.ndim != 2 or value.shape[-1] != last:
        raise ValueError(f"{name} must be [A, {last}] (or [1, A, {last}]), got {list(value.shape)}")
    return value


def anchor_prediction(loc_preds: Tensor, cls_logits: Tensor, anchors_cxcywh: Tensor, cfg: SSDConfig,
                      index: int) -> dict[str, Tensor]:  # fmt: skip
    """What the heads say about anchor ``index`` of one image.

    Args:
        loc_preds: Tensor[A, 4] (or [1, A, 4]) offsets; cls_logits: Tensor[A, C] (or [1, A, C]).
        anchors_cxcywh: Tensor[A, 4] default boxes in pixels.

    Returns:
        ``{"anchor_cxcywh" [4], "deltas" [4], "box_cxcywh" [4], "box_xyxy" [4] (not clipped),
        "probs" [C]}`` — the box is ``decode_boxes(deltas, anchor, cfg.variances)``, probs the softmax.

    Introduced in: 04_forward_pass.ipynb
    """
    loc = _squeeze_batch("loc_preds", loc_preds, 4)
    logits = _squeeze_batch("cls_logits", cls_logits, cfg.num_classes)
    if loc.shape[0] != cfg.num_anchors or logits.shape[0] != cfg.num_anchors or anchors_cxcywh.shape[0] != \
            cfg.num_anchors:  # fmt: skip
        raise ValueError(f"loc_preds, cls_logits and anchors must have A = cfg.num_anchors = {cfg.num_anchors} rows, "
                         f"got {loc.shape[0]}, {logits.shape[0]}, {anchors_cxcywh.shape[0]}")  # fmt: skip
    _check_int("index", index, cfg.num_anchors)
    anchor = anchors_cxcywh[index].detach()
    deltas = loc[index].detach()
    box = decode_boxes(deltas, anchor, cfg.variances)
    return {
        "anchor_cxcywh": anchor,
        "deltas": deltas,
        "box_cxcywh": box,
        "box_xyxy": cxcywh_to_xyxy(box),
        "probs": logits[index].detach().float().softmax(dim=-1),
    }


def _fmt(values: Tensor | Sequence[float], digits: int = 1) -> str:
    numbers = values.tolist() if isinstance(values, Tensor) else list(values)
    return "(" + ", ".join(f"{v:.{digits}f}" for v in numbers) + ")"


def anchor_prediction_view(image: Tensor, loc_preds: Tensor, cls_logits: Tensor, anchors_cxcywh: Tensor,
                           cfg: SSDConfig, level: int, row: int, col: int,
                           k: int) -> tuple[Figure, list[tuple[str, str]]]:  # fmt: skip
    """Anchor (level, row, col, k), its predicted offsets turned into a box, and its class probabilities.

    Left: the image (pixel coordinates, origin top-left) with the anchor (dashed), the decoded box (solid)
    and an arrow from the anchor's centre to the box's. Right: the softmax over the C classes.

    Returns (Figure, rows): rows are (quantity, value) strings. Raises ValueError for an index out of range.

    Introduced in: 04_forward_pass.ipynb
    """
    from .. import viz

    index = anchor_index(cfg, level, row, col, k)
    pred = anchor_prediction(loc_preds, cls_logits, anchors_cxcywh, cfg, index)
    anchor, box, probs = pred["anchor_cxcywh"].cpu(), pred["box_cxcywh"].cpu(), pred["probs"].cpu()
    best = int(probs.argmax())
    names = list(cfg.class_names)

    fig = viz.new_figure((9.0, 3.3))
    grid = fig.add_gridspec(1, 2, width_ratios=(1.3, 1.0))
    ax = fig.add_subplot(grid[0])
    viz.show_image(ax, image)
    viz.draw_boxes(ax, cxcywh_to_xyxy(anchor)[None], color="white")
    ax.patches[-1].set_linestyle("--")
    viz.draw_boxes(ax, cxcywh_to_xyxy(box)[None], labels=[best], scores=[float(probs[best])], class_names=names)
    ax.annotate("", xy=(float(box[0]), float(box[1])), xytext=(float(anchor[0]), float(anchor[1])),
                arrowprops={"arrowstyle": "->", "color": "yellow", "linewidth": 1.5})  # fmt: skip
    ax.plot([float(anchor[0])], [float(anchor[1])], marker="o", color="white", markersize=4, label="anchor (dashed)")
    ax.plot([float(box[0])], [float(box[1])], marker="x", color="yellow", markersize=6, label="predicted box centre")
    S = cfg.image_size
    ax.set_xlim(min(0.0, float(box[0] - box[2] / 2)) - 2, max(S, float(box[0] + box[2] / 2)) + 2)
    ax.set_ylim(max(S, float(box[1] + box[3] / 2)) + 2, min(0.0, float(box[1] - box[3] / 2)) - 2)
    ax.legend(loc="lower left", fontsize=7)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.set_title(f"anchor #{index}: level {level}, row {row}, col {col}, k {k}", fontsize=9)

    ax = fig.add_subplot(grid[1])
    bars = ax.bar(range(len(names)), probs.tolist(), color=[viz.palette_color(c) for c in range(len(names))])
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(names)), [n.strip("_") for n in names], rotation=45 if len(names) > 6 else 0,
                  fontsize=7)  # fmt: skip
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("probability (softmax)")
    ax.set_xlabel("class")
    ax.set_title("class scores of this anchor", fontsize=9)

    v_center, v_size = cfg.variances
    deltas = pred["deltas"].cpu()
    rows = [
        ("anchor index", str(index)),
        ("anchor (cx, cy, w, h) px", _fmt(anchor)),
        ("offsets (tx, ty, tw, th)", _fmt(deltas, 3)),
        ("centre shift (dx, dy) px", _fmt(deltas[:2] * v_center * anchor[2:])),
        ("size factors (w, h)", _fmt(torch.exp(deltas[2:] * v_size), 3)),
        ("box (cx, cy, w, h) px", _fmt(box)),
        ("box (x1, y1, x2, y2) px", _fmt(pred["box_xyxy"].cpu())),
        ("best class", f"{names[best]} ({float(probs[best]):.3f})"),
    ]
    if len(names) > 1:
        best_object = 1 + int(probs[1:].argmax())
        rows.append(("best object class", f"{names[best_object]} ({float(probs[best_object]):.3f})"))
    return fig, rows


def box_coding_view(anchor_cxcywh: Tensor, gt_cxcywh: Tensor, variances: tuple[float, float],
                    image: Tensor | None = None) -> tuple[Figure, list[tuple[str, str]]]:  # fmt: skip
    """One anchor and one ground-truth box, with the four numbers that encode the box relative to the anchor.

    ``t = ((gx - ax) / (aw v0), (gy - ay) / (ah v0), log(gw / aw) / v1, log(gh / ah) / v1)`` (SSD paper,
    eq. 2, with the variances of the reference code). Drawn in pixel coordinates, origin top-left, over
    ``image`` if given.

    Returns (Figure, rows): rows show each step of the encoding as (quantity, value) strings.

    Introduced in: 04_forward_pass.ipynb
    """
    from matplotlib.patches import Rectangle

    from .. import viz

    anchor = torch.as_tensor(anchor_cxcywh, dtype=torch.float64).reshape(-1)
    gt = torch.as_tensor(gt_cxcywh, dtype=torch.float64).reshape(-1)
    if anchor.numel() != 4 or gt.numel() != 4:
        raise ValueError(f"anchor_cxcywh and gt_cxcywh must hold 4 numbers each, got {anchor.numel()} and {gt.numel()}")
    if not torch.isfinite(torch.cat([anchor, gt])).all() or not (anchor[2:] > 0).all() or not (gt[2:] > 0).all():
        raise ValueError(f"boxes must be finite with widths and heights > 0, got anchor {anchor.tolist()} "
                         f"and box {gt.tolist()}")  # fmt: skip
    v_center, v_size = variances
    t = encode_boxes(gt, anchor, (v_center, v_size))  # [4]
    ax_, ay_, aw, ah = anchor.tolist()
    gx, gy, gw, gh = gt.tolist()

    fig = viz.new_figure((9.0, 4.5))
    grid = fig.add_gridspec(1, 2, width_ratios=(1.2, 1.0))
    ax = fig.add_subplot(grid[0])
    if image is not None:
        viz.show_image(ax, image)
    ax.add_patch(Rectangle((ax_ - aw / 2, ay_ - ah / 2), aw, ah, fill=False, edgecolor="tab:blue", linestyle="--",
                           linewidth=2, label="anchor"))  # fmt: skip
    ax.add_patch(Rectangle((gx - gw / 2, gy - gh / 2), gw, gh, fill=False, edgecolor="tab:red", linewidth=2,
                           label="ground-truth box"))  # fmt: skip
    ax.annotate("", xy=(gx, gy), xytext=(ax_, ay_), arrowprops={"arrowstyle": "->", "color": "black"})
    ax.plot([ax_], [ay_], "o", color="tab:blue", label="anchor centre")
    ax.plot([gx], [gy], "o", color="tab:red", label="box centre")
    left = min(ax_ - aw / 2, gx - gw / 2)
    right = max(ax_ + aw / 2, gx + gw / 2)
    top = min(ay_ - ah / 2, gy - gh / 2)
    bottom = max(ay_ + ah / 2, gy + gh / 2)
    margin = 0.15 * max(right - left, bottom - top)
    ax.set_xlim(left - margin, right + margin)
    ax.set_ylim(bottom + margin, top - margin)  # y grows downwards, as in an image
    ax.set_aspect("equal")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=7)
    ax.set_title("one anchor, one box (pixels)", fontsize=9)

    text_ax = fig.add_subplot(grid[1])
    text_ax.axis("off")
    lines = [
        f"anchor  cx={ax_:g}  cy={ay_:g}  w={aw:g}  h={ah:g}",
        f"box     cx={gx:g}  cy={gy:g}  w={gw:g}  h={gh:g}",
        "",
        f"tx = (gx-ax)/(aw*v0) = {gx - ax_:+.4g}/{aw * v_center:.4g} = {t[0]:+.3f}",
        f"ty = (gy-ay)/(ah*v0) = {gy - ay_:+.4g}/{ah * v_center:.4g} = {t[1]:+.3f}",
        f"tw = log(gw/aw)/v1  = log({gw / aw:.4g})/{v_size:g} = {t[2]:+.3f}",
        f"th = log(gh/ah)/v1  = log({gh / ah:.4g})/{v_size:g} = {t[3]:+.3f}",
        "",
        f"variances (v0, v1) = ({v_center:g}, {v_size:g})",
    ]
    text_ax.text(0.0, 0.5, "\n".join(lines), family="monospace", fontsize=8, va="center", ha="left",
                 transform=text_ax.transAxes)  # fmt: skip
    text_ax.set_title("the four numbers the loc head must predict", fontsize=9)

    rows = [
        ("anchor (cx, cy, w, h) px", _fmt(anchor)),
        ("box (cx, cy, w, h) px", _fmt(gt)),
        ("tx = (gx - ax) / (aw * v0)", f"({gx:g} - {ax_:g}) / ({aw:g} * {v_center:g}) = {t[0]:.4f}"),
        ("ty = (gy - ay) / (ah * v0)", f"({gy:g} - {ay_:g}) / ({ah:g} * {v_center:g}) = {t[1]:.4f}"),
        ("tw = log(gw / aw) / v1", f"log({gw:g} / {aw:g}) / {v_size:g} = {t[2]:.4f}"),
        ("th = log(gh / ah) / v1", f"log({gh:g} / {ah:g}) / {v_size:g} = {t[3]:.4f}"),
    ]
    return fig, rows


def anchor_prediction_explorer(model: nn.Module, image: Tensor) -> Any:
    """A widget: sliders for level, row, col and k of an anchor, drawing :func:`anchor_prediction_view`.

    The model runs once (``forward_heads`` under ``torch.no_grad``); moving a slider only indexes its
    outputs. The row/col/k ranges follow the chosen level; impossible settings show a message inside the
    widget. CSS classes: ``ssd-anchor-prediction-explorer`` (the widget), ``ssd-anchor-prediction-output``
    (figure and table) and ``ssd-anchor-prediction-table`` (the table).

    Introduced in: 04_forward_pass.ipynb
    """
    import ipywidgets as widgets

    cfg = model.cfg
    with torch.no_grad():
        loc_preds, cls_logits = model.forward_heads(image[None].to(model.anchors.device))  # [1, A, 4], [1, A, C]
    anchors = model.anchors

    def slider(name: str, high: int, step: str) -> Any:
        return widgets.IntSlider(value=0, min=0, max=high, description=name, continuous_update=False,
                                 tooltip=slider_tooltip(step))  # fmt: skip

    level_s = slider("level", cfg.num_levels - 1, "one level")
    row_s = slider("row", cfg.feature_map_sizes[0] - 1, "one cell")
    col_s = slider("col", cfg.feature_map_sizes[0] - 1, "one cell")
    k_s = slider("k", cfg.anchors_per_location[0] - 1, "one anchor shape")
    output = figure_area("ssd-anchor-prediction-output", table_beside=False)
    state: dict[str, Any] = {"figure": None, "rows": None, "error": None, "busy": False}

    def render(_: Any = None) -> None:
        if state["busy"]:
            return

        def make() -> tuple[Figure, list[tuple[str, str]]]:
            return anchor_prediction_view(image, loc_preds, cls_logits, anchors, cfg, level_s.value, row_s.value,
                                          col_s.value, k_s.value)  # fmt: skip

        redraw(output, state, make, lambda rows: pairs_to_html(rows, "ssd-anchor-prediction-table"))

    def on_level(change: Any) -> None:
        state["busy"] = True  # the sliders below clamp their values: draw once, at the end
        try:
            level = change["new"]
            row_s.max = col_s.max = cfg.feature_map_sizes[level] - 1
            k_s.max = cfg.anchors_per_location[level] - 1
        finally:
            state["busy"] = False
        render()

    level_s.observe(on_level, names="value")
    for s in (row_s, col_s, k_s):
        s.observe(render, names="value")
    box = widget_box([widgets.HBox([level_s, row_s]), widgets.HBox([col_s, k_s]), output],
                     title="Anchor prediction explorer", css_class="ssd-anchor-prediction-explorer")  # fmt: skip
    box.controls, box.state, box.output = {"level": level_s, "row": row_s, "col": col_s, "k": k_s}, state, output
    render()
    return box
