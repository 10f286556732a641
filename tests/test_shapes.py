"""Tests for ssd_tutorial.data.shapes: determinism, tight boxes, overlap limits, collate."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from ssd_tutorial.config import SHAPES_CLASSES, TINY_SHAPES
from ssd_tutorial.data import ShapesDataset, collate_detection, train_transforms


@pytest.fixture(autouse=True)
def one_thread():
    """Small images: intra-op threads only add overhead (and contention on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Bounding box (xyxy, pixel edges) of each [S, S] mask, computed independently of the dataset."""
    boxes = []
    for m in masks:
        ys, xs = torch.nonzero(m, as_tuple=True)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def test_item_format():
    ds = ShapesDataset(20, image_size=96, seed=3)
    assert len(ds) == 20 and ds.class_names == SHAPES_CLASSES == ("__background__", "circle", "square", "triangle")
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.shape == (3, 96, 96) and image.dtype == torch.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert set(target) == {"boxes", "labels"}
        boxes, labels = target["boxes"], target["labels"]
        assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
        assert boxes.shape == (len(labels), 4)
        assert ((labels >= 1) & (labels <= 3)).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 96).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()


def test_deterministic_per_seed_and_index_not_order():
    a = ShapesDataset(30, seed=7)
    b = ShapesDataset(30, seed=7)
    forward = [a[i] for i in range(30)]
    backward = [b[i] for i in reversed(range(30))][::-1]
    for (ia, ta), (ib, tb) in zip(forward, backward):
        assert torch.equal(ia, ib)
        assert torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["labels"], tb["labels"])
    other = ShapesDataset(30, seed=8)
    assert not torch.equal(a[0][0], other[0][0])
    assert not torch.equal(a[0][0], a[1][0])


def test_same_items_through_dataloader_workers():
    ds = ShapesDataset(8, image_size=64, seed=11)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_detection)
    images = torch.cat([batch[0] for batch in loader])
    assert torch.equal(images, torch.stack([ds[i][0] for i in range(8)]))


def test_boxes_are_tight_around_the_shape_masks():
    ds = ShapesDataset(60, image_size=128, seed=5)
    seen = set()
    for i in range(len(ds)):
        _, target = ds[i]
        masks = ds.masks(i)
        assert masks.shape == (len(target["labels"]), 128, 128) and masks.dtype == torch.bool
        assert torch.equal(target["boxes"], mask_boxes(masks))
        seen.update(target["labels"].tolist())
    assert seen == {1, 2, 3}


def test_shape_pixels_are_drawn_where_the_mask_is():
    # Without noise a shape is a flat colour along each row (its shading is vertical): the visible part of
    # each mask is constant per row, and it differs from the pixels just left and right of the shape's row span.
    ds = ShapesDataset(30, image_size=96, seed=2, noise=0.0)
    checked = 0
    for i in range(len(ds)):
        image, _ = ds[i]
        masks = ds.masks(i)
        for k in range(len(masks)):
            visible = masks[k] & ~masks[k + 1 :].any(dim=0)
            for row in torch.nonzero(visible.any(dim=1)).flatten().tolist()[::5]:
                cols = torch.nonzero(visible[row]).flatten()
                pixels = image[:, row, cols]  # [3, n]
                assert torch.allclose(pixels, pixels[:, :1].expand_as(pixels), atol=1e-6)
                checked += 1
    assert checked > 100


def test_square_and_circle_masks():
    ds = ShapesDataset(40, image_size=128, seed=9)
    for i in range(len(ds)):
        _, target = ds[i]
        masks = ds.masks(i)
        for m, label, box in zip(masks, target["labels"], target["boxes"]):
            area = (box[2] - box[0]) * (box[3] - box[1])
            fill = m.sum() / area
            if label == 2:  # square: the whole box, and square
                assert fill == 1.0 and box[2] - box[0] == box[3] - box[1]
            elif label == 1:  # circle: about pi / 4 of its box
                assert abs(box[2] - box[0] - (box[3] - box[1])) <= 1
                assert 0.65 < fill < 0.9
            else:  # triangle: about half of its box
                assert 0.4 < fill < 0.65


def test_object_sizes_follow_size_range():
    ds = ShapesDataset(50, image_size=100, seed=1, size_range=(0.2, 0.4))
    for i in range(len(ds)):
        boxes = ds[i][1]["boxes"]
        side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        assert ((side >= 20 - 1) & (side <= 40)).all(), side


def test_earlier_objects_stay_mostly_visible():
    # A later shape covers at most 30 % of an earlier shape's square extent; the smallest shape (a triangle)
    # fills half of it, so at most 60 % of an earlier mask is hidden (a pixel of slack for rounding).
    ds = ShapesDataset(150, image_size=128, seed=4, max_objects=6)
    worst = 1.0
    for i in range(len(ds)):
        masks = ds.masks(i)
        for k in range(len(masks) - 1):
            visible = (masks[k] & ~masks[k + 1 :].any(dim=0)).sum() / masks[k].sum()
            worst = min(worst, float(visible))
    assert worst >= 0.35


def test_empty_fraction():
    ds = ShapesDataset(400, image_size=48, seed=0)
    empty = sum(len(ds[i][1]["labels"]) == 0 for i in range(len(ds)))
    assert 20 <= empty <= 64  # about 10 % of 400 (fixed, since the data is deterministic)
    assert all(len(t["labels"]) == 0 for _, t in ShapesDataset(20, 48, empty_fraction=1.0))
    assert all(len(t["labels"]) > 0 for _, t in ShapesDataset(50, 48, empty_fraction=0.0))
    empty_target = ShapesDataset(5, 48, empty_fraction=1.0)[0][1]
    assert empty_target["boxes"].shape == (0, 4) and empty_target["labels"].shape == (0,)


def test_max_objects():
    ds = ShapesDataset(60, image_size=64, seed=0, max_objects=2, empty_fraction=0.0)
    counts = [len(ds[i][1]["labels"]) for i in range(len(ds))]
    assert min(counts) >= 1 and max(counts) <= 2 and 2 in counts


def test_index_errors():
    ds = ShapesDataset(3)
    for bad in (-1, 3, 100):
        with pytest.raises(IndexError, match="out of range"):
            ds[bad]
    with pytest.raises(TypeError):
        ds["0"]
    assert torch.equal(ds[torch.tensor(2)][0], ds[2][0])


@pytest.mark.parametrize("kwargs", [
    {"num_images": -1}, {"num_images": 2, "image_size": 4}, {"num_images": 2, "seed": -3},
    {"num_images": 2, "empty_fraction": 1.5}, {"num_images": 2, "size_range": (0.5, 0.2)},
    {"num_images": 2, "max_overlap": -0.1}, {"num_images": 2, "max_objects": 0},
])  # fmt: skip
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError, match="ShapesDataset"):
        ShapesDataset(**kwargs)


def test_transforms_receive_tv_tensors_and_output_is_plain():
    ds = ShapesDataset(6, image_size=128, seed=0, transforms=v2.Resize((64, 64)), empty_fraction=0.0)
    plain = ShapesDataset(6, image_size=128, seed=0, empty_fraction=0.0)
    for i in range(len(ds)):
        image, target = ds[i]
        assert type(image) is torch.Tensor and type(target["boxes"]) is torch.Tensor
        assert image.shape == (3, 64, 64)
        assert torch.allclose(target["boxes"], plain[i][1]["boxes"] / 2)
        assert torch.equal(target["labels"], plain[i][1]["labels"])


def test_train_transforms_on_shapes():
    torch.manual_seed(0)
    ds = ShapesDataset(16, seed=1, transforms=train_transforms(TINY_SHAPES))
    for image, target in ds:
        assert image.shape == (3, 128, 128) and image.dtype == torch.float32
        assert target["boxes"].shape == (len(target["labels"]), 4)


def test_pickles_for_spawned_workers():
    ds = ShapesDataset(4, image_size=32, seed=2, transforms=train_transforms(TINY_SHAPES))
    copy = pickle.loads(pickle.dumps(ds))
    assert len(copy) == 4 and copy.seed == 2


def test_collate_detection():
    ds = ShapesDataset(5, image_size=32, seed=0)
    images, targets = collate_detection([ds[i] for i in range(5)])
    assert images.shape == (5, 3, 32, 32)
    assert torch.equal(images[3], ds[3][0])
    assert len(targets) == 5 and torch.equal(targets[2]["boxes"], ds[2][1]["boxes"])


def test_collate_detection_errors():
    small, big = ShapesDataset(1, image_size=32)[0], ShapesDataset(1, image_size=48)[0]
    with pytest.raises(ValueError, match=r"\[3, 32, 32\].*\[3, 48, 48\] \(item 1\)"):
        collate_detection([small, big])
    with pytest.raises(ValueError, match="non-empty"):
        collate_detection([])
    with pytest.raises(TypeError, match="pair"):
        collate_detection([small[0]])
