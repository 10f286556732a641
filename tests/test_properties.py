"""Property-based tests over the public functions (hypothesis): random shapes, dtypes, NaN / inf, empty tensors,
out-of-range labels and thresholds. Every call either returns finite, correctly shaped results, or raises a
ValueError / TypeError whose message names one of the function's arguments."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.boxes import cxcywh_to_xyxy, decode_boxes, encode_boxes, xyxy_to_cxcywh
from ssd_tutorial.config import TINY_SHAPES, SSDConfig
from ssd_tutorial.evaluate import coco_map, mean_average_precision
from ssd_tutorial.loss import multibox_loss
from ssd_tutorial.matching import encode_targets, match_anchors
from ssd_tutorial.postprocess import decode_detections

# derandomize: the same examples on every run, so CI is deterministic (and a strict xfail stays a failure).
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
DTYPES = (torch.float32, torch.float64, torch.float16, torch.int64)
SPECIAL = (math.nan, math.inf, -math.inf)

# Values a careless user passes: ordinary numbers, zeros, negatives, huge ones, NaN / inf.
values = st.one_of(st.floats(-300, 300), st.sampled_from((0.0, -1.0, 1e30, *SPECIAL)))
positive = st.floats(1.0, 200.0)


def expect_error(error: Exception, *names: str) -> None:
    """``error`` is a ValueError / TypeError whose message names one of ``names`` (an argument or field)."""
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
    message = str(error)
    assert any(re.search(rf"\b{re.escape(n)}\b", message) for n in names), f"no argument named in {message!r}"


def finite(*tensors: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


@st.composite
def tensors(draw, last: st.SearchStrategy[int] | None = None, lead_dims: int = 2, special: bool = True):
    """A tensor [..., last] of a random dtype; some of its entries may be NaN / inf / zero / negative."""
    lead = draw(st.lists(st.integers(0, 4), max_size=lead_dims))
    shape = (*lead, 4 if last is None else draw(last))
    n = math.prod(shape)
    dtype = draw(st.sampled_from(DTYPES))
    base = [draw(positive) for _ in range(n)]
    if special and n and draw(st.booleans()):
        base[draw(st.integers(0, n - 1))] = draw(values)
    t = torch.tensor(base, dtype=torch.float64).reshape(shape)
    return t.to(dtype) if dtype.is_floating_point else t.clamp(-1e6, 1e6).to(dtype)


# ---- boxes -------------------------------------------------------------------------------------------------


@SETTINGS
@given(boxes=tensors(last=st.integers(3, 5), lead_dims=3))
def test_box_conversions(boxes):
    for convert, name in ((cxcywh_to_xyxy, "boxes_cxcywh"), (xyxy_to_cxcywh, "boxes_xyxy")):
        try:
            out = convert(boxes)
        except Exception as error:  # noqa: BLE001 - the property is about which errors
            expect_error(error, name)
            continue
        assert out.shape == boxes.shape and boxes.shape[-1] == 4
        assert finite(out) or boxes.dtype == torch.float16  # fp16 may overflow at 1e30-sized inputs, by design


variances = st.one_of(
    st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 1.0)),
    st.sampled_from([(0.1,), (0.0, 0.2), (math.nan, 0.2), ("0.1", 0.2), (True, 0.2), 0.1, None]),
)


@SETTINGS
@given(gt=tensors(), anchors=tensors(), v=variances)
def test_encode_boxes(gt, anchors, v):
    try:
        out = encode_boxes(gt, anchors, v)
    except Exception as error:  # noqa: BLE001
        expect_error(error, "gt_cxcywh", "anchors_cxcywh", "variances")
        return
    assert out.shape == torch.broadcast_shapes(gt.shape, anchors.shape)
    assert finite(out)


@SETTINGS
@given(deltas=tensors(), anchors=tensors(), v=variances)
def test_decode_boxes(deltas, anchors, v):
    try:
        out = decode_boxes(deltas, anchors, v)
    except Exception as error:  # noqa: BLE001
        expect_error(error, "deltas", "anchors_cxcywh", "variances")
        return
    assert out.shape == torch.broadcast_shapes(deltas.shape, anchors.shape)
    assert finite(out)


# ---- config and anchors --------------------------------------------------------------------------------------


@st.composite
def valid_configs(draw):
    """A random valid SSDConfig: 1-4 levels of shrinking feature maps, steps S / fm, increasing box sizes."""
    levels = draw(st.integers(1, 4))
    fms = sorted(draw(st.lists(st.integers(1, 12), min_size=levels, max_size=levels, unique=True)), reverse=True)
    size = draw(st.integers(16, 320))
    sizes = sorted(draw(st.lists(st.floats(2.0, 400.0), min_size=levels + 1, max_size=levels + 1, unique=True)))
    if any(b - a < 1e-3 for a, b in zip(sizes, sizes[1:])):
        sizes = [8.0 * (k + 1) for k in range(levels + 1)]
    ratios = tuple(tuple(draw(st.lists(st.floats(0.2, 5.0), max_size=2))) for _ in range(levels))
    classes = draw(st.integers(2, 6))
    return SSDConfig(name="random", image_size=size, num_classes=classes,
                     class_names=("__background__", *(f"c{k}" for k in range(1, classes))),
                     feature_map_sizes=tuple(fms), steps=tuple(size / fm for fm in fms), box_sizes=tuple(sizes),
                     aspect_ratios=ratios, in_channels=(8,) * levels, backbone="tiny")  # fmt: skip


@SETTINGS
@given(cfg=valid_configs())
def test_default_boxes_over_random_configs(cfg):
    anchors = default_boxes(cfg)
    assert anchors.shape == (cfg.num_anchors, 4) and anchors.dtype == torch.float32
    assert finite(anchors) and bool((anchors[:, 2:] > 0).all())


FIELDS = ("image_size", "num_classes", "iou_threshold", "neg_pos_ratio", "score_threshold", "nms_threshold",
          "pre_nms_top_k", "max_detections", "mean", "std", "variances", "steps", "box_sizes", "name", "backbone")
odd_values = st.one_of(values, st.integers(-5, 600), st.booleans(), st.none(), st.text(max_size=3),
                       st.tuples(values, values), st.tuples(values, values, values))  # fmt: skip


@pytest.mark.parametrize("field", FIELDS)
@SETTINGS
@given(value=odd_values, other=st.dictionaries(st.sampled_from(FIELDS), odd_values, max_size=2))
def test_ssd_config_fields(field, value, other):
    changes = {**other, field: value}
    try:
        cfg = TINY_SHAPES.replace(**changes)
    except Exception as error:  # noqa: BLE001
        # a change may make another field wrong (image_size -> steps): any field of SSDConfig may be named
        expect_error(error, *(f"SSDConfig.{f.name}" for f in dataclasses.fields(SSDConfig)))
        return
    numbers = [getattr(cfg, n) for n in ("iou_threshold", "neg_pos_ratio", "score_threshold", "nms_threshold")]
    for number in [*numbers, *cfg.mean, *cfg.std, *cfg.variances, *cfg.steps, *cfg.box_sizes]:
        assert isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number)
    assert 0 < cfg.iou_threshold <= 1 and 0 <= cfg.score_threshold < 1 and 0 < cfg.nms_threshold <= 1
    assert cfg.neg_pos_ratio >= 0 and min(cfg.std) >= 1e-3 and all(0 <= m <= 1 for m in cfg.mean)
    assert cfg.num_anchors > 0 and isinstance(cfg.name, str) and cfg.backbone in ("vgg16", "resnet50", "tiny")


# ---- matching and loss ---------------------------------------------------------------------------------------

ANCHORS = default_boxes(TINY_SHAPES)  # [A, 4] cxcywh
C = TINY_SHAPES.num_classes


@st.composite
def xyxy_boxes(draw, max_boxes: int = 4):
    """[M, 4] xyxy boxes inside a 128 px image; some inverted, empty or not finite."""
    m = draw(st.integers(0, max_boxes))
    rows = []
    for _ in range(m):
        x, y = draw(st.floats(0, 100)), draw(st.floats(0, 100))
        w, h = draw(st.floats(1, 60)), draw(st.floats(1, 60))
        row = [x, y, x + w, y + h]
        if draw(st.integers(0, 5)) == 0:
            row[draw(st.integers(0, 3))] = draw(values)
        rows.append(row)
    dtype = draw(st.sampled_from((torch.float32, torch.float64, torch.int64)))
    boxes = torch.tensor(rows, dtype=torch.float64).reshape(m, 4)
    return boxes.to(dtype) if dtype.is_floating_point else boxes.nan_to_num(0, 0, 0).to(dtype)


thresholds = st.one_of(st.floats(0.05, 1.0), st.sampled_from((0.0, -0.5, 1.5, math.nan, "0.5", True, None)))


@SETTINGS
@given(gt=xyxy_boxes(), threshold=thresholds)
def test_match_anchors(gt, threshold):
    try:
        matches = match_anchors(gt, cxcywh_to_xyxy(ANCHORS), threshold)
    except Exception as error:  # noqa: BLE001
        expect_error(error, "gt_boxes_xyxy", "anchors_xyxy", "iou_threshold")
        return
    assert matches.shape == (ANCHORS.shape[0],) and matches.dtype == torch.long
    assert int(matches.min()) >= -1 and int(matches.max()) < max(len(gt), 1)


labels_lists = st.lists(st.one_of(st.integers(1, C - 1), st.sampled_from((0, -1, C, 99))), max_size=4)


@SETTINGS
@given(boxes=st.lists(xyxy_boxes(), min_size=1, max_size=3), data=st.data())
def test_encode_targets(boxes, data):
    targets = []
    for b in boxes:
        labels = data.draw(st.lists(st.integers(1, C - 1), min_size=len(b), max_size=len(b)))
        if labels and data.draw(st.booleans()):
            labels[0] = data.draw(st.sampled_from((0, -1, C)))
        dtype = data.draw(st.sampled_from((torch.long, torch.int32, torch.float32)))
        targets.append({"boxes": b, "labels": torch.tensor(labels, dtype=torch.long).to(dtype)})
    try:
        loc, cls = encode_targets(targets, ANCHORS, TINY_SHAPES)
    except Exception as error:  # noqa: BLE001
        expect_error(error, "targets", "anchors_cxcywh", "cfg")
        return
    A = ANCHORS.shape[0]
    assert loc.shape == (len(targets), A, 4) and cls.shape == (len(targets), A) and cls.dtype == torch.long
    assert finite(loc) and int(cls.min()) >= 0 and int(cls.max()) < C


@st.composite
def loss_inputs(draw, special: bool = False):
    """Random loss inputs; ``special``: one NaN / inf in loc_preds, cls_logits or loc_targets at a positive anchor."""
    B, A = draw(st.integers(1 if special else 0, 3)), draw(st.integers(1 if special else 0, 20))
    classes = draw(st.integers(2 if special else 1, 5))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    loc_preds, loc_targets = torch.randn(B, A, 4, generator=g), torch.randn(B, A, 4, generator=g)
    cls_logits = torch.randn(B, A, classes, generator=g)
    cls_targets = torch.randint(0, max(classes, 1), (B, A), generator=g)
    if special:
        cls_targets[0, 0] = 1
        tensor = draw(st.sampled_from((loc_preds, cls_logits, loc_targets)))
        tensor[0, 0, draw(st.integers(0, 1))] = draw(st.sampled_from(SPECIAL))
    elif B * A and draw(st.booleans()):
        cls_targets.view(-1)[0] = draw(st.sampled_from((-1, classes, 10**6)))
    ratio = draw(st.one_of(st.integers(0, 5), st.floats(0, 4)))
    return loc_preds, cls_logits, loc_targets, cls_targets, ratio




def _loss_property(inputs):
    loc_preds, cls_logits, loc_targets, cls_targets, ratio = inputs
    try:
        losses = multibox_loss(loc_preds, cls_logits, loc_targets, cls_targets, neg_pos_ratio=ratio)
    except Exception as error:  # noqa: BLE001
        expect_error(error, "loc_preds", "cls_logits", "loc_targets", "cls_targets", "neg_pos_ratio")
        return
    assert set(losses) == {"loss_loc", "loss_cls"}
    assert all(v.ndim == 0 for v in losses.values()) and finite(*losses.values())


@SETTINGS
@given(inputs=loss_inputs())
def test_multibox_loss(inputs):
    _loss_property(inputs)


@SETTINGS
@given(inputs=loss_inputs(special=True))
def test_multibox_loss_non_finite_inputs(inputs):
    _loss_property(inputs)


# ---- decoding and evaluation ---------------------------------------------------------------------------------


@st.composite
def head_outputs(draw, special: bool):
    B = draw(st.integers(0, 2))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    A = ANCHORS.shape[0]
    loc_preds = torch.randn(B, A, 4, generator=g)
    cls_logits = torch.randn(B, A, C, generator=g) * draw(st.sampled_from((1.0, 5.0)))
    if special and B:
        target = loc_preds if draw(st.booleans()) else cls_logits
        target.view(-1)[draw(st.integers(0, target.numel() - 1))] = draw(st.sampled_from(SPECIAL))
    return loc_preds, cls_logits


@SETTINGS
@given(outputs=head_outputs(special=False), score=st.floats(0.0, 0.99), nms=st.floats(0.05, 1.0))
def test_decode_detections(outputs, score, nms):
    loc_preds, cls_logits = outputs
    cfg = TINY_SHAPES.replace(score_threshold=score, nms_threshold=nms, max_detections=20)
    detections = decode_detections(loc_preds, cls_logits, ANCHORS, cfg)
    assert len(detections) == loc_preds.shape[0]
    for d in detections:
        n = len(d["scores"])
        assert d["boxes"].shape == (n, 4) and d["labels"].shape == (n,) and n <= cfg.max_detections
        assert finite(d["boxes"], d["scores"]) and (n == 0 or int(d["labels"].min()) >= 1)


@SETTINGS
@given(outputs=head_outputs(special=True))
def test_decode_detections_non_finite_inputs(outputs):
    loc_preds, cls_logits = outputs
    try:
        detections = decode_detections(loc_preds, cls_logits, ANCHORS, TINY_SHAPES)
    except Exception as error:  # noqa: BLE001
        expect_error(error, "loc_preds", "cls_logits", "anchors_cxcywh", "cfg")
        return
    assert all(finite(d["boxes"], d["scores"]) for d in detections)


@st.composite
def eval_inputs(draw):
    """Per-image detections and targets; some with NaN scores, bad boxes, labels 0 / -1, float labels."""
    B = draw(st.integers(0, 3))
    detections, targets = [], []
    for _ in range(B):
        gt = draw(xyxy_boxes(3)).double()
        gt_labels = torch.tensor(draw(st.lists(st.integers(1, 3), min_size=len(gt), max_size=len(gt))))
        dt = draw(xyxy_boxes(4)).double()
        dt_labels = torch.tensor(draw(st.lists(st.integers(1, 3), min_size=len(dt), max_size=len(dt))))
        scores = torch.tensor(draw(st.lists(st.floats(0, 1), min_size=len(dt), max_size=len(dt))))
        fault = draw(st.integers(0, 6))
        if fault == 0 and len(scores):
            scores[0] = draw(st.sampled_from(SPECIAL))
        elif fault == 1 and len(gt_labels):
            gt_labels[0] = draw(st.sampled_from((0, -1)))
        elif fault == 2:
            dt_labels = dt_labels.float()
        detections.append({"boxes": dt, "scores": scores, "labels": dt_labels.reshape(-1).long()
                           if fault != 2 else dt_labels.reshape(-1)})  # fmt: skip
        targets.append({"boxes": gt, "labels": gt_labels.reshape(-1).long()})
    return detections, targets


def must_raise(detections, targets) -> bool:
    """Inputs no metric may accept: non-finite scores or boxes, inverted boxes, labels < 1 or not integers."""
    for item in (*detections, *targets):
        boxes = item["boxes"]
        float_labels = item["labels"].is_floating_point() and item["labels"].numel() > 0  # empty: nothing to misread
        if not finite(item.get("scores", torch.zeros(0)), boxes) or float_labels:
            return True
        if bool((item["labels"] < 1).any() | (boxes[:, 2] < boxes[:, 0]).any() | (boxes[:, 3] < boxes[:, 1]).any()):
            return True
    return False


@SETTINGS
@given(inputs=eval_inputs(), iou=thresholds, method=st.sampled_from(("voc07", "all_points", "coco")))
def test_mean_average_precision(inputs, iou, method):
    try:
        result = mean_average_precision(*inputs, iou_threshold=iou, method=method)
    except Exception as error:  # noqa: BLE001
        expect_error(error, "detections", "targets", "iou_threshold", "method")
        return
    assert not must_raise(*inputs), "bad detections / targets were accepted"
    assert 0.0 <= result["map"] <= 1.0
    assert all(isinstance(k, int) and k >= 1 and 0.0 <= v <= 1.0 for k, v in result["ap_per_class"].items())


@settings(max_examples=25, deadline=None, derandomize=True)
@given(inputs=eval_inputs())
def test_coco_map(inputs):
    try:
        result = coco_map(*inputs)
    except Exception as error:  # noqa: BLE001
        expect_error(error, "detections", "targets")
        return
    assert not must_raise(*inputs), "bad detections / targets were accepted"
    assert set(result) == {"map", "map_50", "map_75"} and all(0.0 <= v <= 1.0 for v in result.values())
