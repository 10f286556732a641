"""The SSD module: backbone sources, a localisation and a class head per level, and the forward pass.

Introduced in: 03_heads.ipynb (heads), 04_forward_pass.ipynb (forward)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import fast, matching, postprocess
from .anchors import default_boxes
from .backbones import build_backbone
from .config import SSDConfig
from .loss import multibox_loss

__all__ = ["SSD", "build_ssd", "adapt_config", "source_feature_shapes"]


class SSD(nn.Module):
    """Single Shot MultiBox Detector (Liu et al. 2016) for the constants of ``cfg``.

    Args:
        cfg: the SSDConfig (feature maps, anchors, classes, post-processing).
        backbone: a module whose ``forward(x)`` returns L feature maps with ``cfg.in_channels``
            channels and ``cfg.feature_map_sizes`` sides; default ``build_backbone(cfg)``.
        background_prior: probability of the background class at initialisation, set through the
            class heads' bias (as RetinaNet does for its foreground prior): an untrained model then
            gives each object class about ``(1 - prior) / (C - 1)``, below ``cfg.score_threshold``,
            instead of 1/C everywhere (few detections, a calm start). ``None`` keeps a zero bias.

    Images are float tensors in [0, 1], RGB, ``[B, 3, S, S]`` with ``S = cfg.image_size``; the model
    normalizes them with ``cfg.mean`` / ``cfg.std`` itself.

    * ``model.forward_heads(images) -> (loc_preds [B, A, 4], cls_logits [B, A, C])``
    * train mode: ``model(images, targets) -> {"loss_loc": Tensor[], "loss_cls": Tensor[]}``
    * eval mode: ``model(images) -> [{"boxes" [N, 4] xyxy px, "scores" [N], "labels" [N] long}]``

    ``model.use_fast_paths`` (default True) picks :mod:`ssd_tutorial.fast`'s ``encode_targets`` and
    ``decode_detections``; set it to False to train and detect with the taught versions (same results).

    Introduced in: 03_heads.ipynb
    """

    use_fast_paths: bool = True

    def __init__(self, cfg: SSDConfig, backbone: nn.Module | None = None, *,
                 background_prior: float | None = 0.99) -> None:  # fmt: skip
        super().__init__()
        if not isinstance(cfg, SSDConfig):
            raise TypeError(f"cfg must be an SSDConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.backbone = build_backbone(cfg) if backbone is None else backbone
        C = cfg.num_classes
        self.loc_heads = nn.ModuleList(
            nn.Conv2d(ch, k * 4, kernel_size=3, padding=1) for ch, k in zip(cfg.in_channels, cfg.anchors_per_location)
        )
        self.cls_heads = nn.ModuleList(
            nn.Conv2d(ch, k * C, kernel_size=3, padding=1) for ch, k in zip(cfg.in_channels, cfg.anchors_per_location)
        )
        self._init_heads(background_prior)
        # Derived from cfg, so not saved in checkpoints; they follow .to(device / dtype).
        self.register_buffer("anchors", default_boxes(cfg), persistent=False)  # [A, 4] cxcywh px
        self.register_buffer("image_mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    def _init_heads(self, background_prior: float | None) -> None:
        for head in [*self.loc_heads, *self.cls_heads]:
            nn.init.xavier_uniform_(head.weight)
            nn.init.zeros_(head.bias)
        if background_prior is None:
            return
        if not 0.0 < background_prior < 1.0:
            raise ValueError(f"background_prior must be in (0, 1) or None, got {background_prior}")
        # softmax([b, 0, …, 0])[0] = e^b / (e^b + C - 1) = prior  =>  b = log(prior (C - 1) / (1 - prior))
        C = self.cfg.num_classes
        bias = math.log(background_prior * (C - 1) / (1.0 - background_prior))
        with torch.no_grad():
            for head, k in zip(self.cls_heads, self.cfg.anchors_per_location):
                head.bias.view(k, C)[:, 0] = bias  # channel = anchor * C + class

    def _check_images(self, images: Tensor) -> None:
        S = self.cfg.image_size
        expected = f"[B, 3, {S}, {S}]"
        if not isinstance(images, Tensor):
            hint = " (stack a list of images with torch.stack)" if isinstance(images, (list, tuple)) else ""
            raise TypeError(f"images must be a torch.Tensor {expected}, got {type(images).__name__}{hint}")
        shape = list(images.shape)
        if images.ndim != 4:
            hint = "; add a batch dimension with images[None]" if images.ndim == 3 else ""
            raise ValueError(f"images must be {expected}, got {shape}{hint}")
        if shape[1] != 3:
            raise ValueError(f"images must be {expected} (3 RGB channels), got {shape}")
        if shape[2:] != [S, S]:
            raise ValueError(f"images must be {expected}, got {shape}; resize them to {S}x{S} "
                             f"or build the model from adapt_config(cfg, image_size)")  # fmt: skip
        if shape[0] == 0:
            raise ValueError(f"images must be {expected} with B >= 1, got {shape}")
        if not images.is_floating_point():
            raise TypeError(
                f"images must be float in [0, 1], got dtype {images.dtype}; convert with "
                f"torchvision.transforms.v2.functional.to_dtype(images, torch.float32, scale=True) "
                f"or images.float() / 255"
            )
        if _can_read_values(images):
            _check_image_values(images)

    def forward_heads(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Raw predictions for every anchor, in the order of ``default_boxes(cfg)``.

        Args:
            images: Tensor[B, 3, S, S] float RGB in [0, 1].

        Returns:
            loc_preds: Tensor[B, A, 4] offsets (see ``boxes.encode_boxes``);
            cls_logits: Tensor[B, A, C] class logits, class 0 is background.

        Introduced in: 03_heads.ipynb
        """
        self._check_images(images)
        B, C = images.shape[0], self.cfg.num_classes
        x = (images.to(self.image_mean.dtype) - self.image_mean) / self.image_std  # [B, 3, S, S]
        features = self.backbone(x)
        self._check_features(features)
        loc_preds, cls_logits = [], []
        for feature, loc_head, cls_head in zip(features, self.loc_heads, self.cls_heads):
            loc = loc_head(feature).permute(0, 2, 3, 1)  # [B, H, W, k*4], channels last: anchors in (i, j, k) order
            loc_preds.append(loc.reshape(B, -1, 4))  # [B, H*W*k, 4]
            cls = cls_head(feature).permute(0, 2, 3, 1)  # [B, H, W, k*C]
            cls_logits.append(cls.reshape(B, -1, C))  # [B, H*W*k, C]
        return torch.cat(loc_preds, dim=1), torch.cat(cls_logits, dim=1)  # [B, A, 4], [B, A, C]

    def _check_features(self, features: Sequence[Tensor]) -> None:
        cfg = self.cfg
        got = [(f.shape[1], f.shape[-1]) for f in features]
        expected = list(zip(cfg.in_channels, cfg.feature_map_sizes))
        if got != expected or any(f.shape[-2] != f.shape[-1] for f in features):
            raise ValueError(
                f"the backbone must give {cfg.num_levels} square feature maps with (channels, side) {expected} "
                f"(cfg.in_channels, cfg.feature_map_sizes), got {[tuple(f.shape[1:]) for f in features]}; "
                f"adapt_config(cfg, image_size) measures the sides of a backbone"
            )

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None) -> dict[str, Tensor] | list[dict]:
        """Losses in train mode (targets required), detections in eval mode (targets ignored).

        Args:
            images: Tensor[B, 3, S, S] float RGB in [0, 1].
            targets: B dicts ``{"boxes": Tensor[M, 4] xyxy px, "labels": Tensor[M] long in 1 … C-1}``.

        Returns:
            train: ``{"loss_loc": Tensor[], "loss_cls": Tensor[]}`` (see ``loss.multibox_loss``);
            eval: B dicts ``{"boxes": Tensor[N, 4] xyxy px, "scores": Tensor[N], "labels": Tensor[N] long}``.

        Introduced in: 04_forward_pass.ipynb
        """
        self._check_images(images)
        if self.training:
            targets = self._check_targets(targets, images)
        loc_preds, cls_logits = self.forward_heads(images)
        if not self.training:
            decode = fast.decode_detections if self.use_fast_paths else postprocess.decode_detections
            return decode(loc_preds, cls_logits, self.anchors, self.cfg)
        encode = fast.encode_targets if self.use_fast_paths else matching.encode_targets
        loc_targets, cls_targets = encode(targets, self.anchors, self.cfg)
        return multibox_loss(loc_preds, cls_logits, loc_targets, cls_targets, neg_pos_ratio=self.cfg.neg_pos_ratio)

    def _check_targets(self, targets: list[dict[str, Tensor]] | None, images: Tensor) -> list[dict[str, Tensor]]:
        B = images.shape[0]
        if targets is None:
            raise ValueError("in train mode the model needs targets (B dicts with 'boxes' and 'labels'); "
                             "call model.eval() to get detections")  # fmt: skip
        if not isinstance(targets, (list, tuple)):
            raise TypeError(f"targets must be a list of {B} dicts, got {type(targets).__name__}")
        if len(targets) != B:
            raise ValueError(f"targets must hold one dict per image: expected {B}, got {len(targets)}")
        for b, target in enumerate(targets):
            if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
                got = sorted(target) if isinstance(target, dict) else type(target).__name__
                raise ValueError(f"targets[{b}] must be a dict with 'boxes' and 'labels', got {got}")
        # Targets may come from a CPU data loader while the model runs on an accelerator.
        def to_device(value: object) -> object:
            return value.to(images.device) if isinstance(value, Tensor) else value

        targets = [{**t, "boxes": to_device(t["boxes"]), "labels": to_device(t["labels"])} for t in targets]
        return _check_target_values(targets, self.cfg.num_classes, check_values=_can_read_values(images))


# How far outside [0, 1] pixel values may stray (resize overshoot) before they are taken for 0-255 or normalized data.
_IMAGE_RANGE_MARGIN = 0.5


def _can_read_values(images: Tensor) -> bool:
    """Value checks need real data: not on the meta device, not while torch.compile traces the model."""
    return images.device.type != "meta" and not torch.compiler.is_compiling()


def _check_image_values(images: Tensor) -> None:
    """ValueError for NaN / inf pixels and for images that are not in [0, 1] (0-255 or already normalized)."""
    low, high = torch.aminmax(images.detach().flatten(1), dim=1)  # [B] each; NaN propagates, inf shows
    finite = torch.isfinite(low) & torch.isfinite(high)  # [B]
    all_finite, lowest, highest = torch.stack([finite.all().to(low.dtype), low.min(), high.max()]).tolist()
    if not all_finite:
        b = int((~finite).nonzero()[0])
        nan, inf = int(images[b].isnan().sum()), int(images[b].isinf().sum())
        raise ValueError(f"images must be finite, image {b} has {nan} NaN and {inf} inf values")
    # Negative values first: normalized images also exceed 1, but 0-255 images are never negative.
    if lowest < -_IMAGE_RANGE_MARGIN:
        b = int((low < -_IMAGE_RANGE_MARGIN).nonzero()[0])
        raise ValueError(f"images must be float in [0, 1], got values down to {lowest:g} (image {b}); "
                         "the model normalizes with cfg.mean / cfg.std itself, so pass images before normalization")
    if highest > 1 + _IMAGE_RANGE_MARGIN:
        b = int((high > 1 + _IMAGE_RANGE_MARGIN).nonzero()[0])
        raise ValueError(f"images must be float in [0, 1], got values up to {highest:g} (image {b}); "
                         "did you forget to divide by 255?")  # fmt: skip


def _check_target_values(targets: list[dict[str, Tensor]], num_classes: int, *,
                         check_values: bool = True) -> list[dict[str, Tensor]]:  # fmt: skip
    """Types and shapes of each target, then (one sync for the batch) finite boxes with x2 > x1, y2 > y1 and
    labels in 1 … C-1; errors name the image. Integer labels of another dtype become long."""
    checked = []
    for b, t in enumerate(targets):
        boxes, labels = t["boxes"], t["labels"]
        for key, value in (("boxes", boxes), ("labels", labels)):
            if not isinstance(value, Tensor):
                raise TypeError(f"targets[{b}]['{key}'] must be a torch.Tensor, got {type(value).__name__}")
        if not boxes.is_floating_point():
            raise TypeError(f"targets[{b}]['boxes'] must be a float tensor (xyxy pixels), got {boxes.dtype}")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"targets[{b}]['labels'] must be an integer (long) tensor of class ids 1 … "
                            f"{num_classes - 1}, got {labels.dtype}")  # fmt: skip
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"targets[{b}]['boxes'] must be [M, 4] xyxy, got {list(boxes.shape)}")
        if labels.shape != (boxes.shape[0],):
            raise ValueError(f"targets[{b}]['labels'] must be [M] with M = {boxes.shape[0]} boxes, "
                             f"got {list(labels.shape)}")  # fmt: skip
        checked.append({**t, "labels": labels.long()})
    if not check_values or not checked:
        return checked
    boxes = torch.cat([t["boxes"].detach().float() for t in checked])  # [ΣM, 4]
    labels = torch.cat([t["labels"] for t in checked])  # [ΣM]
    box_ok = torch.isfinite(boxes).all(dim=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    label_ok = (labels >= 1) & (labels < num_classes)
    if bool((box_ok & label_ok).all()):
        return checked
    for b, t in enumerate(checked):  # only on the error path: find the image
        for k, (box, label) in enumerate(zip(t["boxes"].tolist(), t["labels"].tolist())):
            if not 1 <= label < num_classes:
                hint = " (0 is the background: object classes start at 1)" if label == 0 else ""
                raise ValueError(f"targets[{b}]['labels'][{k}] must be a class id in 1 … {num_classes - 1}, "
                                 f"got {label}{hint}")  # fmt: skip
            x1, y1, x2, y2 = box
            if not (all(math.isfinite(v) for v in box) and x2 > x1 and y2 > y1):
                raise ValueError(f"targets[{b}]['boxes'][{k}] must be finite xyxy with x2 > x1 and y2 > y1, "
                                 f"got {box}")  # fmt: skip
    return checked


def build_ssd(cfg: SSDConfig, pretrained_backbone: bool = False) -> SSD:
    """An SSD for ``cfg`` with its backbone (``cfg.backbone``), optionally with ImageNet weights.

    ``pretrained_backbone=True`` loads torchvision's ImageNet weights through its weights API: from the torch hub
    cache when the file is there (``backbones.pretrained_weights_path``), else downloaded with torchvision's hash
    check; offline, a one-line error names the URL and the cache path.

    Introduced in: 03_heads.ipynb
    """
    return SSD(cfg, build_backbone(cfg, pretrained=pretrained_backbone))


def source_feature_shapes(cfg: SSDConfig, image_size: int | None = None) -> list[tuple[int, int, int]]:
    """``(channels, height, width)`` of each of the L source feature maps of ``cfg``'s backbone at ``image_size``.

    A dry run: the backbone and extra layers of ``cfg`` are built on the meta device and run on an
    empty ``[1, 3, S, S]`` image (``S = image_size``, default ``cfg.image_size``), which computes
    shapes without allocating or computing anything.

    Introduced in: 03_heads.ipynb
    """
    if not isinstance(cfg, SSDConfig):
        raise TypeError(f"cfg must be an SSDConfig, got {type(cfg).__name__}")
    S = cfg.image_size if image_size is None else image_size
    if isinstance(S, bool) or not isinstance(S, int) or S < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    with torch.device("meta"), torch.no_grad():
        backbone = build_backbone(cfg).eval()
        try:
            features = backbone(torch.empty(1, 3, S, S))
        except RuntimeError as err:
            raise ValueError(f"image_size {S} is too small for the {cfg.backbone} backbone of {cfg.name} "
                             f"with {cfg.num_levels} levels: {err}") from err  # fmt: skip
    return [(int(f.shape[1]), int(f.shape[2]), int(f.shape[3])) for f in features]


def adapt_config(cfg: SSDConfig, image_size: int) -> SSDConfig:
    """``cfg`` for another input size, with the feature-map sizes measured by a dry run.

    The article's ``change_input_size``: build the backbone and extra layers of ``cfg``, run them on
    a dummy ``[1, 3, S, S]`` image and read the sides of the L sources (:func:`source_feature_shapes`,
    on the meta device, which computes shapes without allocating or computing anything). Steps become
    ``S / fm`` (fractional when fm does not divide S, so the last centres reach the image edge)
    and box sizes scale by ``S / cfg.image_size``.

    Introduced in: 04_forward_pass.ipynb
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    S = image_size
    sizes = tuple(w for _, _, w in source_feature_shapes(cfg, S))
    scale = S / cfg.image_size
    return cfg.replace(
        image_size=S,
        feature_map_sizes=sizes,
        steps=tuple(S / fm for fm in sizes),
        box_sizes=tuple(round(s * scale, 9) for s in cfg.box_sizes),  # 21.0, not 21.000000000000004
    )
