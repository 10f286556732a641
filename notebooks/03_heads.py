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
# Notation as in notebook 01: level **k** = 0 … L − 1 (source k is the feature map of level k), cell row **i**
# and column **j**, shape **d** = 0 … n_k − 1 at one location, n_k anchors per location.
#
# **After this notebook you will be able to**
# - name the layers of VGG16 (and of ResNet-50) that SSD reads its 7 sources from, and say why the first
#   source is followed by an L2Norm;
# - get every source's shape without running the network (a dry run on PyTorch's *meta* device);
# - compute the stride and the receptive field of each source by walking its layers, for SSD512 and SSD300;
# - count the parameters of each part of the model;
# - say how many channels each head outputs (n_k × 4 and n_k × C), and turn the head maps into
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
from ssd_tutorial.backbones import L2Norm, build_backbone, pretrained_weights_path
from ssd_tutorial.widgets.nb03 import (feature_map_explorer, feature_map_view, format_source_table,
                                       layer_geometry, parameter_counts, receptive_field, source_features,
                                       source_table)

torch.manual_seed(SEED)
cfg = ssd.SSD512_VOC

# %% [markdown]
# ## The backbone, split the way the article splits it
#
# SSD does not need a new feature extractor: it borrows an image classifier and reads feature maps at
# several depths. The article (like the SSD paper, Sec. 3) uses
# [VGG16](https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg16.html). In this notebook the
# sources are always named by their level k and the module that computes them (the names `model.backbone` uses):
#
# | level k (source k) | module | layers | stride, channels |
# |---|---|---|---|
# | 0 | `conv4_3` + `l2norm` | conv1_1 … conv4_3 (+ ReLU), then **L2Norm** | 8, 512 |
# | 1 | `conv7` | pool4, conv5_1 … conv5_3, **pool5 3×3/1**, **conv6 3×3 dilation 6**, **conv7 1×1** | 16, 1024 |
# | 2 … 6 | `extras[0]` … `extras[4]` | 1×1 conv (to 256 or 128 ch), then 3×3 stride 2 (last: 4×4 stride 1) | 32 … 256, 512/256 |
#
# **conv6 and conv7.** VGG16 ends in fully connected layers fc6 and fc7. The SSD paper (Sec. 3, "Base network")
# converts them to convolutions and **subsamples their ImageNet weights**, following DeepLab-LargeFOV (Chen et
# al. 2015, [arXiv 1412.7062](https://arxiv.org/abs/1412.7062)): fc6, which reads the 7×7 map of pool5,
# becomes a 3×3 convolution keeping every third tap of its 7×7 kernel; pool5 changes from 2×2 stride 2 to 3×3
# stride 1, so it no longer halves the map; and the *à trous* (dilated) convolution fills the holes. The
# **dilation 6** is what keeps conv6's view as wide as the subsampled fc6's: its 3 taps sit 6 cells apart, so
# they span 13 cells of a map that pool5 no longer shrank, about the width that the 7×7 fc6 covered on the
# halved map. The article's code and this package do *not* copy fc6/fc7's weights: they initialise conv6 and
# conv7 fresh (only conv1_1 … conv5_3 can come from ImageNet).
#
# `ssd.backbones.build_backbone(cfg)` builds this split. Let's list the layers that change the geometry —
# convolutions and poolings — with their VGG names, kernel, stride and dilation; ReLUs and normalizations act on
# each position alone and change nothing about where a cell looks.
#
# The model is built inside `torch.device("meta")`: parameters get shapes but no memory and no values,
# so even the 20.49 M weights of the VGG16 layers used here (conv1_1 … conv7, counted below; the full ImageNet
# VGG16 with its fully connected layers has about 138 M) cost nothing to build.

# %% tags=["nbval-check-output"]
with torch.device("meta"):
    vgg = build_backbone(cfg)

# the VGG names of the geometry layers, by their index inside each module
VGG_NAMES = {
    "conv4_3": {"0": "conv1_1", "2": "conv1_2", "4": "pool1", "5": "conv2_1", "7": "conv2_2", "9": "pool2",
                "10": "conv3_1", "12": "conv3_2", "14": "conv3_3", "16": "pool3", "17": "conv4_1", "19": "conv4_2",
                "21": "conv4_3"},
    "conv7": {"0": "pool4", "1": "conv5_1", "3": "conv5_2", "5": "conv5_3", "7": "pool5", "8": "conv6",
              "10": "conv7"},
}
for name, module in vgg.named_children():
    if name == "extras":
        continue
    print(f"{name}: {type(module).__name__}")
    for layer, kernel, stride, dilation in layer_geometry(module):
        vgg_name = VGG_NAMES.get(name, {}).get(layer, "?")
        print(f"    [{layer:>2}] {vgg_name:<8} kernel {kernel}  stride {stride}  dilation {dilation}")

# %% [markdown]
# The module `conv4_3` is torchvision's `vgg16().features[:23]` (the number in brackets is the index inside the
# module); `l2norm` has no geometry at all; `conv7` starts with pool4 and ends with pool5 3×3/1, the dilated conv6
# and the 1×1 conv7. The extra layers `extras[0]` … `extras[4]` give levels 2 … 6:

# %% tags=["nbval-check-output"]
for index, block in enumerate(vgg.extras):
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    print(f"level {index + 2}, extras[{index}]: " + "  ->  ".join(
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
    print(f"level {level} source: {list(feature.shape)}")
assert [f.shape[1] for f in sources] == list(cfg.in_channels)
assert [f.shape[-1] for f in sources] == list(cfg.feature_map_sizes)

# %% [markdown]
# These are the `in_channels` and `feature_map_sizes` of notebook 01: (512, 64×64), (1024, 32×32),
# (512, 16×16), then 256 channels at 8, 4, 2 and 1.
#
# ## Why the first source gets an L2Norm
#
# conv4_3 sits early in the network, and the SSD paper (Sec. 3.1, "PASCAL VOC2007") notes that its features have a
# different scale from those of the deeper layers, citing ParseNet (Liu, Rabinovich, Berg 2015,
# [arXiv 1506.04579](https://arxiv.org/abs/1506.04579)). ParseNet found that the features of different layers of a
# trained VGG16 differ greatly in scale, so that combining them as they are works poorly, and introduced the L2
# normalization with a learned per-channel scale that SSD uses. Why it matters: both heads of a level read their
# source directly, and a source whose activations are much larger gives its heads much larger outputs and
# gradients, so one learning rate cannot suit every level. SSD therefore rescales each position's 512-channel
# vector of conv4_3 to unit length, then multiplies channel c by a learnable scale $\gamma_c$, initialised to 20:
#
# $$\hat{x}_{:,i,j} = \gamma \odot \frac{x_{:,i,j}}{\lVert x_{:,i,j} \rVert_2}$$
#
# Let's look at actual activations: an SSD300 VGG16 run on a shapes image, comparing the length of the channel
# vector at each position of conv4_3 (before the L2Norm) and of conv7. The weights matter here: with torchvision's
# ImageNet weights (`pretrained=True`, read from the local torch hub cache, never downloaded) these are the
# features the paper describes; without that file the backbone has its random initialisation, and the cell says
# which one it used.

# %%
vgg_weights = pretrained_weights_path("vgg16")
use_imagenet = vgg_weights.is_file()
torch.manual_seed(SEED)
vgg300 = build_backbone(ssd.SSD300_VOC, pretrained=use_imagenet).eval()
image300 = ssd.ShapesDataset(1, image_size=300, seed=SEED)[0][0]  # [3, 300, 300] in [0, 1]
cfg300 = ssd.SSD300_VOC
mean, std = torch.tensor(cfg300.mean).view(1, 3, 1, 1), torch.tensor(cfg300.std).view(1, 3, 1, 1)
with torch.no_grad():
    conv4_3 = vgg300.conv4_3((image300[None] - mean) / std)  # [1, 512, 38, 38], before the L2Norm
    conv7 = vgg300.conv7(conv4_3)  # [1, 1024, 19, 19]
    normalized = vgg300.l2norm(conv4_3)  # [1, 512, 38, 38]
print("VGG16 weights:", "ImageNet (torchvision, from the hub cache)" if use_imagenet else
      f"random initialisation (no ImageNet file at {vgg_weights.name} in the torch hub cache)")
for name, feature in (("conv4_3 (level 0), raw", conv4_3), ("conv7 (level 1)", conv7),
                      ("conv4_3 after L2Norm", normalized)):
    norms = feature[0].norm(dim=0)  # [H, W]: length of the channel vector at each position
    print(f"{name:<24} channel-vector norm: median {norms.median():8.2f}, max {norms.max():8.2f}")

# %% [markdown]
# After the L2Norm every position of conv4_3 has a channel vector of length exactly 20 (the initial $\gamma$),
# whatever the raw scale was; training then learns $\gamma$ per channel.
#
# Read the two raw lines with the weights line above them. **The committed run of this notebook uses random
# weights** (no ImageNet file was cached), so it shows nothing about the paper's point: the two raw scales come out
# close, because the initialisation is designed to keep activations at a similar size from layer to layer. The
# observation is about the **trained** VGG16 (ParseNet measured it on ImageNet features). Put
# torchvision's `vgg16-397923af.pth` in the torch hub cache and re-run the cell to compare the trained features.
# The L2Norm is there either way, so that whatever scale conv4_3 learns, its heads start from vectors of length 20.
#
# The same normalization by hand, on these activations, against the package's `L2Norm`:

# %% tags=["nbval-check-output"]
mine = conv4_3 / conv4_3.norm(dim=1, keepdim=True).clamp_min(1e-10) * 20  # unit norm over channels, times 20
assert torch.allclose(mine, L2Norm(512, scale=20.0)(conv4_3), atol=1e-4)
assert torch.allclose(mine, normalized, atol=1e-4)
print("by hand == L2Norm(512, scale=20) on these conv4_3 activations")

# %% [markdown]
# **ResNet-50 gets the same L2Norm.** The article's code puts its L2Norm (scale 20) on the first source for both
# backbones, and so does this package: ResNet-50's `layer2` (level 0; the module of that name holds ResNet's
# stem — conv1, bn1, ReLU, maxpool — then layer1 and layer2) is followed by `l2norm`, `layer3` (level 1)
# is not — for the same reason, the first source's activations do not have the scale of the deeper ones'.
# Without it, the ResNet-50 SSD would not be the article's model: its level-0 outputs differ.

# %% tags=["nbval-check-output"]
resnet = build_backbone(ssd.SSD300_VOC.replace(backbone="resnet50"))
print("ResNet-50 backbone modules:", [name for name, _ in resnet.named_children()])
print(f"its L2Norm: {resnet.l2norm.weight.shape[0]} channels, scales initialised to "
      f"{sorted(set(resnet.l2norm.weight.tolist()))}")

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
# next) and adds the shapes from the dry run. `step` is the anchor step of the config, `cfg.steps[k]` — for
# SSD300 (8, 16, 32, 64, 100, 300), the steps of notebooks 01 and 02; `s_k px` is the level's box size, s_k × image
# side, in pixels.

# %% tags=["nbval-check-output"]
def table_with_steps(preset):
    rows = source_table(preset)
    for row, step in zip(rows, preset.steps):
        row["step"] = step  # the config's anchor step, cfg.steps[k]
    return rows


tables = {
    "SSD512, VGG16": table_with_steps(ssd.SSD512_VOC),
    "SSD512, ResNet-50": table_with_steps(ssd.SSD512_VOC.replace(backbone="resnet50")),
    "SSD300, VGG16": table_with_steps(ssd.SSD300_VOC),
    "SSD300, ResNet-50": table_with_steps(ssd.SSD300_VOC.replace(backbone="resnet50")),
}
for title, rows in tables.items():
    print(title)
    print(format_source_table(rows))
    print()

# %% [markdown]
# The same walk through the layers of the `conv7` module, continuing from conv4_3's (92 px, jump 8):

# %% tags=["nbval-check-output"]
rf, jump = 92, 8
for layer, kernel, stride, dilation in layer_geometry(vgg.conv7):
    before = rf
    rf += dilation * (kernel - 1) * jump
    jump *= stride
    print(f"[{layer:>2}] {VGG_NAMES['conv7'][layer]:<8} kernel {kernel} stride {stride} dilation {dilation}"
          f" -> rf {before:>3} -> {rf:>3} px (+{rf - before}), jump {jump}")
assert (rf, jump) == (420, 16)

# %% [markdown]
# What the tables say:
#
# - **Within the VGG16 layers, the dilated conv6 widens the view most**: 228 → 420 px (+192) in one layer,
#   because its 3 taps are 6 cells (of 16 pixels) apart. That is why the fc6 → conv6 conversion needs the
#   dilation. (The extra layers widen it more per layer — extras[4] by 768 px — because their jump is larger.)
# - **ResNet-50** (the article's alternative): everything up to `layer2` (+ L2Norm) gives level 0 (512 channels,
#   stride 8) and `layer3` level 1 (1024 channels, stride 16) — the same channels and strides as VGG,
#   so the extra layers and heads do not change at all. Its receptive fields grow more slowly here
#   (267 px at layer3 against 420 at conv7).
# - **jump and step part ways at the end.** The anchor step `cfg.steps[k]` is chosen so that the anchors tile
#   the whole image; the network's jump is the product of its strides. SSD512's last 4×4 convolution (2×2 → 1×1)
#   and SSD300's unpadded 3×3 convolutions (5 → 3 → 1) have stride 1: the jump stays at 256 or 64 while the
#   map shrinks, and the step grows to 512 or 300.
# - **The receptive fields are much larger than the anchors** (92 px for 36 px boxes on conv4_3) and
#   (with VGG16) exceed the image side from level 3 on for SSD512 (516 > 512 px) and already from level 1 on for
#   SSD300 (420 > 300 px). This is the *theoretical* field; the pixels that actually matter
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
ax.plot([r["step"] for r in rows], marker="^", color="gray", label="anchor step cfg.steps[k]")
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
# return the receptive field in input pixels (an int). This is the loop of the walks above, written as a function
# of its own — the point is that it must work on any stack: the check runs it on small stacks (with strides and
# dilations other than VGG's) and on VGG16 up to conv4_3 and conv7. `exercises.hint("03_receptive_field")` helps.

# %% tags=["nbval-check-output"]
def receptive_field_px(layers):
    ### BEGIN SOLUTION
    rf, jump = 1, 1
    for kernel, stride, dilation in layers:
        rf += dilation * (kernel - 1) * jump
        jump *= stride
    return rf
    ### END SOLUTION


exercises.check("03_receptive_field", receptive_field_px);

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
        return "level 0 stage (conv4_3 + L2Norm / layer2 + L2Norm)"
    if part in ("backbone.conv7", "backbone.layer3"):
        return "level 1 stage (conv7 / layer3)"
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
# classifier here; only stem … layer3 is used, and the part named `backbone.layer2` holds the stem, layer1 and
# layer2.)
#
# ## The heads: n_k × 4 and n_k × C channels
#
# On every source, SSD puts two 3×3 convolutions (padding 1, so the map keeps its size):
#
# - the **localisation head** outputs, at each cell, 4 numbers for each of the n_k anchors of that cell:
#   `n_k × 4` channels, the offsets (tx, ty, tw, th) of notebook 04;
# - the **classification head** outputs C scores for each anchor: `n_k × C` channels (C = 21 includes the
#   background).
#
# The package's `SSD` keeps them in `model.loc_heads` and `model.cls_heads`, one conv per level.

# %% [markdown]
# ## Exercise: head channels
#
# Before the model prints them in the next cell: give the output channels of the localisation and the classification
# heads of SSD512_VOC at each level, as a pair of lists `(loc_channels, cls_channels)`, computed from `cfg`.

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
loc_channels = [4 * n_k for n_k in cfg.anchors_per_location]
cls_channels = [cfg.num_classes * n_k for n_k in cfg.anchors_per_location]
### END SOLUTION
exercises.check("03_head_channels", (loc_channels, cls_channels));

# %% [markdown]
# Now the model's own heads, level by level:

# %% tags=["nbval-check-output"]
model = models["VGG16"]
C = cfg.num_classes
print("level k  in ch  n_k  loc out (n_k*4)  cls out (n_k*C)")
for level, (loc_head, cls_head) in enumerate(zip(model.loc_heads, model.cls_heads)):
    n_k = cfg.anchors_per_location[level]
    print(f"{level:>7} {loc_head.in_channels:>6} {n_k:>4} {loc_head.out_channels:>16} {cls_head.out_channels:>16}")
    assert (loc_head.out_channels, cls_head.out_channels) == (n_k * 4, n_k * C)
    assert loc_head.kernel_size == cls_head.kernel_size == (3, 3) and loc_head.padding == (1, 1)

# %% [markdown]
# ## From head maps to one row per anchor
#
# A localisation head returns a map `[B, n_k·4, H, W]`. Channel `d·4 + c` at cell (i, j) is value c of
# anchor d of that cell. The loss and the decoder want one row per anchor, `[B, A, 4]`, **in the order of
# `default_boxes`**: level k, then row i, then column j, then shape d. So for each level:
#
# 1. `permute(0, 2, 3, 1)` moves the channels last: `[B, H, W, n_k·4]` — now the n_k·4 values of a cell are
#    next to each other in index order, cells in row-major order. `permute` copies nothing: it only changes the
#    strides, so the tensor is now a non-contiguous view of the same memory;
# 2. `reshape(B, -1, 4)` cuts them into rows of 4: `[B, H·W·n_k, 4]`, anchors in (i, j, d) order. On a
#    non-contiguous view, this is the step that copies the values into that order;
# 3. `torch.cat(..., dim=1)` over the levels: `[B, A, 4]`.
#
# The class maps go the same way with C instead of 4. To *see* that the order is right, make fake head
# maps whose values say where they come from: at every cell, the 4 values of anchor d are
# `(k, i, j, d)`.

# %%
def coded_head_map(level, size, n_k, n, batch=1):
    # [B, n_k*n, H, W] whose channel d*n + (0, 1, 2, 3) holds (k, i, j, d); other channels 0
    rows = torch.arange(size).view(1, 1, size, 1).expand(batch, n_k, size, size)  # [B, n_k, H, W]
    cols = torch.arange(size).view(1, 1, 1, size).expand(batch, n_k, size, size)
    shapes = torch.arange(n_k).view(1, n_k, 1, 1).expand(batch, n_k, size, size)
    codes = torch.stack([torch.full_like(rows, level), rows, cols, shapes], dim=2).float()  # [B, n_k, 4, H, W]
    out = torch.zeros(batch, n_k, n, size, size)
    out[:, :, :4] = codes
    return out.reshape(batch, n_k * n, size, size)  # [B, n_k*n, H, W]


head_maps = [coded_head_map(level, size, n_k, 4)
             for level, (size, n_k) in enumerate(zip(cfg.feature_map_sizes, cfg.anchors_per_location))]
flat = [m.permute(0, 2, 3, 1).reshape(1, -1, 4) for m in head_maps]  # each [B, H*W*n_k, 4]
codes = torch.cat(flat, dim=1)  # [B, A, 4]
print(list(codes.shape))
print("first rows (k, i, j, d):", codes[0, :6].int().tolist())


# %% [markdown]
# Row a now says which (k, i, j, d) it came from. Turn each row into the anchor it should describe —
# centre `((j + 0.5)·step_k, (i + 0.5)·step_k)`, size `level_box_shapes(cfg, k)[d]` — and compare with
# `default_boxes(cfg)`, the anchors of notebook 02:

# %%
def anchors_from_codes(codes, cfg):
    # codes [A, 4] of (k, i, j, d) -> the anchor each row should be, [A, 4] cxcywh px
    level, row, col, d = codes.long().unbind(-1)
    steps = torch.tensor(cfg.steps, dtype=torch.float64)[level]
    shapes = [torch.tensor(ssd.level_box_shapes(cfg, lv), dtype=torch.float64) for lv in range(cfg.num_levels)]
    wh = torch.stack([shapes[lv][s] for lv, s in zip(level.tolist(), d.tolist())])  # [A, 2]
    centres = torch.stack([(col + 0.5) * steps, (row + 0.5) * steps], dim=-1)  # [A, 2]
    return torch.cat([centres, wh], dim=-1).float()


anchors = ssd.default_boxes(cfg)
assert torch.equal(anchors_from_codes(codes[0], cfg), anchors)
print(f"all {len(anchors)} rows line up with default_boxes")

# %% [markdown]
# And the tempting shortcut — a reshape without the permute — does not: it reads 4 consecutive values of
# the channel-first memory, which belong to 4 neighbouring cells of the same channel. Row 2049 should be
# anchor d=1 of cell (8, 0); it gets the column numbers of cells 4 … 7 of row 0 instead.

# %% tags=["nbval-check-output"]
wrong = torch.cat([m.reshape(1, -1, 4) for m in head_maps], dim=1)  # [B, A, 4], but scrambled
a = 2049
print(f"row {a} in anchor order:    {codes[0, a].int().tolist()}  (k, i, j, d)")
print(f"row {a} without permute: {wrong[0, a].int().tolist()}  (the 'col' channel of anchor 0 at 4 cells)")
mismatched = (wrong[0] != codes[0]).any(dim=1).sum().item()
print(f"rows that differ from the right order: {mismatched} of {len(anchors)}")
same = (wrong[0] == codes[0]).all(dim=1).nonzero()[:, 0]  # the rows that happen to agree
print("rows that agree, as (k, i, j, d):", codes[0, same].int().tolist())


# %% [markdown]
# Why do a few rows agree? The 4 rows of level 6 are right by construction: its map is 1×1, so with a single cell
# the permute changes nothing. The other 2 are coincidences: rows whose code happens to be made of one repeated
# value — (0, 0, 0, 0) at the very first row and (1, 1, 1, 1) on level 1 — can be read off 4 cells of one channel
# just as well.

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
    def __init__(self, level, n_k, n):
        super().__init__()
        self.level, self.n_k, self.n = level, n_k, n

    def forward(self, feature):
        return coded_head_map(self.level, feature.shape[-1], self.n_k, self.n, batch=feature.shape[0])


probe = ssd.SSD(cfg, backbone=ZeroBackbone(cfg))
probe.loc_heads = nn.ModuleList(CodedHead(level, n_k, 4) for level, n_k in enumerate(cfg.anchors_per_location))
probe.cls_heads = nn.ModuleList(CodedHead(level, n_k, C) for level, n_k in enumerate(cfg.anchors_per_location))
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
# Write `flatten_head(head_map, n)` that turns one head's output `[B, n_k·n, H, W]` into `[B, H·W·n_k, n]`
# in (row i, column j, shape d) order. This repeats the permute + reshape shown above, on purpose: write it
# without copying, for any batch size and any n (the line above had B = 1 and n = 4 built in). The check feeds it
# coded maps with H ≠ W and B = 2, and tells you which (row, column, anchor) ended up where if the order is
# wrong.

# %% tags=["nbval-check-output"]
def flatten_head(head_map, n):
    ### BEGIN SOLUTION
    B = head_map.shape[0]
    x = head_map.permute(0, 2, 3, 1)  # [B, H, W, n_k*n]
    return x.reshape(B, -1, n)  # [B, H*W*n_k, n]
    ### END SOLUTION


exercises.check("03_flatten_head", flatten_head);

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
# `[j·s, (j+1)·s) × [i·s, (i+1)·s)`. To keep the activations readable, the image is drawn in grey and the
# map on top of it in a strong colour map, with a colour bar; the ground-truth boxes are outlined in white.
# Level 0 (16×16, step 8) and level 2 (4×4, step 32):

# %%
def show_activation(ax, image, fmap, title):
    size = image.shape[-1]
    ax.imshow(image.mean(dim=0), cmap="gray", extent=(0, size, size, 0))  # the image, in grey
    shown = ax.imshow(fmap, cmap="inferno", alpha=0.8, extent=(0, size, size, 0), interpolation="nearest")
    for x1, y1, x2, y2 in dataset[1][1]["boxes"].tolist():
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="white", lw=1.5))
    ax.set(title=title, xlabel="x (px)")
    return shown


fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
viz.show_image(axes[0], images[0])
axes[0].set(title="image 0", xlabel="x (px)", ylabel="y (px)")
for ax, level in zip(axes[1:], (0, 2)):
    f = features[level]  # [C, H, W]
    shown = show_activation(ax, images[0], f.abs().mean(dim=0),
                            f"level {level}: {f.shape[1]}x{f.shape[2]}, mean |activation| of {f.shape[0]} ch")
    fig.colorbar(shown, ax=ax, shrink=0.8)
plt.show()

# %% [markdown]
# The package's `feature_map_view` draws the same maps together with single channels (the ones with the largest
# mean activation) and a small table:

# %%
fig, rows = feature_map_view(features, images[0], level=2, num_channels=3)
for name, value in rows:
    print(f"{name:>20}: {value}")
fig

# %% [markdown]
# Compare the two resolutions: a level-0 cell covers 8×8 pixels, so a shape spans many cells and the maps
# have the detail to follow it; a level-2 cell covers 32×32 pixels, so a shape covers only a few cells (the large
# square here spans 3×2 of them) — and so do the anchors that must find it. Many values are exactly 0: every
# source ends with a ReLU. The bright cells along the bottom row of level 0 are a border effect, not an object:
# the convolutions pad the map with zeros, so the cells at the edge see a different input than the inside ones.
#
# **Explore:** pick an image, a level and how many channels to show. (The figures above show levels 0 and 2 of
# image 0, frozen; the explorer — and with it the other levels and the task below — needs a running kernel.)

# %% tags=["nbval-ignore-output"]
feature_map_explorer(tiny, images)

# %% [markdown]
# **Task.** In the explorer, stay on image 0 and move the level slider from 0 to the last level. The table under
# the figure gives each level's "mean |activation|". Which level k has the **largest** one? Store it in
# `strongest_level`.

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
strongest_level = 4
### END SOLUTION
exercises.check("03_strongest_level", strongest_level);

# %% [markdown]
# ## Recap
#
# - The backbone is split as in the article: VGG16's conv4_3 (+ L2Norm, scale 20) is level 0 and conv7 (after
#   pool5 3×3/1, the dilated conv6 and conv7) level 1, then extra 1×1 → 3×3/2 blocks; with ResNet-50, layer2
#   (+ the same L2Norm, as in the article's code) and layer3 give the first two sources with the same channels and
#   strides. The paper subsamples fc6/fc7's ImageNet weights into conv6/conv7; the article's code and this
#   package initialise them fresh.
# - A dry run on the meta device gives every source's shape without computing anything.
# - Walking the layers gives each source's jump and receptive field: 92 px for conv4_3, 420 for conv7 — far
#   larger than the anchors; the anchor step `cfg.steps[k]` and the jump part ways where a layer shrinks the
#   map with stride 1.
# - Each source gets a 3×3 loc head with n_k·4 channels and a 3×3 cls head with n_k·C channels;
#   `permute(0, 2, 3, 1)` then `reshape(B, -1, n)` and a concatenation over levels give `[B, A, 4]` and
#   `[B, A, C]`, row a belonging to anchor a of `default_boxes` — the coded heads proved it on the package's
#   `forward_heads`.
#
# **Sources:** SSD paper, [arXiv 1512.02325](https://arxiv.org/abs/1512.02325) (Sec. 3 "Base network", Sec. 3.1);
# ParseNet (Liu, Rabinovich, Berg 2015, [arXiv 1506.04579](https://arxiv.org/abs/1506.04579)); DeepLab-LargeFOV
# (Chen et al. 2015, [arXiv 1412.7062](https://arxiv.org/abs/1412.7062));
# the article *The Hero Rises: Build Your Own SSD* (Allegro AI blog, 2020);
# [torchvision's VGG16](https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg16.html).
#
# **Next:** [04_forward_pass.ipynb](04_forward_pass.ipynb) pushes one image through the whole model and turns
# the rows into boxes and detections.
