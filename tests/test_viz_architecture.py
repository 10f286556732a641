"""Tests for viz.plot_architecture: the block diagram of SSD draws the preset's real numbers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ssd_tutorial import viz  # noqa: E402
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC, TINY_SHAPES  # noqa: E402
from ssd_tutorial.model import source_feature_shapes  # noqa: E402


def _texts(fig: Figure) -> str:
    ax = fig.axes[0]
    return "\n".join([t.get_text() for t in ax.texts] + [ax.get_title()])


def test_rows_hand_worked_ssd512():
    rows = viz.architecture_rows(SSD512_VOC)
    assert [r["channels"] for r in rows] == [512, 1024, 512, 256, 256, 256, 256]
    assert [r["size"] for r in rows] == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert [r["anchors"] for r in rows] == [16384, 6144, 1536, 384, 96, 16, 4]
    assert [r["name"] for r in rows][:3] == ["conv4_3 + L2Norm", "conv7", "extras[0]"]
    assert sum(r["anchors"] for r in rows) == 24564


@pytest.mark.parametrize("cfg", [SSD512_VOC, SSD300_VOC, TINY_SHAPES, SSD300_VOC.replace(backbone="resnet50")])
def test_figure_draws_the_presets_real_shapes(cfg):
    fig = viz.plot_architecture(cfg)
    assert isinstance(fig, Figure)
    text = _texts(fig)
    for k, (channels, height, width) in enumerate(source_feature_shapes(cfg)):
        assert f"k={k} " in text and f"[{channels}, {height}, {width}]" in text
        assert f"{height * width * cfg.anchors_per_location[k]} anchors" in text
    assert f"[3, {cfg.image_size}, {cfg.image_size}]" in text
    assert f"cls [{cfg.num_anchors}, {cfg.num_classes}]" in text and f"loc [{cfg.num_anchors}, 4]" in text
    assert f"IoU > {cfg.nms_threshold:g}" in text and f"≤ {cfg.max_detections}" in text
    assert f"{cfg.num_levels} sources" in text
    assert f"\nk={cfg.num_levels} " not in "\n" + text and f"\nk={cfg.num_levels - 1} " in "\n" + text


def test_resnet_and_bad_input():
    text = _texts(viz.plot_architecture(SSD512_VOC.replace(backbone="resnet50")))
    assert "ResNet-50" in text and "layer2 + L2Norm" in text and "layer3" in text
    with pytest.raises(TypeError, match="cfg must be an SSDConfig"):
        viz.plot_architecture("ssd512_voc")
