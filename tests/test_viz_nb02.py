"""Tests for the viz functions of 02_anchor_tiling.ipynb: anchor coverage counts, grids and their figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ssd_tutorial import viz  # noqa: E402
from ssd_tutorial.anchors import default_boxes  # noqa: E402
from ssd_tutorial.boxes import cxcywh_to_xyxy  # noqa: E402
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC, TINY_SHAPES  # noqa: E402


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    yield
    assert plt.get_fignums() == []


def _coverage_brute_force(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    ys = torch.arange(height, dtype=torch.float64) + 0.5  # pixel centres
    xs = torch.arange(width, dtype=torch.float64) + 0.5
    b = boxes.to(torch.float64)
    inside_x = (xs[None, :] >= b[:, 0:1]) & (xs[None, :] < b[:, 2:3])  # [N, W]
    inside_y = (ys[None, :] >= b[:, 1:2]) & (ys[None, :] < b[:, 3:4])  # [N, H]
    return (inside_y[:, :, None] & inside_x[:, None, :]).sum(0)  # [H, W]


def test_pixel_anchor_counts_hand_worked():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.5, 0.5, 1.5, 1.5], [3.0, 1.0, 9.0, 2.0]])
    expected = torch.tensor([[2, 1, 0, 0],
                             [1, 1, 0, 1],
                             [0, 0, 0, 0]])  # fmt: skip
    assert torch.equal(viz.pixel_anchor_counts(boxes, (3, 4)), expected)


def test_pixel_anchor_counts_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    corners = torch.rand(200, 2, generator=gen) * 60 - 15  # some outside the 20 x 30 image
    sizes = torch.rand(200, 2, generator=gen) * 25
    sizes[:10] = 0.0  # degenerate boxes cover nothing
    boxes = torch.cat([corners, corners + sizes], dim=1)
    assert torch.equal(viz.pixel_anchor_counts(boxes, (20, 30)), _coverage_brute_force(boxes, 20, 30))


def test_pixel_anchor_counts_of_ssd512_level6():
    start = sum(SSD512_VOC.anchors_per_level[:6])
    boxes = cxcywh_to_xyxy(default_boxes(SSD512_VOC)[start:])  # the 4 anchors centred at (256, 256)
    counts = viz.pixel_anchor_counts(boxes, 512)
    assert counts.shape == (512, 512) and counts.dtype == torch.int64
    assert int(counts[256, 256]) == 4 and int(counts[0, 0]) == 0
    assert torch.equal(counts, _coverage_brute_force(boxes, 512, 512))


def test_pixel_anchor_counts_inside_box_area_sum():
    boxes = torch.tensor([[2.0, 3.0, 10.0, 7.0], [0.0, 0.0, 16.0, 16.0]])
    assert int(viz.pixel_anchor_counts(boxes, 16).sum()) == 8 * 4 + 16 * 16


@pytest.mark.parametrize("bad, size", [(torch.zeros(3, 3), 8), (torch.tensor([[5.0, 0.0, 1.0, 4.0]]), 8),
                                       (torch.tensor([[0.0, 0.0, float("nan"), 4.0]]), 8),
                                       (torch.zeros(1, 4), 0)])
def test_pixel_anchor_counts_rejects_bad_input(bad, size):
    with pytest.raises(ValueError):
        viz.pixel_anchor_counts(bad, size)


def test_pixel_anchor_counts_empty():
    assert torch.equal(viz.pixel_anchor_counts(torch.zeros(0, 4), 5), torch.zeros(5, 5, dtype=torch.int64))


def test_draw_level_grid_lines_and_centres():
    fig = Figure()
    ax = fig.add_subplot()
    viz.draw_level_grid(ax, SSD512_VOC, 3)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(lines) == 1 and len(lines[0].get_segments()) == 2 * (8 + 1)
    offsets = points[0].get_offsets()
    assert len(offsets) == 64
    assert tuple(offsets[0]) == (32.0, 32.0) and tuple(offsets[1]) == (96.0, 32.0)  # row by row, x first
    ax2 = fig.add_subplot(2, 1, 2)
    viz.draw_level_grid(ax2, SSD300_VOC, 0, centers=False)
    assert not [c for c in ax2.collections if isinstance(c, PathCollection)]
    assert max(max(x for x, _ in seg) for seg in ax2.collections[0].get_segments()) == 38 * 8  # past the edge
    with pytest.raises(ValueError, match="level"):
        viz.draw_level_grid(ax, SSD512_VOC, 7)


def test_plot_level_grids_one_panel_per_level():
    fig = viz.plot_level_grids(TINY_SHAPES, torch.rand(3, 128, 128))
    assert isinstance(fig, Figure) and len(fig.axes) == TINY_SHAPES.num_levels
    assert fig.axes[0].get_title().startswith("level 0: 16x16, step 8")
    bottom, top = fig.axes[0].get_ylim()
    assert bottom > top
    assert len(viz.plot_level_grids(SSD512_VOC, levels=[2]).axes) == 1


def test_plot_anchor_coverage_panels():
    fig = viz.plot_anchor_coverage(TINY_SHAPES)
    image_axes = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert len(image_axes) == TINY_SHAPES.num_levels + 1
    total = viz.pixel_anchor_counts(cxcywh_to_xyxy(default_boxes(TINY_SHAPES)), 128)
    assert f"max {int(total.max())}" in image_axes[-1].get_title()
    only_total = viz.plot_anchor_coverage(TINY_SHAPES, per_level=False)
    assert len([ax for ax in only_total.axes if ax.images and ax.get_title()]) == 1
