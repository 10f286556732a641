"""Detection metrics: PASCAL VOC average precision (2007 11-point and all-point) and COCO mAP (pycocotools).

Introduced in: 07_evaluation_and_inference.ipynb
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["mean_average_precision", "precision_recall_curve", "average_precision", "coco_map"]

METHODS = ("voc07", "all_points")
# method="voc07" follows the official VOC2007 devkit (VOCevaldet.m: `for t=0:0.1:1`). MATLAB's colon operator
# builds the first half of 0:0.1:1 as 0 + k*0.1 and the second half as 1 - (10-k)*0.1, so its 4th threshold
# is 3*0.1 = 0.30000000000000004 (a recall of exactly 3/10 does not reach it) and the others are the nearest
# doubles of 0, 0.1, ..., 1. (py-faster-rcnn's np.arange(0, 1.1, 0.1) = k*0.1 also differs at 0.6 and 0.7.)
VOC07_RECALL_THRESHOLDS = (0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_PAIRS_PER_CHUNK = 4_000_000  # detection x ground-truth IoU pairs computed at once (bounds memory)


_KINDS = {"f": "fiu", "i": "iu", "b": "biu"}  # array kinds accepted for float, integer and bool fields
_KIND_NAMES = {"f": "numbers", "i": "integer class ids (long)", "b": "bool (or 0/1)"}


def _as_numpy(value: Any, dtype: Any, name: str, shape_tail: tuple[int, ...] = (),
              kind: str | None = None) -> np.ndarray:  # fmt: skip
    if not isinstance(value, (Tensor, np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    array = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
    kind = kind or np.dtype(dtype).kind
    if array.size and array.dtype.kind not in _KINDS[kind]:
        raise TypeError(f"{name} must be {_KIND_NAMES[kind]}, got dtype {array.dtype}")
    if array.size == 0:
        array = array.reshape((0, *shape_tail))
    if array.ndim != 1 + len(shape_tail) or array.shape[1:] != shape_tail:
        want = "[N" + "".join(f", {d}" for d in shape_tail) + "]"
        raise ValueError(f"{name} must be {want}, got {list(array.shape)}")
    return array.astype(dtype, copy=False)


def _gather(items: Sequence[dict[str, Any]], kind: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Concatenate per-image dicts into flat arrays plus the image index of every row."""
    out: dict[str, list[np.ndarray]] = {key: [] for key in (*keys, "image")}
    for b, item in enumerate(items):
        if not isinstance(item, dict):
            raise TypeError(f"{kind}[{b}] must be a dict with keys {list(keys)}, got {type(item).__name__}")
        missing = [k for k in keys if k not in item and k != "difficult"]
        if missing:
            raise ValueError(f"{kind}[{b}] is missing {missing}; expected keys {list(keys)}")
        boxes = _as_numpy(item["boxes"], np.float64, f"{kind}[{b}]['boxes']", (4,))
        n = boxes.shape[0]
        out["boxes"].append(boxes)
        for key, dtype in (("labels", np.int64), ("scores", np.float64), ("difficult", np.int64)):
            if key not in keys:
                continue
            value = item.get(key, np.zeros(n, dtype=bool))
            # difficult: bool or 0/1 ints, kept as int until _check_values has seen them
            array = _as_numpy(value, dtype, f"{kind}[{b}][{key!r}]", kind="b" if key == "difficult" else None)
            if array.shape[0] != n:
                raise ValueError(f"{kind}[{b}][{key!r}] must have one entry per box ({n}), got {array.shape[0]}")
            out[key].append(array)
        _check_values(out, b, kind)
        out["image"].append(np.full(n, b, dtype=np.int64))
    empty = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, dtype=np.int64), "scores": np.zeros(0),
             "difficult": np.zeros(0, dtype=bool), "image": np.zeros(0, dtype=np.int64)}  # fmt: skip
    return {key: np.concatenate(v) if v else empty[key] for key, v in out.items()}


def _check_values(out: dict[str, list[np.ndarray]], b: int, kind: str) -> None:
    """ValueError naming image ``b``, the key and the first bad row of the arrays just added to ``out``."""
    boxes = out["boxes"][-1]
    bad = ~(np.isfinite(boxes).all(axis=1) & (boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1]))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{kind}[{b}]['boxes'][{k}] must be finite xyxy with x2 >= x1 and y2 >= y1, "
                         f"got {boxes[k].tolist()}")  # fmt: skip
    labels = out["labels"][-1]
    if (labels < 1).any():
        k = int(np.flatnonzero(labels < 1)[0])
        raise ValueError(f"{kind}[{b}]['labels'][{k}] must be an object class >= 1 (0 is the background), "
                         f"got {int(labels[k])}")  # fmt: skip
    if "scores" in out and not np.isfinite(out["scores"][-1]).all():
        k = int(np.flatnonzero(~np.isfinite(out["scores"][-1]))[0])
        raise ValueError(f"{kind}[{b}]['scores'][{k}] must be finite, got {out['scores'][-1][k]}")
    if "difficult" in out and not np.isin(out["difficult"][-1], (0, 1)).all():
        k = int(np.flatnonzero(~np.isin(out["difficult"][-1], (0, 1)))[0])
        raise ValueError(f"{kind}[{b}]['difficult'][{k}] must be True/False (or 0/1), got {out['difficult'][-1][k]}")


def _iou_same_image(det_boxes: np.ndarray, gt_boxes: np.ndarray, start: np.ndarray, count: np.ndarray,
                    width: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Best IoU of each detection with the gt boxes of its image (rows start..start+count of ``gt_boxes``).

    Continuous coordinates, no +1 pixel. Returns (best_iou [N] (-1 where the image has no gt), best gt row [N]).
    """
    n = det_boxes.shape[0]
    best_iou, best_row = np.full(n, -1.0), np.zeros(n, dtype=np.int64)
    chunk = max(1, _PAIRS_PER_CHUNK // max(width, 1))
    for lo in range(0, n, chunk):
        d = det_boxes[lo : lo + chunk]  # [n, 4]
        rows = start[lo : lo + chunk, None] + np.arange(width)[None, :]  # [n, K]
        valid = np.arange(width)[None, :] < count[lo : lo + chunk, None]  # [n, K]
        g = gt_boxes[np.minimum(rows, max(len(gt_boxes) - 1, 0))]  # [n, K, 4]
        iw = np.clip(np.minimum(d[:, None, 2], g[..., 2]) - np.maximum(d[:, None, 0], g[..., 0]), 0, None)
        ih = np.clip(np.minimum(d[:, None, 3], g[..., 3]) - np.maximum(d[:, None, 1], g[..., 1]), 0, None)
        inter = iw * ih  # [n, K]
        area_d = (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1])
        area_g = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
        union = area_d[:, None] + area_g - inter
        iou = np.where(valid & (union > 0), inter / np.where(union > 0, union, 1.0), -1.0)  # -1: no such gt
        k = iou.argmax(axis=1)  # first maximum, like the devkit's max
        best_iou[lo : lo + chunk] = iou[np.arange(len(d)), k]
        best_row[lo : lo + chunk] = rows[np.arange(len(d)), k]
    return best_iou, best_row


def _match_class(dets: dict[str, np.ndarray], gts: dict[str, np.ndarray], label: int, num_images: int,
                 iou_threshold: float) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """VOC devkit matching for one class: (scores sorted descending [K], true-positive flags [K], npos).

    Detections matched to a difficult box are dropped (neither TP nor FP), so K <= number of detections.
    """
    d_sel = np.flatnonzero(dets["labels"] == label)
    order = d_sel[np.argsort(-dets["scores"][d_sel], kind="stable")]  # descending score, ties in input order
    g_sel = np.flatnonzero(gts["labels"] == label)
    g_sel = g_sel[np.argsort(gts["image"][g_sel], kind="stable")]  # gt of this class grouped by image
    g_boxes, g_difficult = gts["boxes"][g_sel], gts["difficult"][g_sel]
    count = np.bincount(gts["image"][g_sel], minlength=num_images)  # [B]
    start = np.cumsum(count) - count
    npos = int((~g_difficult).sum())
    d_image = dets["image"][order]
    best_iou, best_row = _iou_same_image(dets["boxes"][order], g_boxes, start[d_image], count[d_image],
                                         int(count.max()) if len(count) else 0)  # fmt: skip
    matched = best_iou >= iou_threshold
    ignored = matched & g_difficult[np.where(matched, best_row, 0)]
    candidate = np.flatnonzero(matched & ~ignored)
    # A gt box is taken by the first (highest-scoring) detection that reaches it; later ones are false positives.
    _, first = np.unique(best_row[candidate], return_index=True)
    tp = np.zeros(len(order), dtype=bool)
    tp[candidate[first]] = True
    keep = ~ignored
    return dets["scores"][order][keep], tp[keep], npos


def _precision_recall(tp: np.ndarray, npos: int) -> tuple[np.ndarray, np.ndarray]:
    tp_cum = np.cumsum(tp, dtype=np.float64)
    fp_cum = np.cumsum(~tp, dtype=np.float64)
    recall = tp_cum / max(npos, 1)
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).tiny)
    return precision, recall


def average_precision(precision: Tensor | np.ndarray, recall: Tensor | np.ndarray, method: str = "voc07") -> float:
    """AP from a precision/recall curve ordered by descending score.

    ``"voc07"``: mean over the 11 thresholds t of the official VOC2007 devkit's MATLAB ``t = 0:0.1:1``
    (``VOC07_RECALL_THRESHOLDS``) of the best precision at recall >= t. MATLAB's colon operator makes the
    4th threshold 0.30000000000000004, so a recall of exactly 3/10 does not count for it, as in the devkit.
    ``"all_points"``: area under the monotone (right-to-left running maximum) precision envelope (VOC2010+).

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    precision = np.asarray(precision, dtype=np.float64).reshape(-1)
    recall = np.asarray(recall, dtype=np.float64).reshape(-1)
    if precision.shape != recall.shape:
        raise ValueError(f"precision and recall must have the same length, got {precision.size} and {recall.size}")
    for name, values in (("precision", precision), ("recall", recall)):
        if not (np.isfinite(values) & (values >= 0) & (values <= 1)).all():
            raise ValueError(f"{name} must be finite values in [0, 1], got {values[:10].tolist()} …")
    if (np.diff(recall) < 0).any():
        raise ValueError("recall must be non-decreasing (points ordered by descending score)")
    if method == "voc07":
        if precision.size == 0:
            return 0.0
        envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this recall or beyond
        first = np.searchsorted(recall, VOC07_RECALL_THRESHOLDS, side="left")  # first point with recall >= t
        return float(np.where(first < len(recall), envelope[np.minimum(first, len(recall) - 1)], 0.0).mean())
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _check_inputs(detections: Sequence[dict], targets: Sequence[dict], iou_threshold: float) -> None:
    if isinstance(detections, dict) or isinstance(targets, dict):
        raise TypeError("detections and targets must be lists of per-image dicts, got a dict")
    if len(detections) != len(targets):
        raise ValueError(f"detections and targets must have one entry per image, got {len(detections)} detections "
                         f"and {len(targets)} targets")  # fmt: skip
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)):
        raise TypeError(f"iou_threshold must be a number, got {type(iou_threshold).__name__} {iou_threshold!r}")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")


def _matched_classes(detections: Sequence[dict], targets: Sequence[dict], iou_threshold: float
                     ) -> dict[int, tuple[np.ndarray, np.ndarray, int]]:  # fmt: skip
    _check_inputs(detections, targets, iou_threshold)
    dets = _gather(detections, "detections", ("boxes", "scores", "labels"))
    gts = _gather(targets, "targets", ("boxes", "labels", "difficult"))
    gts["difficult"] = gts["difficult"].astype(bool)
    classes = np.unique(gts["labels"][~gts["difficult"]])  # classes with a non-difficult gt box
    return {int(c): _match_class(dets, gts, int(c), len(targets), iou_threshold) for c in classes}


def mean_average_precision(detections: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]],
                           iou_threshold: float = 0.5, method: str = "voc07") -> dict[str, Any]:  # fmt: skip
    """PASCAL VOC mAP: per-class AP averaged over the classes that have a non-difficult ground-truth box.

    Matching follows the VOC devkit: the detections of a class are taken by descending score (ties keep
    their input order) over all images; each finds its highest-IoU box of that class in its image
    (continuous coordinates, no +1 pixel). IoU >= ``iou_threshold`` with a difficult box: ignored;
    with a box not yet taken: true positive; with a taken box: false positive; otherwise false positive.

    Args:
        detections: per image ``{"boxes": Tensor[N, 4] xyxy, "scores": Tensor[N], "labels": Tensor[N]}``.
        targets: per image ``{"boxes": Tensor[M, 4] xyxy, "labels": Tensor[M]}``, optional ``"difficult"``
            Tensor[M] bool. Same length and order as ``detections``.
        iou_threshold: overlap needed for a true positive (VOC: 0.5).
        method: ``"voc07"`` (11-point interpolation) or ``"all_points"`` (see :func:`average_precision`).

    Returns:
        ``{"map": float, "ap_per_class": {label: float}}``; ``map`` is 0.0 when no class has ground truth.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    ap = {}
    for label, (_, tp, npos) in _matched_classes(detections, targets, iou_threshold).items():
        precision, recall = _precision_recall(tp, npos)
        ap[label] = average_precision(precision, recall, method)
    return {"map": float(np.mean(list(ap.values()))) if ap else 0.0, "ap_per_class": ap}


def precision_recall_curve(detections: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]],
                           iou_threshold: float = 0.5) -> dict[int, dict[str, Tensor]]:  # fmt: skip
    """Per-class precision/recall after each detection, with the same matching as :func:`mean_average_precision`.

    Returns:
        ``{label: {"precision": Tensor[K], "recall": Tensor[K], "scores": Tensor[K]}}`` (float64, by descending
        score; K = detections of that class not ignored), for every class with a non-difficult gt box.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    curves = {}
    for label, (scores, tp, npos) in _matched_classes(detections, targets, iou_threshold).items():
        precision, recall = _precision_recall(tp, npos)
        curves[label] = {"precision": torch.from_numpy(precision), "recall": torch.from_numpy(recall),
                         "scores": torch.from_numpy(np.ascontiguousarray(scores))}  # fmt: skip
    return curves


def coco_map(detections: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]]) -> dict[str, float]:
    """COCO box AP through pycocotools: AP@[.5:.95], AP@.5 and AP@.75 (100 detections per image).

    Ground truth and detections are turned into in-memory COCO objects (boxes to [x, y, w, h],
    area = w * h, image ids 1..B, category ids = labels). A target's ``"difficult"`` boxes become
    ``iscrowd = 1`` (COCO's "ignore" regions), others ``iscrowd = 0``. pycocotools interpolates
    precision at 101 recall points, so ``map_50`` is close to, not equal to, VOC all-point AP at 0.5.
    Values pycocotools reports as undefined (-1: no ground truth) are returned as 0.0.

    Returns:
        ``{"map": float, "map_50": float, "map_75": float}``.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    _check_inputs(detections, targets, 0.5)
    dets = _gather(detections, "detections", ("boxes", "scores", "labels"))
    gts = _gather(targets, "targets", ("boxes", "labels", "difficult"))
    images = [{"id": b + 1} for b in range(len(targets))]
    categories = [{"id": int(c)} for c in np.union1d(gts["labels"], dets["labels"])]

    def annotations(table: dict[str, np.ndarray], with_scores: bool) -> list[dict[str, Any]]:
        xywh = table["boxes"].copy()
        xywh[:, 2:] -= xywh[:, :2]  # [N, 4] x, y, w, h
        anns = []
        for k in range(len(xywh)):
            box = [float(v) for v in xywh[k]]
            ann = {"id": k + 1, "image_id": int(table["image"][k]) + 1, "category_id": int(table["labels"][k]),
                   "bbox": box, "area": box[2] * box[3]}  # fmt: skip
            if with_scores:
                ann.update(score=float(table["scores"][k]), iscrowd=0)
            else:
                ann["iscrowd"] = int(bool(table["difficult"][k]))
            anns.append(ann)
        return anns

    def coco_object(anns: list[dict[str, Any]]) -> Any:
        coco = COCO()
        coco.dataset = {"images": images, "categories": categories, "annotations": anns}
        coco.createIndex()
        return coco

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress; the library must not
        coco_gt = coco_object(annotations(gts, with_scores=False))
        coco_dt = coco_object(annotations(dets, with_scores=True))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [max(float(s), 0.0) for s in evaluator.stats[:3]]
    return {"map": stats[0], "map_50": stats[1], "map_75": stats[2]}
