"""Widgets of 08_your_own_dataset.ipynb: tune box sizes and aspect ratios and watch anchor coverage change.

:func:`coverage_view` does the work (a config, its coverage of a box sample, a figure and a table);
:func:`coverage_widget` only wires a size-scale slider, an aspect-ratio text box and an IoU slider to it.

Introduced in: 08_your_own_dataset.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..config import SSDConfig
from .common import figure_area, redraw, rows_to_html, slider_tooltip, widget_box
from .nb02 import parse_aspect_ratios

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ratios_text", "coverage_config", "coverage_view", "coverage_widget"]

WIDGET_CLASS = "ssd-coverage-widget"
COVERAGE_TABLE_CLASS = "ssd-coverage-table"
COVERAGE_COLUMNS = (("level", "level", ""), ("feature_map", "map", ""), ("step", "step", ".4g"),
                    ("box_size", "s_k (px)", ".1f"), ("ratios", "ratios", ""), ("anchors", "anchors", ""),
                    ("alone", "covered by this level alone", ".3f"),
                    ("best_share", "best anchor here (and covered)", ".3f"))  # fmt: skip


def ratios_text(cfg: SSDConfig) -> str:
    """The aspect ratios of every level as text, levels separated by ``|``: ``"2 | 2, 3 | 2, 3 | 2 | 2"``.

    Introduced in: 08_your_own_dataset.ipynb
    """
    return " | ".join(", ".join(f"{r:g}" for r in ratios) for ratios in cfg.aspect_ratios)


def _per_level_ratios(aspect_ratios: str | Sequence[Any], num_levels: int) -> tuple[tuple[float, ...], ...]:
    if isinstance(aspect_ratios, str):
        groups = aspect_ratios.split("|")
        if len(groups) == 1:
            return tuple(parse_aspect_ratios(groups[0]) for _ in range(num_levels))
        if len(groups) != num_levels:
            raise ValueError(f"give one set of aspect ratios for all levels, or {num_levels} sets separated by '|' "
                             f"(one per level); got {len(groups)} sets in {aspect_ratios!r}")  # fmt: skip
        return tuple(parse_aspect_ratios(g) for g in groups)
    items = list(aspect_ratios)
    if items and all(isinstance(i, Sequence) and not isinstance(i, str) for i in items):
        if len(items) != num_levels:
            raise ValueError(f"per-level aspect ratios need {num_levels} entries, got {len(items)}")
        return tuple(parse_aspect_ratios(i) for i in items)
    return tuple(parse_aspect_ratios(items) for _ in range(num_levels))


def coverage_config(cfg: SSDConfig, *, size_scale: float = 1.0,
                    aspect_ratios: str | Sequence[Any] | None = None) -> SSDConfig:  # fmt: skip
    """``cfg`` with every box size times ``size_scale`` and, unless ``None``, new aspect ratios.

    ``aspect_ratios``: one set for every level (text ``"2, 3"`` or numbers ``[2, 3]``; ``""`` or ``()``
    leaves only the two squares), or one set per level (text separated by ``|`` as :func:`ratios_text`
    writes it, or a sequence of sequences). Raises ValueError for a scale <= 0, a ratio <= 0, text that is
    not a number, or a wrong number of per-level sets (the message says which).

    Introduced in: 08_your_own_dataset.ipynb
    """
    if not isinstance(cfg, SSDConfig):
        raise TypeError(f"cfg must be an SSDConfig, got {type(cfg).__name__}")
    if isinstance(size_scale, bool) or not isinstance(size_scale, (int, float)) or not math.isfinite(size_scale) \
            or size_scale <= 0:  # fmt: skip
        raise ValueError(f"size_scale must be a finite number > 0 (it multiplies every box size), got {size_scale!r}")
    changes: dict[str, Any] = {}
    if size_scale != 1.0:
        changes["box_sizes"] = tuple(round(s * size_scale, 6) for s in cfg.box_sizes)
    if aspect_ratios is not None:
        ratios = _per_level_ratios(aspect_ratios, cfg.num_levels)
        if ratios != cfg.aspect_ratios:
            changes["aspect_ratios"] = ratios
    return cfg.replace(**changes) if changes else cfg


def _anchor_shapes(cfg: SSDConfig) -> Tensor:
    from ..anchors import level_box_shapes

    return torch.tensor([wh for k in range(cfg.num_levels) for wh in level_box_shapes(cfg, k)])  # [sum k_l, 2]


def _draw_coverage_by_size(ax: Any, wh: Tensor, covered: Tensor, cfg: SSDConfig) -> None:
    """Stacked histogram of box sizes sqrt(w h), covered and not, with each level's two square sizes."""
    from ..viz import palette_color

    side = wh.detach().double().prod(dim=1).sqrt().cpu()  # [M]
    flags = covered.cpu()
    lo, hi = math.floor(float(side.min())), math.ceil(float(side.max()))
    width = max(1, math.ceil((hi - lo + 1) / 25))  # whole pixels per bin: integer box sizes fill bins evenly
    edges = torch.arange(lo, hi + width + 1, width, dtype=torch.float64).numpy()
    ax.hist([side[flags].numpy(), side[~flags].numpy()], bins=edges, stacked=True,
            color=[palette_color(2), palette_color(3)], label=["covered", "not covered"])  # fmt: skip
    lines = [(k, size, style) for k in range(cfg.num_levels)
             for size, style in ((cfg.box_sizes[k], "--"), (math.sqrt(cfg.box_sizes[k] * cfg.box_sizes[k + 1]), ":"))]
    # a square just outside the sizes of the data (e.g. s_0 = 12.8 px under 13 px boxes) still tells its story
    lines = [(k, size, style) for k, size, style in lines if edges[0] / 1.25 <= size <= edges[-1] * 1.25]
    for k, size, style in lines:
        ax.axvline(size, color=palette_color(4 + k), linestyle=style, linewidth=1.2)
        ax.text(size, 1.0, f"L{k}", color=palette_color(4 + k), fontsize=7, ha="center", va="bottom",
                transform=ax.get_xaxis_transform())  # fmt: skip
    sizes = [float(edges[0]), float(edges[-1])] + [size for _, size, _ in lines]
    ax.set_xlim(min(sizes) - width, max(sizes) + width)
    ax.set_xlabel("box size sqrt(w h) (px)")
    ax.set_ylabel("boxes")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("by size; lines: level $k$'s squares\n"
                 r"$s_k$ (--) and $s'_k = \sqrt{s_k s_{k+1}}$ (:)", fontsize=8, pad=12)  # fmt: skip


def coverage_view(boxes_xyxy: Tensor, cfg: SSDConfig, *, size_scale: float = 1.0,
                  aspect_ratios: str | Sequence[Any] | None = None,
                  iou_threshold: float = 0.5) -> tuple[Figure, list[dict]]:  # fmt: skip
    """Anchor coverage of a box sample under an edited config: bars per level, and the boxes among the anchor shapes.

    Args:
        boxes_xyxy: Tensor[M, 4] xyxy in the model's input pixels.
        cfg: the starting config; see :func:`coverage_config` for ``size_scale`` and ``aspect_ratios``.
        iou_threshold: IoU a box's best anchor must reach for the box to count as covered.

    Returns:
        ``(figure, rows)``: one row per level (``level``, ``feature_map``, ``step``, ``box_size``, ``ratios``,
        ``anchors``, ``alone``: share covered by that level's anchors alone, ``best_share``: share whose best
        anchor is on that level and covers it) and a last row ``level = "all"`` with the overall coverage in
        both share columns.

    Introduced in: 08_your_own_dataset.ipynb
    """
    from ..analysis import anchor_coverage
    from ..viz import draw_box_shapes, new_figure, palette_color

    edited = coverage_config(cfg, size_scale=size_scale, aspect_ratios=aspect_ratios)
    cov = anchor_coverage(boxes_xyxy, edited, iou_threshold)
    rows = []
    for k in range(edited.num_levels):
        rows.append({"level": k, "feature_map": edited.feature_map_sizes[k], "step": edited.steps[k],
                     "box_size": edited.box_sizes[k], "ratios": ", ".join(f"{r:g}" for r in edited.aspect_ratios[k]),
                     "anchors": edited.anchors_per_level[k], "alone": cov["per_level"][k],
                     "best_share": cov["best_level_share"][k]})  # fmt: skip
    rows.append({"level": "all", "feature_map": None, "step": None, "box_size": None, "ratios": None,
                 "anchors": edited.num_anchors, "alone": cov["overall"], "best_share": cov["overall"]})  # fmt: skip

    fig = new_figure((9.2, 3.5))  # 920 px wide: fits the notebook at 1366 x 768
    bars, by_size, scatter = fig.add_subplot(1, 3, 1), fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3)
    levels = torch.arange(edited.num_levels, dtype=torch.float64).numpy()
    bars.bar(levels - 0.2, cov["per_level"], width=0.4, color=palette_color(0), label="covered by this level alone")
    bars.bar(levels + 0.2, cov["best_level_share"], width=0.4, color=palette_color(1),
             label="best anchor on this level (sums to overall)")  # fmt: skip
    bars.axhline(cov["overall"], color="black", linestyle="--", linewidth=1, label=f"overall {cov['overall']:.3f}")
    bars.set_xticks(levels, [f"{k}\n{fm}x{fm}" for k, fm in enumerate(edited.feature_map_sizes)], fontsize=7)
    bars.set_ylim(0.0, 1.32)  # room for the legend above the bars
    bars.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    bars.set_xlabel("level (feature map)")
    bars.set_ylabel(f"share of the {cov['num_boxes']} boxes")
    bars.legend(fontsize=7, loc="upper left")
    bars.set_title(f"coverage at IoU >= {iou_threshold:g}: {cov['overall']:.1%}\n({edited.num_anchors} anchors)",
                   fontsize=8)  # fmt: skip
    wh = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]  # [M, 2]
    covered = cov["best_iou"] >= iou_threshold  # [M]
    _draw_coverage_by_size(by_size, wh, covered, edited)
    draw_box_shapes(scatter, wh, _anchor_shapes(edited), covered=covered)
    ratios = ratios_text(edited) if any(edited.aspect_ratios) else "none (squares only)"
    fig.suptitle(f"{edited.name}: box sizes x {size_scale:g}, aspect ratios per level: {ratios}", fontsize=10)
    return fig, rows


def coverage_widget(boxes_xyxy: Tensor, cfg: SSDConfig) -> Any:
    """A size-scale slider, an aspect-ratio box and an IoU slider over :func:`coverage_view`.

    Returns an ``ipywidgets.VBox`` (CSS class ``ssd-coverage-widget``, table ``ssd-coverage-table``) with
    ``.controls`` (``"scale"``, ``"ratios"``, ``"iou"``) and ``.state`` (last ``figure``, ``rows``, ``error``).
    The ratio box takes one set for all levels (``2, 3``) or one per level separated by ``|`` (it starts with
    the preset's, :func:`ratios_text`). A bad setting (a ratio <= 0, text that is not a number, a wrong
    number of levels) shows a message inside the widget.

    Introduced in: 08_your_own_dataset.ipynb
    """
    import ipywidgets as widgets

    style = {"description_width": "110px"}
    controls = {
        "scale": widgets.FloatLogSlider(value=1.0, base=2, min=-2, max=2, step=0.25, description="box sizes x",
                                        continuous_update=False, readout_format=".2f", style=style,
                                        tooltip=slider_tooltip("a factor 2^0.25")),  # fmt: skip
        "ratios": widgets.Text(ratios_text(cfg), description="aspect ratios", continuous_update=False,
                               placeholder="'2, 3' for every level, or per level '2 | 2, 3 | …'; empty: squares",
                               layout=widgets.Layout(width="460px"), style=style),  # fmt: skip
        "iou": widgets.FloatSlider(value=cfg.iou_threshold, min=0.3, max=0.9, step=0.05, description="IoU threshold",
                                   continuous_update=False, readout_format=".2f", style=style,
                                   tooltip=slider_tooltip("0.05")),  # fmt: skip
    }
    out = figure_area(WIDGET_CLASS + "-output", table_beside=False)
    state: dict[str, Any] = {"figure": None, "rows": None, "error": None}

    def render(*_: Any) -> None:
        def make() -> tuple[Figure, list[dict]]:
            return coverage_view(boxes_xyxy, cfg, size_scale=controls["scale"].value,
                                 aspect_ratios=controls["ratios"].value, iou_threshold=controls["iou"].value)

        redraw(out, state, make, lambda rows: rows_to_html(rows, COVERAGE_COLUMNS, COVERAGE_TABLE_CLASS))

    for control in controls.values():
        control.observe(render, names="value")
    box = widget_box([widgets.HBox([controls["scale"], controls["ratios"]]), controls["iou"], out],
                     title="Anchor coverage", css_class=WIDGET_CLASS)  # fmt: skip
    box.controls, box.state, box.render, box.output = controls, state, render, out
    render()
    return box
