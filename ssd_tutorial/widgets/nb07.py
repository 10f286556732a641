"""Widgets of 07_evaluation_and_inference.ipynb: score- and NMS-threshold sliders over cached head outputs.

The head outputs of the evaluation images are computed once; every slider move only re-runs
``decode_detections`` with ``cfg.replace(score_threshold=…, nms_threshold=…)``, which takes milliseconds.
:func:`threshold_view` does the work and returns ``(Figure, numbers)``; :func:`threshold_widget` wires sliders.

Introduced in: 07_evaluation_and_inference.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..config import SSDConfig
from .common import figure_area, pairs_to_html, redraw, slider_tooltip, widget_box

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["threshold_detections", "threshold_numbers", "threshold_view", "numbers_to_html", "threshold_widget"]

WIDGET_CLASS = "ssd-threshold-widget"
NUMBERS_CLASS = "ssd-threshold-numbers"


def threshold_detections(loc_preds: Tensor, cls_logits: Tensor, anchors_cxcywh: Tensor, cfg: SSDConfig, *,
                         score_threshold: float, nms_threshold: float) -> list[dict[str, Tensor]]:  # fmt: skip
    """``decode_detections`` with the two thresholds replaced (validated by ``SSDConfig``: ValueError if out of range).

    Args:
        loc_preds: Tensor[B, A, 4], cls_logits: Tensor[B, A, C] from ``model.forward_heads``.
        anchors_cxcywh: Tensor[A, 4] (``model.anchors``).
        score_threshold: in [0, 1); nms_threshold: in (0, 1] (1 keeps every box: no suppression).

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    from ..postprocess import decode_detections

    tuned = cfg.replace(score_threshold=float(score_threshold), nms_threshold=float(nms_threshold))
    return decode_detections(loc_preds, cls_logits, anchors_cxcywh, tuned)


def threshold_numbers(detections: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]],
                      iou_threshold: float = 0.5) -> dict[str, float]:  # fmt: skip
    """What a set of detections scores against the ground truth, VOC matching at ``iou_threshold``.

    Returns:
        ``{"detections_per_image", "true_positives", "false_positives", "ground_truth", "precision",
        "recall", "map_voc07", "map_all_points"}``; precision and recall count every detection given
        (those the thresholds kept), the mAPs integrate the ranked list.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    from ..evaluate import mean_average_precision, precision_recall_curve

    curves = precision_recall_curve(detections, targets, iou_threshold=iou_threshold)
    tp = fp = 0
    for curve in curves.values():
        kept = curve["precision"].numel()
        if kept:
            hits = int(round(float(curve["precision"][-1]) * kept))  # precision after the last one = TP / kept
            tp, fp = tp + hits, fp + kept - hits
    ground_truth = 0
    for target in targets:
        difficult = target.get("difficult")
        labels = torch.as_tensor(target["labels"]).reshape(-1)
        ground_truth += int(labels.numel() if difficult is None else (~torch.as_tensor(difficult).bool()).sum())
    total = sum(int(d["scores"].numel()) for d in detections)
    voc07 = mean_average_precision(detections, targets, iou_threshold, method="voc07")["map"]
    all_points = mean_average_precision(detections, targets, iou_threshold, method="all_points")["map"]
    return {
        "detections_per_image": total / max(len(detections), 1),
        "true_positives": tp,
        "false_positives": fp,
        "ground_truth": ground_truth,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / ground_truth if ground_truth else 0.0,
        "map_voc07": voc07,
        "map_all_points": all_points,
    }


def threshold_view(images: Tensor, loc_preds: Tensor, cls_logits: Tensor, targets: Sequence[dict[str, Tensor]],
                   cfg: SSDConfig, *, anchors_cxcywh: Tensor | None = None, score_threshold: float = 0.5,
                   nms_threshold: float = 0.45, shown: Sequence[int] | None = None,
                   iou_threshold: float = 0.5) -> tuple[Figure, dict[str, float]]:  # fmt: skip
    """Detections at the given thresholds drawn on a few images, and the numbers over all B images.

    Args:
        images: Tensor[B, 3, S, S] float in [0, 1] (only the ``shown`` ones are drawn).
        loc_preds, cls_logits: Tensor[B, A, 4], Tensor[B, A, C], the heads' outputs for ``images``.
        targets: B dicts ``{"boxes": Tensor[M, 4] xyxy px, "labels": Tensor[M]}``.
        cfg: the model's config; anchors_cxcywh default ``default_boxes(cfg)``.
        shown: indices of the images to draw; default the first four.

    Returns:
        ``(figure, numbers)`` with numbers from :func:`threshold_numbers` plus both thresholds.

    Raises:
        ValueError: a threshold out of range or a bad image index.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    from ..anchors import default_boxes
    from ..viz import plot_detections

    B = cls_logits.shape[0]
    if len(targets) != B or images.shape[0] != B:
        raise ValueError(f"images, head outputs and targets must cover the same images: got {images.shape[0]} "
                         f"images, {B} outputs, {len(targets)} targets")  # fmt: skip
    picks = list(range(min(4, B))) if shown is None else list(shown)
    bad = [i for i in picks if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < B]
    if not picks or bad:
        raise ValueError(f"shown must list image indices in [0, {B - 1}], got {picks}")
    anchors = default_boxes(cfg).to(loc_preds.device) if anchors_cxcywh is None else anchors_cxcywh
    detections = threshold_detections(loc_preds, cls_logits, anchors, cfg, score_threshold=score_threshold,
                                      nms_threshold=nms_threshold)  # fmt: skip
    numbers = {"score_threshold": float(score_threshold), "nms_threshold": float(nms_threshold),
               **threshold_numbers(detections, targets, iou_threshold)}  # fmt: skip
    counts = [detections[i]["scores"].numel() for i in picks]
    titles = [f"image {i}: {n} detection{'' if n == 1 else 's'}" for i, n in zip(picks, counts)]
    columns = min(4, len(picks))
    rows = math.ceil(len(picks) / columns)
    figsize = (9.2, 9.2 / columns * rows + 0.3)  # 920 px wide: fits the notebook at 1366 x 768
    fig = plot_detections(images[picks], [detections[i] for i in picks], [targets[i] for i in picks],
                          class_names=cfg.class_names, min_score=0.0, titles=titles, columns=columns,
                          figsize=figsize)  # fmt: skip
    fig.suptitle(f"score > {score_threshold:g}, NMS IoU {nms_threshold:g}: colour = class, dashed = ground truth",
                 fontsize=9)  # fmt: skip
    return fig, numbers


def numbers_to_html(numbers: dict[str, float]) -> str:
    """The numbers of :func:`threshold_view` as a small HTML table (CSS class ``ssd-threshold-numbers``).

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    rows = [
        ("score threshold", f"{numbers['score_threshold']:.2f}"),
        ("NMS threshold", f"{numbers['nms_threshold']:.2f}"),
        ("detections / image", f"{numbers['detections_per_image']:.2f}"),
        ("true / false positives", f"{numbers['true_positives']} / {numbers['false_positives']}"),
        ("precision", f"{numbers['precision']:.3f}"),
        ("recall", f"{numbers['recall']:.3f} of {numbers['ground_truth']} boxes"),
        ("mAP@0.5 VOC07 11-point", f"{numbers['map_voc07']:.3f}"),
        ("mAP@0.5 all-point", f"{numbers['map_all_points']:.3f}"),
    ]
    return pairs_to_html(rows, NUMBERS_CLASS)


def threshold_widget(images: Tensor, loc_preds: Tensor, cls_logits: Tensor, targets: Sequence[dict[str, Tensor]],
                     cfg: SSDConfig, *, anchors_cxcywh: Tensor | None = None,
                     shown: Sequence[int] | None = None) -> Any:  # fmt: skip
    """Score- and NMS-threshold sliders over :func:`threshold_view` (no model call: the head outputs are given).

    Returns an ``ipywidgets.VBox`` (CSS class ``ssd-threshold-widget``) with ``.controls`` (``"score"``,
    ``"nms"``), ``.numbers`` (an HTML widget whose table has class ``ssd-threshold-numbers``) and ``.state``
    (last ``figure``, ``numbers``, ``error``). A bad setting shows a message in the widget, not a traceback.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    import ipywidgets as widgets

    style = {"description_width": "110px"}
    controls = {
        "score": widgets.FloatSlider(value=0.5, min=0.0, max=0.95, step=0.05, description="score threshold",
                                     continuous_update=False, readout_format=".2f", style=style,
                                     tooltip=slider_tooltip("0.05")),  # fmt: skip
        "nms": widgets.FloatSlider(value=cfg.nms_threshold, min=0.05, max=1.0, step=0.05, description="NMS IoU",
                                   continuous_update=False, readout_format=".2f", style=style,
                                   tooltip=slider_tooltip("0.05")),  # fmt: skip
    }
    out = figure_area(WIDGET_CLASS + "-output", table_beside=False)
    out.table.add_class(NUMBERS_CLASS)
    state: dict[str, Any] = {"figure": None, "numbers": None, "error": None}

    def render(*_: Any) -> None:
        def make() -> tuple[Figure, dict[str, float]]:
            return threshold_view(images, loc_preds, cls_logits, targets, cfg, anchors_cxcywh=anchors_cxcywh,
                                  score_threshold=controls["score"].value, nms_threshold=controls["nms"].value,
                                  shown=shown)  # fmt: skip

        redraw(out, state, make, numbers_to_html, key="numbers")

    for control in controls.values():
        control.observe(render, names="value")
    box = widget_box([widgets.HBox(list(controls.values())), out], title="Threshold explorer", css_class=WIDGET_CLASS)
    box.controls, box.numbers, box.state, box.render, box.output = controls, out.table, state, render, out
    render()
    return box
