"""Fit the anchors to a dataset: anchor coverage, k-means on IoU distance, a config built from the result.

The article promises to adapt SSD's constants to your own data; these are the measurements that guide it.
Coverage asks "how many ground-truth boxes have a default box that overlaps them well?" with the real
anchor grid (positions included); k-means on the distance ``1 - IoU`` of *centred* boxes (YOLOv2, Redmon
& Farhadi 2017, sec. 2 "Dimension Clusters") finds the typical box shapes, ignoring positions.

Introduced in: 08_your_own_dataset.ipynb
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import torch
from torch import Tensor
from torchvision.ops import box_iou

from .anchors import default_boxes
from .boxes import cxcywh_to_xyxy
from .config import SSDConfig

__all__ = ["dataset_boxes", "anchor_coverage", "centered_iou", "kmeans_box_shapes", "config_from_shapes"]

_PAIRS_PER_CHUNK = 2_000_000  # box x anchor IoU pairs computed at once (bounds memory for SSD512's 24564 anchors)


def _check_boxes(boxes_xyxy: Any) -> Tensor:
    if not isinstance(boxes_xyxy, Tensor):
        raise TypeError(f"boxes_xyxy must be a Tensor[M, 4], got {type(boxes_xyxy).__name__}")
    if boxes_xyxy.ndim != 2 or boxes_xyxy.shape[-1] != 4:
        raise ValueError(f"boxes_xyxy must be [M, 4] xyxy pixels, got {list(boxes_xyxy.shape)}")
    if boxes_xyxy.shape[0] == 0:
        raise ValueError("boxes_xyxy must hold at least one box, got [0, 4]: coverage of no boxes is undefined")
    if not boxes_xyxy.is_floating_point():
        boxes_xyxy = boxes_xyxy.float()
    wh = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]  # [M, 2]
    if not bool((wh > 0).all()):
        bad = int((wh <= 0).any(dim=1).nonzero()[0])
        raise ValueError(f"boxes_xyxy must have x2 > x1 and y2 > y1; box {bad} is {boxes_xyxy[bad].tolist()}")
    return boxes_xyxy


def _check_wh(wh: Any, name: str) -> Tensor:
    if not isinstance(wh, Tensor):
        raise TypeError(f"{name} must be a Tensor[N, 2] of (w, h), got {type(wh).__name__}")
    if wh.ndim != 2 or wh.shape[-1] != 2:
        raise ValueError(f"{name} must be [N, 2] (w, h) pixels, got {list(wh.shape)}")
    if not wh.is_floating_point():
        wh = wh.float()
    if not bool((wh > 0).all()) or not bool(torch.isfinite(wh).all()):
        raise ValueError(f"{name} must hold finite positive widths and heights")
    return wh


def dataset_boxes(dataset: Any, *, max_images: int | None = None) -> dict[str, Tensor]:
    """All ground-truth boxes of a detection dataset, concatenated.

    Give the dataset the model's resizing (e.g. ``transforms=eval_transforms(cfg)``) so that the boxes come
    in the model's input pixels, where anchors live. Images are read one by one (this is data loading, not
    a hot path).

    Args:
        dataset: items ``(image, {"boxes": Tensor[M, 4] xyxy px, "labels": Tensor[M]})``.
        max_images: read only the first ``max_images`` items.

    Returns:
        ``{"boxes": Tensor[N, 4] float32 xyxy px, "labels": Tensor[N] long, "image_index": Tensor[N] long}``.

    Introduced in: 08_your_own_dataset.ipynb
    """
    count = len(dataset) if max_images is None else min(int(max_images), len(dataset))
    boxes, labels, index = [], [], []
    for i in range(count):
        _, target = dataset[i]
        b = torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4)  # [M, 4]
        boxes.append(b)
        labels.append(torch.as_tensor(target["labels"], dtype=torch.long).reshape(-1))
        index.append(torch.full((b.shape[0],), i, dtype=torch.long))
    if not boxes:
        return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
                "image_index": torch.zeros(0, dtype=torch.long)}  # fmt: skip
    return {"boxes": torch.cat(boxes), "labels": torch.cat(labels), "image_index": torch.cat(index)}


def anchor_coverage(boxes_xyxy: Tensor, cfg: SSDConfig, iou_threshold: float | None = None) -> dict[str, Any]:
    """How well the default boxes of ``cfg`` can reach a set of ground-truth boxes.

    A box is *covered* when its best anchor (highest IoU over all A unclipped anchors, as matching uses
    them) has IoU >= ``iou_threshold``: such a box gets positives from the threshold step of matching and
    its regression starts close. An uncovered box still gets one anchor from the bipartite
    step, but starts far from it.

    Args:
        boxes_xyxy: Tensor[M, 4] xyxy in the model's input pixels (M >= 1).
        cfg: the configuration whose anchors are measured.
        iou_threshold: default ``cfg.iou_threshold`` (0.5, SSD paper sec. 2.2 "Matching strategy").

    Returns:
        ``{"overall": float`` share of covered boxes, ``"per_level": list[float]`` (L) share of boxes covered
        by level k's anchors alone, ``"best_level_share": list[float]`` (L) share of boxes that are covered
        and whose best anchor lies on level k (sums to ``overall``), ``"best_iou": Tensor[M]``,
        ``"best_level": Tensor[M] long``, ``"best_anchor": Tensor[M] long``, ``"num_boxes": int}``.

    Introduced in: 08_your_own_dataset.ipynb
    """
    boxes = _check_boxes(boxes_xyxy)
    if not isinstance(cfg, SSDConfig):
        raise TypeError(f"cfg must be an SSDConfig, got {type(cfg).__name__}")
    threshold = cfg.iou_threshold if iou_threshold is None else float(iou_threshold)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    anchors = cxcywh_to_xyxy(default_boxes(cfg)).to(boxes.device, boxes.dtype)  # [A, 4]
    per_level_counts = torch.tensor(cfg.anchors_per_level, device=boxes.device)
    level_of_anchor = torch.repeat_interleave(torch.arange(cfg.num_levels, device=boxes.device),
                                              per_level_counts)  # [A]  # fmt: skip
    M, L = boxes.shape[0], cfg.num_levels
    best_iou = torch.empty(M, dtype=boxes.dtype, device=boxes.device)
    best_anchor = torch.empty(M, dtype=torch.long, device=boxes.device)
    level_best = torch.empty(M, L, dtype=boxes.dtype, device=boxes.device)
    chunk = max(1, _PAIRS_PER_CHUNK // anchors.shape[0])
    for lo in range(0, M, chunk):
        iou = box_iou(boxes[lo : lo + chunk], anchors)  # [m, A]
        best_iou[lo : lo + chunk], best_anchor[lo : lo + chunk] = iou.max(dim=1)
        # Best IoU per level: split the anchor axis at the level boundaries (anchors are ordered level by level).
        parts = iou.split(cfg.anchors_per_level, dim=1)  # L x [m, A_k]
        level_best[lo : lo + chunk] = torch.stack([p.max(dim=1).values for p in parts], dim=1)  # [m, L]
    best_level = level_of_anchor[best_anchor]  # [M]
    covered = best_iou >= threshold  # [M]
    share_by_level = torch.bincount(best_level[covered], minlength=L).to(torch.float64) / M  # [L]
    return {
        "overall": float(covered.double().mean()),
        "per_level": (level_best >= threshold).double().mean(dim=0).tolist(),
        "best_level_share": share_by_level.tolist(),
        "best_iou": best_iou,
        "best_level": best_level,
        "best_anchor": best_anchor,
        "num_boxes": M,
    }


def centered_iou(wh_a: Tensor, wh_b: Tensor) -> Tensor:
    """IoU of boxes placed on a common centre, from their sizes only: Tensor[N, K].

    ``inter = min(w_a, w_b) * min(h_a, h_b)``, ``union = w_a h_a + w_b h_b - inter``.

    Args:
        wh_a: Tensor[N, 2] (w, h) pixels.
        wh_b: Tensor[K, 2] (w, h) pixels.

    Introduced in: 08_your_own_dataset.ipynb
    """
    a, b = _check_wh(wh_a, "wh_a"), _check_wh(wh_b, "wh_b")
    b = b.to(a.device, a.dtype)
    inter = torch.minimum(a[:, None, 0], b[None, :, 0]) * torch.minimum(a[:, None, 1], b[None, :, 1])  # [N, K]
    union = a.prod(dim=1)[:, None] + b.prod(dim=1)[None, :] - inter  # [N, K]
    return inter / union


def kmeans_box_shapes(wh: Tensor, k: int, *, iters: int = 300, seed: int = 0) -> dict[str, Any]:
    """k-means of box sizes with the distance ``1 - centered_iou`` (YOLOv2's dimension clusters).

    Lloyd's iterations: assign every box to the centroid of highest centred IoU, move each centroid to the
    mean (w, h) of its boxes, until no assignment changes (or ``iters``). Start: k-means++ seeding with
    the IoU distance, from ``torch.Generator().manual_seed(seed)``, so a seed gives one answer. A
    centroid left without boxes jumps to the box farthest from its own centroid. Euclidean k-means on
    (w, h) would let large boxes dominate; 1 - IoU treats a 10 px error on a 20 px box as worse than
    on a 200 px box.

    Args:
        wh: Tensor[N, 2] (w, h) pixels, N >= k.
        k: number of shapes.

    Returns:
        ``{"shapes_wh": Tensor[k, 2]`` sorted by area ascending, ``"assignment": Tensor[N] long`` (index into
        shapes_wh), ``"mean_iou": float`` mean over boxes of the centred IoU with their own centroid,
        ``"iterations": int}``.

    Introduced in: 08_your_own_dataset.ipynb
    """
    data = _check_wh(wh, "wh")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if data.shape[0] < k:
        raise ValueError(f"k-means needs at least k = {k} boxes, got {data.shape[0]}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive int, got {iters!r}")
    gen = torch.Generator().manual_seed(seed)
    N = data.shape[0]
    first = int(torch.randint(N, (1,), generator=gen))
    centroids = [data[first]]
    for _ in range(1, k):  # k-means++: next seed drawn with probability ~ distance^2 to the nearest centroid
        dist = 1.0 - centered_iou(data, torch.stack(centroids)).max(dim=1).values  # [N]
        weights = (dist**2).cpu().double()
        pick = int(torch.multinomial(weights, 1, generator=gen)) if weights.sum() > 0 else int(
            torch.randint(N, (1,), generator=gen))  # fmt: skip
        centroids.append(data[pick])
    centers = torch.stack(centroids).clone()  # [k, 2]
    assignment = torch.full((N,), -1, dtype=torch.long, device=data.device)
    iterations = 0
    while iterations < iters:
        iterations += 1
        new_assignment = centered_iou(data, centers).argmax(dim=1)  # [N]
        counts = torch.bincount(new_assignment, minlength=k)  # [k]
        for empty in (counts == 0).nonzero().flatten().tolist():  # rare: re-seed at the worst-fitted box
            fit = centered_iou(data, centers)[torch.arange(N), new_assignment]  # [N]
            worst = int(fit.argmin())
            centers[empty] = data[worst]
            new_assignment[worst] = empty
            counts = torch.bincount(new_assignment, minlength=k)
        if torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
        sums = torch.zeros_like(centers).index_add_(0, assignment, data)  # [k, 2]
        centers = sums / counts[:, None].to(data.dtype)
    centers = centers[centers.prod(dim=1).argsort()]  # by area, ascending
    fit, assignment = centered_iou(data, centers).max(dim=1)  # [N] each, consistent with the final centroids
    mean_iou = fit.mean()
    return {"shapes_wh": centers, "assignment": assignment, "mean_iou": float(mean_iou), "iterations": iterations}


def config_from_shapes(cfg: SSDConfig, shapes_wh: Tensor, *, min_size_per_step: float = 2.0,
                       ratio_threshold: float = 1.5, max_ratios: int = 2,
                       name: str | None = None) -> SSDConfig:  # fmt: skip
    """A copy of ``cfg`` whose box sizes and aspect ratios come from L + 1 typical box shapes.

    Rules (each one shown in 08_your_own_dataset.ipynb):

    1. **Sizes.** The shapes, sorted by scale ``sqrt(w h)``, give the L + 1 ``box_sizes``. Level k's size is
       raised to at least ``min_size_per_step * steps[k]``: anchor centres are ``steps[k]`` apart, and an
       anchor much smaller than that gap misses the boxes whose centres fall between two anchors (k-means
       ignores positions; :func:`anchor_coverage` does not). Sizes are then made strictly increasing
       (each at least 5 % above the previous one).
    2. **Aspect ratios.** Each shape whose elongation ``max(w/h, h/w)`` is >= ``ratio_threshold`` (the two
       squares already cover elongations near 1) proposes that elongation rounded to the nearest 0.5.
       The ``max_ratios`` most frequent candidates (ties: the smaller ratio) go to every level; each ratio r
       gives SSD's r:1 and 1:r boxes. Square-only data gets no ratio: 2 anchors per location.

    Feature maps, steps, channels and everything else are kept, so the same backbone fits.

    Args:
        cfg: the configuration to adapt.
        shapes_wh: Tensor[L + 1, 2] (w, h) in input pixels, e.g. ``kmeans_box_shapes(wh, L + 1)["shapes_wh"]``.
        min_size_per_step: floor on s_k in units of the level's step (0 disables it).
        ratio_threshold: smallest elongation that becomes an aspect ratio (> 1).
        max_ratios: at most this many aspect ratios per level.
        name: the new config's name; default ``cfg.name + "_fitted"``.

    Introduced in: 08_your_own_dataset.ipynb
    """
    if not isinstance(cfg, SSDConfig):
        raise TypeError(f"cfg must be an SSDConfig, got {type(cfg).__name__}")
    shapes = _check_wh(shapes_wh, "shapes_wh").detach().double().cpu()
    L = cfg.num_levels
    if shapes.shape[0] != L + 1:
        raise ValueError(f"shapes_wh must hold L + 1 = {L + 1} shapes for {cfg.name} ({L} levels), "
                         f"got {shapes.shape[0]}; use kmeans_box_shapes(wh, k={L + 1})")  # fmt: skip
    if not (math.isfinite(min_size_per_step) and min_size_per_step >= 0):
        raise ValueError(f"min_size_per_step must be a finite number >= 0, got {min_size_per_step!r}")
    if not ratio_threshold > 1.0:
        raise ValueError(f"ratio_threshold must be > 1 (squares are always there), got {ratio_threshold!r}")
    if isinstance(max_ratios, bool) or not isinstance(max_ratios, int) or max_ratios < 0:
        raise ValueError(f"max_ratios must be an int >= 0, got {max_ratios!r}")
    scales = shapes.prod(dim=1).sqrt()  # [L + 1]
    order = scales.argsort()
    scales, shapes = scales[order].tolist(), shapes[order]
    sizes: list[float] = []
    for k, scale in enumerate(scales):
        floor = min_size_per_step * cfg.steps[k] if k < L else 0.0  # the extra size s_L has no grid of its own
        size = max(scale, floor, sizes[-1] * 1.05 if sizes else 0.0)
        sizes.append(round(size, 2))
    elongation = torch.maximum(shapes[:, 0] / shapes[:, 1], shapes[:, 1] / shapes[:, 0])  # [L + 1], >= 1
    counts = Counter(round(2 * e) / 2 for e in elongation.tolist() if e >= ratio_threshold)
    ratios = sorted(sorted(counts, key=lambda r: (-counts[r], r))[:max_ratios])
    return cfg.replace(
        name=name if name is not None else f"{cfg.name}_fitted",
        box_sizes=tuple(sizes),
        aspect_ratios=tuple(tuple(float(r) for r in ratios) for _ in range(L)),
    )
