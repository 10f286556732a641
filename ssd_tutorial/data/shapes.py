"""ShapesDataset: circles, squares and triangles drawn on noisy backgrounds, generated on the fly.

No download, no disk: item i is a pure function of (seed, i), so every notebook, test and worker
process sees the same images. Boxes are exactly tight around the drawn pixels.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..config import SHAPES_CLASSES
from .transforms import to_plain, to_tv_tensors

__all__ = ["ShapesDataset", "collate_detection"]

CIRCLE, SQUARE, TRIANGLE = 1, 2, 3
_PLACEMENT_TRIES = 20
_MIN_COLOUR_DISTANCE = 0.35


def _interpolation_matrix(size: int, knots: int) -> np.ndarray:
    """[size, knots] weights that linearly interpolate ``knots`` values over ``size`` pixel centres."""
    position = (np.arange(size) + 0.5) / size * (knots - 1)  # pixel centre in knot units
    left = np.clip(np.floor(position).astype(int), 0, knots - 2)
    frac = position - left
    weights = np.zeros((size, knots), dtype=np.float32)
    weights[np.arange(size), left] = 1.0 - frac
    weights[np.arange(size), left + 1] = frac
    return weights


class ShapesDataset(Dataset):
    """Synthetic detection data: circles, squares and triangles on textured, noisy backgrounds.

    Item ``i`` is ``(image, target)``:

    - ``image``: Tensor[3, S, S] float32 in [0, 1], RGB;
    - ``target``: ``{"boxes": Tensor[M, 4] float32 xyxy pixels, "labels": Tensor[M] long in 1..3}``,
      labels indexing :attr:`class_names` (1 circle, 2 square, 3 triangle). M may be 0.

    Each image is drawn from a NumPy generator seeded with ``(seed, i)``, so it does not depend on
    iteration order or on DataLoader workers. Pixel ``(row r, column c)`` covers ``[c, c+1) x [r, r+1)``
    in box coordinates, and a pixel belongs to a shape when its centre does; each box is the bounding
    box of its shape's pixel mask (exact, integer). Objects lie fully inside the image; a new object is
    rejected when it would cover more than ``max_overlap`` of an earlier object's box.

    Args:
        num_images: dataset length.
        image_size: S, the side of the square images in pixels.
        seed: non-negative int; different seeds give independent datasets (e.g. train vs. validation).
        max_objects: at most this many objects per image (at least 1 unless the image is empty).
        empty_fraction: probability that an image contains no object.
        size_range: (min, max) side of an object's box as a fraction of ``image_size``.
        max_overlap: largest fraction of an earlier object's box a later object may cover.
        noise: amplitude of the per-pixel noise (uniform in [-noise, noise]).
        transforms: optional callable ``(image, target) -> (image, target)`` in the torchvision.transforms.v2
            style (e.g. :func:`~ssd_tutorial.data.train_transforms`); it receives a ``tv_tensors.Image`` and
            ``tv_tensors.BoundingBoxes`` and its output is turned back into plain tensors.
    """

    class_names: tuple[str, ...] = SHAPES_CLASSES

    def __init__(
        self,
        num_images: int,
        image_size: int = 128,
        seed: int = 0,
        *,
        max_objects: int = 4,
        empty_fraction: float = 0.1,
        size_range: tuple[float, float] = (0.1, 0.6),
        max_overlap: float = 0.3,
        noise: float = 0.06,
        transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None,
    ) -> None:
        for name, value, minimum in (("num_images", num_images, 0), ("image_size", image_size, 8),
                                     ("seed", seed, 0), ("max_objects", max_objects, 1)):  # fmt: skip
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"ShapesDataset: {name} must be an int >= {minimum}, got {value!r}")
        if not 0.0 <= empty_fraction <= 1.0:
            raise ValueError(f"ShapesDataset: empty_fraction must be in [0, 1], got {empty_fraction!r}")
        if len(size_range) != 2 or not 0.0 < size_range[0] <= size_range[1] <= 1.0:
            raise ValueError(f"ShapesDataset: size_range must be (min, max), 0 < min <= max <= 1, got {size_range!r}")
        if not 0.0 <= max_overlap <= 1.0:
            raise ValueError(f"ShapesDataset: max_overlap must be in [0, 1], got {max_overlap!r}")
        if not 0.0 <= noise <= 0.5:
            raise ValueError(f"ShapesDataset: noise must be in [0, 0.5], got {noise!r}")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"ShapesDataset: transforms must be callable or None, got {type(transforms).__name__}")
        self.num_images = num_images
        self.image_size = image_size
        self.seed = seed
        self.max_objects = max_objects
        self.empty_fraction = float(empty_fraction)
        self.size_range = (float(size_range[0]), float(size_range[1]))
        self.max_overlap = float(max_overlap)
        self.noise = float(noise)
        self.transforms = transforms
        self._knots = 4
        self._smooth = _interpolation_matrix(image_size, self._knots)  # [S, knots]
        self._coords = np.arange(image_size, dtype=np.float32) + 0.5  # pixel centres

    def __len__(self) -> int:
        return self.num_images

    def _check_index(self, index: Any) -> int:
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(f"ShapesDataset index must be an int, got {type(index).__name__}") from None
        if not 0 <= i < self.num_images:
            raise IndexError(f"ShapesDataset index {i} out of range [0, {self.num_images})")
        return i

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        image, boxes, labels, _ = self._render(self._check_index(index), with_masks=False)
        target = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}
        image_t = torch.from_numpy(image)
        if self.transforms is None:
            return image_t, target
        return to_plain(*self.transforms(*to_tv_tensors(image_t, target)))

    def masks(self, index: int) -> Tensor:
        """Tensor[M, S, S] bool: the full pixel mask of each object of item ``index`` (before occlusion)."""
        _, _, _, masks = self._render(self._check_index(index), with_masks=True)
        return torch.from_numpy(masks)

    def _background(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A smooth colour field plus a faint grating: Tensor[3, S, S] float32 and its mean colour [3]."""
        base = rng.uniform(0.15, 0.85, size=3).astype(np.float32)
        knots = rng.normal(0.0, 0.12, size=(3, self._knots, self._knots)).astype(np.float32)
        field = self._smooth @ knots @ self._smooth.T  # [3, S, S]
        freq = rng.uniform(0.03, 0.25, size=2).astype(np.float32)  # cycles per pixel in x, y
        phase = rng.uniform(0.0, 2 * np.pi)
        amplitude = rng.uniform(0.0, 0.08)
        arg = self._coords[None, :] * freq[0] + self._coords[:, None] * freq[1]  # [S, S]
        grating = amplitude * np.sin(2 * np.pi * arg + phase, dtype=np.float32)
        image = base[:, None, None] + field + grating[None]  # [3, S, S]
        return image, base

    def _shape_mask(self, rng: np.random.Generator, label: int, x0: int, y0: int, side: int) -> np.ndarray:
        """Pixel mask [side, side] of a shape whose extent is the window [x0, x0+side) x [y0, y0+side)."""
        local = np.arange(side, dtype=np.float32) + 0.5  # pixel centres inside the window
        xs, ys = local[None, :], local[:, None]
        if label == SQUARE:
            return np.ones((side, side), dtype=bool)
        if label == CIRCLE:
            r = side / 2
            return (xs - r) ** 2 + (ys - r) ** 2 <= r * r
        # Triangle with its apex at the top centre and its base on the bottom edge, then one of 4 orientations.
        half = side / 2
        inside = ys >= 2 * np.abs(xs - half)  # half-width grows from 0 at the apex to side/2 at the base
        rotations = int(rng.integers(0, 4))
        return np.ascontiguousarray(np.rot90(inside, rotations))

    def _render(self, index: int, with_masks: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, index])
        S = self.image_size
        image, bg_colour = self._background(rng)
        n_objects = 0 if rng.random() < self.empty_fraction else int(rng.integers(1, self.max_objects + 1))
        boxes: list[list[float]] = []
        labels: list[int] = []
        masks: list[np.ndarray] = []
        lo, hi = self.size_range
        for _ in range(n_objects):
            label = int(rng.integers(1, len(self.class_names)))
            for _ in range(_PLACEMENT_TRIES):
                side = max(3, int(round(rng.uniform(lo, hi) * S)))
                side = min(side, S)
                x0, y0 = (int(v) for v in rng.integers(0, S - side + 1, size=2))
                if self._overlap_ok((x0, y0, x0 + side, y0 + side), boxes):
                    break
            else:
                continue
            mask = self._shape_mask(rng, label, x0, y0, side)
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            box = [x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1]
            colour = self._colour(rng, bg_colour)
            window = image[:, y0 : y0 + side, x0 : x0 + side]  # [3, side, side] view
            shading = 1.0 + rng.uniform(-0.15, 0.15) * (np.arange(side, dtype=np.float32) / side - 0.5)  # [side]
            fill = colour[:, None, None] * shading[None, :, None]  # [3, side, 1], a vertical gradient
            np.copyto(window, np.broadcast_to(fill, window.shape), where=mask[None])
            boxes.append([float(v) for v in box])
            labels.append(label)
            if with_masks:
                full = np.zeros((S, S), dtype=bool)
                full[y0 : y0 + side, x0 : x0 + side] = mask
                masks.append(full)
        noise = (rng.random((1, S, S), dtype=np.float32) - 0.5) * (2 * self.noise)  # same grain in R, G, B
        image = np.clip(image + noise, 0.0, 1.0)
        boxes_arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels_arr = np.asarray(labels, dtype=np.int64)
        masks_arr = np.stack(masks) if masks else np.zeros((0, S, S), dtype=bool)
        return image, boxes_arr, labels_arr, masks_arr

    def _overlap_ok(self, box: tuple[int, int, int, int], boxes: list[list[float]]) -> bool:
        """True if ``box`` covers at most ``max_overlap`` of every earlier box (so earlier shapes stay visible)."""
        if not boxes:
            return True
        earlier = np.asarray(boxes, dtype=np.float32)  # [K, 4]
        iw = np.clip(np.minimum(earlier[:, 2], box[2]) - np.maximum(earlier[:, 0], box[0]), 0, None)
        ih = np.clip(np.minimum(earlier[:, 3], box[3]) - np.maximum(earlier[:, 1], box[1]), 0, None)
        area = (earlier[:, 2] - earlier[:, 0]) * (earlier[:, 3] - earlier[:, 1])
        return bool(np.all(iw * ih <= self.max_overlap * area))

    @staticmethod
    def _colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
        """A random RGB colour far enough from the background's mean colour to be seen."""
        colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
        for _ in range(10):
            if np.linalg.norm(colour - background) >= _MIN_COLOUR_DISTANCE:
                break
            colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
        return colour

    def __repr__(self) -> str:
        return (f"ShapesDataset(num_images={self.num_images}, image_size={self.image_size}, seed={self.seed}, "
                f"max_objects={self.max_objects}, empty_fraction={self.empty_fraction})")  # fmt: skip


def collate_detection(batch: Sequence[tuple[Tensor, dict[str, Any]]]) -> tuple[Tensor, list[dict[str, Any]]]:
    """DataLoader ``collate_fn`` for detection: stack the images, keep the targets as a list.

    Args:
        batch: B pairs ``(image Tensor[3, S, S], target dict)``; all images must have the same shape.

    Returns:
        ``(images Tensor[B, 3, S, S], targets list of B dicts)``.

    Introduced in: 06_training.ipynb
    """
    if len(batch) == 0:
        raise ValueError("collate_detection: expected a non-empty batch of (image, target) pairs, got 0 items")
    images, targets = [], []
    for k, item in enumerate(batch):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"collate_detection: item {k} must be an (image, target) pair, got {type(item).__name__}")
        image, target = item
        if not isinstance(image, Tensor):
            raise TypeError(f"collate_detection: image {k} must be a Tensor[3, H, W], got {type(image).__name__}")
        if image.shape != images[0].shape if images else False:
            raise ValueError(
                f"collate_detection: images must all have the same shape to be stacked, got "
                f"{list(images[0].shape)} (item 0) and {list(image.shape)} (item {k}); resize them first, "
                "e.g. with eval_transforms(cfg)"
            )
        images.append(image.as_subclass(Tensor))
        targets.append(target)
    return torch.stack(images), targets
