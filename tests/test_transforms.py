"""Tests for ssd_tutorial.data.transforms: boxes follow the pixels through every step, formats, edge cases."""

from __future__ import annotations

import pickle

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ssd_tutorial.config import TINY_SHAPES
from ssd_tutorial.data import eval_transforms, train_transforms
from ssd_tutorial.data.transforms import (
    DetectionTransform,
    IoUCrop,
    ShrinkToFit,
    ZoomOut,
    _per_box_fields,
    to_plain,
    to_tv_tensors,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Small images: intra-op threads only add overhead (and contention on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


BLACK_MEAN = TINY_SHAPES.replace(mean=(0.0, 0.0, 0.0))  # zoom-out fills with black: the rectangle stays brightest


def rectangle_sample(height=96, width=120, box=(30, 20, 70, 60), dtype=torch.float32):
    """A white rectangle on black; its box in pixel-edge xyxy coordinates."""
    image = torch.zeros(3, height, width)
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = 1.0
    if dtype == torch.uint8:
        image = (image * 255).to(torch.uint8)
    target = {"boxes": torch.tensor([box], dtype=torch.float32), "labels": torch.tensor([2]),
              "difficult": torch.tensor([True])}  # fmt: skip
    return image, target


def bright_box(image: torch.Tensor) -> torch.Tensor:
    """xyxy box around the pixels brighter than halfway between the image's darkest and brightest values."""
    gray = image.float().mean(dim=0)
    ys, xs = torch.nonzero(gray > (gray.max() + gray.min()) / 2, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


STEPS = {
    "photometric": lambda: v2.RandomPhotometricDistort(p=1.0),
    "zoom_out": lambda: ZoomOut((0.0, 0.0, 0.0), side_range=(1.0, 4.0), p=1.0),
    "iou_crop": lambda: IoUCrop(),
    "flip": lambda: v2.RandomHorizontalFlip(p=1.0),
    "resize": lambda: v2.Resize((128, 128), antialias=True),
    "shrink": lambda: ShrinkToFit(64),
}


@pytest.mark.parametrize("name", list(STEPS))
def test_box_follows_pixels_through_each_step(name):
    transform = DetectionTransform([STEPS[name](), v2.SanitizeBoundingBoxes(labels_getter=_per_box_fields)])
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = transform(*rectangle_sample())
        assert target["boxes"].shape == (1, 4), (name, seed)
        assert torch.allclose(target["boxes"][0], bright_box(image), atol=1.5), (name, seed, target["boxes"])


def test_box_follows_pixels_through_the_training_pipeline():
    transform = train_transforms(BLACK_MEAN)
    moved = 0
    for seed in range(24):
        torch.manual_seed(seed)
        for dtype in (torch.float32, torch.uint8):
            image, target = transform(*rectangle_sample(dtype=dtype))
            assert image.shape == (3, 128, 128) and image.dtype == torch.float32
            assert 0.0 <= image.min() and image.max() <= 1.0
            assert target["boxes"].shape == (1, 4)  # IoU crop keeps the box centre, sanitize keeps the box
            assert torch.allclose(target["boxes"][0], bright_box(image), atol=2.0), (seed, dtype)
            assert target["labels"].tolist() == [2] and target["difficult"].tolist() == [True]
            moved += not torch.allclose(target["boxes"][0], torch.tensor([32.0, 26.7, 74.7, 80.0]), atol=1.0)
    assert moved > 24  # the augmentation really changes the geometry (the flip alone: half of the time)


def test_flip_by_hand():
    image, target = DetectionTransform([v2.RandomHorizontalFlip(p=1.0)])(*rectangle_sample(width=120))
    assert target["boxes"].tolist() == [[120 - 70, 20, 120 - 30, 60]]


def test_zoom_out_fills_with_the_mean_colour():
    mean = (0.25, 0.5, 0.75)
    transform = DetectionTransform([ZoomOut(mean, side_range=(3.0, 3.0), p=1.0)])
    image, _ = rectangle_sample(height=40, width=40, box=(10, 10, 20, 20))
    out, target = transform(image, rectangle_sample(height=40, width=40, box=(10, 10, 20, 20))[1])
    assert out.shape == (3, 120, 120)
    assert torch.allclose(out[:, 0, 0], torch.tensor(mean)) or torch.allclose(out[:, -1, -1], torch.tensor(mean))
    out8, _ = transform(*rectangle_sample(height=40, width=40, box=(10, 10, 20, 20), dtype=torch.uint8))
    expected = torch.tensor([round(255 * m) for m in mean]) / 255
    assert torch.allclose(out8[:, 0, 0], expected) or torch.allclose(out8[:, -1, -1], expected)
    assert torch.allclose(target["boxes"][0, 2:] - target["boxes"][0, :2], torch.tensor([10.0, 10.0]))


def test_degenerate_boxes_dropped_with_their_fields():
    image, _ = rectangle_sample()
    target = {
        "boxes": torch.tensor([[10.0, 10.0, 10.0, 50.0], [30.0, 20.0, 70.0, 60.0], [5.0, 5.0, 5.5, 9.0]]),
        "labels": torch.tensor([1, 2, 3]),
        "difficult": torch.tensor([True, False, True]),
        "image_id": 7,
    }
    for seed in range(10):
        torch.manual_seed(seed)
        _, out = train_transforms(BLACK_MEAN)(image, target)
        assert out["labels"].tolist() == [2] and out["difficult"].tolist() == [False]
        assert out["boxes"].shape == (1, 4) and out["image_id"] == 7
    assert target["boxes"].shape == (3, 4)  # the input target is not modified


def test_empty_targets_survive():
    image = torch.rand(3, 50, 70)
    for boxes in (torch.zeros(0, 4), torch.zeros(0)):
        for seed in range(8):
            torch.manual_seed(seed)
            empty = {"boxes": boxes, "labels": torch.zeros(0, dtype=torch.long)}
            out, target = train_transforms(TINY_SHAPES)(image, empty)
            assert out.shape == (3, 128, 128)
            assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
            assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64
    out, target = eval_transforms(TINY_SHAPES)(image, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0).long()})
    assert out.shape == (3, 128, 128) and target["boxes"].shape == (0, 4)


def test_eval_transforms_scale_boxes_exactly():
    image, target = rectangle_sample(height=96, width=160, box=(40, 24, 80, 72), dtype=torch.uint8)
    out, out_target = eval_transforms(TINY_SHAPES)(image, target)
    assert out.shape == (3, 128, 128) and out.dtype == torch.float32 and out.max() <= 1.0
    sx, sy = 128 / 160, 128 / 96
    assert torch.allclose(out_target["boxes"], torch.tensor([[40 * sx, 24 * sy, 80 * sx, 72 * sy]]))
    assert type(out) is torch.Tensor and type(out_target["boxes"]) is torch.Tensor


def test_no_normalization():
    image = torch.full((3, 128, 128), 0.8)
    out, _ = eval_transforms(TINY_SHAPES)(image, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0).long()})
    assert torch.allclose(out, image)


def test_iou_crop_keeps_torchvision_constraints():
    box = torch.tensor([[40.0, 30.0, 120.0, 100.0], [5.0, 5.0, 20.0, 20.0]])
    image = torch.zeros(3, 120, 160)
    wrapped = to_tv_tensors(image, {"boxes": box, "labels": torch.tensor([1, 2])})
    crop = IoUCrop(sampler_options=[0.5])
    for seed in range(30):
        torch.manual_seed(seed)
        params = crop.make_params([wrapped[0], wrapped[1]["boxes"]])
        h, w, top, left = params["height"], params["width"], params["top"], params["left"]
        assert 0.3 * 120 - 1 <= h <= 120 and 0.3 * 160 - 1 <= w <= 160 and 0.5 <= w / h <= 2.0
        assert 0 <= left <= 160 - w and 0 <= top <= 120 - h
        region = torch.tensor([[left, top, left + w, top + h]], dtype=torch.float32)
        inside = params["is_within_crop_area"]
        from torchvision.ops import box_iou

        assert inside.any() and box_iou(box[inside], region).max() >= 0.5


def test_iou_crop_matches_torchvision_distribution():
    image = torch.zeros(3, 100, 100)
    sample = to_tv_tensors(image, {"boxes": torch.tensor([[20.0, 30.0, 70.0, 80.0]]), "labels": torch.tensor([1])})
    flat = [sample[0], sample[1]["boxes"]]
    for option in (0.0, 0.3):
        ours, theirs = IoUCrop(sampler_options=[option]), v2.RandomIoUCrop(sampler_options=[option])
        torch.manual_seed(0)
        areas_ours = torch.tensor([(lambda p: p["height"] * p["width"])(ours.make_params(flat)) for _ in range(200)])
        areas_tv = torch.tensor([(lambda p: p["height"] * p["width"])(theirs.make_params(flat)) for _ in range(200)])
        # Same distribution: means within ~4 standard errors.
        se = (areas_ours.float().var() / 200 + areas_tv.float().var() / 200).sqrt()
        assert abs(areas_ours.float().mean() - areas_tv.float().mean()) < 4 * se, option


def test_iou_crop_without_boxes_is_identity():
    image = torch.rand(3, 30, 40)
    out, target = DetectionTransform([IoUCrop()])(image, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0).long()})
    assert torch.equal(out, image) and target["boxes"].shape == (0, 4)


def test_shrink_to_fit_never_upscales():
    image, target = rectangle_sample(height=40, width=50)
    out, _ = DetectionTransform([ShrinkToFit(128)])(image, target)
    assert out.shape == (3, 40, 50)
    out, t = DetectionTransform([ShrinkToFit(25)])(image, target)
    assert out.shape == (3, 20, 25) and torch.allclose(t["boxes"], target["boxes"] / 2)


def test_zoom_out_range_depends_on_image_size():
    assert train_transforms(TINY_SHAPES).steps[2]._float.side_range == (1.0, 2.0)
    from ssd_tutorial.config import SSD300_VOC

    assert train_transforms(SSD300_VOC).steps[2]._float.side_range == (1.0, 4.0)
    assert train_transforms(TINY_SHAPES, zoom_out_max=3.0).steps[2]._float.side_range == (1.0, 3.0)


def test_pil_input_and_tv_tensor_round_trip():
    import PIL.Image

    pil = PIL.Image.new("RGB", (64, 48), (255, 0, 0))
    image, target = to_tv_tensors(pil, {"boxes": [[1.0, 2.0, 3.0, 4.0]], "labels": torch.tensor([1])})
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 48, 64)
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].canvas_size == (48, 64)
    plain, plain_target = to_plain(image, target)
    assert type(plain) is torch.Tensor and plain.dtype == torch.float32 and plain[0].min() == 1.0
    assert type(plain_target["boxes"]) is torch.Tensor and plain_target["boxes"].tolist() == [[1, 2, 3, 4]]
    cxcywh = tv_tensors.BoundingBoxes([[2.0, 3.0, 2.0, 2.0]], format="CXCYWH", canvas_size=(48, 64))
    assert to_plain(image, {"boxes": cxcywh})[1]["boxes"].tolist() == [[1, 2, 3, 4]]


def test_bad_inputs():
    with pytest.raises(TypeError, match="SSDConfig"):
        train_transforms("tiny_shapes")
    with pytest.raises(TypeError, match="SSDConfig"):
        eval_transforms(None)
    with pytest.raises(ValueError, match="zoom_out_max"):
        train_transforms(TINY_SHAPES, zoom_out_max=0.5)
    with pytest.raises(ValueError, match=r"\[M, 4\]"):
        eval_transforms(TINY_SHAPES)(torch.rand(3, 8, 8), {"boxes": torch.zeros(2, 5)})
    with pytest.raises(ValueError, match=r"Tensor\[C, H, W\]"):
        eval_transforms(TINY_SHAPES)(torch.rand(8, 8), {"boxes": torch.zeros(0, 4)})
    with pytest.raises(TypeError, match="'boxes'"):
        eval_transforms(TINY_SHAPES)(torch.rand(3, 8, 8), {"labels": torch.zeros(0)})


def test_transforms_pickle_for_workers():
    transform = pickle.loads(pickle.dumps(train_transforms(TINY_SHAPES)))
    torch.manual_seed(0)
    out, _ = transform(*rectangle_sample())
    assert out.shape == (3, 128, 128)
    assert "IoUCrop" in repr(transform) and "Resize" in repr(transform)
