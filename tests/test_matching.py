"""Tests for ssd_tutorial.matching (the taught version): hand-worked matches, what every result of the rule must
satisfy, torchvision's SSDMatcher and BoxCoder, batched target encoding. tests/test_fast.py checks that the fast
path gives the same results."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder, SSDMatcher
from torchvision.ops import box_iou

from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.boxes import cxcywh_to_xyxy, decode_boxes, xyxy_to_cxcywh
from ssd_tutorial.config import SSD300_VOC, TINY_SHAPES, SSDConfig
from ssd_tutorial.matching import encode_targets, greedy_bipartite, match_anchors

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# 64 px, 4 levels, 372 anchors.
SMALL = SSDConfig(
    name="small64",
    image_size=64,
    num_classes=3,
    class_names=("__background__", "a", "b"),
    feature_map_sizes=(8, 4, 2, 1),
    steps=(8, 16, 32, 64),
    box_sizes=(8.0, 16.0, 32.0, 48.0, 64.0),
    aspect_ratios=((2,), (2, 3), (2,), (2,)),
    in_channels=(8, 8, 8, 8),
    backbone="tiny",
)


def random_boxes(generator: torch.Generator, num: int, kind: str, image_size: float = 64.0) -> torch.Tensor:
    """Tensor[num, 4] xyxy boxes of one ``kind``: "uniform", "overlapping", "tiny", "duplicates" or "grid"."""
    if kind == "grid":  # integer corners on an 8 px grid: many exactly equal IoUs
        corners = torch.randint(0, 9, (num, 2, 2), generator=generator).float() * 8
        lo, hi = corners.min(dim=1).values, corners.max(dim=1).values + 8
        return torch.cat([lo, hi], dim=1)
    if kind == "tiny":  # smaller than every anchor (the smallest is 8 px)
        size = torch.rand(num, 2, generator=generator) * 3 + 0.5
    else:
        size = torch.rand(num, 2, generator=generator) * image_size * 0.6 + 2
    xy = torch.rand(num, 2, generator=generator) * (image_size - size)
    if kind == "overlapping":  # all boxes around one point
        xy = image_size / 2 - size / 2 + torch.randn(num, 2, generator=generator) * 3
    boxes = torch.cat([xy, xy + size], dim=1)
    if kind == "duplicates":  # every box twice (box i and box i + (num + 1) // 2 are equal)
        half = boxes[: (num + 1) // 2]
        boxes = torch.cat([half, half])[:num]
    return boxes


@pytest.fixture(scope="module")
def small_anchors_xyxy() -> torch.Tensor:
    return cxcywh_to_xyxy(default_boxes(SMALL))


def check_the_rule(gt: torch.Tensor, anchors: torch.Tensor, threshold: float, matches: torch.Tensor) -> None:
    """What any result of the two-step rule must satisfy (without re-running the rule).

    * an anchor whose best IoU is >= threshold is matched; if not to its best box (lowest box among ties),
      the greedy step gave it to another box;
    * an anchor matched below the threshold is the one anchor the greedy step gave its box: at most one per
      box, with IoU >= 1e-6;
    * the first greedy round takes the largest IoU of all: that anchor goes to that box.
    """
    iou = box_iou(gt, anchors)  # [M, A]
    best_iou, best_box = iou.max(dim=0)  # [A]
    above = best_iou >= threshold
    assert (matches[above] >= 0).all()
    matched = matches >= 0
    by_threshold = above & (matches == best_box)
    greedy = matched & ~by_threshold  # [A], anchors that only the greedy step explains
    greedy_boxes = matches[greedy]
    assert greedy_boxes.unique().numel() == greedy_boxes.numel()  # one greedy anchor per box at most
    assert (iou[matches[matched], matched.nonzero().squeeze(1)] >= 1e-6).all()
    top = int(iou.argmax())
    assert int(matches[top % anchors.shape[0]]) == top // anchors.shape[0]


@pytest.mark.parametrize("kind", ["uniform", "overlapping", "tiny", "duplicates", "grid"])
@pytest.mark.parametrize("seed", range(12))
def test_match_anchors_obeys_the_rule(small_anchors_xyxy, kind, seed):
    g = torch.Generator().manual_seed(seed)
    num = int(torch.randint(1, 13, (1,), generator=g))
    gt = random_boxes(g, num, kind)
    threshold = 0.5 if seed % 2 else 0.25
    got = match_anchors(gt, small_anchors_xyxy, threshold)
    assert got.dtype == torch.long and got.shape == (small_anchors_xyxy.shape[0],)
    check_the_rule(gt, small_anchors_xyxy, threshold, got)


def test_match_anchors_obeys_the_rule_on_ssd300_anchors():
    anchors = cxcywh_to_xyxy(default_boxes(SSD300_VOC))
    g = torch.Generator().manual_seed(100)
    gt = torch.cat([random_boxes(g, 4, "uniform", 300.0), random_boxes(g, 4, "duplicates", 300.0)])
    check_the_rule(gt, anchors, 0.5, match_anchors(gt, anchors, 0.5))


def test_hand_worked_greedy_order_matters():
    # Anchors a0 = [0,0,10,10], a1 = [0,0,10,20], a2 = [0,0,20,20].
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 20.0, 20.0]])
    # box0 = [0,0,10,16]: IoU 100/160 = 0.625 with a0, 160/200 = 0.8 with a1, 160/400 = 0.4 with a2.
    # box1 = [0,0,10,19]: IoU 100/190 = 0.526 with a0, 190/200 = 0.95 with a1, 190/400 = 0.475 with a2.
    # Round 1: 0.95 (box1, a1). Round 2: box0's best remaining is a0 (0.625). a2 stays background at 0.5.
    gt = torch.tensor([[0.0, 0.0, 10.0, 16.0], [0.0, 0.0, 10.0, 19.0]])
    assert match_anchors(gt, anchors, 0.5).tolist() == [0, 1, -1]
    # Threshold 0.45: a2's best IoU 0.475 (box1) passes.
    assert match_anchors(gt, anchors, 0.45).tolist() == [0, 1, 1]


def test_hand_worked_two_boxes_share_best_anchor():
    # Anchors: a0 = [0,0,10,10], a1 = [0,0,20,20], a2 = [100,100,110,110].
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 20.0, 20.0], [100.0, 100.0, 110.0, 110.0]])
    # box0 = a0 exactly (IoU 1 with a0, 0.25 with a1); box1 = [0,0,12,12]: IoU 100/144 = 0.694 with a0,
    # 144/400 = 0.36 with a1. Both prefer a0; box0's IoU is larger, so box0 takes a0 and box1 takes a1.
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 12.0, 12.0]])
    assert match_anchors(gt, anchors, 0.5).tolist() == [0, 1, -1]
    # With a threshold of 0.3, a1 would go to box1 anyway (0.36 > 0.25), and a0 stays with box0.
    assert match_anchors(gt, anchors, 0.3).tolist() == [0, 1, -1]


def test_identical_boxes_tie_goes_to_lowest_box_then_lowest_anchor():
    # Two anchors with the same IoU with the box (a 2:1 and a 1:2 anchor on a square box).
    anchors = torch.tensor([[0.0, 5.0, 20.0, 15.0], [5.0, 0.0, 15.0, 20.0], [50.0, 50.0, 60.0, 60.0]])
    gt = torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 20.0, 20.0]])
    iou = box_iou(gt, anchors)
    assert iou[0, 0] == iou[0, 1] == 0.5
    # Greedy: IoU 0.5 everywhere; box 0 takes the lowest anchor 0, box 1 takes anchor 1.
    assert match_anchors(gt, anchors, 0.5).tolist() == [0, 1, -1]


def test_threshold_step_adds_anchors_and_greedy_wins():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [0.0, 0.0, 30.0, 30.0]])
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 30.0, 30.0]])
    # a0: IoU 1 with box0 (greedy), a2: IoU 1 with box1 (greedy), a1: IoU 90/110 = 0.818 with box0 (threshold).
    assert match_anchors(gt, anchors, 0.5).tolist() == [0, 0, 1]
    assert match_anchors(gt, anchors, 0.9).tolist() == [0, -1, 1]


def test_box_smaller_than_every_anchor_still_gets_one(small_anchors_xyxy):
    gt = torch.tensor([[30.0, 30.0, 31.0, 31.5]])
    matches = match_anchors(gt, small_anchors_xyxy, 0.5)
    assert (matches == 0).sum() == 1
    assert box_iou(gt, small_anchors_xyxy)[0].argmax() == matches.argmax()


def test_box_overlapping_no_anchor_is_not_matched():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    gt = torch.tensor([[20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    assert match_anchors(gt, anchors, 0.5).tolist() == [1]


@pytest.mark.parametrize("seed", range(10))
def test_every_box_gets_an_anchor_when_it_overlaps_enough(small_anchors_xyxy, seed):
    # A box that overlaps at least M anchors keeps one: the other M - 1 boxes take at most M - 1.
    g = torch.Generator().manual_seed(seed)
    gt = random_boxes(g, 12, "overlapping" if seed % 2 else "uniform")
    overlapping = (box_iou(gt, small_anchors_xyxy) >= 1e-6).sum(dim=1)
    assert (overlapping >= gt.shape[0]).all()
    matches = match_anchors(gt, small_anchors_xyxy, 0.5)
    assert set(matches[matches >= 0].tolist()) == set(range(gt.shape[0]))


def test_no_boxes_gives_all_background(small_anchors_xyxy):
    matches = match_anchors(torch.zeros(0, 4), small_anchors_xyxy, 0.5)
    assert matches.tolist() == [-1] * small_anchors_xyxy.shape[0]


def test_more_boxes_than_anchors():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]])
    gt = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 10.0, 10.0], [11.0, 0.0, 20.0, 10.0], [5.0, 0.0, 15.0, 10.0]])
    # IoU: box1 = a0 exactly (1.0); box2 with a1 90/100 = 0.9; box0 with a0 0.81; box3 1/3 with both.
    # Greedy: (box1, a0), then (box2, a1); no anchor is left for box0 and box3.
    assert match_anchors(gt, anchors, 0.5).tolist() == [1, 2]


def test_agrees_with_torchvision_ssd_matcher_when_best_anchors_differ():
    """torchvision's SSDMatcher: threshold step, then each box forces its argmax anchor. When no two
    boxes share their best anchor, that is the same as the greedy rule."""
    anchors = cxcywh_to_xyxy(default_boxes(SSD300_VOC))
    gt = torch.tensor([[10.0, 20.0, 80.0, 120.0], [150.0, 140.0, 290.0, 280.0], [200.0, 10.0, 230.0, 40.0]])
    iou = box_iou(gt, anchors)
    assert iou.argmax(dim=1).unique().numel() == 3
    assert torch.equal(match_anchors(gt, anchors, 0.5), SSDMatcher(0.5)(iou))


def test_differs_from_torchvision_ssd_matcher_when_two_boxes_share_the_best_anchor():
    """When two boxes share their best anchor, SSDMatcher writes both into the same anchor (one
    overwrites the other) and the loser may get no anchor at all; the greedy rule gives the loser its
    next best anchor."""
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 20.0, 20.0], [100.0, 100.0, 110.0, 110.0]])
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 12.0, 12.0]])  # both prefer anchor 0
    ours = match_anchors(gt, anchors, 0.5)
    theirs = SSDMatcher(0.5)(box_iou(gt, anchors))
    assert ours.tolist() == [0, 1, -1]
    assert theirs[1] < 0 and theirs[2] < 0  # anchor 1 (IoU 0.36 with box1) is below the threshold
    assert set(theirs[theirs >= 0].tolist()) != {0, 1}  # one box is left without any anchor


# ---------------------------------------------------------------- encode_targets


def make_targets(seed: int, counts: list[int], num_classes: int = 3, image_size: float = 64.0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    kinds = ["uniform", "overlapping", "duplicates", "grid", "tiny"]
    return [
        {
            "boxes": random_boxes(g, m, kinds[b % len(kinds)], image_size),
            "labels": torch.randint(1, num_classes, (m,), generator=g),
        }
        for b, m in enumerate(counts)
    ]


def per_image_matches(target: dict, anchors_cxcywh: torch.Tensor, cfg: SSDConfig) -> tuple:
    matches = match_anchors(target["boxes"], cxcywh_to_xyxy(anchors_cxcywh), cfg.iou_threshold)
    positive = matches >= 0
    gt = xyxy_to_cxcywh(target["boxes"])[matches[positive]]
    return positive, matches, gt


@pytest.mark.parametrize("seed", range(4))
def test_encode_targets_batched_equals_per_image(seed):
    anchors = default_boxes(SMALL)
    targets = make_targets(seed, [3, 0, 7, 1, 12, 0, 5])
    loc, cls = encode_targets(targets, anchors, SMALL)
    assert loc.shape == (7, anchors.shape[0], 4) and cls.shape == (7, anchors.shape[0])
    assert loc.dtype == torch.float32 and cls.dtype == torch.long
    for b, target in enumerate(targets):
        loc_b, cls_b = encode_targets([target], anchors, SMALL)
        torch.testing.assert_close(loc[b], loc_b[0])
        assert torch.equal(cls[b], cls_b[0])
        positive, matches, gt_cxcywh = per_image_matches(target, anchors, SMALL)
        assert torch.equal(cls[b] > 0, positive)
        assert torch.equal(cls[b][positive], target["labels"][matches[positive]])
        assert not loc[b][~positive].any()
        # loc targets decode back onto the matched boxes
        torch.testing.assert_close(decode_boxes(loc[b][positive], anchors[positive], SMALL.variances), gt_cxcywh)


def test_encode_targets_matches_torchvision_box_coder():
    """BoxCoder(weights=(10, 10, 5, 5)) is the same parameterization as variances (0.1, 0.2)."""
    anchors = default_boxes(SSD300_VOC)
    targets = make_targets(7, [6, 4], num_classes=21, image_size=300.0)
    loc, cls = encode_targets(targets, anchors, SSD300_VOC)
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    for b, target in enumerate(targets):
        matches = match_anchors(target["boxes"], anchors_xyxy, SSD300_VOC.iou_threshold)
        positive = matches >= 0
        expected = coder.encode_single(target["boxes"][matches[positive]], anchors_xyxy[positive])
        torch.testing.assert_close(loc[b][positive], expected)
        assert torch.equal(cls[b] > 0, positive)


def test_encode_targets_empty_images_and_empty_batch():
    anchors = default_boxes(TINY_SHAPES)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    loc, cls = encode_targets([empty, empty], anchors, TINY_SHAPES)
    assert loc.shape == (2, anchors.shape[0], 4) and not loc.any() and not cls.any()
    loc, cls = encode_targets([], anchors, TINY_SHAPES)
    assert loc.shape == (0, anchors.shape[0], 4) and cls.shape == (0, anchors.shape[0])


def test_padding_is_never_matched():
    # Image 0 has one box, image 1 has five: image 0's four padding rows must not take anchors,
    # even where a padding box would overlap one.
    anchors = default_boxes(SMALL)
    targets = make_targets(3, [1, 5])
    targets[0]["boxes"] = torch.tensor([[40.0, 40.0, 60.0, 60.0]])
    loc, cls = encode_targets(targets, anchors, SMALL)
    single_loc, single_cls = encode_targets(targets[:1], anchors, SMALL)
    assert torch.equal(cls[0], single_cls[0])
    # A padding match would show in loc (label 0 but offsets towards a zero-size box: -inf).
    torch.testing.assert_close(loc[0], single_loc[0])
    assert torch.isfinite(loc).all()
    assert set(cls[0].unique().tolist()) == {0, int(targets[0]["labels"][0])}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_encode_targets_follows_anchors_device_and_dtype(device, dtype):
    anchors32 = default_boxes(SMALL)
    targets = make_targets(11, [4, 2])  # tensors stay on the CPU: encode_targets moves them
    loc32, cls32 = encode_targets(targets, anchors32, SMALL)
    loc, cls = encode_targets(targets, anchors32.to(device=device, dtype=dtype), SMALL)
    assert loc.dtype == dtype and loc.device.type == device
    assert cls.dtype == torch.long and cls.device.type == device
    assert torch.equal(cls.cpu(), cls32)
    tolerance = {torch.float16: 1e-2, torch.float32: 1e-5, torch.float64: 1e-5}[dtype]
    torch.testing.assert_close(loc.cpu().float(), loc32, rtol=tolerance, atol=tolerance)


def test_encode_targets_float_labels_dtypes_accepted():
    anchors = default_boxes(SMALL)
    targets = make_targets(5, [2])
    targets[0]["labels"] = targets[0]["labels"].to(torch.int32)
    targets[0]["boxes"] = targets[0]["boxes"].double()
    loc, cls = encode_targets(targets, anchors, SMALL)
    reference_loc, reference_cls = encode_targets(make_targets(5, [2]), anchors, SMALL)
    assert torch.equal(cls, reference_cls)
    torch.testing.assert_close(loc, reference_loc)


# ---------------------------------------------------------------- errors


def good_target() -> dict:
    return {"boxes": torch.tensor([[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 9.0, 9.0]]), "labels": torch.tensor([1, 2])}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop("labels"), r"targets\[2\] must be a dict with 'boxes' and 'labels'"),
        (lambda t: t.update(boxes=torch.zeros(2, 5)), r"targets\[2\]\['boxes'\] must be \[M, 4\].*\[2, 5\]"),
        (lambda t: t.update(boxes=torch.zeros(4)), r"targets\[2\]\['boxes'\] must be \[M, 4\].*\[4\]"),
        (lambda t: t.update(boxes=t["boxes"].long()), r"targets\[2\]\['boxes'\] must be a floating-point.*int64"),
        (lambda t: t.update(labels=torch.tensor([1])), r"targets\[2\]\['labels'\] must be a Tensor \[2\].*\[1\]"),
        (lambda t: t.update(labels=torch.tensor([[1, 2]])), r"targets\[2\]\['labels'\] must be a Tensor \[2\]"),
        (lambda t: t.update(labels=torch.tensor([1.0, 2.0])), r"targets\[2\]\['labels'\] must be an integer.*float32"),
        (lambda t: t["boxes"].__setitem__((1, 2), float("nan")), r"targets\[2\]\['boxes'\]\[1\] must have finite"),
        (lambda t: t["boxes"].__setitem__((0, 3), float("inf")), r"targets\[2\]\['boxes'\]\[0\] must have finite"),
        (lambda t: t["boxes"].__setitem__((1, 2), 4.0), r"targets\[2\]\['boxes'\]\[1\] must have x1 <= x2"),
        (lambda t: t["boxes"].__setitem__((0, 3), 1.0), r"targets\[2\]\['boxes'\]\[0\] must have x1 <= x2 and y1"),
        (lambda t: t["boxes"].__setitem__((1, 2), 5.0), r"targets\[2\]\['boxes'\]\[1\] must have a positive area"),
        (lambda t: t["boxes"].__setitem__((0, 3), 2.0), r"targets\[2\]\['boxes'\]\[0\] must have a positive area"),
        (lambda t: t["labels"].__setitem__(1, 0), r"targets\[2\]\['labels'\]\[1\] must be a class id in 1..2.*got 0"),
        (lambda t: t["labels"].__setitem__(0, 3), r"targets\[2\]\['labels'\]\[0\] must be a class id in 1..2.*got 3"),
        (lambda t: t["labels"].__setitem__(0, -1), r"targets\[2\]\['labels'\]\[0\] must be a class id.*got -1"),
    ],
)
def test_encode_targets_bad_target_names_image_and_box(change, message):
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    targets = [good_target(), empty, good_target(), good_target()]  # the empty image must not shift the index
    change(targets[2])
    with pytest.raises(ValueError, match=message):
        encode_targets(targets, default_boxes(SMALL), SMALL)


def test_encode_targets_bad_arguments():
    anchors = default_boxes(SMALL)
    target = good_target()
    target["boxes"] = target["boxes"].tolist()
    with pytest.raises(TypeError, match=r"targets\[0\]\['boxes'\] must be a torch.Tensor \[M, 4\].*got list"):
        encode_targets([target], anchors, SMALL)
    with pytest.raises(TypeError, match="targets must be a list of dicts"):
        encode_targets(good_target(), anchors, SMALL)
    with pytest.raises(ValueError, match=r"targets\[0\] must be a dict.*got Tensor"):
        encode_targets([torch.zeros(1, 4)], anchors, SMALL)
    with pytest.raises(ValueError, match=r"anchors_cxcywh must be a Tensor \[A, 4\].*\[372, 2\]"):
        encode_targets([good_target()], anchors[:, :2], SMALL)
    with pytest.raises(ValueError, match="anchors_cxcywh must be a floating-point tensor, got torch.int64"):
        encode_targets([good_target()], anchors.long(), SMALL)
    bad_anchors = anchors.clone()
    bad_anchors[5, 2] = 0.0
    with pytest.raises(ValueError, match="anchors_cxcywh must be finite with positive widths and heights"):
        encode_targets([good_target()], bad_anchors, SMALL)
    with pytest.raises(TypeError, match="cfg must be an SSDConfig, got dict"):
        encode_targets([good_target()], anchors, SMALL.to_dict())


def test_match_anchors_bad_arguments(small_anchors_xyxy):
    gt = good_target()["boxes"]
    with pytest.raises(ValueError, match=r"gt_boxes_xyxy must be \[M, 4\].*\[1, 2, 4\]"):
        match_anchors(gt[None], small_anchors_xyxy, 0.5)
    with pytest.raises(ValueError, match=r"anchors_xyxy must be \[A, 4\] xyxy pixels, got shape \[372, 3\]"):
        match_anchors(gt, small_anchors_xyxy[:, :3], 0.5)
    with pytest.raises(ValueError, match=r"iou_threshold must be a number in \(0, 1\], got 1.5"):
        match_anchors(gt, small_anchors_xyxy, 1.5)
    with pytest.raises(ValueError, match=r"iou_threshold must be a number in \(0, 1\], got 0"):
        match_anchors(gt, small_anchors_xyxy, 0)
    bad = gt.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"gt_boxes_xyxy\[1\] must have finite coordinates"):
        match_anchors(bad, small_anchors_xyxy, 0.5)
    with pytest.raises(ValueError, match=r"gt_boxes_xyxy\[0\] must have x1 <= x2"):
        match_anchors(gt[:, [2, 3, 0, 1]], small_anchors_xyxy, 0.5)


# ---------------------------------------------------------------- degenerate


def test_no_anchors():
    assert match_anchors(torch.tensor([[0.0, 0.0, 5.0, 5.0]]), torch.zeros(0, 4), 0.5).shape == (0,)


def test_greedy_bipartite_hand_worked_and_batched():
    iou = torch.tensor([[0.9, 0.8, 0.0],
                        [0.95, 0.1, 0.2]])  # fmt: skip
    # 0.95 (box 1, anchor 0) first; then box 0's best remaining is anchor 1 (0.8).
    assert greedy_bipartite(iou).tolist() == [1, 0]
    # Ties: the lowest box first, then the lowest anchor.
    assert greedy_bipartite(torch.full((2, 3), 0.5)).tolist() == [0, 1]
    # A batch of two images; image 1 overlaps nothing; more boxes than anchors leaves a box without one.
    batch = torch.stack([iou, torch.zeros(2, 3)])  # [2, 2, 3]
    assert greedy_bipartite(batch).tolist() == [[1, 0], [-1, -1]]
    assert greedy_bipartite(torch.tensor([[0.5], [0.7]])).tolist() == [-1, 0]
    assert greedy_bipartite(torch.zeros(0, 3)).tolist() == []
    assert greedy_bipartite(torch.full((2, 2), 1e-7)).tolist() == [-1, -1]  # below 1e-6: no overlap


def test_greedy_bipartite_rejects_bad_input():
    with pytest.raises(ValueError, match=r"iou must be a Tensor\[B, M, A\] or \[M, A\].*got \[3\]"):
        greedy_bipartite(torch.zeros(3))
    with pytest.raises(ValueError, match=r"iou must be a Tensor.*got list"):
        greedy_bipartite([[0.5]])
