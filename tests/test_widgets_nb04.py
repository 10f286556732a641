"""Tests for ssd_tutorial.widgets.nb04: anchor indexing, one anchor's prediction, the box-coding view, the explorer."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ssd_tutorial.anchors import default_boxes, level_box_shapes  # noqa: E402
from ssd_tutorial.boxes import cxcywh_to_xyxy, decode_boxes, encode_boxes  # noqa: E402
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC, TINY_SHAPES  # noqa: E402
from ssd_tutorial.model import build_ssd  # noqa: E402
from ssd_tutorial.widgets import nb04  # noqa: E402


def test_anchor_index_hand_worked():
    assert nb04.anchor_index(SSD512_VOC, 0, 0, 0, 0) == 0
    assert nb04.anchor_index(SSD512_VOC, 0, 0, 1, 0) == 4  # next column: 4 anchors per location on level 0
    assert nb04.anchor_index(SSD512_VOC, 0, 1, 0, 0) == 64 * 4  # next row: a whole row of 64 cells
    assert nb04.anchor_index(SSD512_VOC, 1, 0, 0, 5) == 16384 + 5
    assert nb04.anchor_index(SSD512_VOC, 6, 0, 0, 3) == 24563


@pytest.mark.parametrize("cfg", [SSD512_VOC, SSD300_VOC, TINY_SHAPES], ids=lambda c: c.name)
def test_anchor_index_points_at_the_right_default_box(cfg):
    anchors = default_boxes(cfg)
    generator = torch.Generator().manual_seed(1)
    for level in range(cfg.num_levels):
        fm, step = cfg.feature_map_sizes[level], cfg.steps[level]
        shapes = level_box_shapes(cfg, level)
        for _ in range(5):
            row, col = torch.randint(fm, (2,), generator=generator).tolist()
            k = int(torch.randint(len(shapes), (1,), generator=generator))
            index = nb04.anchor_index(cfg, level, row, col, k)
            expected = torch.tensor([(col + 0.5) * step, (row + 0.5) * step, *shapes[k]])
            torch.testing.assert_close(anchors[index], expected.float())
            assert nb04.anchor_location(cfg, index) == (level, row, col, k)


def test_anchor_location_round_trips_every_index():
    locations = [nb04.anchor_location(TINY_SHAPES, a) for a in range(TINY_SHAPES.num_anchors)]
    assert [nb04.anchor_index(TINY_SHAPES, *loc) for loc in locations] == list(range(TINY_SHAPES.num_anchors))


@pytest.mark.parametrize(
    "args, needle",
    [((7, 0, 0, 0), r"level must be an int in \[0, 6\]"), ((0, 64, 0, 0), r"row \(level 0 is 64x64\)"),
     ((1, 0, -1, 0), r"col \(level 1 is 32x32\)"), ((0, 0, 0, 4), r"k \(level 0 has 4 anchors"),
     ((0, 0, 0, 1.0), "k")],
)  # fmt: skip
def test_anchor_index_out_of_range(args, needle):
    with pytest.raises(ValueError, match=needle):
        nb04.anchor_index(SSD512_VOC, *args)
    with pytest.raises(ValueError, match=r"index must be an int in \[0, 24563\]"):
        nb04.anchor_location(SSD512_VOC, 24564)


@pytest.fixture(scope="module")
def heads():
    cfg = TINY_SHAPES
    generator = torch.Generator().manual_seed(2)
    loc = torch.randn(1, cfg.num_anchors, 4, generator=generator)
    cls = torch.randn(1, cfg.num_anchors, cfg.num_classes, generator=generator)
    image = torch.rand(3, 128, 128, generator=generator)
    return cfg, loc, cls, default_boxes(cfg), image


def test_anchor_prediction_decodes_that_row(heads):
    cfg, loc, cls, anchors, _ = heads
    index = nb04.anchor_index(cfg, 1, 2, 3, 4)
    pred = nb04.anchor_prediction(loc, cls, anchors, cfg, index)
    torch.testing.assert_close(pred["box_cxcywh"], decode_boxes(loc[0, index], anchors[index], cfg.variances))
    torch.testing.assert_close(pred["box_xyxy"], cxcywh_to_xyxy(pred["box_cxcywh"]))
    torch.testing.assert_close(pred["probs"], cls[0, index].softmax(-1))
    same = nb04.anchor_prediction(loc[0], cls[0], anchors, cfg, index)  # without the batch dimension
    torch.testing.assert_close(same["box_cxcywh"], pred["box_cxcywh"])
    zero = nb04.anchor_prediction(torch.zeros_like(loc), cls, anchors, cfg, index)
    torch.testing.assert_close(zero["box_cxcywh"], anchors[index])  # zero offsets: the anchor itself
    with pytest.raises(ValueError, match=r"loc_preds must be \[A, 4\]"):
        nb04.anchor_prediction(loc[..., :3], cls, anchors, cfg, index)
    with pytest.raises(ValueError, match="A = cfg.num_anchors = 1524"):
        nb04.anchor_prediction(loc[:, :10], cls[:, :10], anchors[:10], cfg, 0)


def test_anchor_prediction_view(heads):
    cfg, loc, cls, anchors, image = heads
    fig, rows = nb04.anchor_prediction_view(image, loc, cls, anchors, cfg, 2, 1, 3, 5)
    assert isinstance(fig, Figure)
    table = dict(rows)
    index = nb04.anchor_index(cfg, 2, 1, 3, 5)
    assert table["anchor index"] == str(index)
    box = decode_boxes(loc[0, index], anchors[index], cfg.variances)
    assert table["box (cx, cy, w, h) px"] == "(" + ", ".join(f"{v:.1f}" for v in box.tolist()) + ")"
    dx = loc[0, index, 0] * 0.1 * anchors[index, 2]
    assert table["centre shift (dx, dy) px"].startswith(f"({dx.item():.1f}, ")
    probs = cls[0, index].softmax(-1)
    best = int(probs.argmax())
    assert table["best class"] == f"{cfg.class_names[best]} ({probs[best].item():.3f})"
    best_object = 1 + int(probs[1:].argmax())
    assert table["best object class"] == f"{cfg.class_names[best_object]} ({probs[best_object].item():.3f})"
    image_ax, bar_ax = fig.axes
    assert image_ax.get_ylim()[0] > image_ax.get_ylim()[1]  # origin top-left
    assert len(bar_ax.patches) == cfg.num_classes
    with pytest.raises(ValueError, match=r"row \(level 2 is 4x4\)"):
        nb04.anchor_prediction_view(image, loc, cls, anchors, cfg, 2, 4, 0, 0)


def test_box_coding_view_hand_worked():
    variances = SSD512_VOC.variances  # (0.1, 0.2)
    fig, rows = nb04.box_coding_view(torch.tensor([40.0, 56.0, 32.0, 64.0]), torch.tensor([44.0, 52.0, 48.0, 64.0]),
                                     variances)  # fmt: skip
    assert isinstance(fig, Figure)
    table = dict(rows)
    assert table["tx = (gx - ax) / (aw * v0)"].endswith("= 1.2500")  # 4 / 3.2
    assert table["ty = (gy - ay) / (ah * v0)"].endswith("= -0.6250")  # -4 / 6.4
    assert table["tw = log(gw / aw) / v1"].endswith(f"= {math.log(1.5) / 0.2:.4f}")
    assert table["th = log(gh / ah) / v1"].endswith("= 0.0000")
    t = encode_boxes(torch.tensor([44.0, 52.0, 48.0, 64.0]), torch.tensor([40.0, 56.0, 32.0, 64.0]), variances)
    assert [f"{v:.4f}" for v in t.tolist()] == [row[1].rsplit("= ", 1)[1] for row in rows[2:]]
    _, rows = nb04.box_coding_view([0, 0, 10, 10], [1, 0, 10, 10], variances=(0.2, 0.5))
    assert dict(rows)["tx = (gx - ax) / (aw * v0)"].endswith("= 0.5000")
    with pytest.raises(ValueError, match="widths and heights > 0"):
        nb04.box_coding_view([0, 0, 0, 10], [1, 0, 10, 10], variances)
    with pytest.raises(ValueError, match="4 numbers"):
        nb04.box_coding_view([0, 0, 10], [1, 0, 10, 10], variances)


def test_anchor_prediction_explorer_follows_the_level():
    torch.manual_seed(0)
    model = build_ssd(TINY_SHAPES).eval()
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(3))
    widget = nb04.anchor_prediction_explorer(model, image)
    assert "ssd-anchor-prediction-explorer" in widget._dom_classes
    (level, row), (col, k) = widget.children[0].children, widget.children[1].children
    assert (row.max, col.max, k.max) == (15, 15, 3)
    area = widget.output
    assert "ssd-anchor-prediction-table" in area.table.value and ">0</td>" in area.table.value
    assert area.image.value[:4] == b"\x89PNG"
    drawn = []
    area.image.observe(lambda change: drawn.append(change["new"]), names="value")
    row.value, col.value = 15, 15
    drawn.clear()
    level.value = 2  # 4x4 map with 6 anchors per location: the row/col sliders clamp to 3
    assert (row.max, col.max, k.max) == (3, 3, 5) and (row.value, col.value) == (3, 3)
    assert len(drawn) == 1  # drawn once for the level change, not once per clamped slider
    index = nb04.anchor_index(TINY_SHAPES, 2, 3, 3, 0)
    assert f">{index}</td>" in area.table.value
