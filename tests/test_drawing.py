"""Tests for drawing.py: high bit-depth images scaled to 8 bits, bombs refused, detections readable at any size."""

from __future__ import annotations

import warnings

import numpy as np
import PIL.Image
import pytest
import torch

from ssd_tutorial.drawing import MIN_DRAW_SIZE, check_image, class_color, draw_detections, read_image, to_rgb8

NAMES = ("__background__", "circle", "square", "triangle")


def test_16_bit_png_is_scaled_not_saturated(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)  # [1, 4]
    path = tmp_path / "deep.png"
    PIL.Image.fromarray(values).save(path)
    assert PIL.Image.open(path).mode.startswith("I")  # PIL really wrote a 16-bit PNG
    image = read_image(path)
    assert image.dtype == torch.uint8 and image.shape == (3, 1, 4)
    # 257 * 255 / 65535 = 1; 32768 * 255 / 65535 = 127.50 -> 128
    assert image[0, 0].tolist() == [0, 1, 128, 255] and torch.equal(image[0], image[2])


def test_float_tiff_in_0_1_is_scaled(tmp_path):
    path = tmp_path / "f.tiff"
    PIL.Image.fromarray(np.array([[0.0, 0.25, 1.0]], dtype=np.float32), mode="F").save(path)
    assert read_image(path)[1, 0].tolist() == [0, 64, 255]  # 0.25 * 255 = 63.75 -> 64


def test_8_bit_images_are_unchanged():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10  # [H, W, 3]
    assert torch.equal(to_rgb8(PIL.Image.fromarray(rgb)), torch.from_numpy(rgb).permute(2, 0, 1))


def test_decompression_bomb_is_one_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    PIL.Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)  # 64 x 64 > 2 x 100: what a 20000 px PNG does by default
    with pytest.raises(ValueError, match=r"cannot read image .*big\.png: it has more than 200 pixels"):
        check_image(path)


def test_missing_and_corrupt_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        check_image(tmp_path / "nope.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*junk.png"):
        read_image(tmp_path / "junk.png")


def test_small_images_are_upscaled_and_boxes_coloured_by_class():
    image = torch.full((3, 128, 128), 40, dtype=torch.uint8)
    boxes = torch.tensor([[10.0, 60.0, 50.0, 100.0], [70.0, 20.0, 120.0, 60.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = np.asarray(draw_detections(image, boxes, torch.tensor([1, 3]), torch.tensor([0.9, 0.6]), NAMES))
    assert drawn.shape == (MIN_DRAW_SIZE, MIN_DRAW_SIZE, 3)  # 128 px drawn 4x larger
    assert tuple(drawn[80 * 4, 10 * 4 + 1]) == class_color(1)  # left edge of box 1, in input pixels x 4
    assert tuple(drawn[40 * 4, 120 * 4 - 1]) == class_color(3)  # right edge of box 2 (PIL draws lines inward)
    assert class_color(1) != class_color(3)
    label_strip = drawn[60 * 4 - 1, 10 * 4 : 50 * 4]  # the row above box 1: its label box, in the class colour
    assert (label_strip == class_color(1)).all(axis=1).mean() > 0.3


def test_no_detections_is_quiet_and_large_images_keep_their_size():
    image = torch.zeros(3, 600, 800, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = draw_detections(image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0), NAMES)
    assert drawn.size == (800, 600) and not np.asarray(drawn).any()
    with pytest.raises(ValueError, match=r"uint8 Tensor\[3, H, W\], got torch.float32"):
        draw_detections(image.float(), torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), NAMES)
