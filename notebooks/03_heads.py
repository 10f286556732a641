# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     notebook_metadata_filter: ssd_tutorial,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ssd_tutorial)
#     language: python
#     name: python3
#   ssd_tutorial:
#     ci_parameters:
#       NUM_IMAGES: 2
# ---

# %% [markdown]
# # 03 — Heads: from feature maps to one prediction per anchor
#
# Notebook 02 tiled 24 564 anchors over a 512×512 image. Now we build the network that makes a
# prediction for each of them: a backbone that turns the image into 7 feature maps (the *sources*), and
# two small convolutions per source (the *heads*) that predict, at every cell, 4 box offsets and C class
# scores for each anchor of that cell.
#
# **After this notebook you will be able to**
# - name the layers of VGG16 (and of ResNet-50) that SSD reads its 7 sources from, and say why conv4_3
#   is followed by an L2Norm;
# - get every source's shape without running the network (a dry run on PyTorch's *meta* device);
# - compute the stride and the receptive field of each source by walking its layers, for SSD512 and SSD300;
# - count the parameters of each part of the model;
# - say how many channels each head outputs (anchors × 4 and anchors × C), and turn the head maps into
#   `[B, A, 4]` and `[B, A, C]` in exactly the order of the anchors — and check that order yourself;
# - look at the activations of each source for a shapes image.

# %% [markdown]
# ## Parameters
#
# `NUM_IMAGES` shapes images are loaded for the feature-map explorer at the end.

# %% tags=["colab"]
# Google Colab only: fetch the project and install its package. Does nothing anywhere else (JupyterLab, Binder, CI).
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPO_URL, CHECKOUT = "https://github.com/OWNER/ssd_tutorial", "/content/ssd_tutorial"
    if not os.path.isdir(CHECKOUT):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, CHECKOUT], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", CHECKOUT], check=True)
    sys.path.insert(0, CHECKOUT)  # importable now, without restarting the runtime
    from google.colab import output

    output.enable_custom_widget_manager()  # lets ipywidgets 8 sliders draw in Colab

# %% tags=["parameters"]
NUM_IMAGES = 4  # images to explore in the feature-map widget
SEED = 0

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch
from torch import nn

import ssd_tutorial as ssd
from ssd_tutorial import exercises, viz
from ssd_tutorial.backbones import L2Norm, build_backbone
from ssd_tutorial.widgets.nb03 import (feature_map_explorer, feature_map_view, format_source_table,
                                       layer_geometry, parameter_counts, receptive_field, source_features,
                                       source_table)

torch.manual_seed(SEED)
cfg = ssd.SSD512_VOC

# %% [markdown]
# ## The backbone, split the way the article splits it
#
# SSD does not need a new feature extractor: it borrows an image classifier and reads feature maps at
# several depths. The article (like the SSD paper) uses VGG16:
#
# | level | layers | stride, channels |
# |---|---|---|
# | 0 | conv1_1 … conv4_3 (+ ReLU), then **L2Norm** | 8, 512 |
# | 1 | pool4, conv5_1 … conv5_3, **pool5 3×3/1**, **conv6 3×3 dilation 6**, **conv7 1×1** | 16, 1024 |
# | 2 … 6 | *extra layers*: 1×1 conv (to 256 or 128 ch), then 3×3 stride 2 (last: 4×4 stride 1) | 32 … 256, 512/256 |
#
# VGG16's fully connected layers fc6 and fc7 become the convolutions conv6 and conv7; pool5 keeps the
# resolution (stride 1) and conv6 uses a dilation of 6 to see as far as the original pooled layer did.
# `ssd.backbones.build_backbone(cfg)` builds this split. Let's list the layers that change the geometry —
# convolutions and poolings — as `(name, kernel, stride, dilation)`; ReLUs and normalizations act on each
# position alone and change nothing about where a cell looks.
#
# The model is built inside `torch.device("meta")`: parameters get shapes but no memory and no values,
# so even VGG16's 20 million weights cost nothing to build.

# %% tags=["nbval-check-output"]
with torch.device("meta"):
    vgg = build_backbone(cfg)

for name, module in vgg.named_children():
    if name == "extras":
        continue
    print(f"{name}: {type(module).__name__}")
    for layer, kernel, stride, dilation in layer_geometry(module):
        print(f"    {layer:>4}  kernel {kernel}  stride {stride}  dilation {dilation}")

# %% [markdown]
# In `conv4_3` (torchvision's `vgg16().features[:23]`) you can read conv1_1, conv1_2, pool1, conv2_1, …,
# conv4_3; `l2norm` has no geometry at all; `conv7` starts with pool4 (index 0) and ends with the dilated
# conv6 and the 1×1 conv7. The extra layers follow:

# %% tags=["nbval-check-output"]
for index, block in enumerate(vgg.extras):
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    print(f"extras[{index}]: " + "  ->  ".join(
        f"{c.in_channels}->{c.out_channels} {c.kernel_size[0]}x{c.kernel_size[0]}/{c.stride[0]} pad {c.padding[0]}"
        for c in convs))

# %% [markdown]
# ## Shapes from a dry run
#
# The article reads the feature-map sizes off a dry run: push a dummy image through the backbone and
# look at what comes out. On the meta device this computes shapes only — no arithmetic is done.

# %% tags=["nbval-check-output"]
with torch.device("meta"), torch.no_grad():
    sources = vgg(torch.empty(1, 3, cfg.image_size, cfg.image_size))
for level, feature in enumerate(sources):
    print(f"source {level}: {list(feature.shape)}")
assert [f.shape[1] for f in sources] == list(cfg.in_channels)
assert [f.shape[-1] for f in sources] == list(cfg.feature_map_sizes)

# %% [markdown]
# These are the `in_channels` and `feature_map_sizes` of notebook 01: (512, 64×64), (1024, 32×32),
# (512, 16×16), then 256 channels at 8, 4, 2 and 1.
#
# ## Why conv4_3 gets an L2Norm
#
# conv4_3 sits early in the network and its activations are much larger than those of the deeper sources.
# With one learning rate for all heads, the large ones would dominate. The SSD paper (section 3.1,
# after ParseNet) rescales each position's 512-channel vector to unit length, then multiplies channel c by
# a learnable scale $\gamma_c$, initialised to 20:
#
# $$\hat{x}_{:,i,j} = \gamma \odot \frac{x_{:,i,j}}{\lVert x_{:,i,j} \rVert_2}$$
#
# By hand, then against the package's `L2Norm`:

# %% tags=["nbval-check-output"]
x = torch.randn(1, 512, 4, 4, generator=torch.Generator().manual_seed(0)) * 30  # [B, C, H, W], large values
mine = x / x.norm(dim=1, keepdim=True) * 20  # unit norm over channels, times gamma = 20
assert torch.allclose(mine, L2Norm(512, scale=20.0)(x), atol=1e-5)
before, after = x[0, :, 0, 0].norm(), mine[0, :, 0, 0].norm()
print(f"norm of the channel vector at (0, 0): before {before:.1f}, after {after:.1f}")

# %% [markdown]
# ## Stride and receptive field, by walking the layers
#
# Two numbers describe where a cell of a source "looks" in the input image:
#
# - the **jump** (the product of the strides so far): how many input pixels apart two neighbouring cells are;
# - the **receptive field** (RF): the width of the input region that can influence one cell.
#
# Both follow from the layers alone. Start with one pixel, `rf = 1, jump = 1`; a layer with kernel $k$,
# stride $s$ and dilation $d$ covers $d(k-1)+1$ cells of its input, each `jump` pixels apart:
#
# $$rf \leftarrow rf + d\,(k-1)\cdot jump, \qquad jump \leftarrow jump \cdot s$$
#
# Walk conv1_1 … conv4_3 by hand:

# %% tags=["nbval-check-output"]
rf, jump = 1, 1
for layer, kernel, stride, dilation in layer_geometry(vgg.conv4_3):
    rf += dilation * (kernel - 1) * jump
    jump *= stride
    print(f"layer {layer:>2}: kernel {kernel} stride {stride} -> rf {rf:>3} px, jump {jump}")
assert (rf, jump) == receptive_field([g[1:] for g in layer_geometry(vgg.conv4_3)]) == (92, 8)

# %% [markdown]
# A conv4_3 cell sees a 92×92 pixel window and its neighbours are 8 pixels apart: the anchor step of
# level 0. `source_table` does this walk for every source (carrying `rf, jump` from one source to the
# next) and adds the shapes from the dry run. `step` is the anchor step `S / size`; `s_k` is the level's
# box size.

# %% tags=["nbval-check-output"]
tables = {
    "SSD512, VGG16": source_table(ssd.SSD512_VOC),
    "SSD512, ResNet-50": source_table(ssd.SSD512_VOC.replace(backbone="resnet50")),
    "SSD300, VGG16": source_table(ssd.SSD300_VOC),
    "SSD300, ResNet-50": source_table(ssd.SSD300_VOC.replace(backbone="resnet50")),
}
for title, rows in tables.items():
    print(title)
    print(format_source_table(rows))
    print()

# %% [markdown]
# What the tables say:
#
# - **The dilated conv6 is where VGG's view widens most**: 228 → 420 pixels in one layer, because its
#   3 taps are 6 cells (of 16 pixels) apart. That is why the fc6 → conv6 conversion needs the dilation.
# - **ResNet-50** (the article's alternative): everything up to `layer2` gives source 1 (512 channels,
#   stride 8) and `layer3` source 2 (1024 channels, stride 16) — the same channels and strides as VGG,
#   so the extra layers and heads do not change at all. Its receptive fields grow more slowly here
#   (267 px at layer3 against 420 at conv7).
# - **jump and step part ways at the end.** The anchor step is `S / size`, so anchors tile the whole image;
#   the network's jump is the product of its strides. SSD512's last 4×4 convolution (2×2 → 1×1) and
#   SSD300's unpadded 3×3 convolutions (5 → 3 → 1) have stride 1: the jump stays at 256 or 64 while the
#   map shrinks.
# - **The receptive fields are much larger than the anchors** (92 px for 36 px boxes on conv4_3) and
#   (with VGG16) exceed the image from level 3 on. This is the *theoretical* field; the pixels that actually matter
#   concentrate near its centre, and a cell needs context around an object to recognise it.
#
# The same comparison as a picture (log scale):

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
for title, rows in tables.items():
    if title.startswith("SSD512"):
        ax.plot([r["receptive_field"] for r in rows], marker="o", label=f"receptive field, {title}")
rows = tables["SSD512, VGG16"]
ax.plot([r["box_size"] for r in rows], marker="s", color="black", label="box size s_k")
ax.plot([r["step"] for r in rows], marker="^", color="gray", label="anchor step S / size")
ax.axhline(cfg.image_size, color="gray", linestyle="--", linewidth=1, label="image side (512)")
ax.set_yscale("log")
ax.set_xlabel("level k (source)")
ax.set_ylabel("pixels")
ax.set_title("SSD512: receptive field vs box size and step")
ax.legend(fontsize=8)
plt.show()


# %% [markdown]
# ## Exercise: a receptive-field function
#
# Write `receptive_field_px(layers)`: given a list of `(kernel, stride, dilation)`, first layer first,
# return the receptive field in input pixels (an int). The check runs it on small stacks and on VGG16 up
# to conv4_3 and conv7. `exercises.hint("03_receptive_field")` helps.

# %% tags=["nbval-check-output"]
def receptive_field_px(layers):
    ### BEGIN SOLUTION
    rf, jump = 1, 1
    for kernel, stride, dilation in layers:
        rf += dilation * (kernel - 1) * jump
        jump *= stride
    return rf
    ### END SOLUTION


exercises.check("03_receptive_field", receptive_field_px)

# %% [markdown]
# ## Parameters per part
#
# Where do the weights of an SSD live? Build the whole model on the meta device and count.

# %% tags=["nbval-check-output"]
with torch.device("meta"):
    models = {"VGG16": ssd.SSD(ssd.SSD512_VOC), "ResNet-50": ssd.SSD(ssd.SSD512_VOC.replace(backbone="resnet50"))}
counts = {name: parameter_counts(model) for name, model in models.items()}
for name, part_counts in counts.items():
    total = sum(part_counts.values())
    print(f"SSD512 with {name}: {total / 1e6:.2f} M parameters")
    for part, n in part_counts.items():
        print(f"    {part:<20} {n / 1e6:>6.2f} M  ({n / total:>5.1%})")
    assert total == sum(p.numel() for p in models[name].parameters())


# %%
def group(part):
    # one colour per kind of part, the same for both backbones
    if part in ("backbone.conv4_3", "backbone.l2norm", "backbone.layer2"):
        return "stage of source 0 (conv4_3 + L2Norm / layer2)"
    if part in ("backbone.conv7", "backbone.layer3"):
        return "stage of source 1 (conv7 / layer3)"
    return "extra layers" if part.startswith("backbone.extras") else part.replace("_", " ")


fig, ax = plt.subplots(figsize=(8, 2.8))
for row, part_counts in enumerate(counts.values()):
    grouped = {}
    for part, n in part_counts.items():
        grouped[group(part)] = grouped.get(group(part), 0) + n / 1e6
    left = 0.0
    for index, (label, millions) in enumerate(grouped.items()):
        ax.barh(row, millions, left=left, color=plt.cm.tab10(index), edgecolor="white",
                label=label if row == 0 else None)
        left += millions
ax.set_yticks(range(len(counts)), [f"SSD512 + {name}" for name in counts])
ax.set_xlabel("parameters (millions)")
ax.set_title("Where the parameters are")
ax.legend(ncol=2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3))
plt.show()

# %% [markdown]
# The backbone holds most of the weights: in VGG16, the `conv7` stage alone (conv5_x, conv6 and conv7)
# holds almost half of the model. The heads are small, but the classification heads are about 5 times the
# localisation heads: 21 numbers per anchor instead of 4 (21 / 4 = 5.25). (ResNet-50 lost its `layer4` and
# classifier here; only stem … layer3 is used.)
#
# ## The heads: anchors × 4 and anchors × C channels
#
# On every source, SSD puts two 3×3 convolutions (padding 1, so the map keeps its size):
#
# - the **localisation head** outputs, at each cell, 4 numbers for each of the k anchors of that cell:
#   `k × 4` channels, the offsets (tx, ty, tw, th) of notebook 04;
# - the **classification head** outputs C scores for each anchor: `k × C` channels (C = 21 includes the
#   background).
#
# The package's `SSD` keeps them in `model.loc_heads` and `model.cls_heads`, one conv per level.

# %% tags=["nbval-check-output"]
model = models["VGG16"]
C = cfg.num_classes
print("level  in ch  k  loc out (k*4)  cls out (k*C)")
for level, (loc_head, cls_head) in enumerate(zip(model.loc_heads, model.cls_heads)):
    k = cfg.anchors_per_location[level]
    print(f"{level:>5} {loc_head.in_channels:>6} {k:>2} {loc_head.out_channels:>14} {cls_head.out_channels:>14}")
    assert (loc_head.out_channels, cls_head.out_channels) == (k * 4, k * C)
    assert loc_head.kernel_size == cls_head.kernel_size == (3, 3) and loc_head.padding == (1, 1)

# %% [markdown]
# ## Exercise: head channels
#
# Without looking at the table above: give the output channels of the localisation and the classification
# heads of SSD512_VOC at each level, as a pair of lists `(loc_channels, cls_channels)`, computed from `cfg`.

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
loc_channels = [4 * k for k in cfg.anchors_per_location]
cls_channels = [cfg.num_classes * k for k in cfg.anchors_per_location]
### END SOLUTION
exercises.check("03_head_channels", (loc_channels, cls_channels))


# %% [markdown]
# ## From head maps to one row per anchor
#
# A localisation head returns a map `[B, k·4, H, W]`. Channel `kk·4 + c` at cell (i, j) is value c of
# anchor kk of that cell. The loss and the decoder want one row per anchor, `[B, A, 4]`, **in the order of
# `default_boxes`**: level, then row i, then column j, then anchor kk. So for each level:
#
# 1. `permute(0, 2, 3, 1)` moves the channels last: `[B, H, W, k·4]` — now the k·4 values of a cell are
#    next to each other in memory, cells in row-major order;
# 2. `reshape(B, -1, 4)` cuts them into rows of 4: `[B, H·W·k, 4]`, anchors in (i, j, kk) order;
# 3. `torch.cat(..., dim=1)` over the levels: `[B, A, 4]`.
#
# The class maps go the same way with C instead of 4. To *see* that the order is right, make fake head
# maps whose values say where they come from: at every cell, the 4 values of anchor kk are
# `(level, i, j, kk)`.

# %%
def coded_head_map(level, size, k, n, batch=1):
    # [B, k*n, H, W] whose channel kk*n + (0, 1, 2, 3) holds (level, row, col, kk); other channels 0
    rows = torch.arange(size).view(1, 1, size, 1).expand(batch, k, size, size)  # [B, k, H, W]
    cols = torch.arange(size).view(1, 1, 1, size).expand(batch, k, size, size)
    kks = torch.arange(k).view(1, k, 1, 1).expand(batch, k, size, size)
    codes = torch.stack([torch.full_like(rows, level), rows, cols, kks], dim=2).float()  # [B, k, 4, H, W]
    out = torch.zeros(batch, k, n, size, size)
    out[:, :, :4] = codes
    return out.reshape(batch, k * n, size, size)  # [B, k*n, H, W]


head_maps = [coded_head_map(level, size, k, 4)
             for level, (size, k) in enumerate(zip(cfg.feature_map_sizes, cfg.anchors_per_location))]
flat = [m.permute(0, 2, 3, 1).reshape(1, -1, 4) for m in head_maps]  # each [B, H*W*k, 4]
codes = torch.cat(flat, dim=1)  # [B, A, 4]
print(list(codes.shape))
print("first rows (level, row, col, k):", codes[0, :6].int().tolist())


# %% [markdown]
# Row a now says which (level, i, j, kk) it came from. Turn each row into the anchor it should describe —
# centre `((j + 0.5)·step, (i + 0.5)·step)`, size `level_box_shapes(cfg, level)[kk]` — and compare with
# `default_boxes(cfg)`, the anchors of notebook 02:

# %%
def anchors_from_codes(codes, cfg):
    # codes [A, 4] of (level, row, col, kk) -> the anchor each row should be, [A, 4] cxcywh px
    level, row, col, kk = codes.long().unbind(-1)
    steps = torch.tensor(cfg.steps, dtype=torch.float64)[level]
    shapes = [torch.tensor(ssd.level_box_shapes(cfg, lv), dtype=torch.float64) for lv in range(cfg.num_levels)]
    wh = torch.stack([shapes[lv][k] for lv, k in zip(level.tolist(), kk.tolist())])  # [A, 2]
    centres = torch.stack([(col + 0.5) * steps, (row + 0.5) * steps], dim=-1)  # [A, 2]
    return torch.cat([centres, wh], dim=-1).float()


anchors = ssd.default_boxes(cfg)
assert torch.equal(anchors_from_codes(codes[0], cfg), anchors)
print(f"all {len(anchors)} rows line up with default_boxes")

# %% [markdown]
# And the tempting shortcut — a reshape without the permute — does not: it reads 4 consecutive values of
# the channel-first memory, which belong to 4 neighbouring cells of the same channel. Row 2049 should be
# anchor k=1 of cell (8, 0); it gets the column numbers of cells 4 … 7 of row 0 instead.

# %% tags=["nbval-check-output"]
wrong = torch.cat([m.reshape(1, -1, 4) for m in head_maps], dim=1)  # [B, A, 4], but scrambled
a = 2049
print(f"row {a} in anchor order:    {codes[0, a].int().tolist()}  (level, row, col, k)")
print(f"row {a} without permute: {wrong[0, a].int().tolist()}  (the 'col' channel of anchor 0 at 4 cells)")
mismatched = (wrong[0] != codes[0]).any(dim=1).sum().item()
print(f"rows that differ from the right order: {mismatched} of {len(anchors)}")


# %% [markdown]
# ### The check on the package's model
#
# Now the same test on `ssd.SSD.forward_heads` itself: give the model a backbone that returns zero maps of
# the right shapes, and heads that return coded maps. If `forward_heads` flattens in anchor order, its
# outputs decode to `default_boxes` — for the localisation rows and for the class rows alike.

# %%
class ZeroBackbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def forward(self, x):
        shapes = zip(self.cfg.in_channels, self.cfg.feature_map_sizes)
        return [x.new_zeros(x.shape[0], ch, size, size) for ch, size in shapes]  # L x [B, C_k, fm_k, fm_k]


class CodedHead(nn.Module):
    def __init__(self, level, k, n):
        super().__init__()
        self.level, self.k, self.n = level, k, n

    def forward(self, feature):
        return coded_head_map(self.level, feature.shape[-1], self.k, self.n, batch=feature.shape[0])


probe = ssd.SSD(cfg, backbone=ZeroBackbone(cfg))
probe.loc_heads = nn.ModuleList(CodedHead(level, k, 4) for level, k in enumerate(cfg.anchors_per_location))
probe.cls_heads = nn.ModuleList(CodedHead(level, k, C) for level, k in enumerate(cfg.anchors_per_location))
with torch.no_grad():
    loc_preds, cls_logits = probe.forward_heads(torch.zeros(2, 3, cfg.image_size, cfg.image_size))
print("loc_preds", list(loc_preds.shape), " cls_logits", list(cls_logits.shape))
for b in range(2):
    assert torch.equal(anchors_from_codes(loc_preds[b], cfg), anchors)
    assert torch.equal(anchors_from_codes(cls_logits[b, :, :4], cfg), anchors)
print("forward_heads puts prediction a next to anchor a, for both heads and every image of the batch")


# %% [markdown]
# ## Exercise: flatten a head map
#
# Write `flatten_head(head_map, n)` that turns one head's output `[B, k·n, H, W]` into `[B, H·W·k, n]`
# in (row, column, anchor) order. The check feeds it coded maps with H ≠ W and B = 2, and tells you which
# (row, column, anchor) ended up where if the order is wrong.

# %% tags=["nbval-check-output"]
def flatten_head(head_map, n):
    ### BEGIN SOLUTION
    B = head_map.shape[0]
    x = head_map.permute(0, 2, 3, 1)  # [B, H, W, k*n]
    return x.reshape(B, -1, n)  # [B, H*W*k, n]
    ### END SOLUTION


exercises.check("03_flatten_head", flatten_head)

# %% [markdown]
# ## What the sources see
#
# Time to look at real activations. The small `TINY_SHAPES` model (128×128 input, 5 sources of 16×16 … 1×1)
# uses the shipped checkpoint `tiny_shapes` when it is there (trained on the shapes data, notebook 06);
# otherwise it is an untrained model, whose random convolutions still respond to edges and colour contrasts.

# %%
try:
    tiny = ssd.load_pretrained("tiny_shapes")
    print("using the shipped checkpoint tiny_shapes")
except (ValueError, FileNotFoundError) as error:
    torch.manual_seed(SEED)
    tiny = ssd.build_ssd(ssd.TINY_SHAPES).eval()
    print(f"no shipped checkpoint ({error}); using an untrained TINY_SHAPES model")
dataset = ssd.ShapesDataset(NUM_IMAGES + 1, image_size=tiny.cfg.image_size, seed=SEED + 3)
images = torch.stack([dataset[i][0] for i in range(1, NUM_IMAGES + 1)])  # [N, 3, 128, 128]
features = source_features(tiny, images[0])
print("source shapes:", [list(f.shape) for f in features])

# %% [markdown]
# `source_features` normalizes the image as the model does and returns the 5 sources `[C, H, W]`. Each map
# is drawn stretched over the image, so cell (i, j) of a level with step s covers pixels
# `[j·s, (j+1)·s) × [i·s, (i+1)·s)`: the 16×16 level 0 (step 8) first, then level 2 (4×4, step 32).
# The second panel is the mean |activation| over all channels, the others the channels with the largest
# mean activation.

# %%
fig, rows = feature_map_view(features, images[0], level=0, num_channels=3)
fig

# %%
fig, rows = feature_map_view(features, images[0], level=2, num_channels=3)
for name, value in rows:
    print(f"{name:>20}: {value}")
fig

# %% [markdown]
# Compare the two resolutions: a level-0 cell covers 8×8 pixels, so a shape spans many cells and the maps
# have the detail to follow it; a level-2 cell covers 32×32 pixels, so a whole shape falls into one or two
# cells — and so do the anchors that must find it. Many values are exactly 0: every source ends with a ReLU.
#
# **Explore:** pick an image, a level and how many channels to show. (The widget needs a running kernel;
# the figures above are the same view, frozen.)

# %% tags=["nbval-ignore-output"]
feature_map_explorer(tiny, images)

# %% [markdown]
# ## Recap
#
# - The backbone is split as in the article: VGG16's conv4_3 (+ L2Norm, scale 20) and conv7 (after pool5
#   3×3/1, the dilated conv6 and conv7), then extra 1×1 → 3×3/2 blocks; with ResNet-50, layer2 and layer3
#   give the first two sources with the same channels and strides.
# - A dry run on the meta device gives every source's shape without computing anything.
# - Walking the layers gives each source's jump and receptive field: 92 px for conv4_3, 420 for conv7 — far
#   larger than the anchors; the anchor step `S / size` and the jump part ways where a layer shrinks the
#   map with stride 1.
# - Each source gets a 3×3 loc head with k·4 channels and a 3×3 cls head with k·C channels;
#   `permute(0, 2, 3, 1)` then `reshape(B, -1, n)` and a concatenation over levels give `[B, A, 4]` and
#   `[B, A, C]`, row a belonging to anchor a of `default_boxes` — the coded heads proved it on the package's
#   `forward_heads`.
#
# **Next:** [04_forward_pass.ipynb](04_forward_pass.ipynb) pushes one image through the whole model and turns
# the rows into boxes and detections.
