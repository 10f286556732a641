"""Tests for ssd_tutorial.boxes: format conversions and the SSD box parameterization."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import box_convert

from ssd_tutorial.boxes import cxcywh_to_xyxy, decode_boxes, encode_boxes, xyxy_to_cxcywh
from ssd_tutorial.config import SSD300_VOC

VARIANCES = SSD300_VOC.variances  # the SSD paper's (0.1, 0.2), from the one place they are written

centres = st.floats(min_value=-200.0, max_value=800.0, allow_nan=False)
sizes = st.floats(min_value=0.5, max_value=1000.0, allow_nan=False)
box_cxcywh = st.tuples(centres, centres, sizes, sizes)


@settings(max_examples=200, deadline=None)
@given(gt=st.lists(box_cxcywh, min_size=1, max_size=8), anchor=box_cxcywh,
       variances=st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 1.0)))  # fmt: skip
def test_decode_inverts_encode(gt, anchor, variances):
    # within decode's cap (a box at most 1000/16 times its anchor), decoding inverts encoding exactly
    assume(all(max(w / anchor[2], h / anchor[3]) <= 1000 / 16 for _, _, w, h in gt))
    gt = torch.tensor(gt, dtype=torch.float64)  # [N, 4]
    anchors = torch.tensor(anchor, dtype=torch.float64).expand_as(gt)  # [N, 4]
    deltas = encode_boxes(gt, anchors, variances)
    torch.testing.assert_close(decode_boxes(deltas, anchors, variances), gt, rtol=1e-9, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(boxes=st.lists(box_cxcywh, min_size=1, max_size=8))
def test_xyxy_cxcywh_round_trip(boxes):
    cxcywh = torch.tensor(boxes, dtype=torch.float64)
    xyxy = cxcywh_to_xyxy(cxcywh)
    assert (xyxy[:, 2:] >= xyxy[:, :2]).all()
    torch.testing.assert_close(xyxy_to_cxcywh(xyxy), cxcywh, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(xyxy, box_convert(cxcywh, "cxcywh", "xyxy"))


def test_conversions_hand_worked():
    cxcywh = torch.tensor([[10.0, 20.0, 4.0, 6.0]])
    xyxy = torch.tensor([[8.0, 17.0, 12.0, 23.0]])
    assert torch.equal(cxcywh_to_xyxy(cxcywh), xyxy)
    assert torch.equal(xyxy_to_cxcywh(xyxy), cxcywh)


def test_encode_hand_worked():
    gt = torch.tensor([110.0, 60.0, 40.0, 20.0])  # cxcywh
    anchor = torch.tensor([100.0, 50.0, 20.0, 40.0])
    # ((110-100)/(20*0.1), (60-50)/(40*0.1), log(40/20)/0.2, log(20/40)/0.2)
    expected = torch.tensor([5.0, 2.5, math.log(2) / 0.2, -math.log(2) / 0.2])
    torch.testing.assert_close(encode_boxes(gt, anchor, VARIANCES), expected)
    torch.testing.assert_close(decode_boxes(expected, anchor, VARIANCES), gt)
    assert torch.equal(decode_boxes(torch.zeros(4), anchor, VARIANCES), anchor)  # zero offsets: the anchor itself
    assert torch.equal(encode_boxes(anchor, anchor, VARIANCES), torch.zeros(4))


def test_encode_equals_torchvision_box_coder():
    """BoxCoder(weights=(10, 10, 5, 5)) is the SSD parameterization with variances (0.1, 0.2).

    In float64: BoxCoder takes xyxy corners and recomputes centres, and in float32 that round trip
    alone moves a centre by an ulp of 300 px, i.e. up to ~3e-4 in a small anchor's offset.
    """
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    gt = torch.cat([rand(50, 2) * 300, rand(50, 2) * 200 + 1], dim=1)
    anchors = torch.cat([rand(50, 2) * 300, rand(50, 2) * 200 + 1], dim=1)
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    expected = coder.encode_single(cxcywh_to_xyxy(gt), cxcywh_to_xyxy(anchors))
    deltas = encode_boxes(gt, anchors, VARIANCES)
    torch.testing.assert_close(deltas, expected)
    decoded = coder.decode_single(deltas, cxcywh_to_xyxy(anchors))
    torch.testing.assert_close(cxcywh_to_xyxy(decode_boxes(deltas, anchors, VARIANCES)), decoded)


def test_any_leading_dims_and_broadcasting():
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(2, 3, 5, 4, generator=g) * 100 + 1  # [B, ?, A, 4], positive sizes
    anchors = torch.rand(5, 4, generator=g) * 100 + 1  # [A, 4], broadcast over the leading dims
    deltas = encode_boxes(gt, anchors, VARIANCES)
    assert deltas.shape == (2, 3, 5, 4)
    torch.testing.assert_close(deltas[1, 2], encode_boxes(gt[1, 2], anchors, VARIANCES))
    torch.testing.assert_close(decode_boxes(deltas, anchors, VARIANCES), gt)
    assert cxcywh_to_xyxy(gt).shape == xyxy_to_cxcywh(gt).shape == (2, 3, 5, 4)
    assert cxcywh_to_xyxy(torch.zeros(0, 4)).shape == (0, 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_is_kept(dtype):
    boxes = torch.tensor([[10.0, 20.0, 4.0, 6.0]], dtype=dtype)
    for out in (
        cxcywh_to_xyxy(boxes),
        xyxy_to_cxcywh(boxes),
        encode_boxes(boxes, boxes, VARIANCES),
        decode_boxes(boxes, boxes, VARIANCES),
    ):
        assert out.dtype == dtype


@pytest.mark.parametrize(
    "call",
    [
        lambda bad, ok: cxcywh_to_xyxy(bad),
        lambda bad, ok: xyxy_to_cxcywh(bad),
        lambda bad, ok: encode_boxes(bad, ok, VARIANCES),
        lambda bad, ok: encode_boxes(ok, bad, VARIANCES),
        lambda bad, ok: decode_boxes(bad, ok, VARIANCES),
        lambda bad, ok: decode_boxes(ok, bad, VARIANCES),
    ],
)
def test_bad_last_dim(call):
    ok = torch.ones(3, 4)
    with pytest.raises(ValueError, match=r"must be \[\.\.\., 4\], got \[3, 5\]"):
        call(torch.ones(3, 5), ok)
    with pytest.raises(ValueError, match=r"must be \[\.\.\., 4\], got \[\]"):
        call(torch.tensor(1.0), ok)
    with pytest.raises(TypeError, match="must be a torch.Tensor, got list"):
        call([[1.0, 2.0, 3.0, 4.0]], ok)


def test_variances_are_required_and_checked():
    box = torch.tensor([[10.0, 20.0, 4.0, 6.0]])
    for call in (encode_boxes, decode_boxes):
        with pytest.raises(TypeError, match="variances"):
            call(box, box)  # no default: the values live in SSDConfig only
        with pytest.raises(TypeError, match=r"variances must be a \(center, size\) pair"):
            call(box, box, 0.1)
        with pytest.raises(TypeError, match=r"variances must be numbers, got str '0\.2'"):
            call(box, box, (0.1, "0.2"))
        with pytest.raises(TypeError, match=r"variances must be numbers, got bool"):
            call(box, box, (True, 0.2))
        for bad in ((0.1, 0.0), (-0.1, 0.2), (0.1, float("nan")), (float("inf"), 0.2)):
            with pytest.raises(ValueError, match=r"variances must be finite and > 0"):
                call(box, box, bad)
    assert encode_boxes(box, box, list(VARIANCES)).shape == (1, 4)  # a list is fine


def test_mismatched_shapes_name_both():
    with pytest.raises(ValueError, match=r"gt_cxcywh \[3, 4\] and anchors_cxcywh \[5, 4\] must have the same"):
        encode_boxes(torch.ones(3, 4), torch.ones(5, 4), VARIANCES)
    with pytest.raises(ValueError, match=r"deltas \[2, 3, 4\] and anchors_cxcywh \[2, 4\]"):
        decode_boxes(torch.ones(2, 3, 4), torch.ones(2, 4), VARIANCES)


@pytest.mark.parametrize(
    ("bad_row", "why"),
    [([50.0, 50.0, 0.0, 10.0], "zero width"), ([50.0, 50.0, 10.0, 0.0], "zero height"),
     ([50.0, 50.0, -4.0, 10.0], "inverted"), ([50.0, float("nan"), 10.0, 10.0], "nan"),
     ([float("inf"), 50.0, 10.0, 10.0], "inf")],
)  # fmt: skip
def test_boxes_without_size_or_not_finite_are_refused(bad_row, why):
    good = torch.tensor([[40.0, 40.0, 20.0, 20.0]] * 3)
    bad = good.clone()
    bad[2] = torch.tensor(bad_row)
    # today's -inf: log(0 / 20) / 0.2; the error names the argument and the first bad row
    with pytest.raises(ValueError, match=r"gt_cxcywh must be finite .* w > 0 and h > 0 .*got row 2 = \["):
        encode_boxes(bad, good, VARIANCES)
    with pytest.raises(ValueError, match=r"anchors_cxcywh must be finite .*got row 2 = \["):
        encode_boxes(good, bad, VARIANCES)
    with pytest.raises(ValueError, match=r"anchors_cxcywh must be finite .*got row 2 = \["):
        decode_boxes(torch.zeros(3, 4), bad, VARIANCES)
    batched = torch.stack([good, bad])  # [2, 3, 4]: the row is named by its full index
    with pytest.raises(ValueError, match=r"gt_cxcywh .*got row \(1, 2\) = \["):
        encode_boxes(batched, good, VARIANCES)


def test_decode_refuses_non_finite_deltas_and_caps_huge_size_offsets():
    anchors = torch.tensor([[40.0, 40.0, 20.0, 20.0]] * 2)
    deltas = torch.zeros(2, 4)
    deltas[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"deltas must be finite, got row 1 = \[nan, 0\.0, 0\.0, 0\.0\]"):
        decode_boxes(deltas, anchors, VARIANCES)
    deltas = torch.zeros(2, 4)
    deltas[0, 2] = 1000.0  # exp(1000 * 0.2) would overflow float32 (exp(200) > 3.4e38): capped as torchvision does
    boxes = decode_boxes(deltas, anchors, VARIANCES)
    assert torch.isfinite(boxes).all()
    assert boxes[0, 2].item() == pytest.approx(20.0 * 1000 / 16) and boxes[0, 3].item() == 20.0
    tv = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    expected = xyxy_to_cxcywh(tv.decode_single(deltas, anchors_xyxy))
    torch.testing.assert_close(boxes, expected, rtol=1e-5, atol=1e-3)  # same cap, same boxes


def test_empty_inputs():
    empty = torch.zeros(0, 4)
    assert encode_boxes(empty, empty, VARIANCES).shape == (0, 4)
    assert decode_boxes(empty, empty, VARIANCES).shape == (0, 4)
    assert encode_boxes(empty, torch.tensor([[1.0, 1.0, 2.0, 2.0]]), VARIANCES).shape == (0, 4)


def test_conversions_refuse_non_finite_boxes():
    boxes = torch.tensor([[10.0, 20.0, 4.0, 6.0], [1.0, 2.0, float("nan"), 3.0]])
    with pytest.raises(ValueError, match=r"boxes_cxcywh must be finite, got row 1 = \[1\.0, 2\.0, nan, 3\.0\]"):
        cxcywh_to_xyxy(boxes)
    boxes[1, 2] = float("inf")
    with pytest.raises(ValueError, match=r"boxes_xyxy must be finite, got row 1"):
        xyxy_to_cxcywh(boxes)
    assert cxcywh_to_xyxy(torch.tensor([[1, 2, 4, 6]])).tolist() == [[-1, -1, 3, 5]]  # integers: nothing to check
    with torch.device("meta"):
        assert cxcywh_to_xyxy(torch.empty(3, 4)).shape == (3, 4)  # no values to check on the meta device
