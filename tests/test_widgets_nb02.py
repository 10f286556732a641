"""Tests for ssd_tutorial.widgets.nb02: the view functions (numbers and figures) and the widget wiring."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

from ssd_tutorial import widgets  # noqa: E402
from ssd_tutorial.anchors import default_boxes  # noqa: E402
from ssd_tutorial.boxes import cxcywh_to_xyxy  # noqa: E402
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC, TINY_SHAPES  # noqa: E402
from ssd_tutorial.widgets import common, nb02, nb02_positives  # noqa: E402


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    yield
    assert plt.get_fignums() == [], "library code must not leave pyplot figures behind"


@pytest.mark.parametrize("module", [nb02, nb02_positives])
def test_reexported_from_widgets_package(module):
    for name in module.__all__:
        assert getattr(widgets, name) is getattr(module, name)
        assert name in widgets.__all__


# --- parse_aspect_ratios / explorer_config -------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("2,3", (2.0, 3.0)), (" 2, 3 ", (2.0, 3.0)), ("1.5", (1.5,)),
                                            ("2 3", (2.0, 3.0)), ("", ()), ([2, 3.0], (2.0, 3.0)), ((), ())])
def test_parse_aspect_ratios(text, expected):
    assert nb02.parse_aspect_ratios(text) == expected


@pytest.mark.parametrize("bad, needle", [("2,-1", "> 0"), ("0", "> 0"), ("x", "'x'"), ("2,,abc", "'abc'"),
                                         ("nan", "finite"), ("inf", "finite"), ([2, True], "numbers"),
                                         ([2, "3"], "numbers")])
def test_parse_aspect_ratios_rejects_with_a_message(bad, needle):
    with pytest.raises(ValueError, match=needle):
        nb02.parse_aspect_ratios(bad)


def test_parse_aspect_ratios_type():
    with pytest.raises(TypeError, match="ratios"):
        nb02.parse_aspect_ratios(2)


def test_explorer_config_edits_one_level_and_scales_sizes():
    cfg = nb02.explorer_config("ssd512_voc", 3, "1.5", scale=2.0)
    assert cfg.aspect_ratios[3] == (1.5,)
    assert cfg.aspect_ratios[:3] == SSD512_VOC.aspect_ratios[:3]
    assert cfg.aspect_ratios[4:] == SSD512_VOC.aspect_ratios[4:]
    assert cfg.box_sizes == tuple(2 * s for s in SSD512_VOC.box_sizes)
    assert nb02.explorer_config(SSD512_VOC, 0) is SSD512_VOC


@pytest.mark.parametrize("kwargs, needle", [({"level": 7}, "level"), ({"level": -1}, "level"), ({"scale": 0}, "scale"),
                                            ({"scale": -1.0}, "scale"), ({"scale": math.nan}, "scale"),
                                            ({"ratios": "2,-3"}, "> 0"), ({"preset": "nope"}, "unknown preset")])
def test_explorer_config_errors(kwargs, needle):
    args = {"preset": "ssd512_voc", "level": 0} | kwargs
    with pytest.raises(ValueError, match=needle):
        nb02.explorer_config(**args)


def test_anchor_shape_labels():
    assert nb02.anchor_shape_labels(SSD512_VOC, 1) == ["1:1 s_k", "1:1 s'_k", "2:1", "1:2", "3:1", "1:3"]
    assert nb02.anchor_shape_labels(SSD512_VOC, 0) == ["1:1 s_k", "1:1 s'_k", "2:1", "1:2"]


# --- anchor_explorer_view --------------------------------------------------------------------------------------------


def _rects(fig: Figure) -> list[Rectangle]:
    return [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]


def test_explorer_hand_worked_location():
    fig, rows = nb02.anchor_explorer_view("ssd512_voc", level=2, row=6, col=5)
    assert isinstance(fig, Figure)
    # 16384 + 6144 anchors before level 2, then (6 * 16 + 5) locations of 6 anchors.
    assert [r["index"] for r in rows] == list(range(23134, 23140))
    assert all((r["cx"], r["cy"]) == (176.0, 208.0) for r in rows)
    assert rows[5]["shape"] == "1:3"
    assert rows[5]["w"] == pytest.approx(153.6 / math.sqrt(3)) and rows[5]["h"] == pytest.approx(153.6 * math.sqrt(3))
    assert rows[1]["w"] == pytest.approx(math.sqrt(153.6 * 230.4))
    assert all(r["iou"] is None for r in rows) and all(r["fits"] for r in rows)
    assert "23134" in fig.axes[0].get_title() and "23139" in fig.axes[0].get_title()
    assert len(_rects(fig)) == 1 + 6  # the cell and the anchors; no gt box
    bottom, top = fig.axes[0].get_ylim()
    assert bottom > top  # origin top-left


@pytest.mark.parametrize("cfg, level, row, col", [(SSD512_VOC, 0, 0, 0), (SSD512_VOC, 0, 63, 17), (SSD512_VOC, 6, 0, 0),
                                                  (SSD300_VOC, 1, 18, 3), (TINY_SHAPES, 2, 3, 1)])
def test_explorer_rows_match_default_boxes(cfg, level, row, col):
    _, rows = nb02.anchor_explorer_view(cfg, level, row, col)
    anchors = default_boxes(cfg)
    for r in rows:
        assert torch.allclose(anchors[r["index"]], torch.tensor([r["cx"], r["cy"], r["w"], r["h"]]))
    assert len(rows) == cfg.anchors_per_location[level]


def test_explorer_custom_ratios_and_scale_follow_the_edited_config():
    _, rows = nb02.anchor_explorer_view("ssd512_voc", 1, 2, 3, ratios="1.5, 4", scale=0.5)
    edited = nb02.explorer_config("ssd512_voc", 1, "1.5, 4", 0.5)
    anchors = default_boxes(edited)
    assert [r["shape"] for r in rows] == ["1:1 s_k", "1:1 s'_k", "1.5:1", "1:1.5", "4:1", "1:4"]
    assert rows[0]["w"] == pytest.approx(76.8 * 0.5)
    for r in rows:
        assert torch.allclose(anchors[r["index"]], torch.tensor([r["cx"], r["cy"], r["w"], r["h"]]))
    _, squares_only = nb02.anchor_explorer_view("ssd512_voc", 1, 0, 0, ratios="")
    assert [r["shape"] for r in squares_only] == ["1:1 s_k", "1:1 s'_k"]


def test_explorer_iou_hand_worked():
    # level 2, cell (0, 0): s_k square centred at (16, 16), side 153.6. A gt of the same size shifted by half a
    # side overlaps half of it: IoU = 0.5 / (2 - 0.5) = 1/3.
    side = 153.6
    gt = (16 - side / 2 + side / 2, 16 - side / 2, 16 + side / 2 + side / 2, 16 + side / 2)
    fig, rows = nb02.anchor_explorer_view("ssd512_voc", 2, 0, 0, gt_box_xyxy=gt)
    assert rows[0]["iou"] == pytest.approx(1 / 3, abs=1e-6)
    expected = box_iou(cxcywh_to_xyxy(torch.tensor([[r["cx"], r["cy"], r["w"], r["h"]] for r in rows])),
                       torch.tensor([gt]))[:, 0]  # fmt: skip
    assert [r["iou"] for r in rows] == pytest.approx(expected.tolist())
    assert len(_rects(fig)) == 1 + 6 + 2  # cell, anchors, gt drawn twice (white under dashed)
    assert any("ground truth" in t.get_text() for t in fig.legends[0].get_texts())


def test_explorer_fits_flags_large_rectangles():
    _, rows = nb02.anchor_explorer_view("ssd512_voc", 6, 0, 0)
    assert [r["fits"] for r in rows] == [True, True, False, False]  # 651.7 px sides do not fit in 512


@pytest.mark.parametrize("kwargs, needle", [
    ({"level": 6, "scale": 3.0}, "no box of level 6 fits.*smaller scale"),
    ({"level": 0, "scale": 0.01}, "no box of level 0 fits.*larger scale"),
    ({"level": 0, "row": 64}, r"row must be an int in \[0, 63\]"),
    ({"level": 2, "col": 16}, r"col must be an int in \[0, 15\]"),
    ({"level": 2, "col": -1}, "col"),
    ({"ratios": "-1"}, "> 0"),
    ({"gt_box_xyxy": (10, 10, 5, 20)}, "x1 < x2"),
    ({"gt_box_xyxy": (1, 2, 3)}, "4 finite numbers"),
    ({"image": torch.zeros(3, 300, 300)}, r"\[3, 512, 512\]"),
])  # fmt: skip
def test_explorer_bad_settings_raise_value_error(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        nb02.anchor_explorer_view("ssd512_voc", **kwargs)


def test_explorer_is_deterministic_and_draws_the_image():
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    fig_a, rows_a = nb02.anchor_explorer_view(TINY_SHAPES, 1, 4, 2, image=image, gt_box_xyxy=(20, 30, 60, 90))
    _, rows_b = nb02.anchor_explorer_view(TINY_SHAPES, 1, 4, 2, image=image, gt_box_xyxy=(20, 30, 60, 90))
    assert rows_a == rows_b
    assert len(fig_a.axes[0].images) == 1


# --- positive_anchors_view -------------------------------------------------------------------------------------------


def test_positives_match_an_independent_iou_count():
    box = (200.0, 180.0, 93.0, 93.0)
    fig, rows = nb02_positives.positive_anchors_view("ssd512_voc", *box)
    ious = box_iou(cxcywh_to_xyxy(default_boxes(SSD512_VOC)), cxcywh_to_xyxy(torch.tensor([box])))[:, 0]
    per_level = torch.split(ious, list(SSD512_VOC.anchors_per_level))
    assert [r["positives"] for r in rows] == [int((p >= 0.5).sum()) for p in per_level]
    assert [r["anchors"] for r in rows] == list(SSD512_VOC.anchors_per_level)
    assert [r["best_iou"] for r in rows] == pytest.approx([float(p.max()) for p in per_level])
    assert sum(r["positives"] for r in rows) > 0
    for r in rows:
        assert float(ious[r["best_index"]]) == pytest.approx(r["best_iou"])
    total = sum(r["positives"] for r in rows)
    assert f"{total} anchors (all levels)" in fig.axes[0].get_title()
    drawn = sum(len(c.get_paths()) for c in fig.axes[0].collections if isinstance(c, PolyCollection))
    assert drawn == total


def test_positives_box_equal_to_an_anchor():
    cx, cy, w, h = default_boxes(SSD512_VOC)[23134].tolist()
    _, rows = nb02_positives.positive_anchors_view("ssd512_voc", cx, cy, w, h, threshold=1.0)
    assert rows[2]["best_index"] == 23134 and rows[2]["best_iou"] == pytest.approx(1.0)
    assert [r["positives"] for r in rows] == [0, 0, 1, 0, 0, 0, 0]


def test_positives_level_filter_and_threshold():
    box = (256.0, 256.0, 160.0, 120.0)
    fig, rows = nb02_positives.positive_anchors_view("ssd512_voc", *box, level=2, threshold=0.3)
    _, rows_all = nb02_positives.positive_anchors_view("ssd512_voc", *box, threshold=0.3)
    assert rows == rows_all  # the table always covers every level
    polys = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    assert sum(len(c.get_paths()) for c in polys) == rows[2]["positives"] > 0
    _, strict = nb02_positives.positive_anchors_view("ssd512_voc", *box, threshold=0.7)
    assert all(s["positives"] <= r["positives"] for s, r in zip(strict, rows))


def test_positives_box_outside_the_image_has_none():
    _, rows = nb02_positives.positive_anchors_view("ssd512_voc", -2000.0, -2000.0, 50.0, 50.0)
    assert all(r["positives"] == 0 and r["best_iou"] == 0.0 for r in rows)


@pytest.mark.parametrize("kwargs, needle", [({"w": 0.0}, "w > 0"), ({"h": -3.0}, "h > 0"),
                                            ({"threshold": 0.0}, "threshold"), ({"threshold": 1.5}, "threshold"),
                                            ({"level": 7}, "level"),
                                            ({"cx": math.inf}, "finite"),
                                            ({"image": torch.zeros(3, 10, 10)}, r"\[3, 512, 512\]")])
def test_positives_bad_settings(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        nb02_positives.positive_anchors_view("ssd512_voc", **kwargs)


# --- helpers -------------------------------------------------------------------------------------------------------


def test_rows_to_html_is_the_shared_table():
    assert nb02.rows_to_html is common.rows_to_html  # still importable from nb02 (tested in test_widgets_common)


def test_sample_shapes_image_returns_largest_box():
    image, box = nb02.sample_shapes_image(128, seed=0, index=0)
    assert image.shape == (3, 128, 128)
    from ssd_tutorial.data import ShapesDataset

    boxes = ShapesDataset(1, image_size=128, seed=0)[0][1]["boxes"]
    if len(boxes):
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        assert torch.equal(box, boxes[areas.argmax()])
    else:
        assert box is None


# --- widgets -------------------------------------------------------------------------------------------------------


def test_anchor_explorer_widget_updates_and_reports_errors():
    box = nb02.anchor_explorer_widget("tiny_shapes", level=1, row=2, col=3)
    controls, state = box.controls, box.state
    assert "ssd-anchor-explorer" in box.output._dom_classes
    assert all(getattr(c, "continuous_update", False) is False for n, c in controls.items() if n != "preset")
    assert state["error"] is None and [r["index"] for r in state["rows"]][0] == 16 * 16 * 4 + (2 * 8 + 3) * 6
    image, text, message = box.output.image, box.output.table, box.output.message
    assert image.value[:4] == b"\x89PNG" and 'ssd-anchor-table"' in text.value  # a PNG and the table
    assert f">{state['rows'][0]['index']}</td>" in text.value
    assert image.layout.width == f"{common.png_size(image.value)[0]}px"  # shown at the size it was drawn
    first_figure, first_bytes = state["figure"], image.value

    controls["col"].value = 4
    assert state["rows"][0]["cx"] == (4 + 0.5) * 16 and state["figure"] is not first_figure
    assert image.value != first_bytes and "72.0" in text.value  # centre x of column 4 in the caption

    controls["ratios"].value = "2, -1"
    assert state["rows"] is None and "> 0" in state["error"]
    assert "ssd-widget-error" in message.value and "&gt; 0" in message.value
    assert box.output.body.layout.visibility == "hidden"  # hidden, but keeps its place: nothing below moves
    controls["ratios"].value = "3"
    assert state["error"] is None and [r["shape"] for r in state["rows"]][2:] == ["3:1", "1:3"]
    assert box.output.body.layout.visibility is None and "ssd-anchor-table" in text.value and message.value == ""

    controls["level"].value = 4  # 1x1 map: row/col clamp to 0, ratios reset to the preset's
    assert controls["row"].max == 0 and controls["row"].value == 0 and controls["ratios"].value == "2"
    assert len(state["rows"]) == TINY_SHAPES.anchors_per_location[4]
    controls["scale"].value = 3.0
    assert state["rows"] is None and "no box of level 4 fits" in state["error"]
    controls["scale"].value = 1.0

    controls["preset"].value = "ssd512_voc"
    assert controls["level"].max == 6 and state["error"] is None
    assert state["rows"][0]["index"] == sum(SSD512_VOC.anchors_per_level[:4])
    controls["level"].value = 6
    controls["preset"].value = "tiny_shapes"  # 5 levels: level clamps to 4 without an error
    assert controls["level"].value == 4 and state["error"] is None


def test_anchor_explorer_widget_rejects_bad_start():
    with pytest.raises(ValueError, match="row and col"):
        nb02.anchor_explorer_widget("tiny_shapes", level=4, row=1)


def test_positive_anchors_widget_updates():
    box = nb02_positives.positive_anchors_widget("tiny_shapes", seed=0, index=0, box_cxcywh=(64.0, 64.0, 40.0, 40.0))
    controls, state = box.controls, box.state
    assert "ssd-positive-anchors" in box.output._dom_classes
    image, text = box.output.image, box.output.table
    assert 'ssd-positive-table"' in text.value
    assert controls["level"].value == nb02_positives.ALL_LEVELS and controls["level"].label == "all levels"
    assert all(controls[name].step == 1.0 for name in ("cx", "cy", "w", "h"))  # 128 px image: 1 px per key press
    before, before_bytes = [r["positives"] for r in state["rows"]], image.value
    expected = nb02_positives.positive_anchors_view(TINY_SHAPES, 64.0, 64.0, 40.0, 40.0)[1]
    assert state["rows"] == expected
    controls["w"].value = 100.0
    controls["h"].value = 100.0
    assert [r["positives"] for r in state["rows"]] != before and image.value != before_bytes
    controls["level"].value = 1
    controls["threshold"].value = 0.3
    assert state["error"] is None
    assert state["rows"] == nb02_positives.positive_anchors_view(TINY_SHAPES, 64.0, 64.0, 100.0, 100.0, 1, 0.3)[1]
