"""Tests for the drawing helpers of 05_loss.ipynb (viz.draw_matches, viz.plot_anchor_values) on Agg."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ssd_tutorial import viz  # noqa: E402
from ssd_tutorial.config import TINY_SHAPES  # noqa: E402


@pytest.fixture
def ax():
    return Figure().add_subplot()


def test_draw_matches_one_rectangle_per_matched_anchor_and_box(ax):
    image = torch.zeros(3, 32, 32)
    gt = torch.tensor([[2.0, 2.0, 12.0, 12.0], [16.0, 16.0, 30.0, 30.0]])
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [15.0, 15.0, 31.0, 31.0], [5.0, 5.0, 9.0, 9.0],
                            [-8.0, -8.0, 40.0, 40.0]])  # fmt: skip
    matches = torch.tensor([0, 1, -1, 1])
    highlight = torch.tensor([True, True, False, False])
    viz.draw_matches(ax, image, gt, anchors, matches, highlight=highlight, labels=[1, 2],
                     class_names=("bg", "circle", "square"))  # fmt: skip
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(rects) == 3 + 2  # anchors 0, 1, 3 and the two boxes
    anchor_rects = rects[:3]
    assert [r.get_linestyle() for r in anchor_rects] == ["-", "-", "--"]
    assert anchor_rects[1].get_edgecolor() == anchor_rects[2].get_edgecolor() != anchor_rects[0].get_edgecolor()
    assert rects[3].get_edgecolor()[:3] == anchor_rects[0].get_edgecolor()[:3]  # box 0 and its anchor: one colour
    assert [t.get_text() for t in ax.texts] == ["0: circle", "1: square"]
    assert ax.get_xlim() == (0.0, 32.0) and ax.get_ylim() == (32.0, 0.0)  # origin top-left, unclipped anchors cut


def test_draw_matches_rejects_bad_shapes(ax):
    image = torch.zeros(3, 8, 8)
    with pytest.raises(ValueError, match=r"matches \[A\]"):
        viz.draw_matches(ax, image, torch.zeros(1, 4), torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="refer to box 1 but there are 1 boxes"):
        viz.draw_matches(ax, image, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), torch.zeros(1, 4), torch.tensor([1]))


def test_plot_anchor_values_cells_take_the_max_of_their_anchors():
    cfg = TINY_SHAPES
    values = torch.zeros(cfg.num_anchors)
    # Level 0 is 16x16 with 4 anchors per cell: anchor 2 of cell (row 3, col 5) gets 7.
    values[(3 * 16 + 5) * 4 + 2] = 7.0
    start1 = cfg.anchors_per_level[0]
    values[start1 + (1 * 8 + 6) * 6 + 5] = 2.0  # level 1 (8x8, 6 per cell): cell (row 1, col 6)
    mark = torch.zeros(cfg.num_anchors, dtype=torch.bool)
    mark[(3 * 16 + 5) * 4 + 2] = True
    fig = viz.plot_anchor_values(torch.zeros(3, 128, 128), values, cfg, levels=[0, 1], mark=mark,
                                 value_label="CE", title="t")  # fmt: skip
    panels = [a for a in fig.axes if a.get_title().startswith("level")]
    assert len(panels) == 2
    heat0 = panels[0].images[1].get_array()
    assert heat0.shape == (16, 16) and heat0[3, 5] == 7.0 and heat0.sum() == 7.0
    heat1 = panels[1].images[1].get_array()
    assert heat1.shape == (8, 8) and heat1[1, 6] == 2.0
    assert panels[0].images[1].get_extent() == [0, 128, 128, 0]
    offsets = panels[0].collections[0].get_offsets()
    assert offsets.tolist() == [[(5 + 0.5) * 8, (3 + 0.5) * 8]]  # the dot sits at the cell centre (x, y)
    assert panels[1].collections[0].get_offsets().shape[0] == 0


def test_plot_anchor_values_rejects_bad_input():
    cfg = TINY_SHAPES
    with pytest.raises(ValueError, match="one entry per anchor"):
        viz.plot_anchor_values(torch.zeros(3, 128, 128), torch.zeros(10), cfg)
    with pytest.raises(ValueError, match="levels must be"):
        viz.plot_anchor_values(torch.zeros(3, 128, 128), torch.zeros(cfg.num_anchors), cfg, levels=[7])


def test_plot_anchor_values_leaves_nan_cells_transparent():
    cfg = TINY_SHAPES
    values = torch.ones(cfg.num_anchors)
    values[:4] = float("nan")  # every anchor of cell (0, 0) of level 0
    values[4] = float("nan")  # one anchor of cell (0, 1): the cell shows the max of the others
    values[5] = 3.0
    fig = viz.plot_anchor_values(torch.zeros(3, 128, 128), values, cfg, levels=[0])
    heat = fig.axes[0].images[1].get_array()
    assert np.ma.is_masked(heat[0, 0]) or np.isnan(heat[0, 0])  # imshow masks NaN: nothing drawn there
    assert heat[0, 1] == 3.0 and heat[1, 1] == 1.0


def test_plot_anchor_values_log_scale():
    from matplotlib.colors import LogNorm

    cfg = TINY_SHAPES
    values = torch.full((cfg.num_anchors,), 1e-6)
    values[0] = 4.0
    fig = viz.plot_anchor_values(torch.zeros(3, 128, 128), values, cfg, levels=[0], log=True)
    norm = fig.axes[0].images[1].norm
    assert isinstance(norm, LogNorm) and norm.vmax == 4.0 and norm.vmin == pytest.approx(4e-4)
    with pytest.raises(ValueError, match="log=True needs a positive"):
        viz.plot_anchor_values(torch.zeros(3, 128, 128), torch.zeros(cfg.num_anchors), cfg, log=True)
