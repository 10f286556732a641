"""Tests for ssd_tutorial.anchors: hand-worked default boxes, order, totals and torchvision's DefaultBoxGenerator."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from ssd_tutorial.anchors import anchor_table, default_boxes, format_anchor_table, level_box_shapes
from ssd_tutorial.boxes import cxcywh_to_xyxy
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC, TINY_SHAPES

ROOT2 = math.sqrt(2)


@pytest.fixture(scope="module")
def anchors512() -> torch.Tensor:
    return default_boxes(SSD512_VOC)


def test_first_location_of_ssd512(anchors512):
    s, s_next = 35.84, 76.8
    expected = torch.tensor([
        [4.0, 4.0, s, s],
        [4.0, 4.0, math.sqrt(s * s_next), math.sqrt(s * s_next)],
        [4.0, 4.0, s * ROOT2, s / ROOT2],  # 2:1, lying
        [4.0, 4.0, s / ROOT2, s * ROOT2],  # 1:2, standing
    ])  # fmt: skip
    torch.testing.assert_close(anchors512[:4], expected)


def test_order_is_row_major_then_shape(anchors512):
    # Level 0 has 4 boxes per location: location (i=0, j=1) starts at 4, (i=1, j=0) at 64 * 4.
    torch.testing.assert_close(anchors512[4, :2], torch.tensor([12.0, 4.0]))  # next column: x moves
    torch.testing.assert_close(anchors512[64 * 4, :2], torch.tensor([4.0, 12.0]))  # next row: y moves
    torch.testing.assert_close(anchors512[64 * 4 * 64 - 4, :2], torch.tensor([508.0, 508.0]))  # last of level 0
    centers = anchors512[: 64 * 64 * 4 : 4, :2].view(64, 64, 2)  # [i, j, (cx, cy)]
    assert torch.equal(centers[..., 0], ((torch.arange(64) + 0.5) * 8).expand(64, 64))  # cx depends on j
    assert torch.equal(centers[..., 1], ((torch.arange(64) + 0.5) * 8)[:, None].expand(64, 64))  # cy on i


def test_first_box_of_level_1(anchors512):
    start = 64 * 64 * 4
    s, s_next = 76.8, 153.6
    expected = torch.tensor([
        [8.0, 8.0, s, s],
        [8.0, 8.0, math.sqrt(s * s_next), math.sqrt(s * s_next)],
        [8.0, 8.0, s * ROOT2, s / ROOT2],
        [8.0, 8.0, s / ROOT2, s * ROOT2],
        [8.0, 8.0, s * math.sqrt(3), s / math.sqrt(3)],
        [8.0, 8.0, s / math.sqrt(3), s * math.sqrt(3)],
    ])  # fmt: skip
    torch.testing.assert_close(anchors512[start : start + 6], expected)


def test_last_location_of_ssd512(anchors512):
    s, s_next = 460.8, 537.6
    expected = torch.tensor([
        [256.0, 256.0, s, s],
        [256.0, 256.0, math.sqrt(s * s_next), math.sqrt(s * s_next)],
        [256.0, 256.0, s * ROOT2, s / ROOT2],
        [256.0, 256.0, s / ROOT2, s * ROOT2],
    ])  # fmt: skip
    torch.testing.assert_close(anchors512[-4:], expected)


@pytest.mark.parametrize(("cfg", "total"), [(SSD512_VOC, 24564), (SSD300_VOC, 8732), (TINY_SHAPES, 1524)])
def test_totals_and_dtype(cfg, total):
    anchors = default_boxes(cfg)
    assert anchors.shape == (total, 4) and anchors.dtype == torch.float32
    assert (anchors[:, 2:] > 0).all()


def test_not_clipped(anchors512):
    xyxy = cxcywh_to_xyxy(anchors512)
    assert xyxy.min() < 0 and xyxy.max() > 512  # the big boxes reach beyond the image
    assert anchors512[-2, 2] == pytest.approx(460.8 * ROOT2)  # 651.7 px wide, wider than the image


def test_level_box_shapes_matches_anchors_per_location():
    for cfg in (SSD512_VOC, SSD300_VOC, TINY_SHAPES):
        assert tuple(len(level_box_shapes(cfg, k)) for k in range(cfg.num_levels)) == cfg.anchors_per_location
    with pytest.raises(ValueError, match=r"level must be in \[0, 6\], got 7"):
        level_box_shapes(SSD512_VOC, 7)


def test_anchor_table():
    rows = anchor_table(SSD512_VOC)
    assert [row["anchors"] for row in rows] == [16384, 6144, 1536, 384, 96, 16, 4]
    assert rows[0]["box_size"] == 35.84 and rows[0]["next_box_size"] == 76.8
    text = format_anchor_table(SSD512_VOC)
    assert text.splitlines()[0] == "ssd512_voc: 512x512 input, 21 classes"
    assert text.splitlines()[-1].split() == ["total", "24564"]
    assert len(text.splitlines()) == 2 + 7 + 1


def _torchvision_boxes(generator: DefaultBoxGenerator, cfg) -> torch.Tensor:
    images = ImageList(torch.zeros(1, 3, cfg.image_size, cfg.image_size), [(cfg.image_size, cfg.image_size)])
    features = [torch.zeros(1, 1, fm, fm) for fm in cfg.feature_map_sizes]
    return generator(images, features)[0]  # [A, 4] xyxy pixels, for the one image


def test_same_as_torchvision_default_box_generator_with_paper_scales():
    """torchvision's DefaultBoxGenerator gives the same boxes when it is given the paper's scales.

    Differences found (and why this test passes them in explicitly):
    - ``ssd300_vgg16`` builds it with scales (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05), i.e. a first
      box of 21 px, not the paper's 30 px (0.1); our SSD300_VOC uses the paper's sizes.
    - its scales are fractions of the image, ours are pixels (scale = box_size / image_size).
    - ``clip=True`` (its default) clamps the normalized w, h to [0, 1] *before* converting to corners, so
      boxes larger than the image shrink to the image size (their centres stay); ours are never clipped.
    - it returns xyxy pixels, one copy per image; ours is one cxcywh tensor for the whole batch.
    - it computes centres as (j + 0.5) / (S / step) * S in float32, so values agree to float32 rounding
      (at most a few ulp of 512, i.e. < 1e-4 px), not bit for bit.
    """
    cfg = SSD300_VOC
    generator = DefaultBoxGenerator(
        [list(r) for r in cfg.aspect_ratios],
        scales=[s / cfg.image_size for s in cfg.box_sizes],
        steps=list(cfg.steps),
        clip=False,
    )
    theirs = _torchvision_boxes(generator, cfg)
    ours = cxcywh_to_xyxy(default_boxes(cfg))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)


def test_torchvision_defaults_differ_from_the_paper():
    cfg = SSD300_VOC
    ours = cxcywh_to_xyxy(default_boxes(cfg))
    ssd300_scales = [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]  # torchvision.models.detection.ssd300_vgg16
    theirs = _torchvision_boxes(DefaultBoxGenerator([list(r) for r in cfg.aspect_ratios], scales=ssd300_scales,
                                                    steps=list(cfg.steps)), cfg)  # fmt: skip
    torch.testing.assert_close(theirs[0], torch.tensor([4.0 - 10.5, 4.0 - 10.5, 4.0 + 10.5, 4.0 + 10.5]))  # 21 px
    torch.testing.assert_close(ours[0], torch.tensor([4.0 - 15.0, 4.0 - 15.0, 4.0 + 15.0, 4.0 + 15.0]))  # 30 px
    # clip=True: with the paper's scales only the boxes wider or taller than 300 px change.
    clipped = _torchvision_boxes(DefaultBoxGenerator([list(r) for r in cfg.aspect_ratios],
                                                     scales=[s / 300 for s in cfg.box_sizes], steps=list(cfg.steps),
                                                     clip=True), cfg)  # fmt: skip
    too_big = (default_boxes(cfg)[:, 2:] > 300).any(dim=1)
    changed = ~torch.isclose(clipped, ours, rtol=0, atol=1e-4).all(dim=1)
    assert too_big.any() and torch.equal(changed, too_big)


def test_cfg_must_be_an_ssd_config():
    from ssd_tutorial.anchors import anchor_table, default_boxes, format_anchor_table, level_box_shapes
    from ssd_tutorial.config import SSD300_VOC

    for call in (default_boxes, anchor_table, format_anchor_table, lambda c: level_box_shapes(c, 0)):
        with pytest.raises(TypeError, match=r"cfg must be an SSDConfig, got dict \(build one with SSDConfig"):
            call(SSD300_VOC.to_dict())
        with pytest.raises(TypeError, match=r"cfg must be an SSDConfig, got str$"):
            call("ssd300_voc")
    with pytest.raises(TypeError, match=r"level must be an int, got float 1\.0"):
        level_box_shapes(SSD300_VOC, 1.0)
