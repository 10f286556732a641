"""Tests for the viz functions of 08_your_own_dataset: box shapes against anchor shapes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ssd_tutorial import viz  # noqa: E402

WH = torch.tensor([[10.0, 10.0], [20.0, 10.0], [10.0, 30.0], [40.0, 40.0]])
ANCHORS = torch.tensor([[12.8, 12.8], [18.1, 18.1], [18.1, 9.05], [9.05, 18.1]])


def test_draw_box_shapes_colours_by_coverage_and_marks_anchors():
    ax = Figure().add_subplot()
    viz.draw_box_shapes(ax, WH, ANCHORS, covered=torch.tensor([True, True, False, True]),
                        extra={"k-means": torch.tensor([[15.0, 15.0]])})  # fmt: skip
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["covered (3)", "not covered (1)", "anchor shapes (4)", "k-means"]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lo, hi = ax.get_xlim()
    assert lo < 9.05 and hi > 40.0
    assert len(ax.lines) == 5  # the dotted lines of ratios 1/3, 1/2, 1, 2, 3


def test_plot_box_shapes_histogram_of_ratios():
    fig = viz.plot_box_shapes(WH, ANCHORS, title="t")
    scatter, hist = fig.axes
    counts = [p.get_height() for p in hist.patches]
    assert sum(counts) == 4  # every box is in one bin
    assert len(hist.lines) == 3  # anchor ratios 0.5, 1, 2
    assert [round(x, 3) for line in hist.lines for x in [line.get_xdata()[0]]] == [0.5, 1.0, 2.0]
    assert fig._suptitle.get_text() == "t"


@pytest.mark.parametrize("wh, message", [
    (torch.zeros(0, 2), "N >= 1"),
    (torch.ones(3), r"\[N, 2\]"),
    (torch.tensor([[0.0, 1.0]]), "positive"),
])  # fmt: skip
def test_box_shapes_errors(wh, message):
    with pytest.raises(ValueError, match=message):
        viz.plot_box_shapes(wh)


def test_covered_must_match_boxes():
    with pytest.raises(ValueError, match="one flag per box"):
        viz.draw_box_shapes(Figure().add_subplot(), WH, covered=torch.tensor([True]))
