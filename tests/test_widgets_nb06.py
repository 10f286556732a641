"""Tests for the live training plot of 06_training.ipynb: fit's on_epoch_end records and its printed lines."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ssd_tutorial.config import TINY_SHAPES  # noqa: E402
from ssd_tutorial.data import ShapesDataset, collate_detection  # noqa: E402
from ssd_tutorial.model import build_ssd  # noqa: E402
from ssd_tutorial.train import fit  # noqa: E402
from ssd_tutorial.widgets.nb06 import LiveHistoryPlot  # noqa: E402


@pytest.mark.slow
def test_live_plot_gets_what_fit_reports():
    # The printed format is fit's: if train.py changes it, this test (not the notebook) says so.
    torch.manual_seed(0)
    model = build_ssd(TINY_SHAPES)
    train = DataLoader(ShapesDataset(4, seed=0), batch_size=2, collate_fn=collate_detection)
    val = DataLoader(ShapesDataset(2, seed=1), batch_size=2, collate_fn=collate_detection)
    plot = LiveHistoryPlot(epochs=2, show=False)
    history = fit(model, train, epochs=2, optimizer="adamw", lr=1e-3, warmup_iters=1, schedule="cosine",
                  val_loader=val, eval_every=2, progress=False, on_epoch_end=plot, log_fn=plot.log, max_iters=1)
    assert plot.history == plot.received == history  # the exact records, not values read back from text
    assert len(plot.lines) == 3  # the header and one line per epoch
    assert [line.split()[0] for line in plot.lines] == ["epoch", "1", "2"]


def test_live_plot_redraws_a_new_figure_per_epoch():
    plot = LiveHistoryPlot([{"epoch": 1, "loss": 3.0, "loss_loc": 1.0, "loss_cls": 2.0}], epochs=4, show=False)
    first = plot.figure
    plot.log("epoch     loss      loc      cls        lr   img/s  mAP@0.5")
    assert plot.figure is first and plot.lines  # a printed line does not redraw
    plot({"epoch": 2, "loss": 2.0, "loss_loc": 0.5, "loss_cls": 1.5, "lr": 1e-3, "map": 0.5})
    assert plot.figure is not first and [r["epoch"] for r in plot.history] == [1, 2]
    assert [r["epoch"] for r in plot.received] == [2]
    loss_ax, map_ax = plot.figure.axes[:2]
    assert list(loss_ax.lines[0].get_ydata()) == [3.0, 2.0]
    assert list(map_ax.lines[0].get_xdata()) == [2] and list(map_ax.lines[0].get_ydata()) == [0.5]
    assert loss_ax.get_xlim() == (0.5, 4.5)
    with pytest.raises(TypeError, match="pass log lines to .log"):
        plot("    3   2.0000   0.5000   1.5000  1.00e-03    10.0")
