"""Tests for ssd_tutorial.widgets.nb08: the coverage view under edited configs, and the widget's wiring."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from ssd_tutorial.analysis import anchor_coverage  # noqa: E402
from ssd_tutorial.config import TINY_SHAPES  # noqa: E402
from ssd_tutorial.widgets import nb08  # noqa: E402


def _boxes() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(60, 2, generator=gen) * 80
    wh = 8 + torch.rand(60, 2, generator=gen) * 40
    return torch.cat([xy, xy + wh], dim=1)  # [60, 4]


def test_coverage_config_edits():
    cfg = nb08.coverage_config(TINY_SHAPES, size_scale=2.0, aspect_ratios="3")
    assert cfg.box_sizes == tuple(2 * s for s in TINY_SHAPES.box_sizes)
    assert cfg.aspect_ratios == ((3.0,),) * 5 and cfg.anchors_per_location == (4,) * 5
    assert nb08.coverage_config(TINY_SHAPES) is TINY_SHAPES
    assert nb08.coverage_config(TINY_SHAPES, aspect_ratios="").aspect_ratios == ((),) * 5
    assert nb08.coverage_config(TINY_SHAPES, aspect_ratios=[2, 3]).aspect_ratios == ((2.0, 3.0),) * 5
    assert nb08.ratios_text(TINY_SHAPES) == "2 | 2, 3 | 2, 3 | 2 | 2"
    assert nb08.coverage_config(TINY_SHAPES, aspect_ratios=nb08.ratios_text(TINY_SHAPES)) is TINY_SHAPES
    per_level = nb08.coverage_config(TINY_SHAPES, aspect_ratios="| 2 | 3 | | 1.5")
    assert per_level.aspect_ratios == ((), (2.0,), (3.0,), (), (1.5,))
    assert nb08.coverage_config(TINY_SHAPES, aspect_ratios=[[], [2], [3], [], [1.5]]) == per_level


@pytest.mark.parametrize("kwargs, message", [
    ({"size_scale": 0.0}, "size_scale"),
    ({"size_scale": float("nan")}, "size_scale"),
    ({"aspect_ratios": "-1"}, "aspect ratio must be a finite number > 0"),
    ({"aspect_ratios": "two"}, "numbers separated by commas"),
    ({"aspect_ratios": "2 | 3"}, "5 sets separated by '\\|'"),
    ({"aspect_ratios": [[2], [3]]}, "need 5 entries"),
])  # fmt: skip
def test_coverage_config_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nb08.coverage_config(TINY_SHAPES, **kwargs)


def test_coverage_view_rows_are_anchor_coverage():
    boxes = _boxes()
    fig, rows = nb08.coverage_view(boxes, TINY_SHAPES, size_scale=1.5, aspect_ratios="2", iou_threshold=0.4)
    edited = nb08.coverage_config(TINY_SHAPES, size_scale=1.5, aspect_ratios="2")
    cov = anchor_coverage(boxes, edited, 0.4)
    assert [r["alone"] for r in rows[:-1]] == cov["per_level"]
    assert [r["best_share"] for r in rows[:-1]] == cov["best_level_share"]
    assert [r["anchors"] for r in rows[:-1]] == list(edited.anchors_per_level)
    assert rows[-1]["level"] == "all" and rows[-1]["alone"] == cov["overall"] and rows[-1]["anchors"] == 1364
    assert rows[0]["box_size"] == pytest.approx(12.8 * 1.5) and rows[0]["ratios"] == "2"
    assert len(fig.axes) == 3 and f"{cov['overall']:.1%}" in fig.axes[0].get_title()
    stacked = fig.axes[1].patches  # covered bars first, then not covered: together every box once
    assert sum(p.get_height() for p in stacked) == len(boxes)


def test_coverage_grows_when_sizes_fit_the_boxes():
    # Boxes of 40 px everywhere: anchors of 4 px cover none of them, the preset's sizes cover some.
    boxes = _boxes()
    boxes[:, 2:] = boxes[:, :2] + 40
    _, tiny = nb08.coverage_view(boxes, TINY_SHAPES, size_scale=0.25)
    _, preset = nb08.coverage_view(boxes, TINY_SHAPES)
    assert tiny[-1]["alone"] < preset[-1]["alone"]


def test_widget_updates_and_shows_errors_inside():
    pytest.importorskip("ipywidgets")
    boxes = _boxes()
    box = nb08.coverage_widget(boxes, TINY_SHAPES)
    assert "ssd-coverage-widget" in box._dom_classes
    assert all(c.continuous_update is False for c in box.controls.values())
    first = box.state["rows"][-1]["alone"]
    assert first == anchor_coverage(boxes, TINY_SHAPES)["overall"] and box.state["error"] is None
    box.controls["ratios"].value = "0, 2"
    assert box.state["rows"] is None and "aspect ratio must be a finite number > 0" in box.state["error"]
    assert "aspect ratio must be a finite number" in box.output.message.value  # shown inside the widget
    assert box.output.body.layout.visibility == "hidden"
    box.controls["ratios"].value = ""
    assert box.state["error"] is None
    assert box.state["rows"][-1]["anchors"] == 2 * (256 + 64 + 16 + 4 + 1)  # squares only: 2 per location
    assert box.output.message.value == "" and box.output.body.layout.visibility is None
    assert box.output.image.value[:4] == b"\x89PNG" and box.output.image.layout.width == "920px"
    assert "<table" in box.output.table.value and "ssd-coverage-table" in box.output.table.value


def test_size_panel_marks_every_level_square_near_the_data():
    # Square boxes of 13 … 40 px: TINY_SHAPES' s_0 = 12.8 px lies just under the smallest box and must still be drawn
    # (as must s'_0 = 18.1, s_1 = 25.6, s'_1 = 33.9 and s_2 = 44.8); s'_2 = 53.6 px is far past the data.
    sides = torch.arange(13.0, 41.0)
    boxes = torch.cat([torch.zeros(len(sides), 2), sides[:, None].expand(-1, 2)], dim=1)  # [28, 4] xyxy
    fig, _ = nb08.coverage_view(boxes, TINY_SHAPES)
    ax = fig.axes[1]
    drawn = [(round(float(line.get_xdata()[0]), 1), line.get_linestyle()) for line in ax.lines]
    assert drawn == [(12.8, "--"), (18.1, ":"), (25.6, "--"), (33.9, ":"), (44.8, "--")]
    assert [t.get_text() for t in ax.texts] == ["L0", "L0", "L1", "L1", "L2"]
    lo, hi = ax.get_xlim()
    assert lo < 12.8 and hi > 44.8
