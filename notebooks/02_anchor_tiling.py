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
#       COVERAGE_PER_LEVEL: false
# ---

# %% [markdown]
# # 02 — Tiling the image with anchors
#
# Notebook 01 counted SSD512's anchors: 24 564 of them. This notebook puts each one in its place. An
# anchor (the SSD paper, [arXiv 1512.02325](https://arxiv.org/abs/1512.02325), calls it a *default box*) is a box
# of fixed size and shape at a fixed position; the network never proposes boxes from nothing, it only nudges these.
#
# Notation as in notebook 01: level **k** (from 0), cell row **i** (along y) and column **j** (along x), shape
# **d** = 0 … n_k − 1 at one location, n_k anchors per location, f_k × f_k cells on level k.
#
# **After this notebook you will be able to**
# - draw the grid of every feature map over the input and say where each cell's anchors are centred;
# - convert boxes between the corner format `xyxy` and the centre format `cxcywh`, and compute the
#   intersection over union (IoU) of two boxes by hand — checked against `torchvision.ops`;
# - list the 4 or 6 anchors of one location and build all anchors of a level by hand with `meshgrid`,
#   exactly as `ssd.default_boxes` does;
# - find the position of anchor (level k, row i, column j, shape d) in the flat list of 24 564, and back;
# - read a density picture of how many anchors cover each pixel, and measure which anchors overlap an
#   object with IoU ≥ 0.5;
# - explain why `image_size // fm` is the wrong step at 300 px and what a fractional step fixes;
# - explore anchors interactively with two widgets.

# %% [markdown]
# ## Parameters
#
# The example image is item `IMAGE_INDEX` of the generated `ShapesDataset` with seed `IMAGE_SEED` (no
# download). `COVERAGE_PER_LEVEL` draws the coverage heatmap of every level (8 panels) instead of only
# the total; the tests turn it off to save time.

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
IMAGE_SEED = 0
IMAGE_INDEX = 6
COVERAGE_PER_LEVEL = True

# %%
# %matplotlib inline
# JPEG instead of PNG keeps this notebook small: the noisy shapes images hardly compress as PNG.
# %config InlineBackend.figure_formats = ["jpeg"]
# %config InlineBackend.print_figure_kwargs = {"bbox_inches": "tight", "pil_kwargs": {"quality": 85}}
import math

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle
from torchvision.ops import box_convert, box_iou

import ssd_tutorial as ssd
from ssd_tutorial import exercises, viz, widgets

torch.manual_seed(0)
cfg = ssd.SSD512_VOC

# %% [markdown]
# ## An image to tile
#
# A 512×512 image from the shapes dataset, with its ground-truth boxes. Boxes are `xyxy` in pixels:
# (x1, y1) is the top-left corner, x grows to the right and y **downwards**, as in every image plot of this
# series.

# %% tags=["nbval-check-output"]
dataset = ssd.ShapesDataset(IMAGE_INDEX + 1, image_size=cfg.image_size, seed=IMAGE_SEED)
image, target = dataset[IMAGE_INDEX]
gt_boxes = target["boxes"]  # [M, 4] xyxy pixels
print("image:", tuple(image.shape), image.dtype)
for box, label in zip(gt_boxes.tolist(), target["labels"].tolist()):
    print(f"{dataset.class_names[label]:>8}: {box}  ({box[2] - box[0]:.0f} x {box[3] - box[1]:.0f} px)")

# %%
fig, ax = plt.subplots(figsize=(5, 5))
viz.show_image(ax, image)
viz.draw_boxes(ax, gt_boxes, labels=target["labels"], class_names=dataset.class_names)
ax.set(title="example image and its ground-truth boxes", xlabel="x (pixels)", ylabel="y (pixels)");

# %% [markdown]
# ## Two ways to write a box
#
# A box can be given by its corners or by its centre and size; this series uses both and puts the format in
# the variable's name:
#
# - **`xyxy`** = (x1, y1, x2, y2): top-left and bottom-right corners — the ground truth and the final detections;
# - **`cxcywh`** = (cx, cy, w, h): centre and size — the anchors, because SSD shifts centres and scales sizes.
#
# $$c_x = \tfrac{x_1 + x_2}{2},\; c_y = \tfrac{y_1 + y_2}{2},\; w = x_2 - x_1,\; h = y_2 - y_1
# \qquad\Longleftrightarrow\qquad x_1 = c_x - \tfrac{w}{2},\; y_1 = c_y - \tfrac{h}{2},\; x_2 = c_x + \tfrac{w}{2},\;
# y_2 = c_y + \tfrac{h}{2}$$
#
# By hand, then against torchvision's
# [`box_convert`](https://pytorch.org/vision/stable/generated/torchvision.ops.box_convert.html) and the package's
# `ssd.xyxy_to_cxcywh` / `ssd.cxcywh_to_xyxy`:

# %% tags=["nbval-check-output"]
def xyxy_to_cxcywh_by_hand(boxes):
    x1, y1, x2, y2 = boxes.unbind(-1)  # each [M]
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)  # [M, 4]


def cxcywh_to_xyxy_by_hand(boxes):
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)  # [M, 4]


gt_cxcywh = xyxy_to_cxcywh_by_hand(gt_boxes)
print("xyxy  :", gt_boxes[0].tolist())
print("cxcywh:", gt_cxcywh[0].tolist())
assert torch.allclose(gt_cxcywh, box_convert(gt_boxes, in_fmt="xyxy", out_fmt="cxcywh"))
assert torch.allclose(gt_cxcywh, ssd.xyxy_to_cxcywh(gt_boxes))
assert torch.allclose(cxcywh_to_xyxy_by_hand(gt_cxcywh), gt_boxes)
assert torch.allclose(cxcywh_to_xyxy_by_hand(gt_cxcywh), box_convert(gt_cxcywh, in_fmt="cxcywh", out_fmt="xyxy"))

# %% [markdown]
# ## Each feature map is a grid over the image
#
# Level k's feature map has `fm × fm` cells; one cell spans `step` input pixels in each direction (the
# `steps` of notebook 01). Cell (i, j) — **row i counts down in y, column j across in x** — covers
# `[j·step, (j+1)·step) × [i·step, (i+1)·step)`, and all anchors of that cell share its centre
#
# $$c_x = (j + 0.5)\cdot \text{step}_k, \qquad c_y = (i + 0.5)\cdot \text{step}_k .$$
#
# The SSD paper (Sec. 2.2, "Choosing scales and aspect ratios for default boxes") writes the centre as
# $\big(\tfrac{i+0.5}{|f_k|}, \tfrac{j+0.5}{|f_k|}\big)$ with $i, j \in [0, |f_k|)$, in units of the image side,
# where $|f_k|$ is the side of the k-th feature map. The paper does not say which index goes with which axis;
# reading its centre as (x, y), **its i is the x index** (the first coordinate of the centre),
# so the paper's $(i, j)$ is our $(j, i)$: our row i goes with y, our column j with x, as in a tensor `[..., i, j]`.
# Multiplying by 512 gives the same pixels as above, because `f_k × step_k = 512`.

# %% tags=["nbval-check-output"]
print("level k  cells   step  first centre  last centre  cells end at")
for k, (fm, step) in enumerate(zip(cfg.feature_map_sizes, cfg.steps)):
    first, last = 0.5 * step, (fm - 0.5) * step
    print(f"{k:>7} {fm:>3}x{fm:<3} {step:>5} {first:>13.1f} {last:>12.1f} {fm * step:>13}")

# %%
viz.plot_level_grids(cfg, image)

# %% [markdown]
# The 64×64 grid is so fine that its centres form a carpet; the 1×1 grid has a single centre in the middle
# of the image. Fine grids carry small anchors, coarse grids large ones.
#
# ### Centres by hand with `meshgrid`
#
# One dimension first: the centres along x (or y) of level 5, a 2×2 map with step 256. Then
# `torch.meshgrid(..., indexing="ij")` turns the two 1-D lists into 2-D arrays whose element `[i, j]` belongs
# to cell (i, j): `cy` changes along the rows, `cx` along the columns.

# %% tags=["nbval-check-output"]
level = 5
fm, step = cfg.feature_map_sizes[level], cfg.steps[level]
centers_1d = (torch.arange(fm) + 0.5) * step  # [fm]
cy, cx = torch.meshgrid(centers_1d, centers_1d, indexing="ij")  # [fm, fm] each, element [i, j]
print("centres along one axis:", centers_1d.tolist())
print("cx[i, j] =", cx.tolist())
print("cy[i, j] =", cy.tolist())


# %% [markdown]
# ## The anchors of one location
#
# Each location gets n_k = `2 + 2·len(ratios)` boxes (SSD paper, Sec. 2.2), in this order of the shape index d:
#
# | d | shape | w | h |
# |---|---|---|---|
# | 0 | square of the level's size | $s_k$ | $s_k$ |
# | 1 | square between this level and the next | $\sqrt{s_k s_{k+1}}$ | $\sqrt{s_k s_{k+1}}$ |
# | 2 | lying box for ratio $r_1$ ("$r_1$:1") | $s_k\sqrt{r_1}$ | $s_k/\sqrt{r_1}$ |
# | 3 | standing box for ratio $r_1$ ("1:$r_1$") | $s_k/\sqrt{r_1}$ | $s_k\sqrt{r_1}$ |
# | 4, 5 | the same for $r_2$ (levels with ratios (2, 3)) | … | … |
#
# A rectangle keeps the area of the $s_k$ square: $w \cdot h = s_k^2$ and $w / h = r$. Let's compute the
# six shapes of level 1 by hand and compare them with the package's `level_box_shapes`.

# %% tags=["nbval-check-output"]
def shapes_by_hand(cfg, level):
    s_k, s_next = cfg.box_sizes[level], cfg.box_sizes[level + 1]
    s_prime = math.sqrt(s_k * s_next)
    shapes = [(s_k, s_k), (s_prime, s_prime)]
    for r in cfg.aspect_ratios[level]:
        shapes += [(s_k * math.sqrt(r), s_k / math.sqrt(r)), (s_k / math.sqrt(r), s_k * math.sqrt(r))]
    return shapes


level = 1
print(" d      w       h     w*h    w/h")
for d, (w, h) in enumerate(shapes_by_hand(cfg, level)):
    print(f"{d:>2} {w:>7.2f} {h:>7.2f} {w * h:>7.0f} {w / h:>6.3f}")
for level in range(cfg.num_levels):
    assert shapes_by_hand(cfg, level) == ssd.level_box_shapes(cfg, level)

# %% [markdown]
# Here are the anchors of two locations over the image: the 4 of a level-0 cell on the small square (bottom
# left) and the 6 of a level-1 cell on the circle. The yellow patch is the cell; every anchor of the
# location is centred on it, and most of them are much larger than the cell itself.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), layout="constrained")
for ax, (level, i, j) in zip(axes, [(0, 52, 10), (1, 11, 15)]):
    step = cfg.steps[level]
    cx, cy = (j + 0.5) * step, (i + 0.5) * step
    viz.show_image(ax, image)
    ax.add_patch(Rectangle((j * step, i * step), step, step, color="yellow", alpha=0.7))
    for d, (w, h) in enumerate(ssd.level_box_shapes(cfg, level)):
        ax.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, lw=2, color=f"C{d}",
                               label=f"d={d}: {w:.0f} x {h:.0f}"))
    ax.legend(loc="upper right", fontsize=8)
    ax.set(title=f"level {level}, cell (i={i}, j={j}), centre ({cx:g}, {cy:g})", xlabel="x (pixels)",
           ylabel="y (pixels)")

# %% [markdown]
# ## All boxes of one level
#
# Level 4 is a 4×4 map with 6 anchors per cell: 96 boxes. Drawn all at once, coloured by shape d, they
# show the pattern that repeats at every cell — and that anchors are **not clipped**: they reach far outside
# the image (the grey frame below is the image edge), and not only at the border cells: on this coarse level the
# long 3:1 and 1:3 boxes of the inner cells leave the image too. The cell after the figure counts them per level.
# This package keeps the anchors as they are — a choice of this package: the authors' Caffe code does not clip its
# default boxes either, some PyTorch ports do; only the final detections are clipped to the image.

# %%
level = 4
start = sum(cfg.anchors_per_level[:level])
level_boxes = ssd.default_boxes(cfg)[start:start + cfg.anchors_per_level[level]]  # [96, 4] cxcywh (see above)
per_location = cfg.anchors_per_location[level]

fig, ax = plt.subplots(figsize=(6.5, 6.5))
viz.show_image(ax, image)
for index, (x1, y1, x2, y2) in enumerate(ssd.cxcywh_to_xyxy(level_boxes).tolist()):
    d = index % per_location  # the shape changes fastest
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1, color=f"C{d}",
                           label=f"d={d}" if index < per_location else None))
ax.legend(loc="upper right", fontsize=8)
ax.add_patch(Rectangle((0, 0), cfg.image_size, cfg.image_size, fill=False, lw=3, color="gray"))
ax.set(xlim=(-250, 760), ylim=(760, -250), title=f"level {level}: all {len(level_boxes)} anchors (colour = d)",
       xlabel="x (pixels)", ylabel="y (pixels)");

# %% tags=["nbval-check-output"]
xyxy = ssd.cxcywh_to_xyxy(ssd.default_boxes(cfg))  # [24564, 4]
outside = (xyxy[:, :2] < 0).any(1) | (xyxy[:, 2:] > cfg.image_size).any(1)  # [24564] reaches past an edge
start = 0
for k, count in enumerate(cfg.anchors_per_level):
    n_out = int(outside[start:start + count].sum())
    print(f"level {k}: {n_out:>5} of {count:>5} anchors reach outside the image ({n_out / count:.0%})")
    start += count


# %% [markdown]
# ## Building every anchor by hand
#
# Now one whole level, the way the model needs it: a tensor `[f_k·f_k·n_k, 4]` of `(cx, cy, w, h)`, ordered
# **row i, then column j, then shape d** — d changes fastest. Take the `f_k·f_k` centres row by row, repeat
# each one n_k times, and pair them with the n_k shapes tiled `f_k·f_k` times.

# %%
def level_anchors_by_hand(cfg, level):
    fm, step = cfg.feature_map_sizes[level], cfg.steps[level]
    centers_1d = (torch.arange(fm, dtype=torch.float64) + 0.5) * step  # [fm]
    cy, cx = torch.meshgrid(centers_1d, centers_1d, indexing="ij")  # [fm, fm] each
    centers = torch.stack([cx.reshape(-1), cy.reshape(-1)], dim=1)  # [fm*fm, 2], row by row
    shapes = torch.tensor(shapes_by_hand(cfg, level), dtype=torch.float64)  # [n_k, 2] (w, h)
    n_k = len(shapes)
    per_anchor_centers = centers.repeat_interleave(n_k, dim=0)  # [fm*fm*n_k, 2]: c0 c0 c0 c0 c1 c1 ...
    per_anchor_shapes = shapes.repeat(fm * fm, 1)  # [fm*fm*n_k, 2]: d0 d1 d2 d3 d0 d1 ...
    return torch.cat([per_anchor_centers, per_anchor_shapes], dim=1).float()  # [fm*fm*n_k, 4]


level = 2
mine = level_anchors_by_hand(cfg, level)
start = sum(cfg.anchors_per_level[:level])
package = ssd.default_boxes(cfg)[start:start + len(mine)]
print(mine.shape, "\n", mine[:7])
assert torch.allclose(mine, package)

# %% [markdown]
# Levels are concatenated in order, finest first. With all seven levels we get exactly the package's
# `default_boxes`:

# %% tags=["nbval-check-output"]
all_mine = torch.cat([level_anchors_by_hand(cfg, level) for level in range(cfg.num_levels)])  # [A, 4]
anchors = ssd.default_boxes(cfg)  # [A, 4] cxcywh pixels, not clipped
print(tuple(all_mine.shape), tuple(anchors.shape))
assert torch.allclose(all_mine, anchors)


# %% [markdown]
# ## The order: which flat index is anchor (k, i, j, d)?
#
# The model flattens its predictions in exactly this order (notebook 03), so prediction number `a` belongs
# to anchor number `a`. Going from (level k, row i, column j, shape d) to the flat index is a mixed-radix number
# (like a clock time h:mm:ss, whose digits each have their own base: here n_k for d and f_k for j):
# skip the anchors of the earlier levels, then `i·f_k + j` locations of n_k anchors each, then `d`.
# Going back is `divmod`. Here is the way back for a few indices:

# %% tags=["nbval-check-output"]
def locate(index, cfg=cfg):
    for level, count in enumerate(cfg.anchors_per_level):
        if index < count:
            location, d = divmod(index, cfg.anchors_per_location[level])
            i, j = divmod(location, cfg.feature_map_sizes[level])
            return level, i, j, d
        index -= count
    raise IndexError("index past the last anchor")


print("index  (k, i, j, d)       cx     cy      w      h")
for index in [0, 1, 3, 4, 256, 16383, 16384, 23138, 24563]:
    cx, cy, w, h = anchors[index].tolist()
    print(f"{index:>5}  {str(locate(index)):<17} {cx:>5.0f} {cy:>6.0f} {w:>6.1f} {h:>6.1f}")


# %% [markdown]
# ### Exercise 1: the flat index
#
# Write `flat_index(k, i, j, d, cfg)`, the inverse of `locate`, for any config. Use `cfg.anchors_per_level`,
# `cfg.feature_map_sizes` and `cfg.anchors_per_location` of the `cfg` it is given: the check tries SSD512, SSD300
# and `ssd.TINY_SHAPES` (the small preset for the shapes dataset, used from notebook 05 on). (Hint: `exercises.hint("02_flat_index")`.)

# %% tags=["nbval-check-output"]
def flat_index(k, i, j, d, cfg=ssd.SSD512_VOC):
    ### BEGIN SOLUTION
    offset = sum(cfg.anchors_per_level[:k])
    return offset + (i * cfg.feature_map_sizes[k] + j) * cfg.anchors_per_location[k] + d
    ### END SOLUTION


exercises.check("02_flat_index", flat_index);

# %% [markdown]
# ### Exercise 2: one anchor's shape
#
# What are `(w, h)` in pixels of the **standing 1:3** anchor of level 4 of SSD512? Compute it from
# `cfg.box_sizes` with the rule above (not by reading `level_box_shapes`) and store it as a tuple
# `box_1to3 = (w, h)`.

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
s_4 = cfg.box_sizes[4]
box_1to3 = (s_4 / math.sqrt(3), s_4 * math.sqrt(3))
### END SOLUTION
exercises.check("02_box_1to3", box_1to3);


# %% [markdown]
# ### Exercise 3: one anchor's centre
#
# Write `anchor_center(k, i, j, cfg)` returning `(cx, cy)` in pixels. The checker tries it on SSD512, SSD300,
# TINY_SHAPES and an SSD300 whose steps are fractional (`300 / f_k`, see below), so read the step from the config.

# %% tags=["nbval-check-output"]
def anchor_center(k, i, j, cfg=ssd.SSD512_VOC):
    ### BEGIN SOLUTION
    step = cfg.steps[k]
    return ((j + 0.5) * step, (i + 0.5) * step)
    ### END SOLUTION


exercises.check("02_anchor_center", anchor_center);

# %% [markdown]
# ## All 24 564 anchors at once: how densely do they cover the image?
#
# For every pixel, count the anchors that contain it (`viz.pixel_anchor_counts`: a pixel counts when its centre
# lies inside the box). Per level the pattern is a blurred copy of the grid; summed over levels it is
# highest in the interior and lowest in the corners, which only the anchors of the nearest cells reach.
# Still, even a corner pixel lies inside more than a hundred anchors.

# %%
viz.plot_anchor_coverage(cfg, per_level=COVERAGE_PER_LEVEL)

# %% tags=["nbval-check-output"]
coverage = viz.pixel_anchor_counts(ssd.cxcywh_to_xyxy(anchors), cfg.image_size)  # [512, 512]
for name, (y, x) in {"centre": (256, 256), "edge middle": (256, 0), "corner": (0, 0)}.items():
    print(f"pixel {name:<12} (x={x:>3}, y={y:>3}): covered by {int(coverage[y, x]):>3} anchors")

# %% [markdown]
# ## Intersection over union, by hand
#
# Covering a pixel is not enough to say that an anchor *fits* an object. SSD measures the fit with the
# **intersection over union** (IoU, the paper's *Jaccard overlap*) of two boxes A and B:
#
# $$\mathrm{IoU}(A, B) = \frac{|A \cap B|}{|A \cup B|} = \frac{|A \cap B|}{|A| + |B| - |A \cap B|}$$
#
# 1 for identical boxes, 0 for boxes that do not touch. The intersection of two `xyxy` boxes is again a box:
# its top-left corner is the larger of the two top-left corners, its bottom-right the smaller of the two
# bottom-right corners, and it is empty when those cross. A worked example: A = (100, 100, 200, 200) and
# B = (150, 120, 250, 220) overlap on x ∈ [150, 200] and y ∈ [120, 200], a 50 × 80 = 4 000 px² box; each box is
# 100 × 100 = 10 000 px², so the union is 10 000 + 10 000 − 4 000 = 16 000 px² and IoU = 4 000 / 16 000 = 0.25.

# %% tags=["nbval-check-output"]
def box_iou_by_hand(boxes_a, boxes_b):
    # boxes_a [N, 4], boxes_b [M, 4], both xyxy -> IoU [N, M]
    top_left = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])  # [N, M, 2]
    bottom_right = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])  # [N, M, 2]
    wh = (bottom_right - top_left).clamp(min=0)  # [N, M, 2], 0 where the boxes do not overlap
    inter = wh[..., 0] * wh[..., 1]  # [N, M]
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])  # [N]
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])  # [M]
    return inter / (area_a[:, None] + area_b[None, :] - inter)  # [N, M]


box_a = torch.tensor([[100.0, 100.0, 200.0, 200.0]])
box_b = torch.tensor([[150.0, 120.0, 250.0, 220.0]])
print(f"IoU(A, B) by hand: {box_iou_by_hand(box_a, box_b).item():.4f}")
assert torch.allclose(box_iou_by_hand(box_a, box_b), torch.tensor([[0.25]]))
# on every anchor against the ground truth, against torchvision.ops.box_iou
anchors_xyxy = ssd.cxcywh_to_xyxy(anchors)  # [A, 4]
assert torch.allclose(box_iou_by_hand(anchors_xyxy, gt_boxes), box_iou(anchors_xyxy, gt_boxes), atol=1e-6)
print(f"box_iou_by_hand == torchvision.ops.box_iou on all {len(anchors)} anchors x {len(gt_boxes)} boxes")

# %%
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.add_patch(Rectangle((100, 100), 100, 100, fill=False, lw=2, color="C0", label="A (100, 100, 200, 200)"))
ax.add_patch(Rectangle((150, 120), 100, 100, fill=False, lw=2, color="C1", label="B (150, 120, 250, 220)"))
ax.add_patch(Rectangle((150, 120), 50, 80, color="C2", alpha=0.4, label="A ∩ B: 50 x 80 = 4000 px²"))
ax.set(xlim=(80, 270), ylim=(240, 80), aspect="equal", xlabel="x (pixels)", ylabel="y (pixels)",
       title="IoU = 4000 / (10000 + 10000 − 4000) = 0.25")
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8);

# %% [markdown]
# [`torchvision.ops.box_iou`](https://pytorch.org/vision/stable/generated/torchvision.ops.box_iou.html) does the
# same, faster, and we use it from now on.
#
# ## Which anchors fit an object?
#
# Training matches anchors to objects in two steps (SSD paper, Sec. 2.2 "Matching strategy"): first every
# ground-truth box gets its single best anchor, whatever the IoU; then every other anchor whose IoU with a box is
# at least 0.5 (`cfg.iou_threshold`) is a *positive* for it too. Notebook 05 does the full matching; here we look at
# the second step only. `box_iou` gives the `[A, M]` IoU table between all
# anchors and the M ground-truth boxes, both in `xyxy`.

# %% tags=["nbval-check-output"]
ious = box_iou(anchors_xyxy, gt_boxes)  # [A, M]
level_of = torch.repeat_interleave(torch.arange(cfg.num_levels), torch.tensor(cfg.anchors_per_level))  # [A]
for m, box in enumerate(gt_boxes.tolist()):
    positive = ious[:, m] >= cfg.iou_threshold
    per_level = torch.bincount(level_of[positive], minlength=cfg.num_levels).tolist()
    best = int(ious[:, m].argmax())
    print(f"box {m} ({box[2] - box[0]:.0f} px): {int(positive.sum()):>2} anchors with IoU >= 0.5, per level "
          f"{per_level}; best anchor {best} {locate(best)} IoU {float(ious[best, m]):.2f}")

# %% [markdown]
# Each object is picked up by the levels whose box sizes match it: the 68-px square by levels 0 and 1
# ($s'_0 = 52$, $s_1 = 76.8$), the 93-px circle by level 1 ($s'_1 = 109$), the 159-px square by level 2
# ($s_2 = 153.6$). That is the whole idea of the multi-scale tiling: every object size has a level made for it.
#
# ## Fractional steps at 300 px
#
# For SSD512 every step divides 512. At 300 px they do not: 300 / 38 = 7.89. The article computes steps in
# its dry run as `image_size // fm`, which rounds 7.89 down to 7. The 38 cells then span only
# 38 × 7 = 266 pixels: a **34-pixel band** along the right and bottom edges belongs to no level-0 cell, and the
# last centre sits at 262.5 px, **37.5 px** from the edge (the number notebooks 01 and 04 quote: it is measured
# from the last centre, the 34 px from the end of the cells). The original SSD300 (the authors' released code, which `ssd.SSD300_VOC`
# follows) uses the steps of column "orig": on level 0 (step 8) its cells reach 304 px, slightly past the edge,
# but on the 10×10 and 5×5 maps they reach 10 × 32 = 5 × 64 = 320 px, and the last centre of the 10×10 map,
# 304.0 px, lies outside the 300-px image. The paper's own formula,
# centres at $\tfrac{j+0.5}{|f_k|}$ of the image side, amounts to the fractional step `300 / 38`, which makes
# the cells tile the image exactly. The table compares the three (column "orig": the original code's steps).

# %% tags=["nbval-check-output"]
cfg300 = ssd.SSD300_VOC
print("  fm   300/fm  300//fm   orig | last centre: //      /     orig | cells end: //      /    orig")
for fm, orig_step in zip(cfg300.feature_map_sizes, cfg300.steps):
    floor_step, exact_step = 300 // fm, 300 / fm
    print(f"{fm:>4} {exact_step:>8.3f} {floor_step:>8} {orig_step:>6} |"
          f" {(fm - 0.5) * floor_step:>15.1f} {(fm - 0.5) * exact_step:>6.1f} {(fm - 0.5) * orig_step:>7.1f} |"
          f" {fm * floor_step:>11} {fm * exact_step:>6.1f} {fm * orig_step:>7}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained", sharey=True)
choices = [("300 // 38 = 7", 300 // 38), ("300 / 38 = 7.89", 300 / 38), ("8 (original)", 8)]
for ax, (name, step) in zip(axes, choices):
    centers = (torch.arange(38) + 0.5) * step
    cy, cx = torch.meshgrid(centers, centers, indexing="ij")
    ax.add_patch(Rectangle((0, 0), 300, 300, color="lightsteelblue", label="300x300 image"))
    ax.add_patch(Rectangle((0, 0), 38 * step, 38 * step, fill=False, lw=2, color="black",
                           label=f"38 cells end at {38 * step:.0f} px"))
    ax.scatter(cx.reshape(-1), cy.reshape(-1), s=12, color="C3", label="anchor centres")
    ax.set(xlim=(200, 310), ylim=(310, 200), aspect="equal", title=f"step {name}", xlabel="x (pixels)")
    ax.legend(loc="upper left", fontsize=8)
axes[0].set_ylabel("y (pixels)")
fig.suptitle("SSD300 level 0 (38x38): bottom-right corner of the image");

# %% [markdown]
# `SSDConfig` refuses steps whose cells do not cover the image, so the article's mistake cannot slip into
# a config; fractional steps are accepted and give the same 8 732 anchors, now spread over the whole image.

# %% tags=["nbval-check-output"]
floor_steps = tuple(300 // fm for fm in cfg300.feature_map_sizes)
try:
    cfg300.replace(steps=floor_steps)
except ValueError as error:
    print("ValueError:", error)

fractional = cfg300.replace(steps=tuple(300 / fm for fm in cfg300.feature_map_sizes))
boxes300 = ssd.default_boxes(fractional)
print(f"fractional steps: {tuple(round(s, 3) for s in fractional.steps)}")
last_cx, last_cy = boxes300[cfg300.anchors_per_level[0] - 1, :2].tolist()
print(f"{len(boxes300)} anchors; last level-0 centre: ({last_cx:.2f}, {last_cy:.2f}) px")

# %% [markdown]
# ## Anchor explorer
#
# The explorer draws the anchors of any location of any preset over the example image, with a table of
# their flat index, size and IoU with the dashed ground-truth box (the image's largest object). It is a thin
# layer over a plain function, `widgets.anchor_explorer_view`, which also gives the static picture below:
# the 6 anchors of level 2 at the cell under the large square. Anchors that reach past the image border are
# drawn as they are (this package does not clip them); a dotted outline marks a box with a side longer than the
# whole image (or shorter than 1 px), such as the 652-px-wide 2:1 box of level 6. The widget's table has a column
# "fits image" for the same test: True means the box's sides are at most the image side (and at least 1 px), **not**
# that the box lies inside the image. Below, d=1 (188 px wide, centred at x = 432) ends at x = 526.1 > 512 and
# still "fits".

# %% tags=["nbval-check-output"]
largest = gt_boxes[((gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])).argmax()]
fig, rows = widgets.anchor_explorer_view("ssd512_voc", level=2, row=13, col=13, image=image, gt_box_xyxy=largest)
for r in rows:
    print(f"d={r['k']} index {r['index']} {r['shape']:<9} {r['w']:6.1f} x {r['h']:6.1f}  IoU {r['iou']:.3f}  "
          f"x from {r['cx'] - r['w'] / 2:5.1f} to {r['cx'] + r['w'] / 2:5.1f}  fits image {r['fits']}")

# %%
fig

# %% [markdown]
# In the widget, move the sliders (the figure and table update when you release them), type other aspect
# ratios into the text box and press Enter (e.g. `1.5` or `2, 3, 4`; an empty box leaves only the two
# squares), or change the box scale. Impossible settings show a message instead of a picture — try a
# ratio of `-1`, or a scale of 3 at level 6, where every box is larger than the image. The same messages come
# from the package:

# %% tags=["nbval-check-output"]
for settings in [dict(ratios="2, -1"), dict(ratios="2, x"), dict(level=6, scale=3.0)]:
    try:
        widgets.anchor_explorer_view("ssd512_voc", **settings)
    except ValueError as error:
        print(f"{settings}: {error}")

# %% tags=["nbval-ignore-output"]
widgets.anchor_explorer_widget("ssd512_voc", level=2, row=13, col=13, seed=IMAGE_SEED, index=IMAGE_INDEX)

# %% [markdown]
# **Task.** The explorer opens on the cell under the centre of the large square (level 2, row 13, column 13).
# Keep the cell under that centre while you change the level (at level k the cell is row
# `i = int(cy // step_k)`, column `j = int(cx // step_k)`; the square's centre (cx, cy) is printed in "Two ways to
# write a box" above) and compare the best IoU with the dashed box that each level reaches there. Level 2 is
# the best (its s_2 = 153.6 px is closest to the square's 159 px); which level k comes **second**? Store it in
# `runner_up_level`. (The widget's table calls the shape index "k"; it is our d.)

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
runner_up_level = 3
### END SOLUTION
exercises.check("02_explorer_best_level", runner_up_level);

# %% [markdown]
# ## Which anchors does a box catch?
#
# The second widget turns the IoU question around: you move a ground-truth box (centre, width, height) and
# see every anchor with IoU ≥ the threshold, coloured by level, with the single best anchor in black and the
# counts per level beside it. Shrink the box and watch the positives move to the fine levels; grow it and
# they move to the coarse ones. Here is its plain function on the circle:

# %% tags=["nbval-check-output"]
x1, y1, x2, y2 = gt_boxes[1].tolist()
fig, rows = widgets.positive_anchors_view("ssd512_voc", (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1,
                                          image=image)
for r in rows:
    print(f"level {r['level']}: {r['positives']:>2} of {r['anchors']:>5} anchors with IoU >= 0.5, "
          f"best IoU {r['best_iou']:.3f} (anchor {r['best_index']})")

# %%
fig

# %% tags=["nbval-ignore-output"]
widgets.positive_anchors_widget("ssd512_voc", seed=IMAGE_SEED, index=IMAGE_INDEX, box_cxcywh=(260, 260, 64, 64))

# %% [markdown]
# **Task.** The widget opens on a 64 × 64 square centred at (260, 260), the centre of a level-0 cell. Keep
# w = h and shrink the square: what is the **smallest side** (whole pixels) for which at least one anchor still
# has IoU ≥ 0.5? The sliders move in steps of 4 px, so type each side into the number box at the right of the
# slider (click it, type, press Enter), and set both "width" and "height", which are separate sliders. Store the
# side in `smallest_side`. Then explain it with the IoU formula: a box inside an anchor of the same centre has
# IoU = (box area) / (anchor area).

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
smallest_side = 26
### END SOLUTION
exercises.check("02_smallest_square", smallest_side);

# %% [markdown]
# Why that side: the box and the level-0 square anchor share their centre, so IoU = side² / s_0², which is at
# least 0.5 when side ≥ √0.5 · s_0.

# %% tags=["nbval-check-output"]
side_min = math.sqrt(0.5) * cfg.box_sizes[0]
print(f"sqrt(0.5) * s_0 = sqrt(0.5) * {cfg.box_sizes[0]} = {side_min:.2f} px -> smallest whole side "
      f"{math.ceil(side_min)} px")

# %% [markdown]
# ## Recap
#
# - Boxes are `xyxy` (corners) or `cxcywh` (centre and size); IoU = intersection / union, built by hand and
#   equal to `torchvision.ops.box_iou`.
# - Level k lays an `f_k × f_k` grid over the image; cell (i, j) spans `step_k` pixels and its anchors are
#   centred at `((j + 0.5)·step_k, (i + 0.5)·step_k)` — row i over y, column j over x (reading the paper's
#   centre as (x, y), its i is our j).
# - Each location has 2 squares ($s_k$ and $\sqrt{s_k s_{k+1}}$) and a lying and a standing box per aspect
#   ratio, with the area of the $s_k$ square: 4 or 6 anchors.
# - `default_boxes(cfg)` is `[A, 4]` cxcywh in pixels, not clipped, ordered level → row i → column j → shape
#   d; the flat index of (k, i, j, d) is `offset_k + (i·f_k + j)·n_k + d`, where `offset_k =
#   sum(cfg.anchors_per_level[:k])` counts the anchors of the levels before k.
# - Together the 24 564 anchors of SSD512 cover every pixel over 100 times, and each object size finds
#   anchors with IoU ≥ 0.5 on the level whose sizes match it.
# - Steps must tile the image: at 300 px `300 // fm` leaves a band without centres; a fractional
#   `300 / fm` (or the original code's rounded-up steps) does not.
#
# **Next:** [03_heads.ipynb](03_heads.ipynb) builds the network whose feature maps are these grids, and the
# heads that predict, for every anchor in this order, 4 offsets and 21 class scores.
