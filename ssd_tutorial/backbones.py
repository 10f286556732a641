"""Backbones that turn an image into SSD's source feature maps: VGG16, ResNet-50 and a tiny CPU net.

Each backbone is an ``nn.Module`` whose ``forward(x)`` returns the list of L source feature maps
``[Tensor[B, cfg.in_channels[k], fm_k, fm_k]]``: two taken from the feature extractor, the rest from
the extra layers (:func:`build_extras`).

Introduced in: 03_heads.ipynb
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from .config import SSDConfig

__all__ = [
    "L2Norm",
    "VGG16Backbone",
    "ResNet50Backbone",
    "TinyBackbone",
    "extra_layer_specs",
    "build_extras",
    "build_backbone",
    "pretrained_weights_path",
]

# torchvision's ImageNet weights for each backbone, through its weights API. Both are what the article's
# `vgg16(pretrained=True)` / `resnet50(pretrained=True)` load (torchvision maps pretrained=True to IMAGENET1K_V1),
# and both expect our IMAGENET_MEAN / IMAGENET_STD input. VGG16_Weights.IMAGENET1K_FEATURES (the original SSD's
# Caffe VGG) expects 0-255 inputs instead; ResNet50's V2 is a newer training recipe the article did not use.
_WEIGHTS = {
    "vgg16": torchvision.models.VGG16_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
}


class L2Norm(nn.Module):
    """Scale each position's channel vector to unit L2 norm, then by a learnable per-channel factor.

    conv4_3 features have a much larger magnitude than the deeper sources; the SSD paper (section 3.1,
    after ParseNet) normalizes them and learns the scale, initialised to 20.
    """

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """x (Tensor[B, C, H, W]) -> same shape, unit norm over C times ``weight``."""
        return F.normalize(x, dim=1, eps=self.eps) * self.weight.view(1, -1, 1, 1)  # [B, C, H, W]


def extra_layer_specs(cfg: SSDConfig) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of the 3x3-ish conv of each extra level (levels 2 … L-1).

    The sizes come from ``cfg.feature_map_sizes`` with the paper's recipes as the rule:

    * a final p -> p - 1 step is a 4x4 conv, padding 1 (SSD512's conv12_2: 2x2 -> 1x1);
    * otherwise a trailing run of p -> p - 2 steps are 3x3 convs without padding (SSD300's
      conv10_2 and conv11_2: 5 -> 3 -> 1);
    * every other step is a 3x3 conv, stride 2, padding 1, which halves the map (rounding up).

    So SSD512_VOC gives four stride-2 layers and a 4x4 one, which at 300 px yield (10, 5, 3, 2, 1).

    Introduced in: 03_heads.ipynb
    """
    sizes = cfg.feature_map_sizes
    transitions = list(zip(sizes[1:-1], sizes[2:]))  # (input, output) side of each extra level
    specs: list[tuple[int, int, int] | None] = [None] * len(transitions)
    end = len(transitions)
    if transitions and transitions[-1][1] == transitions[-1][0] - 1:
        specs[-1] = (4, 1, 1)
        end -= 1
    else:
        while end > 0 and transitions[end - 1][1] == transitions[end - 1][0] - 2:
            specs[end - 1] = (3, 1, 0)
            end -= 1
    for k in range(end):
        p, t = transitions[k]
        if t != math.ceil(p / 2):
            raise ValueError(
                f"cannot build an extra layer from a {p}x{p} map to {t}x{t} (feature_map_sizes {sizes}): "
                f"expected {math.ceil(p / 2)} (3x3 stride 2), or p - 2 / p - 1 only at the end (3x3 / 4x4 convs)"
            )
        specs[k] = (3, 2, 1)
    return specs  # type: ignore[return-value]


def build_extras(cfg: SSDConfig, batch_norm: bool = False) -> nn.ModuleList:
    """One block per extra level: 1x1 conv to ``out/2`` channels, then the conv of :func:`extra_layer_specs`.

    Channels follow ``cfg.in_channels`` (the paper's conv8_1 256 -> conv8_2 512, ...). With
    ``batch_norm`` each conv is followed by BatchNorm (the tiny backbone trains from scratch), except
    a conv whose output is 1x1 (BatchNorm would fail in training at batch 1).

    Introduced in: 03_heads.ipynb
    """
    blocks = nn.ModuleList()
    for level, (kernel, stride, padding) in enumerate(extra_layer_specs(cfg), start=2):
        c_in, c_out = cfg.in_channels[level - 1], cfg.in_channels[level]
        c_mid = max(c_out // 2, 1)
        # BatchNorm needs more than one value per channel: a 1x1 output at batch 1 has only one.
        last_bn = batch_norm and cfg.feature_map_sizes[level] > 1
        blocks.append(nn.Sequential(
            *_conv(c_in, c_mid, 1, 1, 0, batch_norm),
            *_conv(c_mid, c_out, kernel, stride, padding, last_bn),
        ))  # fmt: skip
    for module in blocks.modules():
        if isinstance(module, nn.Conv2d) and module.bias is not None:
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return blocks


def _conv(c_in: int, c_out: int, kernel: int, stride: int, padding: int, batch_norm: bool,
          dilation: int = 1) -> list[nn.Module]:  # fmt: skip
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=not batch_norm)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]


def _check_channels(cfg: SSDConfig, expected: tuple[int, int]) -> None:
    if cfg.num_levels < 2:
        raise ValueError(f"backbone {cfg.backbone!r} needs at least 2 feature-map levels, got {cfg.num_levels}")
    if tuple(cfg.in_channels[:2]) != expected:
        raise ValueError(
            f"backbone {cfg.backbone!r} gives sources with {expected} channels, "
            f"got cfg.in_channels[:2] = {tuple(cfg.in_channels[:2])}"
        )


def pretrained_weights_path(backbone: str) -> Path:
    """Where torchvision keeps the ImageNet weights of ``backbone``: ``<torch.hub.get_dir()>/checkpoints/<file>``,
    the file name of the weights' URL. A file there is used as is; otherwise it is downloaded there.

    Introduced in: 03_heads.ipynb
    """
    if backbone not in _WEIGHTS:
        raise ValueError(f"backbone {backbone!r} has no pretrained weights; expected one of {sorted(_WEIGHTS)}")
    file_name = _WEIGHTS[backbone].url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def _load_pretrained(backbone: str) -> dict[str, Tensor]:
    """The state dict of torchvision's ImageNet weights: from the hub cache when the file is there, otherwise
    downloaded into it with torchvision's hash check (the URL's file name carries the first digits of its SHA-256)."""
    weights = _WEIGHTS[backbone]
    try:
        return weights.get_state_dict(progress=True, check_hash=True, map_location="cpu", weights_only=True)
    except OSError as err:  # URLError, timeouts, refused connections: offline or a proxy in the way
        path = pretrained_weights_path(backbone)
        raise OSError(
            f"pretrained {backbone} weights are not in the torch hub cache ({path}) and the download from "
            f"{weights.url} failed ({err}); download that file to that path by hand, connect to the network, "
            f"or use pretrained_backbone=False"
        ) from err


class VGG16Backbone(nn.Module):
    """VGG16 split as in the SSD paper and the article.

    Source 1: conv1_1 … conv4_3 + ReLU (stride 8, pool3 in ceil mode so 300 px gives 38x38), then
    :class:`L2Norm`. Source 2: pool4, conv5_1 … conv5_3, pool5 (3x3, stride 1), conv6 (3x3,
    dilation 6, 1024 ch) and conv7 (1x1, 1024 ch). Then the extra layers.
    """

    def __init__(self, cfg: SSDConfig, pretrained: bool = False) -> None:
        super().__init__()
        _check_channels(cfg, (512, 1024))
        # Build on the meta device so torchvision's 102 M-parameter classifier is never allocated.
        with torch.device("meta"):
            features = torchvision.models.vgg16(weights=None).features
        features = features.to_empty(device=torch.get_default_device())  # meta again inside adapt_config
        if pretrained:
            state = _load_pretrained("vgg16")
            features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                                      if k.startswith("features.")})  # fmt: skip
        else:
            for module in features.modules():
                if isinstance(module, nn.Conv2d):  # torchvision's VGG initialisation
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(module.bias)
        features[16].ceil_mode = True  # pool3: 75 -> 38 at 300 px, as in the paper
        self.conv4_3 = features[:23]  # conv1_1 … conv4_3 + ReLU, stride 8
        self.l2norm = L2Norm(512, scale=20.0)
        head = [*_conv(512, 1024, 3, 1, 6, False, dilation=6), *_conv(1024, 1024, 1, 1, 0, False)]
        for module in head:
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # pool4, conv5_1 … conv5_3 + ReLU (indices 23-29), pool5 3x3/1, conv6, conv7
        self.conv7 = nn.Sequential(*features[23:30], nn.MaxPool2d(3, stride=1, padding=1), *head)
        self.extras = build_extras(cfg)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x (Tensor[B, 3, S, S]) normalized image -> L feature maps."""
        x = self.conv4_3(x)
        sources = [self.l2norm(x)]
        x = self.conv7(x)
        sources.append(x)
        for block in self.extras:
            x = block(x)
            sources.append(x)
        return sources


class ResNet50Backbone(nn.Module):
    """ResNet-50 as in the article: stem … layer2 (512 ch, stride 8), then :class:`L2Norm` (scale 20), is
    source 1; layer3 (1024 ch, stride 16) source 2, then the extra layers. layer4 and the classifier are dropped.

    The L2Norm on source 1 is the article's (its code puts it on the first source of both backbones): layer2's
    activations are much larger than the deeper sources', as conv4_3's are in VGG16.
    """

    def __init__(self, cfg: SSDConfig, pretrained: bool = False) -> None:
        super().__init__()
        _check_channels(cfg, (512, 1024))
        resnet = torchvision.models.resnet50(weights=None)
        if pretrained:
            resnet.load_state_dict(_load_pretrained("resnet50"))
        self.layer2 = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1,
                                    resnet.layer2)  # fmt: skip
        self.l2norm = L2Norm(512, scale=20.0)
        self.layer3 = resnet.layer3
        self.extras = build_extras(cfg)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x (Tensor[B, 3, S, S]) normalized image -> L feature maps."""
        x = self.layer2(x)
        sources = [self.l2norm(x)]  # the article's L2Norm; layer3 reads the unnormalized x
        x = self.layer3(x)
        sources.append(x)
        for block in self.extras:
            x = block(x)
            sources.append(x)
        return sources


class TinyBackbone(nn.Module):
    """A small VGG-style net with BatchNorm that trains from scratch on a CPU in minutes.

    Four stride-2 3x3 convs bring the image to stride 8 (source 1, ``cfg.in_channels[0]`` ch),
    one more to stride 16 (source 2, ``cfg.in_channels[1]`` ch); extras as for the big backbones.
    At 128 px: (16, 8) then (4, 2, 1) for TINY_SHAPES.
    """

    def __init__(self, cfg: SSDConfig, width: int = 32) -> None:
        super().__init__()
        if cfg.num_levels < 2:
            raise ValueError(f"backbone 'tiny' needs at least 2 feature-map levels, got {cfg.num_levels}")
        c1, c2 = cfg.in_channels[:2]
        self.stride8 = nn.Sequential(
            *_conv(3, width // 2, 3, 2, 1, True),  # S/2
            *_conv(width // 2, width, 3, 2, 1, True),  # S/4
            *_conv(width, width, 3, 1, 1, True),
            *_conv(width, c1, 3, 2, 1, True),  # S/8
            *_conv(c1, c1, 3, 1, 1, True),
            *_conv(c1, c1, 3, 1, 1, True),
        )
        self.stride16 = nn.Sequential(
            *_conv(c1, c2, 3, 2, 1, True),  # S/16
            *_conv(c2, c2, 3, 1, 1, True),
        )
        self.extras = build_extras(cfg, batch_norm=True)
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module.bias is None:  # convs followed by BatchNorm
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> list[Tensor]:
        """x (Tensor[B, 3, S, S]) normalized image -> L feature maps."""
        x = self.stride8(x)
        sources = [x]
        x = self.stride16(x)
        sources.append(x)
        for block in self.extras:
            x = block(x)
            sources.append(x)
        return sources


def build_backbone(cfg: SSDConfig, pretrained: bool = False) -> nn.Module:
    """The backbone named by ``cfg.backbone``, with its extra layers, random or ImageNet weights.

    ``pretrained=True`` loads torchvision's ImageNet weights from :func:`pretrained_weights_path`, downloading
    them there (hash-checked) when the file is missing; offline that is an OSError naming the URL and the path.
    "tiny" has no weights.

    Introduced in: 03_heads.ipynb
    """
    if cfg.backbone == "vgg16":
        return VGG16Backbone(cfg, pretrained=pretrained)
    if cfg.backbone == "resnet50":
        return ResNet50Backbone(cfg, pretrained=pretrained)
    if cfg.backbone == "tiny":
        if pretrained:
            raise ValueError("backbone 'tiny' has no pretrained weights; use pretrained_backbone=False")
        return TinyBackbone(cfg)
    raise ValueError(f"unknown backbone {cfg.backbone!r}; expected 'vgg16', 'resnet50' or 'tiny'")
