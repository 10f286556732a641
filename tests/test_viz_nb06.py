"""Tests for viz.plot_history (06_training.ipynb) on Agg."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ssd_tutorial import viz  # noqa: E402

HISTORY = [
    {"epoch": 1, "loss": 5.0, "loss_loc": 2.0, "loss_cls": 3.0, "lr": 1e-3, "map": 0.2},
    {"epoch": 2, "loss": 3.0, "loss_loc": 1.0, "loss_cls": 2.0, "lr": 1e-3},
    {"epoch": 3, "loss": 2.0, "loss_loc": 0.5, "loss_cls": 1.5, "lr": 1e-4, "map": 0.7},
]


def test_plot_history_curves():
    fig = viz.plot_history(HISTORY, epochs=5, title="run")
    assert isinstance(fig, Figure)
    loss_ax, map_ax = fig.axes[:2]
    assert [line.get_label() for line in loss_ax.lines] == ["loss", "loss_loc", "loss_cls"]
    assert list(loss_ax.lines[1].get_ydata()) == [2.0, 1.0, 0.5]
    assert list(map_ax.lines[0].get_xdata()) == [1, 3]  # epochs without validation are skipped
    assert "0.700" in map_ax.get_title()
    assert loss_ax.get_xlim() == (0.5, 5.5) and map_ax.get_ylim() == (0.0, 1.0)


def test_plot_history_empty_and_bad():
    fig = viz.plot_history([], epochs=3)
    assert len(fig.axes[0].lines[0].get_xdata()) == 0
    with pytest.raises(ValueError, match="missing"):
        viz.plot_history([{"epoch": 1, "loss": 1.0}])
