"""Tests for ssd_tutorial.postprocess.decode_detections: against a slow per-image, per-class reference
and against torchvision's SSD.postprocess_detections; empty results, caps, order, validation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.ssd import SSD as TorchvisionSSD
from torchvision.ops import nms

from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.boxes import cxcywh_to_xyxy, decode_boxes
from ssd_tutorial.config import SSD300_VOC, TINY_SHAPES
from ssd_tutorial.postprocess import decode_detections


def reference_detections(loc_preds, cls_logits, anchors, cfg):
    """The rules of DESIGN.md, one image and one class at a time, with torchvision.ops.nms."""
    out = []
    for b in range(loc_preds.shape[0]):
        boxes = cxcywh_to_xyxy(decode_boxes(loc_preds[b], anchors, cfg.variances)).clamp(0, cfg.image_size)
        scores = cls_logits[b].softmax(-1)
        all_boxes, all_scores, all_labels = [], [], []
        for c in range(1, cfg.num_classes):
            keep = scores[:, c] > cfg.score_threshold
            s, bx = scores[keep, c], boxes[keep]
            s, order = s.sort(descending=True)
            s, bx = s[: cfg.pre_nms_top_k], bx[order[: cfg.pre_nms_top_k]]
            kept = nms(bx, s, cfg.nms_threshold)
            all_boxes.append(bx[kept])
            all_scores.append(s[kept])
            all_labels.append(torch.full((len(kept),), c, dtype=torch.long))
        boxes, scores, labels = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_labels)
        order = scores.sort(descending=True).indices[: cfg.max_detections]
        out.append({"boxes": boxes[order], "scores": scores[order], "labels": labels[order]})
    return out


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
def test_matches_reference(seed, changes):
    cfg = TINY_SHAPES.replace(**changes)
    anchors = default_boxes(cfg)
    loc_preds, cls_logits = random_outputs(cfg, B=3, seed=seed)
    got = decode_detections(loc_preds, cls_logits, anchors, cfg)
    assert_same(got, reference_detections(loc_preds, cls_logits, anchors, cfg))
    assert sum(len(d["scores"]) for d in got) > 0  # the comparison is not vacuous


def test_matches_torchvision_postprocess():
    """torchvision's SSD.postprocess_detections with the same rules (score > 0.01, top 400 per class,
    NMS 0.45, 200 per image, box coder weights (10, 10, 5, 5) = variances (0.1, 0.2)).

    Differences where the rules do not agree (not exercised here): torchvision caps the log-size
    offsets at log(1000 / 16) before exp, we do not (our boxes are clipped to the image anyway);
    it runs NMS image by image, we run one batched_nms call over the batch (same result).
    """
    cfg = SSD300_VOC
    anchors = default_boxes(cfg)
    loc_preds, cls_logits = random_outputs(cfg, B=2, seed=0, logit_scale=2.0, background_shift=3.0)
    fake_self = SimpleNamespace(box_coder=BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)), score_thresh=cfg.score_threshold,
                                topk_candidates=cfg.pre_nms_top_k, nms_thresh=cfg.nms_threshold,
                                detections_per_img=cfg.max_detections)  # fmt: skip
    expected = TorchvisionSSD.postprocess_detections(
        fake_self, {"bbox_regression": loc_preds, "cls_logits": cls_logits},
        [cxcywh_to_xyxy(anchors)] * 2, [(cfg.image_size, cfg.image_size)] * 2,
    )  # fmt: skip
    got = decode_detections(loc_preds, cls_logits, anchors, cfg)
    assert [len(d["scores"]) for d in got] == [cfg.max_detections] * 2
    assert_same(got, expected)


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
    assert_same(got, reference_detections(loc_preds, cls_logits, default_boxes(cfg), cfg))


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


def test_grouped_nms_cpu_path_equals_batched_nms():
    from torchvision.ops import batched_nms

    from ssd_tutorial.postprocess import _grouped_nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(3000, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(3000, 2, generator=g) * 30], dim=1)
    scores = torch.rand(3000, generator=g)
    groups = torch.randint(0, 60, (3000,), generator=g).sort().values  # contiguous groups, as in decode
    keep = _grouped_nms(boxes, scores, groups, 0.45)
    assert torch.equal(keep, batched_nms(boxes, scores, groups, 0.45))
    assert len(keep) < 3000
    assert _grouped_nms(boxes[:0], scores[:0], groups[:0], 0.45).shape == (0,)


def test_half_logits_with_float32_boxes():
    """Under autocast the class head gives fp16 logits while anchors stay fp32; NMS needs one dtype."""
    cfg = TINY_SHAPES
    loc_preds, cls_logits = random_outputs(cfg, B=2, seed=3)
    got = decode_detections(loc_preds.half(), cls_logits.half(), default_boxes(cfg), cfg)
    assert got[0]["boxes"].dtype == got[0]["scores"].dtype == torch.float32 and len(got[0]["scores"]) > 0


@pytest.mark.parametrize("max_detections", [1, 2, 3, 10_000])
def test_extra_rounds_when_nms_removes_most(max_detections, monkeypatch):
    """Every anchor predicts the same box, class 1 scores above class 2 above class 3: NMS keeps one box
    per class, so the first look at the 2 * max_detections best scores of an image (all class 1) keeps
    too few, and decode_detections looks again at 4x as many (see its docstring)."""
    import ssd_tutorial.postprocess as postprocess
    from ssd_tutorial.boxes import encode_boxes, xyxy_to_cxcywh

    cfg = TINY_SHAPES.replace(max_detections=max_detections)
    anchors = default_boxes(cfg)
    B, A = 3, cfg.num_anchors
    box = torch.tensor([[20.0, 30.0, 90.0, 100.0]])
    loc_preds = encode_boxes(xyxy_to_cxcywh(box), anchors, cfg.variances).expand(B, A, 4).clone()
    g = torch.Generator().manual_seed(0)
    cls_logits = torch.tensor([0.0, 5.0, 3.5, 2.0]) + 0.1 * torch.randn(B, A, 4, generator=g)
    looks = []
    survivors = postprocess._survivors
    monkeypatch.setattr(postprocess, "_survivors", lambda *args: looks.append(args[2]) or survivors(*args))
    got = decode_detections(loc_preds, cls_logits, anchors, cfg)
    assert_same(got, reference_detections(loc_preds, cls_logits, anchors, cfg))
    assert [d["labels"].tolist() for d in got] == [[1, 2, 3][:max_detections]] * B
    if max_detections == 1:
        assert looks == [2]
    elif 2 * max_detections >= A * 3:  # one look at all the scores of the 3 object classes
        assert looks == [A * 3]
    else:  # class 2 starts after the A best scores (all class 1)
        assert len(looks) >= 2 and looks[1] == 4 * looks[0] and looks[-1] > A


def test_no_images_or_no_anchors():
    cfg = TINY_SHAPES
    anchors = default_boxes(cfg)
    assert decode_detections(torch.zeros(0, cfg.num_anchors, 4), torch.zeros(0, cfg.num_anchors, 4), anchors, cfg) == []
    got = decode_detections(torch.zeros(2, 0, 4), torch.zeros(2, 0, 4), anchors[:0], cfg)
    assert len(got) == 2 and all(d["boxes"].shape == (0, 4) and d["labels"].dtype == torch.long for d in got)


def test_gpu_nms_branch_gives_the_same_detections(monkeypatch):
    """On a GPU, _grouped_nms is one batched_nms call: run decode_detections through that branch here."""
    from torchvision.ops import batched_nms

    import ssd_tutorial.postprocess as postprocess

    cfg = SSD300_VOC.replace(max_detections=50)
    anchors = default_boxes(cfg)
    loc_preds, cls_logits = random_outputs(cfg, B=2, seed=5)
    expected = decode_detections(loc_preds, cls_logits, anchors, cfg)
    monkeypatch.setattr(postprocess, "_grouped_nms", batched_nms)
    got = decode_detections(loc_preds, cls_logits, anchors, cfg)
    assert_same(got, expected)
    assert_same(got, reference_detections(loc_preds, cls_logits, anchors, cfg))
    assert all(len(d["scores"]) == 50 for d in got)
