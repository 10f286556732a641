"""Helpers and widgets of 03_heads.ipynb: receptive fields, the source table, and a feature-map explorer.

The plain functions (``receptive_field``, ``source_table``, ``feature_map_view`` …) hold all the logic and are
tested with pytest; ``feature_map_explorer`` only wires sliders to ``feature_map_view``.

Introduced in: 03_heads.ipynb
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..config import SSDConfig
from .common import figure_area, pairs_to_html, redraw, slider_tooltip, widget_box

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "layer_geometry",
    "receptive_field",
    "source_stages",
    "source_table",
    "format_source_table",
    "parameter_counts",
    "source_features",
    "feature_map_view",
    "feature_map_explorer",
]

# (kernel, stride, dilation) of one layer that moves or widens the view: a convolution or a pooling.
Geometry = tuple[int, int, int]


def _first(value: int | tuple[int, ...]) -> int:
    return int(value[0]) if isinstance(value, tuple) else int(value)


def layer_geometry(module: nn.Module) -> list[tuple[str, int, int, int]]:
    """(name, kernel, stride, dilation) of every conv and pooling layer of ``module``, in forward order.

    Walks the children in registration order (true for torchvision's VGG and ResNet and for this package's
    backbones). A residual block (a module with a ``downsample`` attribute, as torchvision's Bottleneck) is
    walked along its main path only: its 1x1 shortcut sees less of the image. Layers that act per position
    (ReLU, BatchNorm, L2Norm) leave the geometry unchanged and are skipped.

    Introduced in: 03_heads.ipynb
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    found: list[tuple[str, int, int, int]] = []

    def walk(mod: nn.Module, prefix: str) -> None:
        if isinstance(mod, nn.Conv2d):
            found.append((prefix, _first(mod.kernel_size), _first(mod.stride), _first(mod.dilation)))
        elif isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
            stride = mod.stride if mod.stride is not None else mod.kernel_size
            dilation = getattr(mod, "dilation", 1)
            found.append((prefix, _first(mod.kernel_size), _first(stride), _first(dilation)))
        else:
            for name, child in mod.named_children():
                if name == "downsample" and hasattr(mod, "downsample"):
                    continue  # residual shortcut, parallel to the main path
                walk(child, f"{prefix}.{name}" if prefix else name)

    walk(module, "")
    return found


def receptive_field(layers: Sequence[Geometry], start: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Receptive field and jump (input pixels between neighbouring outputs) after a stack of layers.

    ``layers`` holds (kernel, stride, dilation) per layer, first layer first. Starting from ``start =
    (rf, jump)`` (one input pixel: (1, 1)) each layer widens the field by ``dilation * (kernel - 1)``
    of its input cells, each ``jump`` pixels apart, then multiplies the jump by its stride::

        rf  <- rf + dilation * (kernel - 1) * jump
        jump <- jump * stride

    Returns ``(rf, jump)`` in input pixels. This is the theoretical receptive field; the pixels that
    matter in practice concentrate near its centre.

    Introduced in: 03_heads.ipynb
    """
    rf, jump = start
    for index, layer in enumerate(layers):
        if len(layer) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in layer):
            raise ValueError(f"layers[{index}] must be (kernel, stride, dilation), positive ints, got {layer!r}")
        kernel, stride, dilation = layer
        rf += dilation * (kernel - 1) * jump
        jump *= stride
    return rf, jump


def source_stages(backbone: nn.Module) -> list[tuple[str, nn.Module]]:
    """The part of ``backbone`` that computes each source, in source order.

    Works for this package's backbones: every child except :class:`~ssd_tutorial.backbones.L2Norm`
    computes one source (``conv4_3``, ``conv7`` for VGG16; ``layer2``, ``layer3`` for ResNet-50), and
    each block of ``extras`` one more.

    Introduced in: 03_heads.ipynb
    """
    from ..backbones import L2Norm

    stages: list[tuple[str, nn.Module]] = []
    for name, child in backbone.named_children():
        if isinstance(child, L2Norm):
            continue
        if isinstance(child, nn.ModuleList):
            stages += [(f"{name}[{i}]", block) for i, block in enumerate(child)]
        else:
            stages.append((name, child))
    if not stages:
        raise TypeError(f"{type(backbone).__name__} has no stages (children) to walk")
    return stages


def source_table(cfg: SSDConfig, image_size: int | None = None) -> list[dict[str, Any]]:
    """One row per source of ``cfg``'s backbone: its shape, stride, step and receptive field.

    Shapes come from a dry run on the meta device (:func:`~ssd_tutorial.model.source_feature_shapes`, the
    trick of :func:`~ssd_tutorial.model.adapt_config`); the layers are read from a backbone built there too.

    Returns rows ``{"level", "source", "channels", "size", "jump", "step", "receptive_field",
    "box_size"}``: ``jump`` is the product of the strides (input pixels between neighbouring cells),
    ``step`` is ``S / size`` (the anchor step), ``box_size`` is ``s_k`` scaled to ``S``.

    Introduced in: 03_heads.ipynb
    """
    from ..backbones import build_backbone
    from ..model import source_feature_shapes

    shapes = source_feature_shapes(cfg, image_size)  # checks cfg and image_size
    S = cfg.image_size if image_size is None else image_size
    with torch.device("meta"):
        backbone = build_backbone(cfg)
    rows = []
    state = (1, 1)
    for level, ((name, stage), (channels, _, size)) in enumerate(zip(source_stages(backbone), shapes)):
        state = receptive_field([g[1:] for g in layer_geometry(stage)], start=state)
        rows.append({
            "level": level,
            "source": name,
            "channels": channels,
            "size": size,
            "jump": state[1],
            "step": S / size,
            "receptive_field": state[0],
            "box_size": cfg.box_sizes[level] * S / cfg.image_size,
        })  # fmt: skip
    return rows


def format_source_table(rows: Sequence[dict[str, Any]]) -> str:
    """:func:`source_table` rows as fixed-width text.

    Introduced in: 03_heads.ipynb
    """
    lines = [f"{'level':>5} {'source':<10} {'shape [C, H, W]':>16} {'jump':>5} {'step':>7} {'RF px':>6} {'s_k px':>7}"]
    for row in rows:
        shape = f"[{row['channels']}, {row['size']}, {row['size']}]"
        lines.append(f"{row['level']:>5} {row['source']:<10} {shape:>16} {row['jump']:>5} {row['step']:>7.4g}"
                     f" {row['receptive_field']:>6} {row['box_size']:>7.2f}")  # fmt: skip
    return "\n".join(lines)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Number of parameters of each part of an SSD: every backbone stage (and L2Norm), the loc and cls heads.

    Works on a model built on the meta device (counts need shapes only).

    Introduced in: 03_heads.ipynb
    """
    for name in ("backbone", "loc_heads", "cls_heads"):
        if not hasattr(model, name):
            raise TypeError(f"model must be an SSD (with backbone, loc_heads, cls_heads), got {type(model).__name__}")
    counts: dict[str, int] = {}
    for name, child in model.backbone.named_children():
        parts = [(f"{name}[{i}]", block) for i, block in enumerate(child)] if isinstance(child, nn.ModuleList) \
            else [(name, child)]  # fmt: skip
        for part_name, part in parts:
            counts[f"backbone.{part_name}"] = sum(p.numel() for p in part.parameters())
    counts["loc_heads"] = sum(p.numel() for p in model.loc_heads.parameters())
    counts["cls_heads"] = sum(p.numel() for p in model.cls_heads.parameters())
    return counts


def source_features(model: nn.Module, image: Tensor) -> list[Tensor]:
    """The L source feature maps of ``model`` for one image, each Tensor[C_k, H_k, W_k] (no gradient).

    ``image`` is Tensor[3, S, S] float in [0, 1]; it is normalized as ``model.forward_heads`` does.

    Introduced in: 03_heads.ipynb
    """
    S = model.cfg.image_size
    if not isinstance(image, Tensor) or list(image.shape) != [3, S, S] or not image.is_floating_point():
        got = f"{image.dtype} {list(image.shape)}" if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a float Tensor[3, {S}, {S}] in [0, 1], got {got}")
    with torch.no_grad():
        x = image[None].to(device=model.image_mean.device, dtype=model.image_mean.dtype)  # [1, 3, S, S]
        x = (x - model.image_mean) / model.image_std
        features = model.backbone(x)
    return [f[0] for f in features]  # L x [C, H, W]


def _top_channels(feature: Tensor, count: int) -> list[int]:
    strength = feature.abs().mean(dim=(1, 2))  # [C]
    order = torch.sort(strength, descending=True, stable=True).indices  # ties keep channel order
    return order[:count].tolist()


def feature_map_view(features: Sequence[Tensor], image: Tensor, level: int,
                     num_channels: int = 3) -> tuple[Figure, list[tuple[str, str]]]:  # fmt: skip
    """The activations of one source for one image, drawn over the image in its pixel coordinates.

    Panels: the image with the level's grid, the mean |activation| over channels, then the ``num_channels``
    channels with the largest mean |activation|. Every map is stretched over the whole image (cell (i, j)
    covers pixels ``[j*step, (j+1)*step) x [i*step, (i+1)*step)``), origin top-left.

    Args:
        features: L maps Tensor[C_k, H_k, W_k] (see :func:`source_features`).
        image: Tensor[3, S, S] float in [0, 1].
        level: which source, 0 … L-1.
        num_channels: how many single channels to draw, 1 … C_k.

    Returns:
        (Figure, rows): rows are (quantity, value) strings for a small table.

    Raises ValueError for a level or a channel count out of range.

    Introduced in: 03_heads.ipynb
    """
    from ..viz import plot_feature_maps

    L = len(features)
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < L:
        raise ValueError(f"level must be an int in [0, {L - 1}], got {level!r}")
    feature = features[level].detach().float().cpu()
    if feature.ndim != 3:
        raise ValueError(f"features[{level}] must be [C, H, W], got {list(feature.shape)}")
    C, H, W = feature.shape
    if isinstance(num_channels, bool) or not isinstance(num_channels, int) or not 1 <= num_channels <= min(C, 8):
        raise ValueError(f"num_channels must be an int in [1, {min(C, 8)}], got {num_channels!r}")
    S = int(image.shape[-1])
    step = S / W
    mean_abs = feature.abs().mean(dim=0)  # [H, W]
    channels = _top_channels(feature, num_channels)

    fig = plot_feature_maps(image, feature, channels, title=f"Source {level}: {C} channels x {H}x{W} cells",
                            grid_title=f"image, level {level} grid {H}x{W}")

    rows = [
        ("level", str(level)),
        ("shape [C, H, W]", f"[{C}, {H}, {W}]"),
        ("step (px per cell)", f"{step:g}"),
        ("mean |activation|", f"{mean_abs.mean().item():.4f}"),
        ("max activation", f"{feature.max().item():.4f}"),
        ("zeros (after ReLU)", f"{(feature == 0).float().mean().item():.1%}"),
        ("strongest channels", ", ".join(str(c) for c in channels)),
    ]
    return fig, rows


def feature_map_explorer(model: nn.Module, images: Tensor | Sequence[Tensor], num_channels: int = 3) -> Any:
    """A widget: sliders for the image, the level and the number of channels, drawing :func:`feature_map_view`.

    ``images`` is Tensor[N, 3, S, S] (or a list of N Tensor[3, S, S]). Features are computed once per image.
    Impossible settings show a message inside the widget. CSS classes: ``ssd-feature-map-explorer`` (the
    widget), ``ssd-feature-map-output`` (figure and table) and ``ssd-feature-map-table`` (the table).

    Introduced in: 03_heads.ipynb
    """
    import ipywidgets as widgets

    images = list(images)
    if not images:
        raise ValueError("images must hold at least one Tensor[3, S, S]")
    num_levels = model.cfg.num_levels
    cache: dict[int, list[Tensor]] = {}
    image_slider = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image",
                                     continuous_update=False, tooltip=slider_tooltip("one image"))  # fmt: skip
    level_slider = widgets.IntSlider(value=0, min=0, max=num_levels - 1, description="level",
                                     continuous_update=False, tooltip=slider_tooltip("one level"))  # fmt: skip
    channel_slider = widgets.IntSlider(value=num_channels, min=1, max=8, description="channels",
                                       continuous_update=False, tooltip=slider_tooltip("one channel"))  # fmt: skip
    output = figure_area("ssd-feature-map-output", table_beside=False)
    state: dict[str, Any] = {"figure": None, "rows": None, "error": None}

    def render(_: Any = None) -> None:
        def make() -> tuple[Figure, list[tuple[str, str]]]:
            index = image_slider.value
            if index not in cache:
                cache[index] = source_features(model, images[index])
            return feature_map_view(cache[index], images[index], level_slider.value, channel_slider.value)

        redraw(output, state, make, lambda rows: pairs_to_html(rows, "ssd-feature-map-table"))

    for slider in (image_slider, level_slider, channel_slider):
        slider.observe(render, names="value")
    box = widget_box([widgets.HBox([image_slider, level_slider, channel_slider]), output],
                     title="Feature-map explorer", css_class="ssd-feature-map-explorer")  # fmt: skip
    box.controls, box.state, box.output = {"image": image_slider, "level": level_slider,
                                           "channels": channel_slider}, state, output  # fmt: skip
    render()
    return box
