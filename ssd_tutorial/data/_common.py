"""Helpers shared by the VOC and COCO loaders: safe image reading and box clipping with a warning."""

from __future__ import annotations

import os
import warnings

import PIL.Image
import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as F

__all__ = ["BoxesClippedWarning", "load_rgb", "clip_to_image", "check_index"]


class BoxesClippedWarning(UserWarning):
    """An annotation reached outside its image: the box was clipped to the image (or dropped if nothing was left)."""


def check_index(index: object, length: int, name: str) -> int:
    """``index`` as an int in [0, length); IndexError otherwise (negative indices are refused)."""
    import operator

    try:
        i = operator.index(index)
    except TypeError:
        raise TypeError(f"{name} index must be an int, got {type(index).__name__}") from None
    if not 0 <= i < length:
        raise IndexError(f"{name} index {i} out of range [0, {length})")
    return i


def load_rgb(path: str | os.PathLike) -> Tensor:
    """Read an image file as Tensor[3, H, W] uint8 RGB; errors name the file."""
    try:
        with PIL.Image.open(path) as im:
            return F.pil_to_tensor(im.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (OSError, SyntaxError) as err:  # PIL: unidentified / truncated / corrupt data
        raise OSError(f"could not read image file {path}: {err}") from err


def clip_to_image(boxes_xyxy: Tensor, height: int, width: int, source: str) -> tuple[Tensor, Tensor]:
    """Clip Tensor[M, 4] xyxy boxes to the image [0, width] x [0, height]; find the boxes left empty.

    Emits one :class:`BoxesClippedWarning` naming ``source`` (the annotation's file) when a box changed.

    Returns:
        ``(clipped Tensor[M, 4], keep Tensor[M] bool)``; ``keep`` is False for boxes with no area left.
    """
    limits = torch.tensor([width, height, width, height], dtype=boxes_xyxy.dtype)
    clipped = torch.minimum(boxes_xyxy.clamp(min=0), limits)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    changed = int((clipped != boxes_xyxy).any(dim=1).sum())
    dropped = int((~keep).sum())
    if changed or dropped:
        warnings.warn(
            f"{source}: {changed} box(es) outside the {width}x{height} image clipped to it, "
            f"{dropped} box(es) without area dropped",
            BoxesClippedWarning,
            stacklevel=2,
        )
    return clipped, keep
