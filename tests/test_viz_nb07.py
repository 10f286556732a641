"""Tests for the viz functions of 07_evaluation_and_inference: detection grids and precision-recall curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ssd_tutorial import viz  # noqa: E402


def _scene():
    images = torch.rand(3, 3, 32, 32)
    detections = [
        {"boxes": torch.tensor([[1.0, 1.0, 10.0, 10.0], [5.0, 5.0, 20.0, 20.0]]), "scores": torch.tensor([0.9, 0.3]),
         "labels": torch.tensor([1, 2])},
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)},
        {"boxes": torch.tensor([[0.0, 0.0, 32.0, 32.0]]), "scores": torch.tensor([0.6]), "labels": torch.tensor([3])},
    ]  # fmt: skip
    targets = [{"boxes": torch.tensor([[2.0, 2.0, 11.0, 11.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[4.0, 4.0, 8.0, 8.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]  # fmt: skip
    return images, detections, targets


def _rects(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_plot_detections_draws_kept_detections_and_dashed_truth():
    images, detections, targets = _scene()
    before = plt.get_fignums()
    fig = viz.plot_detections(images, detections, targets, class_names=("bg", "a", "b", "c"), min_score=0.5,
                              columns=2)  # fmt: skip
    assert plt.get_fignums() == before  # not in pyplot's state
    axes = fig.axes
    assert len(axes) == 3
    first = _rects(axes[0])
    assert len(first) == 2  # one gt + the 0.9 detection (0.3 is below min_score)
    assert first[0].get_linestyle() == "--" and first[1].get_linestyle() == "solid"
    assert [t.get_text() for t in axes[0].texts] == ["a 0.90"]
    assert len(_rects(axes[1])) == 1 and len(_rects(axes[2])) == 1
    assert axes[0].get_title() == "image 0: 1 det. >= 0.5"
    without = viz.plot_detections(list(images), detections, min_score=0.0, titles=["x", "y", "z"])
    assert len(_rects(without.axes[0])) == 2 and without.axes[2].get_title() == "z"


def test_plot_detections_errors():
    images, detections, targets = _scene()
    with pytest.raises(ValueError, match="one detection dict"):
        viz.plot_detections(images, detections[:2], targets)
    with pytest.raises(ValueError, match="titles"):
        viz.plot_detections(images, detections, titles=["a"])
    with pytest.raises(ValueError, match="at least one image"):
        viz.plot_detections([], [])


def test_plot_pr_curves_lines_envelope_and_legend():
    curves = {
        1: {"precision": torch.tensor([1.0, 0.5, 2 / 3]), "recall": torch.tensor([0.5, 0.5, 1.0])},
        3: {"precision": torch.tensor([0.0, 0.5]), "recall": torch.tensor([0.0, 1.0])},
    }
    fig = viz.plot_pr_curves(curves, class_names=("bg", "circle", "square", "triangle"), ap={1: 0.83, 3: 0.5})
    ax = fig.axes[0]
    assert len(ax.lines) == 4  # raw + envelope per class
    envelope = ax.lines[1].get_ydata()
    assert list(envelope) == pytest.approx([1.0, 2 / 3, 2 / 3])  # best precision at this recall or beyond
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["circle (AP 0.830)", "triangle (AP 0.500)"]
    assert len(viz.plot_pr_curves(curves, envelope=False).axes[0].lines) == 2
    with pytest.raises(ValueError, match="non-empty"):
        viz.plot_pr_curves({})
