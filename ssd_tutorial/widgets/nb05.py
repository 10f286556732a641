"""Widgets of 05_loss.ipynb: the IoU-threshold slider over anchor matching.

The picture and the table come from :func:`matching_view`, a plain function that takes an image, its boxes,
the anchors and a threshold and returns ``(Figure, rows)``; :func:`matching_widget` only wires a slider to it
and shows a message, not a traceback, for a threshold that makes no sense.

Introduced in: 05_loss.ipynb
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..boxes import cxcywh_to_xyxy
from ..matching import MIN_IOU, greedy_bipartite, match_anchors
from .common import figure_area, redraw, rows_to_html, slider_tooltip, widget_box

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["greedy_matches", "matching_view", "matching_widget"]

MATCHING_CLASS = "ssd-matching-widget"
MATCHING_TABLE_CLASS = "ssd-matching-table"
MATCHING_COLUMNS = (("box", "box", ""), ("class", "class", ""), ("best_iou", "best IoU", ".3f"),
                    ("greedy_anchor", "greedy anchor", ""), ("greedy_iou", "its IoU", ".3f"),
                    ("positives", "positives", ""))  # fmt: skip


def greedy_matches(iou: Tensor, min_iou: float = MIN_IOU) -> Tensor:
    """The greedy bipartite step of the matching on one image: the package's ``greedy_bipartite``.

    Repeatedly take the largest remaining IoU (box m, anchor a), give a to m, and remove m's row and a's
    column; stop when the largest remaining IoU is below ``min_iou`` (step 1 of ``match_anchors``; SSD
    paper, section 2.2 "Matching strategy").

    Args:
        iou (Tensor[M, A]): IoU of every ground-truth box with every anchor.

    Returns:
        Tensor[M] long: the anchor each box takes, -1 if it overlaps no anchor.

    Introduced in: 05_loss.ipynb
    """
    if not isinstance(iou, Tensor) or iou.ndim != 2:
        got = list(iou.shape) if isinstance(iou, Tensor) else type(iou).__name__
        raise ValueError(f"iou must be a Tensor[M, A] (boxes x anchors), got {got}")
    return greedy_bipartite(iou.detach(), min_iou)


def _class_name(labels: list[int] | None, class_names: Sequence[str] | None, m: int) -> str:
    if labels is None:
        return "—"
    label = labels[m]
    return class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)


def matching_view(image_chw: Tensor, gt_boxes_xyxy: Tensor, anchors_cxcywh: Tensor, iou_threshold: float = 0.5, *,
                  labels: Tensor | Sequence[int] | None = None,
                  class_names: Sequence[str] | None = None) -> tuple[Figure, list[dict]]:  # fmt: skip
    """The anchors matched to each box at ``iou_threshold``: a picture and one table row per box.

    Args:
        image_chw (Tensor[3, S, S]): the image.
        gt_boxes_xyxy (Tensor[M, 4]): xyxy pixels.
        anchors_cxcywh (Tensor[A, 4]): cxcywh pixels, unclipped (``default_boxes(cfg)``).
        iou_threshold: the threshold of the matching's second step, in (0, 1].
        labels (Tensor[M]), class_names: to name the boxes in the table and on the image.

    Returns:
        ``(figure, rows)``; rows have keys ``box`` (m), ``class``, ``best_iou`` (its best anchor's IoU),
        ``greedy_anchor`` and ``greedy_iou`` (the anchor the greedy step gave it, -1 / None if none) and
        ``positives`` (anchors matched to it in all).

    Raises:
        ValueError: a threshold outside (0, 1] or malformed boxes (from ``match_anchors``).

    Introduced in: 05_loss.ipynb
    """
    from torchvision.ops import box_iou

    from ..viz import draw_matches, new_figure

    anchors_xyxy = cxcywh_to_xyxy(anchors_cxcywh)  # [A, 4]
    matches = match_anchors(gt_boxes_xyxy, anchors_xyxy, iou_threshold)  # [A]; validates every input
    gt = gt_boxes_xyxy.to(anchors_xyxy)
    iou = box_iou(gt, anchors_xyxy)  # [M, A]
    greedy = greedy_matches(iou)  # [M]
    label_list = None if labels is None else [int(v) for v in torch.as_tensor(labels).reshape(-1).tolist()]
    if label_list is not None and len(label_list) != len(gt):
        raise ValueError(f"labels must have one entry per box ({len(gt)}), got {len(label_list)}")
    counts = torch.bincount(matches[matches >= 0], minlength=len(gt)).tolist()
    best = iou.max(dim=1).values.tolist() if iou.shape[1] else [0.0] * len(gt)
    rows = []
    for m in range(len(gt)):
        a = int(greedy[m])
        rows.append({"box": m, "class": _class_name(label_list, class_names, m), "best_iou": best[m],
                     "greedy_anchor": a, "greedy_iou": float(iou[m, a]) if a >= 0 else None,
                     "positives": counts[m]})  # fmt: skip
    highlight = torch.zeros(len(matches), dtype=torch.bool)
    highlight[greedy[greedy >= 0].cpu()] = True

    fig = new_figure((4.6, 4.6))
    ax = fig.add_subplot()
    draw_matches(ax, image_chw, gt, anchors_xyxy, matches, highlight=highlight, labels=label_list,
                 class_names=class_names)  # fmt: skip
    per_box = ", ".join(f"box {r['box']}: {r['positives']}" for r in rows) or "no boxes"
    ax.set_title(f"IoU >= {iou_threshold:.2f}: {sum(counts)} positive anchors\n({per_box}; "
                 f"solid = greedy step)", fontsize=9)  # fmt: skip
    return fig, rows


def matching_widget(image_chw: Tensor, gt_boxes_xyxy: Tensor, anchors_cxcywh: Tensor, *,
                    labels: Tensor | Sequence[int] | None = None, class_names: Sequence[str] | None = None,
                    iou_threshold: float = 0.5) -> Any:  # fmt: skip
    """An IoU-threshold slider over :func:`matching_view` that recolours the matched anchors.

    Returns an ``ipywidgets.VBox`` with ``.controls`` (``{"threshold": FloatSlider}``), ``.state`` (last
    ``figure``, ``rows``, ``error``) and ``.output``; the output has CSS class ``ssd-matching-widget``, the
    table ``ssd-matching-table``. A threshold of 0 shows the package's error message inside the output.

    Introduced in: 05_loss.ipynb
    """
    import ipywidgets as widgets

    slider = widgets.FloatSlider(float(iou_threshold), min=0.0, max=1.0, step=0.05, description="IoU ≥",
                                 continuous_update=False, readout_format=".2f",
                                 tooltip=slider_tooltip("0.05"))  # fmt: skip
    out = figure_area(MATCHING_CLASS)
    state: dict[str, Any] = {"figure": None, "rows": None, "error": None}

    def render(*_: Any) -> None:
        def make() -> tuple[Figure, list[dict]]:
            return matching_view(image_chw, gt_boxes_xyxy, anchors_cxcywh, slider.value, labels=labels,
                                 class_names=class_names)  # fmt: skip

        def table(rows: list[dict]) -> str:
            caption = f"{sum(r['positives'] for r in rows)} positive anchors at IoU ≥ {slider.value:.2f}"
            return rows_to_html(rows, MATCHING_COLUMNS, MATCHING_TABLE_CLASS, caption)

        redraw(out, state, make, table)

    slider.observe(render, names="value")
    box = widget_box([slider, out], title="Matching threshold")
    box.controls, box.state, box.output = {"threshold": slider}, state, out
    render()
    return box
