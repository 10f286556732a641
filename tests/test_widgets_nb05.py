"""Tests for the widgets of 05_loss.ipynb: the greedy step by hand, matching_view and the threshold slider."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

from ssd_tutorial.anchors import default_boxes  # noqa: E402
from ssd_tutorial.boxes import cxcywh_to_xyxy  # noqa: E402
from ssd_tutorial.config import TINY_SHAPES  # noqa: E402
from ssd_tutorial.matching import match_anchors  # noqa: E402
from ssd_tutorial.widgets import nb05  # noqa: E402

ANCHORS = default_boxes(TINY_SHAPES)  # [1524, 4] cxcywh


def _random_boxes(generator, m, size=128.0):
    xy = torch.rand(m, 2, generator=generator) * size * 0.8
    wh = torch.rand(m, 2, generator=generator) * size * 0.4 + 4
    return torch.cat([xy, (xy + wh).clamp(max=size)], dim=1)


def test_greedy_hand_worked():
    iou = torch.tensor([[0.9, 0.8, 0.0],
                        [0.95, 0.1, 0.2]])  # fmt: skip
    # 0.95 (box 1, anchor 0) first; then box 0's best remaining is anchor 1 (0.8).
    assert nb05.greedy_matches(iou).tolist() == [1, 0]
    assert nb05.greedy_matches(torch.zeros(2, 3)).tolist() == [-1, -1]
    assert nb05.greedy_matches(torch.zeros(0, 3)).tolist() == []
    # More boxes than anchors: the box left without an anchor gets -1.
    assert nb05.greedy_matches(torch.tensor([[0.5], [0.7]])).tolist() == [-1, 0]


@pytest.mark.parametrize("seed", range(6))
def test_greedy_equals_first_step_of_match_anchors(seed):
    generator = torch.Generator().manual_seed(seed)
    boxes = _random_boxes(generator, 1 + seed)
    anchors_xyxy = cxcywh_to_xyxy(ANCHORS)
    greedy = nb05.greedy_matches(box_iou(boxes, anchors_xyxy))
    # With a threshold no anchor reaches, match_anchors keeps only the greedy step.
    only_greedy = match_anchors(boxes, anchors_xyxy, iou_threshold=1.0)
    expected = torch.full((len(boxes),), -1)
    for a in (only_greedy >= 0).nonzero().flatten().tolist():
        expected[only_greedy[a]] = a
    assert greedy.tolist() == expected.tolist()


def test_greedy_rejects_bad_input():
    with pytest.raises(ValueError, match=r"Tensor\[M, A\]"):
        nb05.greedy_matches(torch.zeros(3))


def _image_and_boxes():
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[10.0, 10.0, 60.0, 50.0], [70.0, 70.0, 84.0, 83.0], [20.0, 80.0, 110.0, 125.0]])
    return image, boxes, torch.tensor([1, 2, 3])


def test_matching_view_rows_agree_with_match_anchors():
    image, boxes, labels = _image_and_boxes()
    fig, rows = nb05.matching_view(image, boxes, ANCHORS, 0.5, labels=labels, class_names=TINY_SHAPES.class_names)
    assert isinstance(fig, Figure)
    matches = match_anchors(boxes, cxcywh_to_xyxy(ANCHORS), 0.5)
    iou = box_iou(boxes, cxcywh_to_xyxy(ANCHORS))
    assert [r["box"] for r in rows] == [0, 1, 2]
    assert [r["class"] for r in rows] == ["circle", "square", "triangle"]
    for r in rows:
        m = r["box"]
        assert r["positives"] == int((matches == m).sum()) >= 1
        assert r["best_iou"] == pytest.approx(float(iou[m].max()))
        assert matches[r["greedy_anchor"]] == m
        assert r["greedy_iou"] == pytest.approx(float(iou[m, r["greedy_anchor"]]))
    # One dashed or solid rectangle per positive anchor, one thick per box, on one axes.
    ax = fig.axes[0]
    assert len(ax.patches) == sum(r["positives"] for r in rows) + len(boxes)
    assert "IoU >= 0.50" in ax.get_title()


def test_lower_threshold_gives_more_positives():
    image, boxes, _ = _image_and_boxes()
    counts = [sum(r["positives"] for r in nb05.matching_view(image, boxes, ANCHORS, t)[1]) for t in (0.3, 0.5, 0.7)]
    assert counts[0] > counts[1] > counts[2] >= len(boxes)  # the greedy step keeps one anchor per box at any threshold


def test_matching_view_no_boxes_and_bad_input():
    image, _, _ = _image_and_boxes()
    fig, rows = nb05.matching_view(image, torch.zeros(0, 4), ANCHORS, 0.5)
    assert rows == [] and isinstance(fig, Figure)
    with pytest.raises(ValueError, match=r"iou_threshold must be a number in \(0, 1\]"):
        nb05.matching_view(image, torch.tensor([[0.0, 0.0, 10.0, 10.0]]), ANCHORS, 0.0)
    with pytest.raises(ValueError, match="labels must have one entry per box"):
        nb05.matching_view(image, torch.tensor([[0.0, 0.0, 10.0, 10.0]]), ANCHORS, 0.5, labels=[1, 2])


def test_widget_slider_redraws_and_shows_errors_in_output():
    pytest.importorskip("ipywidgets")
    image, boxes, labels = _image_and_boxes()
    widget = nb05.matching_widget(image, boxes, ANCHORS, labels=labels, class_names=TINY_SHAPES.class_names)
    slider = widget.controls["threshold"]
    assert slider.continuous_update is False
    first = widget.state["rows"]
    assert widget.state["error"] is None and first is not None
    slider.value = 0.3
    assert sum(r["positives"] for r in widget.state["rows"]) > sum(r["positives"] for r in first)
    slider.value = 0.0
    assert widget.state["figure"] is None and "iou_threshold" in widget.state["error"]
    slider.value = 0.5
    assert widget.state["error"] is None and widget.state["rows"] == first


def test_widget_output_holds_picture_and_table_or_the_error():
    pytest.importorskip("ipywidgets")
    image, boxes, labels = _image_and_boxes()
    widget = nb05.matching_widget(image, boxes, ANCHORS, labels=labels)
    area = widget.output
    assert area.image.value[:4] == b"\x89PNG"  # the figure, as a PNG
    assert 'ssd-matching-table"' in area.table.value and area.message.value == ""
    assert "ssd-matching-widget" in area._dom_classes
    picture = area.image.value
    widget.controls["threshold"].value = 0.0
    assert "ssd-widget-error" in area.message.value and "iou_threshold" in area.message.value
    assert area.body.layout.visibility == "hidden" and area.image.value == picture  # keeps its place
    widget.controls["threshold"].value = 0.5
    assert area.message.value == "" and area.body.layout.visibility is None
