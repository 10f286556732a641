"""Tests for ssd_tutorial.analysis: anchor coverage, centred IoU, k-means on IoU distance, fitted configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.ops import box_iou

from ssd_tutorial import analysis
from ssd_tutorial.analysis import anchor_coverage, centered_iou, config_from_shapes, dataset_boxes, kmeans_box_shapes
from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.boxes import cxcywh_to_xyxy
from ssd_tutorial.config import SSD512_VOC, TINY_SHAPES, SSDConfig
from ssd_tutorial.data import ShapesDataset, eval_transforms, voc_dataset

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"


def _two_level_config() -> SSDConfig:
    """8 px image; level 0: 2x2 cells (step 4), squares 4 and sqrt(32); level 1: 1 cell, squares 8 and sqrt(128)."""
    return SSDConfig(name="toy", image_size=8, num_classes=2, class_names=("__background__", "thing"),
                     feature_map_sizes=(2, 1), steps=(4, 8), box_sizes=(4.0, 8.0, 16.0), aspect_ratios=((), ()),
                     in_channels=(8, 8), backbone="tiny")  # fmt: skip


def _random_boxes(n: int, size: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * size * 0.8
    wh = 2 + torch.rand(n, 2, generator=gen) * size * 0.5
    return torch.cat([xy, (xy + wh).clamp(max=size)], dim=1)  # [n, 4]


# --- anchor_coverage ---------------------------------------------------------------------------------------------


def test_coverage_hand_worked_two_levels():
    cfg = _two_level_config()
    boxes = torch.tensor([
        [0.0, 0.0, 4.0, 4.0],  # exactly level 0's 4 px square at (2, 2)
        [0.0, 0.0, 8.0, 8.0],  # exactly level 1's 8 px square at (4, 4)
        [1.0, 1.0, 5.0, 5.0],  # best: level 0's sqrt(32) square at (2, 2), IoU 14.69 / 33.31 = 0.441
        [4.0, 4.0, 8.0, 8.0],  # exactly level 0's 4 px square at (6, 6)
    ])  # fmt: skip
    cov = anchor_coverage(boxes, cfg)
    assert cov["num_boxes"] == 4
    assert cov["overall"] == pytest.approx(3 / 4)
    assert cov["per_level"] == pytest.approx([2 / 4, 1 / 4])
    assert cov["best_level_share"] == pytest.approx([2 / 4, 1 / 4])
    side = 2 * 2**0.5  # half of sqrt(32)
    inter = (2 + side - 1) ** 2
    assert float(cov["best_iou"][2]) == pytest.approx(inter / (32 + 16 - inter), rel=1e-5)
    assert cov["best_level"].tolist() == [0, 1, 0, 0]
    # anchors per location 2: level 0 cell (i=1, j=1) is location 3, anchor 6 (its s_k square)
    assert cov["best_anchor"][0].item() == 0 and cov["best_anchor"][3].item() == 6 and cov["best_anchor"][1].item() == 8


def test_coverage_matches_brute_force_and_threshold():
    boxes = _random_boxes(300, 128, seed=1)
    cov = anchor_coverage(boxes, TINY_SHAPES, iou_threshold=0.4)
    iou = box_iou(boxes, cxcywh_to_xyxy(default_boxes(TINY_SHAPES)))  # [300, A]
    best, arg = iou.max(dim=1)
    torch.testing.assert_close(cov["best_iou"], best)
    assert torch.equal(cov["best_anchor"], arg)
    assert cov["overall"] == pytest.approx(float((best >= 0.4).double().mean()))
    start = 0
    for k, count in enumerate(TINY_SHAPES.anchors_per_level):
        alone = iou[:, start : start + count].max(dim=1).values
        assert cov["per_level"][k] == pytest.approx(float((alone >= 0.4).double().mean()))
        start += count
    assert sum(cov["best_level_share"]) == pytest.approx(cov["overall"])
    # the default threshold is the config's
    assert anchor_coverage(boxes, TINY_SHAPES)["overall"] == pytest.approx(float((best >= 0.5).double().mean()))


def test_coverage_chunked_equals_one_chunk(monkeypatch):
    boxes = _random_boxes(20, 512, seed=2)
    whole = anchor_coverage(boxes, SSD512_VOC)
    monkeypatch.setattr(analysis, "_PAIRS_PER_CHUNK", 100_000)  # 4 boxes per chunk: 5 chunks
    chunked = anchor_coverage(boxes, SSD512_VOC)
    assert torch.equal(whole["best_anchor"], chunked["best_anchor"])
    assert whole["per_level"] == chunked["per_level"] and whole["overall"] == chunked["overall"]


def test_coverage_follows_dtype_and_accepts_integer_boxes():
    boxes = torch.tensor([[0, 0, 4, 4], [0, 0, 8, 8]])
    cov = anchor_coverage(boxes, _two_level_config())
    assert cov["overall"] == 1.0 and cov["best_iou"].dtype == torch.float32
    cov64 = anchor_coverage(boxes.double(), _two_level_config())
    assert cov64["best_iou"].dtype == torch.float64


@pytest.mark.parametrize("boxes, message", [
    (torch.zeros(0, 4), "at least one box"),
    (torch.zeros(3), r"\[M, 4\]"),
    (torch.tensor([[5.0, 0.0, 4.0, 4.0]]), "x2 > x1"),
])  # fmt: skip
def test_coverage_bad_boxes(boxes, message):
    with pytest.raises(ValueError, match=message):
        anchor_coverage(boxes, TINY_SHAPES)


def test_coverage_bad_arguments():
    with pytest.raises(TypeError, match="Tensor"):
        anchor_coverage([[0, 0, 1, 1]], TINY_SHAPES)
    with pytest.raises(TypeError, match="SSDConfig"):
        anchor_coverage(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), "tiny_shapes")
    with pytest.raises(ValueError, match="iou_threshold"):
        anchor_coverage(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), TINY_SHAPES, iou_threshold=0.0)


# --- centered_iou ------------------------------------------------------------------------------------------------


def test_centered_iou_hand_worked():
    a = torch.tensor([[2.0, 2.0], [10.0, 10.0]])
    b = torch.tensor([[1.0, 4.0], [10.0, 10.0], [5.0, 10.0]])
    got = centered_iou(a, b)
    expected = torch.tensor([
        [2 / 6, 4 / 100, 4 / 50],  # (2,2) vs (1,4): inter 1*2 = 2, union 4 + 4 - 2 = 6; vs (10,10): 4 / 100
        [4 / 100, 1.0, 0.5],  # (10,10) vs (1,4): inter 4, union 100; vs (5,10): inter 50, union 100
    ])  # fmt: skip
    torch.testing.assert_close(got, expected)


def test_centered_iou_equals_box_iou_of_boxes_on_one_centre():
    gen = torch.Generator().manual_seed(3)
    a, b = 1 + 50 * torch.rand(20, 2, generator=gen), 1 + 50 * torch.rand(7, 2, generator=gen)
    centre = torch.tensor([100.0, 100.0])
    as_boxes = lambda wh: torch.cat([centre - wh / 2, centre + wh / 2], dim=1)  # noqa: E731
    torch.testing.assert_close(centered_iou(a, b), box_iou(as_boxes(a), as_boxes(b)))


def test_centered_iou_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        centered_iou(torch.ones(3, 4), torch.ones(2, 2))
    with pytest.raises(ValueError, match="positive"):
        centered_iou(torch.tensor([[0.0, 1.0]]), torch.ones(2, 2))


# --- kmeans_box_shapes ---------------------------------------------------------------------------------------------


def _three_clusters(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[10.0, 10.0], [40.0, 20.0], [20.0, 80.0]])  # areas 100, 800, 1600
    truth = torch.arange(3).repeat_interleave(torch.tensor([40, 30, 50]))
    wh = centres[truth] * (1 + 0.05 * (2 * torch.rand(len(truth), 2, generator=gen) - 1))
    return wh, truth


def test_kmeans_finds_separated_clusters_sorted_by_area():
    wh, truth = _three_clusters()
    result = kmeans_box_shapes(wh, 3, seed=0)
    assert torch.equal(result["assignment"], truth)
    for j in range(3):  # a fixed point of Lloyd's iterations: each centroid is the mean of its boxes
        torch.testing.assert_close(result["shapes_wh"][j], wh[truth == j].mean(dim=0))
    areas = result["shapes_wh"].prod(dim=1)
    assert bool((areas[1:] > areas[:-1]).all())
    fit = centered_iou(wh, result["shapes_wh"])[torch.arange(len(wh)), truth]
    assert result["mean_iou"] == pytest.approx(float(fit.mean()))
    assert result["mean_iou"] > 0.9 and result["iterations"] >= 1


def test_kmeans_same_seed_same_answer_and_k1_is_the_mean():
    wh, _ = _three_clusters(seed=4)
    a, b = kmeans_box_shapes(wh, 3, seed=7), kmeans_box_shapes(wh, 3, seed=7)
    assert torch.equal(a["shapes_wh"], b["shapes_wh"]) and torch.equal(a["assignment"], b["assignment"])
    one = kmeans_box_shapes(wh, 1)
    torch.testing.assert_close(one["shapes_wh"][0], wh.mean(dim=0))
    assert bool((one["assignment"] == 0).all())


def test_kmeans_uses_iou_not_euclidean_distance():
    # Squares of side 2, 4, …, 64. Euclidean 2-means is best with {2 … 32} and {64} (SSE 595 < 627 for
    # {2 … 16}, {32, 64}), but with 1 - IoU the 32 px box sits better with 64 (IoU 0.25) than with the
    # mean 12.4 (IoU 0.15), so every IoU fixed point puts 32 and 64 together.
    wh = torch.tensor([2.0, 4.0, 8.0, 16.0, 32.0, 64.0])[:, None].repeat(1, 2)
    for seed in range(4):
        assignment = kmeans_box_shapes(wh, 2, seed=seed)["assignment"]
        assert assignment[4] == assignment[5] == 1 and assignment[0] == 0


def test_kmeans_with_k_equal_n_puts_one_box_per_cluster():
    wh = torch.tensor([[4.0, 4.0], [30.0, 30.0], [12.0, 40.0], [50.0, 5.0]])
    result = kmeans_box_shapes(wh, 4, seed=1)
    assert sorted(result["assignment"].tolist()) == [0, 1, 2, 3]
    assert result["mean_iou"] == pytest.approx(1.0)


@pytest.mark.parametrize("k, message", [(0, "positive int"), (5, "at least k = 5 boxes"), (True, "positive int")])
def test_kmeans_bad_k(k, message):
    with pytest.raises(ValueError, match=message):
        kmeans_box_shapes(torch.ones(4, 2), k)


# --- config_from_shapes ------------------------------------------------------------------------------------------


def test_config_from_shapes_hand_worked():
    squares = torch.tensor([[10.0, 10.0], [40.0, 40.0], [50.0, 50.0], [60.0, 60.0], [70.0, 70.0], [80.0, 80.0]])
    # floors 2 * steps = 16, 32, 64, 128, 256; the extra size must exceed 256 by 5 %: 268.8
    cfg = config_from_shapes(TINY_SHAPES, squares)
    assert cfg.box_sizes == (16.0, 40.0, 64.0, 128.0, 256.0, 268.8)
    assert cfg.aspect_ratios == ((),) * 5 and cfg.anchors_per_location == (2,) * 5
    assert cfg.name == "tiny_shapes_fitted" and cfg.feature_map_sizes == TINY_SHAPES.feature_map_sizes
    raw = config_from_shapes(TINY_SHAPES, squares.flip(0), min_size_per_step=0, name="mine")  # order does not matter
    assert raw.box_sizes == (10.0, 40.0, 50.0, 60.0, 70.0, 80.0) and raw.name == "mine"


def test_config_from_shapes_aspect_ratios():
    shapes = torch.tensor([[10.0, 20.0], [40.0, 20.0], [30.0, 30.0], [20.0, 64.0], [64.0, 20.0], [30.0, 40.0]])
    # elongations 2, 2, 1, 3.2 -> 3, 3.2 -> 3, 1.33 (below 1.5): two 2s and two 3s
    cfg = config_from_shapes(TINY_SHAPES, shapes, min_size_per_step=0)
    assert cfg.aspect_ratios == ((2.0, 3.0),) * 5
    one = config_from_shapes(TINY_SHAPES, shapes, min_size_per_step=0, max_ratios=1)
    assert one.aspect_ratios == ((2.0,),) * 5  # a tie: the smaller ratio wins
    loose = config_from_shapes(TINY_SHAPES, shapes, min_size_per_step=0, ratio_threshold=1.2, max_ratios=3)
    assert loose.aspect_ratios == ((1.5, 2.0, 3.0),) * 5


def test_config_from_shapes_sizes_strictly_increase():
    same = torch.full((6, 2), 20.0)
    cfg = config_from_shapes(TINY_SHAPES, same, min_size_per_step=0)
    assert all(b > a for a, b in zip(cfg.box_sizes, cfg.box_sizes[1:]))
    assert cfg.box_sizes[0] == 20.0 and cfg.box_sizes[1] == 21.0


def test_config_from_shapes_errors():
    with pytest.raises(ValueError, match="L \\+ 1 = 6"):
        config_from_shapes(TINY_SHAPES, torch.ones(5, 2))
    with pytest.raises(ValueError, match="ratio_threshold"):
        config_from_shapes(TINY_SHAPES, torch.ones(6, 2), ratio_threshold=1.0)
    with pytest.raises(ValueError, match="min_size_per_step"):
        config_from_shapes(TINY_SHAPES, torch.ones(6, 2), min_size_per_step=-1)
    with pytest.raises(TypeError, match="SSDConfig"):
        config_from_shapes("tiny_shapes", torch.ones(6, 2))


def test_fitted_config_covers_square_shapes_with_fewer_anchors():
    """The end-to-end use of 08: k-means on ShapesDataset boxes, a fitted config, coverage at least the preset's."""
    boxes = dataset_boxes(ShapesDataset(150, image_size=128, seed=11))["boxes"]
    wh = boxes[:, 2:] - boxes[:, :2]
    shapes = kmeans_box_shapes(wh, TINY_SHAPES.num_levels + 1, seed=0)["shapes_wh"]
    fitted = config_from_shapes(TINY_SHAPES, shapes)
    assert fitted.aspect_ratios == ((),) * 5  # shapes are squares (or nearly)
    assert fitted.num_anchors < TINY_SHAPES.num_anchors
    assert anchor_coverage(boxes, fitted)["overall"] > anchor_coverage(boxes, TINY_SHAPES)["overall"]


# --- dataset_boxes -----------------------------------------------------------------------------------------------


def test_dataset_boxes_concatenates_items():
    data = ShapesDataset(12, image_size=64, seed=3)
    got = dataset_boxes(data)
    expected = [data[i][1] for i in range(12)]
    torch.testing.assert_close(got["boxes"], torch.cat([t["boxes"] for t in expected]))
    assert torch.equal(got["labels"], torch.cat([t["labels"] for t in expected]))
    counts = [len(t["boxes"]) for t in expected]
    assert torch.equal(got["image_index"], torch.arange(12).repeat_interleave(torch.tensor(counts)))
    few = dataset_boxes(data, max_images=2)
    assert len(few["boxes"]) == sum(counts[:2])


def test_dataset_boxes_empty_and_voc_fixture_in_model_pixels():
    empty = dataset_boxes(ShapesDataset(3, image_size=32, seed=0, empty_fraction=1.0))
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    voc = voc_dataset(FIXTURES / "voc", "train", transforms=eval_transforms(TINY_SHAPES))
    with pytest.warns(UserWarning, match="clipped"):  # the fixture has a box reaching past its image on purpose
        got = dataset_boxes(voc)
    assert len(got["boxes"]) > 0
    assert float(got["boxes"].min()) >= 0 and float(got["boxes"].max()) <= TINY_SHAPES.image_size
    assert set(got["image_index"].tolist()) == set(range(len(voc)))


def test_own_class_names_through_the_whole_anchor_fit(own_classes):
    """A VOC-XML export with its own class names (what notebook 08 reads with DATA_FORMAT = "voc"): the names come
    from the XML, the boxes reach the model's pixels, and k-means + config_from_shapes give a config with those
    classes that builds a model."""
    import warnings

    from ssd_tutorial.model import build_ssd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture's box past the image edge is clipped, with a warning
        dataset = voc_dataset(own_classes["voc"], "train", transforms=eval_transforms(TINY_SHAPES))
        boxes = dataset_boxes(dataset)
    assert dataset.class_names == ("__background__", "cat", "mug", "teapot")
    assert len(boxes["boxes"]) == 7 and set(boxes["labels"].tolist()) <= {1, 2, 3}
    assert float(boxes["boxes"].max()) <= TINY_SHAPES.image_size  # resized into the 128 px input
    wh = boxes["boxes"][:, 2:] - boxes["boxes"][:, :2]
    shapes = kmeans_box_shapes(wh, TINY_SHAPES.num_levels + 1, seed=0)["shapes_wh"]
    fitted = config_from_shapes(TINY_SHAPES, shapes).replace(num_classes=len(dataset.class_names),
                                                             class_names=dataset.class_names)  # fmt: skip
    assert fitted.class_names == dataset.class_names
    assert all(s >= 2 * step - 1e-6 for s, step in zip(fitted.box_sizes, fitted.steps))  # the 2-step floor
    model = build_ssd(fitted)
    with torch.no_grad():
        loc, logits = model.forward_heads(torch.rand(1, 3, 128, 128))
    assert loc.shape == (1, fitted.num_anchors, 4) and logits.shape == (1, fitted.num_anchors, 4)
