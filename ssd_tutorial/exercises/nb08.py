"""Exercises of 08_your_own_dataset.ipynb: centred IoU of box sizes, one k-means step on IoU distance.

Introduced in: 08_your_own_dataset.ipynb
"""

from __future__ import annotations

from typing import Any

import torch

from . import register
from .nb07 import compare_tensor


def _sample_wh(seed: int, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 2.0 + 60.0 * torch.rand(n, 2, generator=gen)  # [n, 2] (w, h) pixels


@register(
    "08_centered_iou",
    question="Write centered_iou(wh_a, wh_b) for Tensor[N, 2] and Tensor[K, 2] of (w, h): the IoU of every pair "
    "of boxes placed on a common centre, as Tensor[N, K].",
    hint="On a common centre the overlap is min(w_a, w_b) x min(h_a, h_b). Broadcast: wh_a[:, None, 0] against "
    "wh_b[None, :, 0] gives [N, K]. union = area_a + area_b - inter.",
    solution="""
def centered_iou(wh_a, wh_b):
    inter = (torch.minimum(wh_a[:, None, 0], wh_b[None, :, 0])
             * torch.minimum(wh_a[:, None, 1], wh_b[None, :, 1]))              # [N, K]
    union = wh_a.prod(1)[:, None] + wh_b.prod(1)[None, :] - inter              # [N, K]
    return inter / union
""",
)
def _check_centered_iou(answer: Any) -> str | None:
    from ..analysis import centered_iou

    if not callable(answer):
        return f"give a function centered_iou(wh_a, wh_b), got {type(answer).__name__}"
    cases = [(torch.tensor([[2.0, 2.0]]), torch.tensor([[1.0, 4.0]])), (_sample_wh(0, 5), _sample_wh(1, 3))]
    for wh_a, wh_b in cases:
        try:
            got = answer(wh_a.clone(), wh_b.clone())
        except Exception as error:
            return f"centered_iou on [{len(wh_a)}, 2] and [{len(wh_b)}, 2] raised {type(error).__name__}: {error}"
        what = f"centered_iou([{len(wh_a)}, 2], [{len(wh_b)}, 2])"
        problem = compare_tensor(centered_iou(wh_a, wh_b), got, what=what)
        if problem is not None:
            if len(wh_a) == 1:
                problem += (" (work (2, 2) against (1, 4) by hand: on one centre the overlap is min(w) x min(h), "
                            "the union is the sum of the two areas minus the overlap)")  # fmt: skip
            return problem
    return None


def _expected_step(wh: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from ..analysis import centered_iou

    assignment = centered_iou(wh, centroids).argmax(dim=1)  # [N]
    means = torch.stack([wh[assignment == j].mean(dim=0) for j in range(len(centroids))])  # [k, 2]
    return assignment, means


@register(
    "08_kmeans_step",
    question="Write kmeans_step(wh, centroids): one Lloyd iteration of k-means with distance 1 - centred IoU. "
    "Assign every box (Tensor[N, 2]) to the centroid (Tensor[k, 2]) of highest centred IoU, then move every "
    "centroid to the mean (w, h) of its boxes. Return (assignment Tensor[N] long, new_centroids Tensor[k, 2]). "
    "(The checker gives every centroid at least one box.)",
    hint="assignment = ssd_tutorial.analysis.centered_iou(wh, centroids).argmax(dim=1) — highest IoU means "
    "smallest distance. Then wh[assignment == j].mean(dim=0) for each j.",
    solution="""
def kmeans_step(wh, centroids):
    assignment = ssd_tutorial.analysis.centered_iou(wh, centroids).argmax(dim=1)        # [N]
    new = torch.stack([wh[assignment == j].mean(dim=0) for j in range(len(centroids))])  # [k, 2]
    return assignment, new
""",
)
def _check_kmeans_step(answer: Any) -> str | None:
    if not callable(answer):
        return f"give a function kmeans_step(wh, centroids), got {type(answer).__name__}"
    wh = torch.cat([_sample_wh(2, 12), torch.tensor([[4.0, 4.0], [30.0, 30.0], [12.0, 12.0]])])  # [15, 2]
    centroids = torch.tensor([[4.0, 4.0], [30.0, 30.0], [20.0, 50.0]])
    try:
        result = answer(wh.clone(), centroids.clone())
    except Exception as error:
        return f"kmeans_step raised {type(error).__name__}: {error}"
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return f"kmeans_step should return (assignment, new_centroids), got {type(result).__name__}"
    assignment, means = _expected_step(wh, centroids)
    problem = compare_tensor(assignment, result[0], what="assignment")
    if problem is not None:
        if int(torch.as_tensor(result[0])[-1]) == 0:
            problem += (" (box (12, 12) is nearer (4, 4) in pixels; compare its centred IoU with each centroid "
                        "instead: use IoU, not Euclidean distance)")  # fmt: skip
        return problem
    return compare_tensor(means, result[1], what="new_centroids", atol=1e-4)
