"""Tests for ssd_tutorial.fast: the fast paths give exactly what the taught matching / postprocess give.

Property tests (hypothesis) over many random cases: exact IoU ties (boxes and anchors on an integer grid),
empty images (M = 0), more boxes than anchors, duplicate boxes, all-background scores; plus the internals
of the fast paths, and the model's choice between the two.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision.ops import batched_nms, box_iou

from ssd_tutorial import fast, matching, postprocess
from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.boxes import cxcywh_to_xyxy, encode_boxes, xyxy_to_cxcywh
from ssd_tutorial.config import SSD300_VOC, TINY_SHAPES, SSDConfig
from ssd_tutorial.data import ShapesDataset, collate_detection
from ssd_tutorial.fast.matching import _iou_maxima, _pairwise_iou, _ranked_candidates
from ssd_tutorial.train import load_pretrained

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SMALL = SSDConfig(
    name="small64", image_size=64, num_classes=3, class_names=("__background__", "a", "b"),
    feature_map_sizes=(8, 4, 2, 1), steps=(8, 16, 32, 64), box_sizes=(8.0, 16.0, 32.0, 48.0, 64.0),
    aspect_ratios=((2,), (2, 3), (2,), (2,)), in_channels=(8, 8, 8, 8), backbone="tiny",
)  # fmt: skip
SMALL_ANCHORS = default_boxes(SMALL)  # [372, 4] cxcywh


def grid_boxes(generator: torch.Generator, num: int, cell: float, cells: int) -> torch.Tensor:
    """Tensor[num, 4] xyxy boxes with corners on a grid of ``cells`` x ``cell`` px: many exactly equal IoUs."""
    corners = torch.randint(0, cells, (num, 2, 2), generator=generator).float() * cell
    lo, hi = corners.min(dim=1).values, corners.max(dim=1).values + cell
    return torch.cat([lo, hi], dim=1)


def random_boxes(generator: torch.Generator, num: int, kind: str, image_size: float = 64.0) -> torch.Tensor:
    """Tensor[num, 4] xyxy boxes of one kind: "grid" (ties), "tiny" (smaller than every anchor),
    "overlapping" (all around one point), "duplicates" (every box twice) or "uniform"."""
    if kind == "grid":
        return grid_boxes(generator, num, image_size / 8, 8)
    if kind == "tiny":
        size = torch.rand(num, 2, generator=generator) * 3 + 0.5
    else:
        size = torch.rand(num, 2, generator=generator) * image_size * 0.6 + 2
    xy = torch.rand(num, 2, generator=generator) * (image_size - size)
    if kind == "overlapping":
        xy = image_size / 2 - size / 2 + torch.randn(num, 2, generator=generator) * 3
    boxes = torch.cat([xy, xy + size], dim=1)
    if kind == "duplicates":
        half = boxes[: (num + 1) // 2]
        boxes = torch.cat([half, half])[:num][torch.randperm(num, generator=generator)]
    return boxes


KINDS = ["grid", "tiny", "overlapping", "duplicates", "uniform"]
THRESHOLDS = st.sampled_from([0.1, 0.25, 0.5, 0.7, 1.0])


def anchors_xyxy_for(generator: torch.Generator, source: str, num: int) -> torch.Tensor:
    """SMALL's 372 default boxes, or ``num`` anchors on the same 8 px grid as grid boxes (ties between both)."""
    if source == "default":
        return cxcywh_to_xyxy(SMALL_ANCHORS)
    return grid_boxes(generator, num, 8.0, 8)


# ---------------------------------------------------------------- matching


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), num_boxes=st.integers(0, 14), kind=st.sampled_from(KINDS),
       source=st.sampled_from(["default", "grid"]), num_anchors=st.integers(1, 12), threshold=THRESHOLDS)  # fmt: skip
def test_fast_match_anchors_equals_taught(seed, num_boxes, kind, source, num_anchors, threshold):
    g = torch.Generator().manual_seed(seed)
    anchors = anchors_xyxy_for(g, source, num_anchors)  # grid: often fewer anchors than boxes
    gt = random_boxes(g, num_boxes, kind)
    taught = matching.match_anchors(gt, anchors, threshold)
    assert torch.equal(fast.match_anchors(gt, anchors, threshold), taught)


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), counts=st.lists(st.integers(0, 12), min_size=0, max_size=6),
       threshold=THRESHOLDS, dtype=st.sampled_from([torch.float32, torch.float64]))  # fmt: skip
def test_fast_encode_targets_equals_taught(seed, counts, threshold, dtype):
    g = torch.Generator().manual_seed(seed)
    cfg = SMALL.replace(iou_threshold=threshold)
    targets = [{"boxes": random_boxes(g, m, KINDS[b % len(KINDS)]), "labels": torch.randint(1, 3, (m,), generator=g)}
               for b, m in enumerate(counts)]  # fmt: skip
    anchors = SMALL_ANCHORS.to(dtype)
    loc, cls = matching.encode_targets(targets, anchors, cfg)
    fast_loc, fast_cls = fast.encode_targets(targets, anchors, cfg)
    assert torch.equal(fast_cls, cls)
    # The same matches through the same formula, but on other subsets of anchors: vectorized and scalar
    # log may round the last bit differently.
    assert fast_loc.dtype == loc.dtype == dtype
    torch.testing.assert_close(fast_loc, loc, rtol=1e-6, atol=1e-6)


def test_fast_encode_targets_equals_taught_on_ssd300_anchors():
    g = torch.Generator().manual_seed(0)
    anchors = default_boxes(SSD300_VOC)
    targets = [{"boxes": random_boxes(g, m, kind, 300.0), "labels": torch.randint(1, 21, (m,), generator=g)}
               for m, kind in zip([10, 0, 12, 3, 8], ["uniform", "uniform", "duplicates", "tiny", "overlapping"])]
    loc, cls = matching.encode_targets(targets, anchors, SSD300_VOC)
    fast_loc, fast_cls = fast.encode_targets(targets, anchors, SSD300_VOC)
    assert torch.equal(fast_cls, cls)
    torch.testing.assert_close(fast_loc, loc, rtol=1e-6, atol=1e-6)
    assert (cls > 0).sum(dim=1).tolist()[1] == 0 and (cls > 0).sum() > 30  # not vacuous


def test_fast_matching_checks_inputs_like_taught():
    anchors = cxcywh_to_xyxy(SMALL_ANCHORS)
    bad = torch.tensor([[5.0, 5.0, 1.0, 9.0]])
    for function in (matching.match_anchors, fast.match_anchors):
        with pytest.raises(ValueError, match=r"gt_boxes_xyxy\[0\] must have x1 <= x2"):
            function(bad, anchors, 0.5)
        with pytest.raises(ValueError, match=r"iou_threshold must be a number in \(0, 1\]"):
            function(bad[:0], anchors, 0.0)


def test_pairwise_iou_equals_torchvision_box_iou():
    g = torch.Generator().manual_seed(0)
    boxes = torch.cat([random_boxes(g, 20, "uniform"), random_boxes(g, 5, "tiny"), random_boxes(g, 5, "grid")])
    anchors = cxcywh_to_xyxy(SMALL_ANCHORS)
    assert torch.equal(_pairwise_iou(boxes, anchors), box_iou(boxes, anchors))
    batched = _pairwise_iou(boxes.view(3, 10, 4), anchors)  # [3, 10, A]
    assert torch.equal(batched.view(30, -1), box_iou(boxes, anchors))


@pytest.mark.parametrize("seed", range(5))
def test_ranked_candidates_equal_a_stable_sort(seed):
    # Values on a coarse grid, so ties are everywhere, also at the k-th place.
    g = torch.Generator().manual_seed(seed)
    iou = torch.randint(0, 5, (3, 6, 40), generator=g).float() / 4
    values, index = _ranked_candidates(iou, 6)
    expected_values, expected_index = iou.sort(dim=-1, descending=True, stable=True)
    assert torch.equal(values, expected_values[..., :6])
    assert torch.equal(index, expected_index[..., :6])


@pytest.mark.parametrize("block", [1, 7, 100, 372, 1000])
def test_iou_maxima_in_blocks_equal_the_whole_tensor(block):
    # Grid boxes: a box's best IoU is often shared by anchors in different blocks; the lowest index wins.
    anchors = cxcywh_to_xyxy(SMALL_ANCHORS)
    g = torch.Generator().manual_seed(block)
    boxes = torch.stack([random_boxes(g, 6, "grid"), random_boxes(g, 6, "uniform")])  # [2, 6, 4]
    iou = box_iou(boxes.view(-1, 4), anchors).view(2, 6, -1)  # [2, 6, A]
    anchor_best, box_best, box_best_anchor = _iou_maxima(boxes, anchors, block=block)
    assert torch.equal(anchor_best, iou.amax(dim=1))
    assert torch.equal(box_best, iou.amax(dim=2))
    assert torch.equal(box_best_anchor, iou.argmax(dim=2))


# ---------------------------------------------------------------- detections


def canonical(det: dict) -> dict:
    """Detections ordered by score, then label, then box: the rule leaves the order of equal scores open."""
    order = torch.arange(len(det["scores"]))
    for key in (det["boxes"][:, 3], det["boxes"][:, 2], det["boxes"][:, 1], det["boxes"][:, 0], det["labels"],
                -det["scores"]):  # fmt: skip
        order = order[key[order].sort(stable=True).indices]
    return {key: value[order] for key, value in det.items()}


def assert_same_detections(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert set(g) == set(e) == {"boxes", "scores", "labels"}
        assert all(g[k].dtype == e[k].dtype and g[k].shape == e[k].shape for k in g)
        assert (g["scores"][:-1] >= g["scores"][1:]).all()
        g, e = canonical(g), canonical(e)
        assert torch.equal(g["labels"], e["labels"])
        assert torch.equal(g["scores"], e["scores"])  # the same softmax of the same logits
        # Decoding a subset of the anchors may round the last bit differently from decoding all of them.
        torch.testing.assert_close(g["boxes"], e["boxes"], rtol=1e-6, atol=1e-5)


def head_outputs(seed: int, batch: int, num_anchors: int, num_classes: int, duplicates: int, logit_scale: float,
                 background_shift: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Random (loc_preds, cls_logits, anchors); the last ``duplicates`` anchors copy earlier ones with their
    predictions (exactly tied scores and boxes)."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(num_anchors, 2, generator=g) * 128
    anchors = torch.cat([centre, torch.rand(num_anchors, 2, generator=g) * 60 + 4], dim=1)  # [A, 4] cxcywh
    loc = torch.randn(batch, num_anchors, 4, generator=g)
    logits = torch.randn(batch, num_anchors, num_classes, generator=g) * logit_scale
    logits[..., 0] += background_shift
    if duplicates and num_anchors > duplicates:
        source = torch.randint(0, num_anchors - duplicates, (duplicates,), generator=g)
        anchors[-duplicates:], loc[:, -duplicates:], logits[:, -duplicates:] = anchors[source], loc[:, source], \
            logits[:, source]  # fmt: skip
    return loc, logits, anchors


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(0, 3), num_anchors=st.integers(0, 300),
       duplicates=st.integers(0, 40), logit_scale=st.sampled_from([0.5, 2.0, 4.0]),
       background_shift=st.sampled_from([-2.0, 0.0, 3.0, 30.0]), pre_nms_top_k=st.sampled_from([1, 5, 50, 400]),
       max_detections=st.sampled_from([1, 3, 20, 200]), score_threshold=st.sampled_from([0.01, 0.2, 0.6]),
       nms_threshold=st.sampled_from([0.2, 0.45, 0.9]))  # fmt: skip
def test_fast_decode_detections_equals_taught(seed, batch, num_anchors, duplicates, logit_scale, background_shift,
                                              pre_nms_top_k, max_detections, score_threshold,
                                              nms_threshold):  # fmt: skip
    cfg = TINY_SHAPES.replace(pre_nms_top_k=pre_nms_top_k, max_detections=max_detections,
                              score_threshold=score_threshold, nms_threshold=nms_threshold)  # fmt: skip
    loc, logits, anchors = head_outputs(seed, batch, num_anchors, cfg.num_classes, duplicates, logit_scale,
                                        background_shift)  # fmt: skip
    assert_same_detections(fast.decode_detections(loc, logits, anchors, cfg),
                           postprocess.decode_detections(loc, logits, anchors, cfg))  # fmt: skip


def test_fast_decode_detections_equals_taught_on_ssd300():
    cfg = SSD300_VOC
    g = torch.Generator().manual_seed(3)
    loc = torch.randn(2, cfg.num_anchors, 4, generator=g)
    logits = torch.randn(2, cfg.num_anchors, cfg.num_classes, generator=g) * 2
    logits[1, :, 0] += 100.0  # image 1: all background
    got = fast.decode_detections(loc, logits, default_boxes(cfg), cfg)
    assert_same_detections(got, postprocess.decode_detections(loc, logits, default_boxes(cfg), cfg))
    assert len(got[0]["scores"]) == cfg.max_detections and len(got[1]["scores"]) == 0


@pytest.mark.parametrize("function", [fast.decode_detections, postprocess.decode_detections], ids=["fast", "taught"])
def test_zero_detections_without_warnings(function):
    cfg = TINY_SHAPES
    loc, logits, anchors = head_outputs(0, 2, 50, cfg.num_classes, 0, 1.0, 50.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = function(loc, logits, anchors, cfg)
    assert [d["boxes"].shape for d in got] == [(0, 4), (0, 4)]
    assert all(d["labels"].dtype == torch.long and d["scores"].dtype == torch.float32 for d in got)


@pytest.mark.parametrize("max_detections", [1, 2, 3, 10_000])
def test_extra_rounds_when_nms_removes_most(max_detections, monkeypatch):
    """Every anchor predicts the same box, class 1 scores above class 2 above class 3: NMS keeps one box
    per class, so the first look at the 2 * max_detections best scores of an image (all class 1) keeps
    too few, and the fast path looks again at 4x as many (see its docstring)."""
    cfg = TINY_SHAPES.replace(max_detections=max_detections)
    anchors = default_boxes(cfg)
    B, A = 3, cfg.num_anchors
    box = torch.tensor([[20.0, 30.0, 90.0, 100.0]])
    loc_preds = encode_boxes(xyxy_to_cxcywh(box), anchors, cfg.variances).expand(B, A, 4).clone()
    g = torch.Generator().manual_seed(0)
    cls_logits = torch.tensor([0.0, 5.0, 3.5, 2.0]) + 0.1 * torch.randn(B, A, 4, generator=g)
    looks = []
    survivors = fast.postprocess._survivors
    monkeypatch.setattr(fast.postprocess, "_survivors", lambda *args: looks.append(args[2]) or survivors(*args))
    got = fast.decode_detections(loc_preds, cls_logits, anchors, cfg)
    assert_same_detections(got, postprocess.decode_detections(loc_preds, cls_logits, anchors, cfg))
    assert [d["labels"].tolist() for d in got] == [[1, 2, 3][:max_detections]] * B
    if max_detections == 1:
        assert looks == [2]
    elif 2 * max_detections >= A * 3:  # one look at all the scores of the 3 object classes
        assert looks == [A * 3]
    else:  # class 2 starts after the A best scores (all class 1)
        assert len(looks) >= 2 and looks[1] == 4 * looks[0] and looks[-1] > A


def test_grouped_nms_cpu_path_equals_batched_nms():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(3000, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(3000, 2, generator=g) * 30], dim=1)
    scores = torch.rand(3000, generator=g)
    groups = torch.randint(0, 60, (3000,), generator=g).sort().values  # contiguous groups, as in decode
    keep = fast.postprocess._grouped_nms(boxes, scores, groups, 0.45)
    assert torch.equal(keep, batched_nms(boxes, scores, groups, 0.45))
    assert len(keep) < 3000
    assert fast.postprocess._grouped_nms(boxes[:0], scores[:0], groups[:0], 0.45).shape == (0,)


def test_gpu_nms_branch_gives_the_same_detections(monkeypatch):
    """On a GPU, _grouped_nms is one batched_nms call: run the fast path through that branch here."""
    cfg = SSD300_VOC.replace(max_detections=50)
    loc, logits, anchors = head_outputs(5, 2, cfg.num_anchors, cfg.num_classes, 0, 3.0, 2.0)
    monkeypatch.setattr(fast.postprocess, "_grouped_nms", batched_nms)
    got = fast.decode_detections(loc, logits, anchors, cfg)
    assert_same_detections(got, postprocess.decode_detections(loc, logits, anchors, cfg))
    assert all(len(d["scores"]) == 50 for d in got)


def test_fast_decode_rejects_nan_like_taught():
    cfg = TINY_SHAPES
    loc, logits, anchors = head_outputs(0, 2, 30, cfg.num_classes, 0, 1.0, 0.0)
    logits[1, 3, 2] = float("nan")
    with pytest.raises(ValueError, match=r"cls_logits must be finite, got 1 NaN or inf values of 240"):
        fast.decode_detections(loc, logits, anchors, cfg)


# ---------------------------------------------------------------- the model


def test_model_uses_the_fast_paths_by_default_and_taught_ones_on_request(monkeypatch):
    # The shipped model gives confident, distinct scores (an untrained one gives exactly tied scores, where
    # the rule leaves open which of two tied boxes NMS keeps).
    model = load_pretrained("tiny_shapes")
    assert model.use_fast_paths is True
    dataset = ShapesDataset(4, image_size=model.cfg.image_size, seed=3)
    images, targets = collate_detection([dataset[i] for i in range(4)])
    calls = []
    for module, name in ((fast, "encode_targets"), (fast, "decode_detections"), (matching, "encode_targets"),
                         (postprocess, "decode_detections")):  # fmt: skip
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _f=original, _n=f"{module.__name__}.{name}": calls.append(_n)
                            or _f(*a))  # fmt: skip
    results = {}
    for mode in ("eval", "train"):  # eval first: a train forward updates the batch-norm statistics
        for use_fast in (True, False):
            model.use_fast_paths = use_fast
            with torch.no_grad():
                results[mode, use_fast] = model.eval()(images) if mode == "eval" else model.train()(images, targets)
    assert calls == ["ssd_tutorial.fast.decode_detections", "ssd_tutorial.postprocess.decode_detections",
                     "ssd_tutorial.fast.encode_targets", "ssd_tutorial.matching.encode_targets"]
    fast_losses, taught_losses = results["train", True], results["train", False]
    fast_dets, taught_dets = results["eval", True], results["eval", False]
    for key in fast_losses:
        torch.testing.assert_close(fast_losses[key], taught_losses[key], rtol=1e-6, atol=0)
    assert_same_detections(fast_dets, taught_dets)
    assert sum(len(d["scores"]) for d in fast_dets) > 0
