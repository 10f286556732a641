"""Tests for ssd_tutorial.widgets.nb07: the threshold view on hand-made head outputs, and the widget's wiring."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from ssd_tutorial.anchors import default_boxes  # noqa: E402
from ssd_tutorial.boxes import cxcywh_to_xyxy  # noqa: E402
from ssd_tutorial.config import TINY_SHAPES  # noqa: E402
from ssd_tutorial.widgets import nb07  # noqa: E402

CFG = TINY_SHAPES
A0 = (5 * 16 + 5) * 4  # level 0, row 5, column 5: the 12.8 px square at (44, 44)
A0_BIG = A0 + 1  # same place, sqrt(12.8 * 25.6) = 18.1 px square: IoU with A0 = 12.8² / 18.1² = 0.5
A1 = 16 * 16 * 4 + (3 * 8 + 3) * 6  # level 1, row 3, column 3: the 25.6 px square at (56, 56)


def _scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[dict]]:
    """2 images; the heads predict the anchors themselves (zero offsets); background logit 5 elsewhere."""
    anchors = default_boxes(CFG)  # [A, 4]
    A, C = anchors.shape[0], CFG.num_classes
    loc = torch.zeros(2, A, 4)
    logits = torch.zeros(2, A, C)
    logits[..., 0] = 5.0  # object scores e^0 / (e^5 + 3) = 0.0066 < 0.01
    logits[0, A0, 1] = 12.0  # circle, score 0.999
    logits[0, A0_BIG, 1] = 10.0  # a duplicate of it, score 0.993
    logits[1, A1, 2] = 12.0  # square
    boxes = cxcywh_to_xyxy(anchors)
    targets = [{"boxes": boxes[A0][None], "labels": torch.tensor([1])},
               {"boxes": boxes[A1][None], "labels": torch.tensor([2])}]  # fmt: skip
    images = torch.full((2, 3, CFG.image_size, CFG.image_size), 0.5)
    return images, loc, logits, targets


def test_duplicate_suppressed_at_045_kept_at_06():
    images, loc, logits, targets = _scene()
    fig, numbers = nb07.threshold_view(images, loc, logits, targets, CFG, score_threshold=0.5, nms_threshold=0.45,
                                       shown=[0, 1])  # fmt: skip
    assert numbers["true_positives"] == 2 and numbers["false_positives"] == 0 and numbers["ground_truth"] == 2
    assert numbers["precision"] == 1.0 and numbers["recall"] == 1.0
    assert numbers["map_voc07"] == pytest.approx(1.0) and numbers["map_all_points"] == pytest.approx(1.0)
    assert numbers["detections_per_image"] == 1.0
    assert len(fig.axes) == 2
    _, kept = nb07.threshold_view(images, loc, logits, targets, CFG, score_threshold=0.5, nms_threshold=0.6)
    assert kept["true_positives"] == 2 and kept["false_positives"] == 1  # IoU 0.5 is not > 0.6: both stay
    assert kept["precision"] == pytest.approx(2 / 3) and kept["detections_per_image"] == 1.5
    assert kept["map_all_points"] == pytest.approx(1.0)  # the duplicate ranks below the true positive


def test_score_threshold_trades_recall():
    images, loc, logits, targets = _scene()
    _, none = nb07.threshold_view(images, loc, logits, targets, CFG, score_threshold=0.9995, nms_threshold=0.45)
    assert none["detections_per_image"] == 0 and none["recall"] == 0.0 and none["precision"] == 0.0
    assert none["map_voc07"] == 0.0
    _, low = nb07.threshold_view(images, loc, logits, targets, CFG, score_threshold=0.0, nms_threshold=0.45)
    assert low["recall"] == 1.0 and low["false_positives"] > 0 and low["precision"] < 1.0
    assert low["detections_per_image"] == CFG.max_detections  # every anchor clears 0; the cap keeps 200


def test_threshold_detections_is_decode_with_replaced_thresholds():
    from ssd_tutorial.postprocess import decode_detections

    _, loc, logits, _ = _scene()
    anchors = default_boxes(CFG)
    got = nb07.threshold_detections(loc, logits, anchors, CFG, score_threshold=0.3, nms_threshold=0.7)
    want = decode_detections(loc, logits, anchors, CFG.replace(score_threshold=0.3, nms_threshold=0.7))
    for g, w in zip(got, want):
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(g[key], w[key])


@pytest.mark.parametrize("kwargs, message", [
    ({"score_threshold": 1.0}, "score_threshold"),
    ({"nms_threshold": 0.0}, "nms_threshold"),
    ({"shown": [2]}, r"shown must list image indices in \[0, 1\]"),
    ({"shown": []}, "shown"),
])  # fmt: skip
def test_bad_settings_raise_value_error(kwargs, message):
    images, loc, logits, targets = _scene()
    with pytest.raises(ValueError, match=message):
        nb07.threshold_view(images, loc, logits, targets, CFG, **kwargs)


def test_mismatched_inputs():
    images, loc, logits, targets = _scene()
    with pytest.raises(ValueError, match="same images"):
        nb07.threshold_view(images, loc, logits, targets[:1], CFG)


def test_numbers_to_html_has_the_class_and_values():
    images, loc, logits, targets = _scene()
    _, numbers = nb07.threshold_view(images, loc, logits, targets, CFG)
    page = nb07.numbers_to_html(numbers)
    assert 'ssd-threshold-numbers"' in page and "2 / 0" in page and "1.000 of 2 boxes" in page


def test_widget_wires_sliders_and_shows_errors_inside():
    pytest.importorskip("ipywidgets")
    images, loc, logits, targets = _scene()
    box = nb07.threshold_widget(images, loc, logits, targets, CFG, shown=[0, 1])
    assert "ssd-threshold-widget" in box._dom_classes
    assert "ssd-threshold-numbers" in box.numbers._dom_classes
    assert box.state["error"] is None and box.state["numbers"]["false_positives"] == 0
    assert all(c.continuous_update is False for c in box.controls.values())
    box.controls["nms"].value = 0.6
    assert box.state["numbers"]["false_positives"] == 1 and "2 / 1" in box.numbers.value
    image = box.output.image  # the figure as a PNG in an Image widget, swapped on every update
    assert image.value[:4] == b"\x89PNG" and image.layout.width == "920px"
    broken = nb07.threshold_widget(images, loc, logits, targets, CFG, shown=[5])
    assert broken.state["figure"] is None and "shown must list" in broken.state["error"]
    assert "ssd-widget-error" in broken.output.message.value
