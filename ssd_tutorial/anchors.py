"""Default (anchor) boxes tiled over every feature map.

Introduced in: 02_anchor_tiling.ipynb
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .config import SSDConfig

__all__ = ["default_boxes", "level_box_shapes", "anchor_table", "format_anchor_table"]


def _check_cfg(cfg: object) -> None:
    if not isinstance(cfg, SSDConfig):
        hint = " (build one with SSDConfig(**d) or SSDConfig.from_dict(d))" if isinstance(cfg, dict) else ""
        raise TypeError(f"cfg must be an SSDConfig, got {type(cfg).__name__}{hint}")


def level_box_shapes(cfg: SSDConfig, level: int) -> list[tuple[float, float]]:
    """The (w, h) in pixels of the anchors at one location of ``level``, in anchor order.

    ``[s_k square, sqrt(s_k * s_{k+1}) square, then per ratio r: (s_k*sqrt(r), s_k/sqrt(r)),
    (s_k/sqrt(r), s_k*sqrt(r))]`` (SSD paper, section 2.2 "Choosing scales and aspect ratios").
    """
    _check_cfg(cfg)
    if isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(f"level must be an int, got {type(level).__name__} {level!r}")
    if not 0 <= level < cfg.num_levels:
        raise ValueError(f"level must be in [0, {cfg.num_levels - 1}], got {level}")
    s_k, s_next = cfg.box_sizes[level], cfg.box_sizes[level + 1]
    s_prime = math.sqrt(s_k * s_next)
    shapes = [(s_k, s_k), (s_prime, s_prime)]
    for ratio in cfg.aspect_ratios[level]:
        root = math.sqrt(ratio)
        shapes += [(s_k * root, s_k / root), (s_k / root, s_k * root)]
    return shapes


def default_boxes(cfg: SSDConfig) -> Tensor:
    """All default boxes of ``cfg``: Tensor[A, 4] float32, cxcywh in pixels, not clipped.

    Order: level by level; inside a level row i (over y), then column j (over x); at each location
    the shapes of :func:`level_box_shapes`. Centres are ``((j + 0.5) * step_k, (i + 0.5) * step_k)``.
    The model flattens its head outputs in the same order, so anchor a goes with prediction a.
    """
    _check_cfg(cfg)
    per_level = []
    for level, (fm, step) in enumerate(zip(cfg.feature_map_sizes, cfg.steps)):
        centers_1d = (torch.arange(fm, dtype=torch.float64) + 0.5) * step  # [fm]
        cy, cx = torch.meshgrid(centers_1d, centers_1d, indexing="ij")  # [fm, fm] each, i over y
        centers = torch.stack([cx, cy], dim=-1).reshape(fm * fm, 1, 2)  # [fm*fm, 1, 2]
        shapes = torch.tensor(level_box_shapes(cfg, level), dtype=torch.float64)  # [k, 2]
        k = shapes.shape[0]
        boxes = torch.cat([centers.expand(-1, k, -1), shapes.expand(fm * fm, -1, -1)], dim=-1)  # [fm*fm, k, 4]
        per_level.append(boxes.reshape(-1, 4))  # [fm*fm*k, 4]
    return torch.cat(per_level).to(torch.float32)  # [A, 4]


def anchor_table(cfg: SSDConfig) -> list[dict]:
    """One row per level: feature map, step, box sizes, aspect ratios and anchor counts.

    The table of 01_constants.ipynb and of ``python -m ssd_tutorial anchors``.
    """
    _check_cfg(cfg)
    rows = []
    for level in range(cfg.num_levels):
        fm = cfg.feature_map_sizes[level]
        rows.append({
            "level": level,
            "feature_map": fm,
            "step": cfg.steps[level],
            "box_size": cfg.box_sizes[level],
            "next_box_size": cfg.box_sizes[level + 1],
            "aspect_ratios": cfg.aspect_ratios[level],
            "in_channels": cfg.in_channels[level],
            "anchors_per_location": cfg.anchors_per_location[level],
            "anchors": cfg.anchors_per_level[level],
        })  # fmt: skip
    return rows


def format_anchor_table(cfg: SSDConfig) -> str:
    """:func:`anchor_table` as fixed-width text, with a total line."""
    _check_cfg(cfg)
    header = (
        f"{'level':>5} {'map':>7} {'step':>7} {'s_k':>7} {'s_k+1':>7} {'ratios':>8} {'ch':>5}"
        f" {'per loc':>7} {'anchors':>8}"
    )
    lines = [f"{cfg.name}: {cfg.image_size}x{cfg.image_size} input, {cfg.num_classes} classes", header]
    for row in anchor_table(cfg):
        fm = row["feature_map"]
        ratios = ",".join(f"{r:g}" for r in row["aspect_ratios"])
        lines.append(
            f"{row['level']:>5} {f'{fm}x{fm}':>7} {row['step']:>7.4g} {row['box_size']:>7.2f}"
            f" {row['next_box_size']:>7.2f} {ratios:>8} {row['in_channels']:>5}"
            f" {row['anchors_per_location']:>7} {row['anchors']:>8}"
        )
    lines.append(f"{'total':>5} {'':>7} {'':>7} {'':>7} {'':>7} {'':>8} {'':>5} {'':>7} {cfg.num_anchors:>8}")
    return "\n".join(lines)
