"""Tests for ssd_tutorial.postprocess.decode_detections (the taught version): against torchvision's
SSD.postprocess_detections; empty results, caps, order, validation. tests/test_fast.py checks that the fast
path gives the same detections."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.ssd import SSD as TorchvisionSSD

from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.boxes import cxcywh_to_xyxy
from ssd_tutorial.config import SSD300_VOC, TINY_SHAPES
from ssd_tutorial.postprocess import decode_detections


def torchvision_detections(loc_preds, cls_logits, anchors, cfg):
    """torchvision's SSD.postprocess_detections with our rules: score > score_threshold, top pre_nms_top_k per
    class, NMS per class, max_detections per image; box coder weights (10, 10, 5, 5) = variances (0.1, 0.2).

    Where the rules differ (not exercised here): torchvision caps the log-size offsets at log(1000 / 16)
    before exp, we do not (our boxes are clipped to the image anyway).
    """
    weights = (1 / cfg.variances[0], 1 / cfg.variances[0], 1 / cfg.variances[1], 1 / cfg.variances[1])
    fake_self = SimpleNamespace(box_coder=BoxCoder(weights=weights), score_thresh=cfg.score_threshold,
                                topk_candidates=cfg.pre_nms_top_k, nms_thresh=cfg.nms_threshold,
                                detections_per_img=cfg.max_detections)  # fmt: skip
    B = loc_preds.shape[0]
    return TorchvisionSSD.postprocess_detections(
        fake_self, {"bbox_regression": loc_preds, "cls_logits": cls_logits},
        [cxcywh_to_xyxy(anchors)] * B, [(cfg.image_size, cfg.image_size)] * B,
    )  # fmt: skip


def random_outputs(cfg, B, seed, logit_scale=3.0, background_shift=2.0):
    g = torch.Generator().manual_seed(seed)
    A = cfg.num_anchors
    loc_preds = torch.randn(B, A, 4, generator=g)
    cls_logits = torch.randn(B, A, cfg.num_classes, generator=g) * logit_scale
    cls_logits[..., 0] += background_shift
    return loc_preds, cls_logits


def canonical(det):
    """Detections ordered by score, then label, then x1, y1: equal scores (softmax saturates in float32)
    may come in either order."""
    order = torch.arange(len(det["scores"]))
    for key in (det["boxes"][:, 1], det["boxes"][:, 0], det["labels"], -det["scores"]):
        order = order[key[order].sort(stable=True).indices]
    return {key: value[order] for key, value in det.items()}


def assert_same(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert (g["scores"][:-1] >= g["scores"][1:]).all()
        g, e = canonical(g), canonical(e)
        assert torch.equal(g["labels"], e["labels"])
        assert torch.allclose(g["scores"], e["scores"], rtol=1e-6, atol=0)
        assert torch.allclose(g["boxes"], e["boxes"], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "changes",
    [{}, {"pre_nms_top_k": 5}, {"max_detections": 7}, {"score_threshold": 0.3, "nms_threshold": 0.2}],
    ids=["defaults", "top_k_5", "max_7", "strict"],
)
def test_matches_torchvision_with_changed_rules(seed, changes):
    cfg = TINY_SHAPES.replace(**changes)
    anchors = default_boxes(cfg)
    loc_preds, cls_logits = random_outputs(cfg, B=3, seed=seed)
    got = decode_detections(loc_preds, cls_logits, anchors, cfg)
    assert_same(got, torchvision_detections(loc_preds, cls_logits, anchors, cfg))
    assert sum(len(d["scores"]) for d in got) > 0  # the comparison is not vacuous


def test_matches_torchvision_postprocess_on_ssd300():
    """SSD300's rules (score > 0.01, top 400 per class, NMS 0.45, 200 per image); torchvision runs NMS image
    by image, we run one batched_nms call over the batch (same result)."""
    cfg = SSD300_VOC
    anchors = default_boxes(cfg)
    loc_preds, cls_logits = random_outputs(cfg, B=2, seed=0, logit_scale=2.0, background_shift=3.0)
    got = decode_detections(loc_preds, cls_logits, anchors, cfg)
    assert [len(d["scores"]) for d in got] == [cfg.max_detections] * 2
    assert_same(got, torchvision_detections(loc_preds, cls_logits, anchors, cfg))


def test_empty_when_scores_are_low():
    cfg = TINY_SHAPES
    loc_preds, cls_logits = random_outputs(cfg, B=2, seed=0, logit_scale=0.1, background_shift=20.0)
    got = decode_detections(loc_preds, cls_logits, default_boxes(cfg), cfg)
    assert len(got) == 2
    for det in got:
        assert det["boxes"].shape == (0, 4) and det["scores"].shape == (0,) and det["labels"].shape == (0,)
        assert det["labels"].dtype == torch.long and det["boxes"].dtype == torch.float32


def test_cap_sorted_and_inside_the_image():
    cfg = TINY_SHAPES.replace(max_detections=5)
    loc_preds, cls_logits = random_outputs(TINY_SHAPES, B=4, seed=1)
    loc_preds = loc_preds * 5  # many boxes reach past the image border
    uncapped = decode_detections(loc_preds, cls_logits, default_boxes(cfg), cfg.replace(max_detections=10_000))
    capped = decode_detections(loc_preds, cls_logits, default_boxes(cfg), cfg)
    for few, many in zip(capped, uncapped):
        assert len(few["scores"]) == 5 < len(many["scores"])
        assert all(torch.equal(few[key], many[key][:5]) for key in few)
        assert (many["scores"][:-1] >= many["scores"][1:]).all()
        boxes = many["boxes"]
        assert ((boxes >= 0) & (boxes <= cfg.image_size)).all()
        assert (boxes[:, :2] <= boxes[:, 2:]).all()


def test_batched_equals_per_image():
    cfg = TINY_SHAPES
    anchors = default_boxes(cfg)
    loc_preds, cls_logits = random_outputs(cfg, B=4, seed=5)
    batched = decode_detections(loc_preds, cls_logits, anchors, cfg)
    for b in range(4):
        single = decode_detections(loc_preds[b : b + 1], cls_logits[b : b + 1], anchors, cfg)[0]
        assert_same([single], [batched[b]])


def test_one_image_without_detections_in_a_batch():
    cfg = TINY_SHAPES
    loc_preds, cls_logits = random_outputs(cfg, B=3, seed=6)
    cls_logits[1, :, 0] += 50.0  # image 1: background everywhere
    got = decode_detections(loc_preds, cls_logits, default_boxes(cfg), cfg)
    assert len(got[1]["scores"]) == 0 and len(got[0]["scores"]) > 0 and len(got[2]["scores"]) > 0
    assert_same(got, torchvision_detections(loc_preds, cls_logits, default_boxes(cfg), cfg))


def test_float64_follows():
    cfg = TINY_SHAPES
    loc_preds, cls_logits = random_outputs(cfg, B=1, seed=0)
    got = decode_detections(loc_preds.double(), cls_logits.double(), default_boxes(cfg).double(), cfg)
    assert got[0]["boxes"].dtype == got[0]["scores"].dtype == torch.float64 and got[0]["labels"].dtype == torch.long


def test_bad_inputs():
    cfg = TINY_SHAPES
    anchors = default_boxes(cfg)
    loc_preds, cls_logits = random_outputs(cfg, B=2, seed=0)
    with pytest.raises(ValueError, match=r"cls_logits must be \[B, A, 4\].*got \[2, 1524, 3\]"):
        decode_detections(loc_preds, cls_logits[..., :3], anchors, cfg)
    with pytest.raises(ValueError, match=r"loc_preds must be \[B, A, 4\] = \[2, 1524, 4\].*got \[2, 1500, 4\]"):
        decode_detections(loc_preds[:, :1500], cls_logits, anchors, cfg)
    with pytest.raises(ValueError, match=r"anchors_cxcywh must be \[A, 4\] = \[1524, 4\].*got \[1523, 4\]"):
        decode_detections(loc_preds, cls_logits, anchors[:-1], cfg)
    with pytest.raises(TypeError, match="loc_preds must be a torch.Tensor"):
        decode_detections(loc_preds.tolist(), cls_logits, anchors, cfg)


def test_half_logits_with_float32_boxes():
    """Under autocast the class head gives fp16 logits while anchors stay fp32; NMS needs one dtype."""
    cfg = TINY_SHAPES
    loc_preds, cls_logits = random_outputs(cfg, B=2, seed=3)
    got = decode_detections(loc_preds.half(), cls_logits.half(), default_boxes(cfg), cfg)
    assert got[0]["boxes"].dtype == got[0]["scores"].dtype == torch.float32 and len(got[0]["scores"]) > 0


def test_no_images_or_no_anchors():
    cfg = TINY_SHAPES
    anchors = default_boxes(cfg)
    assert decode_detections(torch.zeros(0, cfg.num_anchors, 4), torch.zeros(0, cfg.num_anchors, 4), anchors, cfg) == []
    got = decode_detections(torch.zeros(2, 0, 4), torch.zeros(2, 0, 4), anchors[:0], cfg)
    assert len(got) == 2 and all(d["boxes"].shape == (0, 4) and d["labels"].dtype == torch.long for d in got)


@pytest.mark.parametrize("name", ["loc_preds", "cls_logits", "anchors_cxcywh"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_inputs_name_the_argument(name, bad):
    cfg = TINY_SHAPES
    inputs = dict(zip(("loc_preds", "cls_logits"), random_outputs(cfg, B=2, seed=0)), anchors_cxcywh=default_boxes(cfg))
    inputs[name].view(-1)[[3, 7]] = bad
    total = inputs[name].numel()
    with pytest.raises(ValueError, match=rf"{name} must be finite, got 2 NaN or inf values of {total}"):
        decode_detections(inputs["loc_preds"], inputs["cls_logits"], inputs["anchors_cxcywh"], cfg)


def test_zero_detections_give_no_warning():
    cfg = TINY_SHAPES
    loc_preds, cls_logits = random_outputs(cfg, B=2, seed=0, logit_scale=0.1, background_shift=20.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (e.g. torchvision's about empty boxes) fails the test
        got = decode_detections(loc_preds, cls_logits, default_boxes(cfg), cfg)
    assert all(len(d["scores"]) == 0 for d in got)


def test_huge_finite_logits_are_not_mistaken_for_inf():
    """The finiteness check sums the values first; a sum that overflows on finite values is not an error."""
    cfg = TINY_SHAPES
    loc_preds, cls_logits = random_outputs(cfg, B=1, seed=0)
    cls_logits[0, :3, 1] = 3e38  # finite float32, but the sum overflows to inf
    got = decode_detections(loc_preds, cls_logits, default_boxes(cfg), cfg)[0]
    assert torch.isfinite(got["boxes"]).all() and got["scores"][0] == 1.0 and got["labels"][0] == 1
