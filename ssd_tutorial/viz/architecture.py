"""The whole SSD on one picture: image → backbone → sources → per-anchor predictions → decode → NMS.

Notation (used by every notebook): level **k** (the paper's s_k, eq. 4, counts k = 1 … m; the package counts
levels from 0), cell row **i** (over y) and column **j** (over x), shape **d** = 0 … n_k − 1 at one location,
n_k anchors per location, f_k × f_k cells on level k, so f_k²·n_k anchors on level k.

Introduced in: 01_constants.ipynb
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import SSDConfig
from .images import new_figure, palette_color

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_architecture", "architecture_rows"]

_BACKBONE_NAMES = {
    "vgg16": ("VGG16", ("conv4_3 + L2Norm", "conv7")),
    "resnet50": ("ResNet-50", ("layer2 + L2Norm", "layer3")),
    "tiny": ("tiny CNN", ("stride-8 stage", "stride-16 stage")),
}


def architecture_rows(cfg: SSDConfig) -> list[dict]:
    """One row per source of ``cfg``: ``{"k", "name", "channels", "size", "n_k", "anchors"}``.

    Shapes come from a dry run of the backbone on the meta device (:func:`~ssd_tutorial.model.source_feature_shapes`),
    so they are the network's real shapes, not only the config's claims.

    Introduced in: 01_constants.ipynb
    """
    from ..model import source_feature_shapes

    if not isinstance(cfg, SSDConfig):
        raise TypeError(f"cfg must be an SSDConfig, got {type(cfg).__name__}")
    first_two = _BACKBONE_NAMES.get(cfg.backbone, (cfg.backbone, ("source 0", "source 1")))[1]
    rows = []
    for k, (channels, height, width) in enumerate(source_feature_shapes(cfg)):
        name = first_two[k] if k < 2 else f"extras[{k - 2}]"
        n_k = cfg.anchors_per_location[k]
        rows.append({"k": k, "name": name, "channels": channels, "size": (height, width), "n_k": n_k,
                     "anchors": height * width * n_k})  # fmt: skip
    return rows


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, color: object, fontsize: float = 8) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01,rounding_size=0.02", facecolor=color,
                                edgecolor="black", linewidth=1))  # fmt: skip
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "black", "linewidth": 1})


def plot_architecture(cfg: SSDConfig) -> Figure:
    """SSD for ``cfg`` as a block diagram with the preset's real numbers.

    image [3, S, S] → backbone → the L sources [C_k, f_k, f_k] (each with its n_k and f_k²·n_k anchors) → per
    anchor C class scores and 4 offsets (two 3×3 convs per source) → ``loc_preds [A, 4]``, ``cls_logits [A, C]``
    → decode against the anchors → per-class NMS → at most ``cfg.max_detections`` detections.

    Introduced in: 01_constants.ipynb
    """
    from matplotlib.colors import to_rgb

    rows = architecture_rows(cfg)
    L = len(rows)
    height = max(3.2, 0.5 * L + 1.2)
    fig = new_figure((12.5, height))
    ax = fig.add_subplot(1, 1, 1)
    ax.set(xlim=(0, 12.5), ylim=(0, height))
    ax.axis("off")
    S, C, A = cfg.image_size, cfg.num_classes, cfg.num_anchors
    middle = height / 2
    backbone_name = _BACKBONE_NAMES.get(cfg.backbone, (cfg.backbone,))[0]

    _box(ax, 0.1, middle - 0.45, 1.2, 0.9, f"image\n[3, {S}, {S}]\nRGB in [0, 1]", "white")
    _box(ax, 1.7, middle - 0.7, 1.4, 1.4, f"backbone\n{backbone_name}\n+ extra layers", "lightgrey")
    _arrow(ax, (1.3, middle), (1.7, middle))

    row_h = (height - 0.9) / L
    top = height - 0.55
    for row in rows:
        y = top - row["k"] * row_h - row_h * 0.8
        f_h, f_w = row["size"]
        text = (f"k={row['k']} {row['name']}: [{row['channels']}, {f_h}, {f_w}]   "
                f"n_k={row['n_k']} → {row['anchors']} anchors")  # fmt: skip
        _box(ax, 3.6, y, 4.1, row_h * 0.75, text, (*to_rgb(palette_color(row["k"])), 0.3), fontsize=7.5)
        _arrow(ax, (3.1, middle), (3.6, y + row_h * 0.37))
        _arrow(ax, (7.7, y + row_h * 0.37), (8.1, middle))
    ax.text(5.65, height - 0.25, f"{L} sources (feature maps)", ha="center", fontsize=9, weight="bold")

    _box(ax, 8.1, middle - 0.75, 1.5, 1.5, f"per anchor:\n{C} class scores\n+ 4 offsets\n(3×3 convs)\n"
         f"cls [{A}, {C}]\nloc [{A}, 4]", "lavender", fontsize=7.5)  # fmt: skip
    _box(ax, 9.9, middle - 0.45, 1.05, 0.9, f"decode\nagainst\n{A}\nanchors", "honeydew", fontsize=7.5)
    _arrow(ax, (9.6, middle), (9.9, middle))
    _box(ax, 11.2, middle - 0.55, 1.2, 1.1, f"NMS per class\nIoU > {cfg.nms_threshold:g}\n→ ≤ {cfg.max_detections}"
         "\ndetections", "mistyrose", fontsize=7.5)  # fmt: skip
    _arrow(ax, (10.95, middle), (11.2, middle))
    ax.set_title(f"SSD for {cfg.name}: {A} anchors, C = {C} classes (background included)", fontsize=10)
    return fig

