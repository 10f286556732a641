"""mAP over 2,000 images: ``mean_average_precision`` / ``coco_map`` vs pycocotools and torchmetrics.

    python -m benchmarks.bench_map [--quick] [--images 2000]

Synthetic detections around synthetic ground truth (jittered hits, duplicates, misclassified and stray boxes,
continuous scores without ties). The ground-truth boxes of an image never overlap, so no detection reaches
IoU 0.5 with two of them; there the VOC devkit rule (best box, taken -> false positive) and COCO's (best box
not yet taken) agree, and so must the numbers:

* VOC07 mAP@0.5: ours vs pycocotools ``COCOeval`` run with IoU 0.5, the 11 recall points 0, 0.1, …, 1,
  one area range and no cap on detections per image, which is exactly the VOC 2007 11-point AP, per class;
* COCO mAP@[.5:.95], @.5, @.75: ``coco_map`` vs torchmetrics ``MeanAveragePrecision`` (if installed; given
  pycocotools' float64 thresholds, see :func:`torchmetrics_map`) and vs pycocotools run directly.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ssd_tutorial.evaluate import coco_map, mean_average_precision

from .common import BenchOptions, Comparison, Mismatch, print_comparisons

__all__ = ["synthetic_detections", "pycocotools_map", "torchmetrics_map", "comparisons"]

NUM_CLASSES = 21  # VOC: background + 20


def synthetic_detections(num_images: int, seed: int = 0, image_size: int = 300, cells: int = 4
                         ) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """(detections, targets) as ``mean_average_precision`` takes them; ground truth on a grid, never overlapping."""
    rng = np.random.default_rng(seed)
    cell = image_size / cells
    detections, targets = [], []
    for _ in range(num_images):
        m = int(rng.integers(1, 7))
        where = rng.permutation(cells * cells)[:m]
        size = rng.uniform(0.3, 0.95, (m, 2)) * cell  # [m, 2] w, h
        xy = np.stack([where % cells, where // cells], axis=1) * cell + rng.uniform(0, 1, (m, 2)) * (cell - size)
        gt = np.concatenate([xy, xy + size], axis=1)  # [m, 4] xyxy
        labels = rng.integers(1, NUM_CLASSES, m)
        # hits (85 %) and duplicates (25 %): cxcywh jitter, 10 % with a wrong label
        source = np.concatenate([np.flatnonzero(rng.random(m) < 0.85), np.flatnonzero(rng.random(m) < 0.25)])
        centre = (gt[source, :2] + gt[source, 2:]) / 2 + rng.normal(0, 0.12, (len(source), 2)) * size[source]
        wh = size[source] * np.exp(rng.normal(0, 0.2, (len(source), 2)))
        det_labels = np.where(rng.random(len(source)) < 0.9, labels[source], rng.integers(1, NUM_CLASSES, len(source)))
        # stray boxes anywhere
        k = int(rng.integers(0, 9))
        stray_wh = rng.uniform(10, 150, (k, 2))
        stray_centre = rng.uniform(0, image_size, (k, 2))
        boxes = np.concatenate([np.concatenate([centre - wh / 2, centre + wh / 2], axis=1),
                                np.concatenate([stray_centre - stray_wh / 2, stray_centre + stray_wh / 2], axis=1)])
        detections.append({
            "boxes": torch.from_numpy(boxes.clip(0, image_size)).float(),
            "scores": torch.from_numpy(np.concatenate([rng.uniform(0.05, 1, len(source)), rng.uniform(0, 0.7, k)])
                                       ).float(),
            "labels": torch.from_numpy(np.concatenate([det_labels, rng.integers(1, NUM_CLASSES, k)])),
        })  # fmt: skip
        targets.append({"boxes": torch.from_numpy(gt).float(), "labels": torch.from_numpy(labels)})
    return detections, targets


def _coco_objects(detections: list[dict], targets: list[dict]) -> tuple[Any, Any]:
    """In-memory pycocotools ground truth and results (xywh boxes, area w*h, image ids 1..B)."""
    from pycocotools.coco import COCO

    def anns(items: list[dict], with_scores: bool) -> list[dict]:
        out = []
        for image_id, item in enumerate(items, start=1):
            boxes = item["boxes"].double().numpy()
            for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
                ann = {"id": len(out) + 1, "image_id": image_id, "category_id": int(item["labels"][k]),
                       "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}  # fmt: skip
                if with_scores:
                    ann["score"] = float(item["scores"][k])
                out.append(ann)
        return out

    images = [{"id": i} for i in range(1, len(targets) + 1)]
    categories = [{"id": c} for c in range(1, NUM_CLASSES)]
    gt, dt = COCO(), COCO()
    gt.dataset = {"images": images, "categories": categories, "annotations": anns(targets, False)}
    dt.dataset = {"images": images, "categories": categories, "annotations": anns(detections, True)}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt.createIndex()
    return gt, dt


def pycocotools_map(detections: list[dict], targets: list[dict], voc07: bool) -> dict[str, Any]:
    """pycocotools run directly. ``voc07``: IoU 0.5, recall points k/10, one area range, no detection cap ->
    ``{"map", "ap_per_class"}`` (VOC 2007 11-point AP); else COCO's defaults -> ``{"map", "map_50", "map_75"}``."""
    from pycocotools.cocoeval import COCOeval

    gt, dt = _coco_objects(detections, targets)
    ev = COCOeval(gt, dt, "bbox")
    if voc07:
        ev.params.iouThrs = np.array([0.5])
        ev.params.recThrs = np.arange(11) / 10  # as ssd_tutorial.evaluate: k / 10, so 3/10 reaches 0.3
        ev.params.areaRng, ev.params.areaRngLbl = [[0.0, 1e10]], ["all"]
        ev.params.maxDets = [10**9]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        if not voc07:
            ev.summarize()
    if not voc07:
        return {"map": ev.stats[0], "map_50": ev.stats[1], "map_75": ev.stats[2]}
    precision = ev.eval["precision"][0, :, :, 0, 0]  # [R recall points, K classes]; -1: class without gt
    ap = {cat: float(precision[:, k].mean()) for k, cat in enumerate(ev.params.catIds) if precision[0, k] > -1}
    return {"map": float(np.mean(list(ap.values()))), "ap_per_class": ap}


def torchmetrics_map(detections: list[dict], targets: list[dict]) -> dict[str, float]:
    """torchmetrics ``MeanAveragePrecision`` (pycocotools backend): ``{"map", "map_50", "map_75"}``.

    Given pycocotools' own IoU and recall thresholds: its defaults come from a float32 ``torch.linspace``
    (0.07 becomes 0.0700000003), so a recall of exactly 7/100 misses the 0.07 point and AP50 can differ from
    pycocotools' by more than 1e-4 (0.4709 vs 0.4715 on the 100 images of ``--quick``).
    """
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox",
                                  iou_thresholds=np.linspace(0.5, 0.95, 10).tolist(),
                                  rec_thresholds=np.linspace(0.0, 1.0, 101).tolist())  # fmt: skip
    metric.update(detections, targets)
    out = metric.compute()
    return {k: float(out[k]) for k in ("map", "map_50", "map_75")}


def _same_values(ours: dict[str, Any], theirs: dict[str, Any], keys: tuple[str, ...], name: str) -> None:
    for key in keys:
        if abs(ours[key] - theirs[key]) > 1e-4:
            raise Mismatch(f"{key} {ours[key]:.6f} vs {name} {theirs[key]:.6f}")


def comparisons(opts: BenchOptions) -> Iterator[Comparison]:
    """VOC07 mAP vs pycocotools; COCO mAP vs torchmetrics (or pycocotools when torchmetrics is missing)."""
    num_images = 100 if opts.quick else 2000
    detections, targets = synthetic_detections(num_images, seed=opts.seed)

    def ours_voc() -> dict[str, Any]:
        return mean_average_precision(detections, targets, iou_threshold=0.5, method="voc07")

    def theirs_voc() -> dict[str, Any]:
        return pycocotools_map(detections, targets, voc07=True)

    def same_voc(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
        if sorted(ours["ap_per_class"]) != sorted(theirs["ap_per_class"]):
            raise Mismatch(f"classes {sorted(ours['ap_per_class'])} vs {sorted(theirs['ap_per_class'])}")
        _same_values(ours["ap_per_class"], theirs["ap_per_class"], tuple(ours["ap_per_class"]), "pycocotools")
        _same_values(ours, theirs, ("map",), "pycocotools")
        return f"same AP for all {len(ours['ap_per_class'])} classes to 1e-4 (mAP {ours['map']:.4f})"

    yield Comparison(what=f"VOC07 mAP@0.5, {num_images} images", ours_name="mean_average_precision",
                     theirs_name="pycocotools (IoU 0.5, 11 points)", ours=ours_voc, theirs=theirs_voc,
                     same=same_voc, goal=1.0, note="disjoint gt boxes: VOC and COCO matching agree")  # fmt: skip

    try:
        import torchmetrics.detection  # noqa: F401

        theirs_name, theirs_coco = "torchmetrics MeanAveragePrecision", torchmetrics_map
    except ImportError:
        theirs_name = "pycocotools (torchmetrics not installed)"

        def theirs_coco(detections: list[dict], targets: list[dict]) -> dict[str, float]:
            return pycocotools_map(detections, targets, voc07=False)

    keys = ("map", "map_50", "map_75")

    def same_coco(ours: dict[str, float], theirs: dict[str, float]) -> str:
        _same_values(ours, theirs, keys, theirs_name.split()[0])
        direct = pycocotools_map(detections, targets, voc07=False)
        _same_values(ours, direct, keys, "pycocotools")
        return f"same mAP {ours['map']:.4f}, AP50 {ours['map_50']:.4f}, AP75 {ours['map_75']:.4f} to 1e-4 " \
               f"(also = pycocotools directly)"  # fmt: skip

    yield Comparison(what=f"COCO mAP, {num_images} images", ours_name="coco_map", theirs_name=theirs_name,
                     ours=lambda: coco_map(detections, targets), theirs=lambda: theirs_coco(detections, targets),
                     same=same_coco, goal=1.0)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 images")
    args = parser.parse_args(argv)
    opts = BenchOptions(quick=args.quick)
    print_comparisons(comparisons(opts), opts, lambda r: (
        f"{r.ours_name} {r.ours_s * 1e3:.1f} ms, {r.theirs_name} {r.theirs_s * 1e3:.1f} ms, "
        f"speed-up x{r.speedup:.2f}"))  # fmt: skip


if __name__ == "__main__":
    main()
