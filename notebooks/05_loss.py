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
#       NUM_SCAN_IMAGES: 200
# ---

# %% [markdown]
# # 05 — Matching and the MultiBox loss
#
# The network of notebook 04 predicts, for every anchor, 4 box offsets and C class scores. To train it we
# must say, for every anchor, what it *should* have predicted: which object it is responsible for (if any),
# and by how much its box must move and stretch to cover that object. This notebook builds those targets
# and the loss that compares them with the predictions, the way the SSD paper
# ([Liu et al. 2016, arXiv 1512.02325](https://arxiv.org/abs/1512.02325)) and the article
# ("The Hero Rises: Build Your Own SSD", Allegro AI blog, 2020) do, next to torchvision's
# [SSD](https://pytorch.org/vision/stable/models/ssd.html).
#
# **After this notebook you will be able to**
# - match ground-truth boxes to anchors with the two-step rule (a greedy *bipartite* step, then IoU ≥ 0.5) by
#   hand, and check it against `ssd_tutorial.match_anchors`. "Bipartite" because the step pairs two separate
#   sets, boxes and anchors, one to one: each box gets one anchor and no anchor serves two boxes. The idea comes
#   from MultiBox ([Erhan et al. 2014, arXiv 1312.2249](https://arxiv.org/abs/1312.2249)), which the SSD paper
#   builds on;
# - say where the article's rule and torchvision's `SSDMatcher` disagree, and why;
# - encode the regression target of a positive anchor by hand;
# - compute the MultiBox loss by hand: smooth-L1 on positives, cross-entropy with 3:1 hard negative mining;
# - explain why smooth-L1 rather than L2, and why an image with no objects must not give NaN.

# %% [markdown]
# ## Parameters
#
# `CHECKPOINT` is the trained model used to look at real per-anchor losses. `"tiny_shapes"` is the one shipped
# with the package: `TINY_SHAPES` trained by `make checkpoint` (`python -m ssd_tutorial train --preset tiny_shapes
# --seed 0 --epochs 12 --num-train 6400`: 12 epochs on 6 400 generated shapes images, the best of them kept). That
# is a longer run than notebook 06's recipe (8 epochs on 3 200 images), so it is **not** the model notebook 06
# trains. A path to any checkpoint `fit` wrote works too. The demo image is item `IMAGE_INDEX` of `ShapesDataset(seed=IMAGE_SEED)`. `NUM_SCAN_IMAGES` images are
# matched with both rules to count how often they disagree.

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
CHECKPOINT = "tiny_shapes"
IMAGE_SEED, IMAGE_INDEX = 5, 15
IOU_THRESHOLD = 0.5
NUM_SCAN_IMAGES = 500

# %%
# %matplotlib inline
import copy
import math

import torch
import torch.nn.functional as F
from matplotlib.cbook import get_sample_data
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from torchvision.models.detection._utils import SSDMatcher
from torchvision.ops import box_iou
from torchvision.transforms.functional import pil_to_tensor

import ssd_tutorial as ssd
from ssd_tutorial import exercises, viz
from ssd_tutorial.data import ShapesDataset
from ssd_tutorial.loss import hard_negative_mask
from ssd_tutorial.widgets import matching_view, matching_widget

torch.manual_seed(0)
cfg = ssd.TINY_SHAPES
anchors_cxcywh = ssd.default_boxes(cfg)  # [A, 4] cxcywh pixels, not clipped
anchors_xyxy = ssd.cxcywh_to_xyxy(anchors_cxcywh)  # [A, 4]
print(f"{cfg.name}: {cfg.image_size}x{cfg.image_size} images, {cfg.num_anchors} anchors, "
      f"classes {cfg.class_names}")

# %% [markdown]
# ## One image, its boxes, its anchors
#
# We work with the small `TINY_SHAPES` model (128×128 inputs, 1 524 anchors on 5 feature maps) and one image
# of the generated shapes data with four objects from 13 to 40 pixels wide (printed below). Boxes are `xyxy` in pixels; labels
# index `cfg.class_names` (0 is the background).

# %% tags=["nbval-check-output"]
image, target = ShapesDataset(IMAGE_INDEX + 1, image_size=cfg.image_size, seed=IMAGE_SEED)[IMAGE_INDEX]
gt_boxes, gt_labels = target["boxes"], target["labels"]  # [M, 4] xyxy px, [M]
for m, (box, label) in enumerate(zip(gt_boxes.tolist(), gt_labels.tolist())):
    print(f"box {m}: {cfg.class_names[label]:<8} xyxy {box}  ({box[2] - box[0]:.0f} x {box[3] - box[1]:.0f} px)")

# %%
fig = Figure(figsize=(4.5, 4.5), layout="constrained")
ax = fig.add_subplot()
viz.show_image(ax, image)
viz.draw_boxes(ax, gt_boxes, gt_labels, class_names=cfg.class_names)
ax.set(title="the demo image and its ground truth (colour = class)", xlabel="x (pixels)", ylabel="y (pixels)")
fig

# %% [markdown]
# ## Matching, step 1: the greedy bipartite step
#
# Matching starts from the IoU of every ground-truth box with every anchor, a matrix `iou[m, a]` of shape
# `[M, A]`. The first step makes sure that **every box gets at least one anchor**, even a box so small or oddly
# shaped that no anchor reaches IoU 0.5 with it. The SSD paper (Sec. 2.2 "Matching strategy") states it in one
# line: match each ground-truth box to the default box with the best jaccard overlap, "as in MultiBox"
# ([Erhan et al. 2014](https://arxiv.org/abs/1312.2249)). It does not say what happens when two boxes have the
# same best anchor; the authors' Caffe code and the article's box coder settle that greedily, and so does
# this package:
#
# 1. take the largest IoU left in the matrix, at (box m, anchor a);
# 2. give anchor a to box m;
# 3. cross out row m (the box is served) and column a (the anchor is taken);
# 4. repeat until every box is served (or the largest IoU left is 0: a box that overlaps no anchor at all).
#
# Crossing out the column matters when two boxes have the **same** best anchor: the pair with the higher IoU
# wins, and the other box takes its best *remaining* anchor instead of losing out.

# %% tags=["nbval-check-output"]
iou = box_iou(gt_boxes, anchors_xyxy)  # [M, A]
remaining = iou.clone()
greedy_anchor = torch.full((len(gt_boxes),), -1)  # [M], the anchor each box gets in step 1
for round_ in range(len(gt_boxes)):
    best = remaining.max()
    if best < 1e-6:  # no overlap left
        break
    m, a = divmod(int(remaining.argmax()), remaining.shape[1])  # row = box, column = anchor
    greedy_anchor[m] = a
    remaining[m, :] = -1.0  # box m is served
    remaining[:, a] = -1.0  # anchor a is taken
    cxcywh = [round(v, 1) for v in anchors_cxcywh[a].tolist()]
    print(f"round {round_}: IoU {best:.3f} -> box {m} takes anchor {a} (cxcywh {cxcywh})")

# %% [markdown]
# The rounds take the best overlaps first: the big square (box 0) is served first, the 13-pixel square
# (box 1) last, with an IoU of only 0.46: no anchor of `TINY_SHAPES` covers it better.
#
# ## Matching, step 2: every anchor with IoU ≥ 0.5
#
# The second step adds the anchors that overlap some box well: every anchor that step 1 did not take and whose
# **best** IoU over the boxes is at least `IOU_THRESHOLD` is matched to that best box. Step 1 wins over step 2
# where both apply. The result is one number per anchor: the index of its box, or −1 for background.
# An anchor matched to a box is a **positive** anchor (it learns that box's class and offsets); every other
# anchor is a **negative** (it learns "background"). Below, P_i is the number of positives of image i and
# P = Σ_i P_i the number of positives of a batch (the paper's N in eq. 1); for our single image P = P_1.

# %% tags=["nbval-check-output"]
best_iou, best_box = iou.max(dim=0)  # [A] each: every anchor's best box
by_threshold = torch.where(best_iou >= IOU_THRESHOLD, best_box, -1)  # [A], step 2 alone
matches = by_threshold.clone()
matches[greedy_anchor[greedy_anchor >= 0]] = torch.arange(len(gt_boxes))[greedy_anchor >= 0]  # step 1 wins

assert torch.equal(matches, ssd.match_anchors(gt_boxes, anchors_xyxy, IOU_THRESHOLD))
for m in range(len(gt_boxes)):
    print(f"box {m}: step 1 gives anchor {int(greedy_anchor[m]):>4}, step 2 gives {int((by_threshold == m).sum())} "
          f"anchors, {int((matches == m).sum())} positives in all")
print(f"positives: {int((matches >= 0).sum())} of {cfg.num_anchors} anchors "
      f"({(matches >= 0).float().mean():.1%}); the rest is background")

# %% [markdown]
# Our two steps agree with the package. Drawn: on the left the one anchor each box gets from step 1 (solid
# outline), on the right the anchors of step 2 (dashed); the thick outlines are the ground-truth boxes. From
# here on, in these matching figures a colour stands for a **box** (the number in its caption), not a class:
# boxes 0, 1 and 3 are all squares. The 13-pixel square has no anchor at IoU ≥ 0.5, so without step 1 this box would
# never be a positive: no anchor would be asked to find it. That does not mean small objects teach nothing:
# whether a small box reaches IoU 0.5 depends on where it sits relative to the anchor grid, and the scan below
# counts how many small boxes of the shapes data do (notebook 08 measures it for every box size).

# %%
fig = Figure(figsize=(10, 5), layout="constrained")
left, right = fig.subplots(1, 2)
step1 = torch.full_like(matches, -1)
step1[greedy_anchor[greedy_anchor >= 0]] = torch.arange(len(gt_boxes))[greedy_anchor >= 0]
viz.draw_matches(left, image, gt_boxes, anchors_xyxy, step1, highlight=step1 >= 0, labels=gt_labels,
                 class_names=cfg.class_names)
left.set_title("step 1, greedy bipartite: one anchor per box (solid)")
viz.draw_matches(right, image, gt_boxes, anchors_xyxy, by_threshold, labels=gt_labels, class_names=cfg.class_names)
right.set_title(f"step 2: every anchor with IoU >= {IOU_THRESHOLD} (dashed)")
fig

# %% [markdown]
# ### Try it: the IoU threshold
#
# Move the slider: a lower threshold gives every box more positive anchors (looser ones), a higher one
# fewer. At any threshold each box keeps its step-1 anchor (solid outline); the table counts the positives
# per box. Set it to 0 to see what the package says about a threshold that makes no sense.

# %% tags=["nbval-ignore-output"]
matching_widget(image, gt_boxes, anchors_cxcywh, labels=gt_labels, class_names=cfg.class_names,
                iou_threshold=IOU_THRESHOLD)

# %% [markdown]
# Without a running kernel the slider shows nothing, so here are the positive counts per box at 0.3 and 0.5, the
# package's answer to a threshold of 0, and the view at 0.3 (thick: the boxes; solid: the greedy step's anchor;
# dashed: the other positives; one colour per box):

# %% tags=["nbval-check-output"]
for threshold in (0.3, 0.5):
    _, rows = matching_view(image, gt_boxes, anchors_cxcywh, threshold, labels=gt_labels,
                            class_names=cfg.class_names)
    print(f"IoU >= {threshold}: " + ", ".join(f"box {r['box']} ({r['class']}) {r['positives']}" for r in rows))
try:
    matching_view(image, gt_boxes, anchors_cxcywh, 0.0, labels=gt_labels, class_names=cfg.class_names)
except ValueError as err:
    print(f"IoU >= 0: ValueError: {err}")

# %%
matching_view(image, gt_boxes, anchors_cxcywh, 0.3, labels=gt_labels, class_names=cfg.class_names)[0]

# %% [markdown]
# ### Exercise: match by hand
#
# Put the two steps together in a function `match(iou, threshold)` that works on **any** IoU matrix `[M, A]` and
# returns a `Tensor[A]` of dtype `torch.long` with box indices (−1 for background), exactly as
# `ssd_tutorial.match_anchors` does. Step 1 stops when the largest IoU left is below 10⁻⁶ (a box that overlaps no
# anchor stays unmatched). Mind M = 0: `iou.max(dim=0)` fails on an empty dimension, so handle that case first. The
# checker tries it on small hand-made cases (two boxes that want the same anchor, a box that overlaps no anchor,
# an IoU exactly at the threshold, an image without boxes) and on shapes images at thresholds 0.3, 0.5 and 0.7,
# and compares with `match_anchors`.

# %% tags=["nbval-check-output"]
def match(iou, threshold):
    ### BEGIN SOLUTION
    num_boxes, num_anchors = iou.shape
    result = torch.full((num_anchors,), -1)
    if num_boxes == 0:  # an image without objects: everything is background
        return result
    best_iou, best_box = iou.max(dim=0)  # [A] each
    result[best_iou >= threshold] = best_box[best_iou >= threshold]  # step 2
    left = iou.clone()
    for _ in range(num_boxes):  # step 1 last, so that it wins
        if left.max() < 1e-6:
            break
        m, a = divmod(int(left.argmax()), num_anchors)
        result[a] = m
        left[m, :], left[:, a] = -1.0, -1.0
    return result
    ### END SOLUTION


exercises.check("05_match", match);

# %% [markdown]
# ## A real photograph, matched to SSD300's anchors
#
# Shapes are easy to label; real photographs are what SSD is for. matplotlib ships a portrait of Grace Hopper
# (`grace_hopper.jpg`, 512 × 600 pixels). SSD300 squashes every image to 300 × 300 (the paper resizes without
# keeping the aspect ratio), so we do the same and label two boxes **by hand**, in pixels of the 300 × 300 image:
# her face, xyxy (95, 82, 215, 200), and the ribbon bar on her uniform, xyxy (205, 248, 262, 273). These are our
# own rough labels, not from any dataset. Then the package matches them to the 8 732 anchors of `SSD300_VOC`:

# %% tags=["nbval-check-output"]
photo = Image.open(get_sample_data("grace_hopper.jpg")).convert("RGB")
print("photo size (w, h):", photo.size)
photo = pil_to_tensor(photo.resize((300, 300))).float() / 255  # [3, 300, 300] in [0, 1]
photo_boxes = torch.tensor([[95.0, 82.0, 215.0, 200.0], [205.0, 248.0, 262.0, 273.0]])  # hand-labelled, xyxy px
photo_names = ("__background__", "face", "ribbons")
cfg300 = ssd.SSD300_VOC
anchors300 = ssd.cxcywh_to_xyxy(ssd.default_boxes(cfg300))  # [8732, 4]
photo_matches = ssd.match_anchors(photo_boxes, anchors300, IOU_THRESHOLD)  # [8732]
photo_iou = box_iou(photo_boxes, anchors300)  # [2, 8732]
for m, name in enumerate(photo_names[1:]):
    mine = (photo_matches == m).nonzero().flatten()
    shapes = ssd.xyxy_to_cxcywh(anchors300[mine])[:, 2:]  # [n, 2] anchor w, h
    print(f"{name} ({photo_boxes[m, 2] - photo_boxes[m, 0]:.0f} x {photo_boxes[m, 3] - photo_boxes[m, 1]:.0f} px): "
          f"best IoU {photo_iou[m].max():.3f}, {len(mine)} positive anchors, their w/h: "
          f"{sorted(round(w / h, 2) for w, h in shapes.tolist())}")

# %%
fig = Figure(figsize=(5.5, 5.5), layout="constrained")
ax = fig.add_subplot()
viz.draw_matches(ax, photo, photo_boxes, anchors300, photo_matches, labels=[1, 2], class_names=photo_names)
ax.set_title("hand-labelled boxes (thick) and their SSD300 positives (dashed)")
fig

# %% [markdown]
# Both boxes get positives from step 2 (the counts and the anchors' width / height ratios are printed above): the
# face, about square, mostly from square anchors; the flat ribbon bar (57 × 25 pixels) from a few flat anchors of
# aspect ratio 2. Nothing here depends on what the picture shows: matching only sees box coordinates. Whether a detector *finds* such objects is another matter:
# the model shipped with this package has only ever seen circles, squares and triangles (notebook 07 shows what it
# does with this photograph, and what SSD reaches on its real task, PASCAL VOC).

# %% [markdown]
# ## The article's rule next to torchvision's `SSDMatcher`
#
# torchvision's SSD matches with `torchvision.models.detection._utils.SSDMatcher`. Its step 2 is the same
# (every anchor with IoU ≥ 0.5 takes its best box). Its step 1 is not greedy: each box takes its own best
# anchor **independently** (`iou.max(dim=1)`), all written at once with `matches[best_anchor] = arange(M)`.
# When two boxes have the same best anchor, only one of the two writes survives (on the CPU, the box listed
# last) and the other box gets nothing from step 1.
#
# How often does that happen? We match a few hundred generated images with both rules:

# %%
tv_matcher = SSDMatcher(IOU_THRESHOLD)


def torchvision_matches(boxes):
    return tv_matcher(box_iou(boxes, anchors_xyxy)).clamp(min=-1)  # its -2 ("between thresholds") is -1 here


scan = ShapesDataset(NUM_SCAN_IMAGES, image_size=cfg.image_size, seed=2)
differ = []
for i in range(len(scan)):
    boxes = scan[i][1]["boxes"]
    if len(boxes) and not torch.equal(ssd.match_anchors(boxes, anchors_xyxy), torchvision_matches(boxes)):
        differ.append(i)
print(f"the two rules differ on {len(differ)} of {len(scan)} images: {differ}")
scan_boxes = torch.cat([scan[i][1]["boxes"] for i in range(len(scan))])  # [N, 4]
small = (scan_boxes[:, 2:] - scan_boxes[:, :2]).amax(dim=1) <= 15  # boxes at most 15 px on their longer side
reach = box_iou(scan_boxes[small], anchors_xyxy).amax(dim=1) >= IOU_THRESHOLD  # [small], an anchor at IoU >= 0.5
print(f"boxes of at most 15 px: {int(small.sum())}; {int(reach.sum())} of them ({reach.float().mean():.0%}) "
      f"have an anchor at IoU >= {IOU_THRESHOLD}, the others get a positive only from step 1")

# %% [markdown]
# Rarely, on these well-separated shapes (and step 1 is what keeps the small boxes without a good anchor in
# the training: see the second line). Here is that image (`seed=2`, item 166): two large circles whose best
# anchor is the same 1×1-map box, anchor 1523.

# %% tags=["nbval-check-output"]
diff_image, diff_target = ShapesDataset(167, image_size=cfg.image_size, seed=2)[166]
diff_boxes = diff_target["boxes"]
diff_iou = box_iou(diff_boxes, anchors_xyxy)  # [2, A]
ours, theirs = ssd.match_anchors(diff_boxes, anchors_xyxy), torchvision_matches(diff_boxes)
for m in range(len(diff_boxes)):
    a = int(diff_iou[m].argmax())
    print(f"box {m}: best anchor {a} (IoU {diff_iou[m, a]:.3f}); "
          f"anchors ours {(ours == m).nonzero().flatten().tolist()}, "
          f"torchvision {(theirs == m).nonzero().flatten().tolist()}")
reversed_theirs = torchvision_matches(diff_boxes.flip(0))
print("torchvision with the boxes listed in the other order gives anchor 1523 to the box now written last:",
      f"box {1 - int(reversed_theirs[1523])} of the original order")

# %%
fig = Figure(figsize=(10, 5), layout="constrained")
for ax, matched, title in zip(fig.subplots(1, 2), (ours, theirs), ("article / ssd_tutorial (greedy step)",
                                                                    "torchvision SSDMatcher (the box listed last wins)")):
    others = matched.clone()
    others[1523] = -1  # anchor 1523 is drawn on its own below, in black
    viz.draw_matches(ax, diff_image, diff_boxes, anchors_xyxy, others)  # boxes thick, their other anchors dashed
    x1, y1, x2, y2 = anchors_xyxy[1523].tolist()
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="black", linewidth=2, linestyle=":"))
    ax.text(x2 - 1, y2 - 2, f"anchor 1523 -> box {int(matched[1523])}", color="white", fontsize=8, ha="right",
            bbox={"facecolor": "black", "alpha": 0.8, "pad": 1, "edgecolor": "none"})
    ax.set_title(title)
fig

# %% [markdown]
# Anchor 1523 (black, dotted; the coloured boxes are the ground truth and, dashed, the other anchors each box
# got) overlaps box 0 better (0.536) than box 1 (0.479). The greedy step gives it to box 0 and
# sends box 1 to its next best anchor (1445). torchvision gives it to box 1 only because box 1 comes later in
# the annotation list, so the result depends on the **order of the boxes in the file**. Box 1 still has an
# anchor here, but in a crowd of small objects (a flock of birds, a row of bottles) the losing box can end
# with **no positive anchor at all**. Two 10-pixel objects side by side:

# %% tags=["nbval-check-output"]
crowd = torch.tensor([[36.0, 36.0, 46.0, 46.0], [38.0, 38.0, 48.0, 48.0]])
ours, theirs = ssd.match_anchors(crowd, anchors_xyxy), torchvision_matches(crowd)
print("positives per box, ours:       ", torch.bincount(ours[ours >= 0], minlength=2).tolist())
print("positives per box, torchvision:", torch.bincount(theirs[theirs >= 0], minlength=2).tolist())

# %% [markdown]
# With torchvision's rule box 0 is never a positive: the detector is never asked to find it. There is one
# more small difference: `SSDMatcher` forces each box's argmax anchor even when that IoU is 0 (a box that
# overlaps no anchor), while our greedy step stops below IoU 10⁻⁶ and leaves such a box unmatched.
#
# ## Encoded targets for one positive anchor
#
# A positive anchor does not learn the box's corners; it learns the SSD parameterization of notebook 04,
# the box *relative to itself* (SSD paper, eq. 2, with the variances 0.1 and 0.2 of the original code):
#
# $$t_x = \frac{g_x - a_x}{0.1\,a_w},\quad t_y = \frac{g_y - a_y}{0.1\,a_h},\quad
#   t_w = \frac{\log(g_w / a_w)}{0.2},\quad t_h = \frac{\log(g_h / a_h)}{0.2}$$
#
# with box g and anchor a in cxcywh pixels (the paper calls the anchor d, for *default box*).
# Take the anchor that step 1 gave the 13-pixel square (box 1):

# %% tags=["nbval-check-output"]
loc_targets, cls_targets = ssd.encode_targets([target], anchors_cxcywh, cfg)  # [1, A, 4], [1, A]
a = int(greedy_anchor[1])
x1, y1, x2, y2 = gt_boxes[1].tolist()
gx, gy, gw, gh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
ax_, ay_, aw, ah = anchors_cxcywh[a].tolist()
v0, v1 = cfg.variances
by_hand = torch.tensor([(gx - ax_) / (aw * v0), (gy - ay_) / (ah * v0),  # SSD paper, eq. 2
                        math.log(gw / aw) / v1, math.log(gh / ah) / v1])
print(f"box 1 cxcywh ({gx}, {gy}, {gw}, {gh}); anchor {a} cxcywh ({ax_}, {ay_}, {aw:.2f}, {ah:.2f})")
print("by hand:       ", [round(v, 4) for v in by_hand.tolist()])
print("encode_targets:", [round(v, 4) for v in loc_targets[0, a].tolist()], "class", int(cls_targets[0, a]))
assert torch.allclose(by_hand, loc_targets[0, a], atol=1e-5)
assert int(cls_targets[0, a]) == int(gt_labels[1])

# %% [markdown]
# The variances only rescale the targets so that their typical size is about 1, which suits the loss below;
# `decode_boxes` undoes the encoding at inference time. Background anchors get class 0 and (unused) offsets 0.
#
# ### Exercise: encode a box
#
# Give the four targets of the box xyxy (30, 40, 70, 100) for the anchor cxcywh (48, 64, 32, 32), with
# variances (0.1, 0.2): assign them to `deltas`, a tuple of four floats `(tx, ty, tw, th)`.

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
gx, gy, gw, gh = (30 + 70) / 2, (40 + 100) / 2, 70 - 30, 100 - 40
deltas = ((gx - 48) / (32 * 0.1), (gy - 64) / (32 * 0.1), math.log(gw / 32) / 0.2, math.log(gh / 32) / 0.2)
### END SOLUTION
exercises.check("05_encode_box", deltas);

# %% [markdown]
# ## The classification loss and the flood of background
#
# Every anchor gets a cross-entropy loss on its class: its box's class for positives, class 0 (background)
# for the rest. But positives are rare: 10 of 1 524 anchors here. Look at the loss of a network before
# training whose class heads start with a zero bias, so that every class is about equally likely. (By default the
# package's `SSD` sets the bias of its class heads so that an untrained network already gives the background a
# probability of 0.99, the "prior" initialisation of RetinaNet,
# [Lin et al. 2017, arXiv 1708.02002](https://arxiv.org/abs/1708.02002), Sec. 4.1; `background_prior=None`
# switches that off.)

# %% tags=["nbval-check-output"]
torch.manual_seed(0)
untrained = ssd.SSD(cfg, background_prior=None).eval()  # plain init: ~uniform class scores
with torch.no_grad():
    _, logits0 = untrained.forward_heads(image[None])  # [1, A, C]
ce0 = F.cross_entropy(logits0[0], cls_targets[0], reduction="none")  # [A]
positive = cls_targets[0] > 0  # [A]
P = int(positive.sum())
kept0 = hard_negative_mask(ce0[None], positive[None], cfg.neg_pos_ratio)[0]
print(f"positives P = {P}, negatives = {cfg.num_anchors - P}; "
      f"mean CE per anchor {ce0.mean():.2f} (log 4 = {math.log(4):.2f})")
print(f"without mining: background is {ce0[~positive].sum() / ce0.sum():.1%} of the classification loss")
print(f"with 3:1 mining: background is {ce0[kept0].sum() / (ce0[kept0].sum() + ce0[positive].sum()):.1%}")

# %% [markdown]
# Without mining, 99 % of the loss — and of its gradient — says "more background, everywhere". The
# cheapest way down is to predict background for every anchor, and the few positives barely count. SSD's
# answer is **hard negative mining** (SSD paper, Sec. 2.2): keep all positives and only the negatives with the
# **largest** loss, the ones the network currently gets most wrong, so that negatives and positives are "at most
# 3:1". The paper does not say over what the ratio is counted; the authors' Caffe code, the article and this
# package count it **per image**: image i keeps its `3 × P_i` hardest negatives. Ignored negatives contribute
# nothing. Background still makes most of the loss (the kept negatives are the hardest, and there are three per
# positive), but no longer drowns the positives. (This is also why the package's `SSD` starts with the 0.99
# background prior described above: the first steps are not wasted learning that background is common.)
#
# Mining matters most for a network that has learnt something: let's load the trained model and look at
# where its hardest negatives are.

# %%
model = ssd.load_pretrained(CHECKPOINT)  # eval mode, on the CPU
with torch.no_grad():
    loc_preds, cls_logits = model.forward_heads(image[None])  # [1, A, 4], [1, A, C]
ce = F.cross_entropy(cls_logits[0], cls_targets[0], reduction="none")  # [A], per-anchor loss
kept = hard_negative_mask(ce[None], positive[None], cfg.neg_pos_ratio)[0]  # [A] bool, the package's mining
num_neg = int(kept.sum())
neg_ce = ce.masked_fill(positive, float("-inf"))  # positives can never be picked as negatives
hardest = neg_ce.argsort(descending=True)[:num_neg]  # anchor ids, hardest first
assert torch.equal(kept.nonzero().flatten().sort().values, hardest.sort().values)  # the kept are the hardest
print(f"{P} positives -> keep the {num_neg} hardest of {cfg.num_anchors - P} negatives")
print(f"CE sums: positives {ce[positive].sum():.3f}, kept negatives {ce[kept].sum():.3f}, "
      f"all negatives {ce[~positive].sum():.3f}")

# %% [markdown]
# Compare the three sums: almost all of the loss of the negatives sits in the few that are kept; the other
# negatives are already right and teach nothing any more.
#
# The heatmaps show each negative anchor's cross-entropy at its cell (the largest over the anchors of the
# cell, on a log scale; positives are left out), for the three finest levels. Dots mark cells holding at
# least one kept negative (one dot can stand for several anchors of its cell; the kept negatives of the two
# coarsest levels are not drawn). The hard negatives are not spread at random: they sit **on and around the
# objects**, anchors that overlap an object partly (IoU below 0.5) and that the network is tempted to call
# an object.

# %%
shown = sum(fm * fm * k for fm, k in zip(cfg.feature_map_sizes[:3], cfg.anchors_per_location[:3]))  # levels 0-2
viz.plot_anchor_values(image, ce.masked_fill(positive, float("nan")), cfg, levels=[0, 1, 2], mark=kept, log=True,
                       value_label="cross-entropy of negative anchors (log scale)",
                       title=f"per-anchor CE of the trained model; dots: cells with a kept negative "
                             f"({int(kept[:shown].sum())} of the {num_neg} are on these levels)")

# %% [markdown]
# Ranked, the negatives' losses fall off steeply: a handful are hard, the rest are already close to 0.
# Mining draws the line at `3 × P`:

# %%
ranked = ce[~positive].sort(descending=True).values  # [A - P]
fig = Figure(figsize=(7, 3.5), layout="constrained")
ax = fig.add_subplot()
ax.semilogy(range(1, num_neg + 1), ranked[:num_neg], ".", color="C3", label=f"kept ({num_neg} = 3 x {P})")
ax.semilogy(range(num_neg + 1, len(ranked) + 1), ranked[num_neg:], ".", color="C7", markersize=3,
            label=f"ignored ({len(ranked) - num_neg})")
ax.axvline(num_neg + 0.5, color="black", linestyle="--", linewidth=1)
ax.set(xlabel="rank of the negative anchor (hardest first)", ylabel="cross-entropy (log scale)",
       title="negatives ranked by loss: hard negative mining keeps the top 3P")
ax.legend()
fig


# %% [markdown]
# ### Exercise: how many negatives are kept?
#
# Write `negatives_kept(P, A)`: the number of negatives that 3:1 mining keeps in an image with `A` anchors
# and `P` positives. Mind the edge cases: an image without objects still keeps 3 negatives, as if P were 1
# (the NaN section below says why), and an image can have so many positives that fewer than `3P` negatives
# are left.

# %% tags=["nbval-check-output"]
def negatives_kept(P, A):
    ### BEGIN SOLUTION
    return min(3 * max(P, 1), A - P)
    ### END SOLUTION


exercises.check("05_negatives_kept", negatives_kept);

# %% [markdown]
# ## Smooth-L1 for the boxes
#
# The localisation loss compares the 4 predicted offsets of each **positive** anchor with its targets using
# smooth-L1 ([Fast R-CNN, Girshick 2015, arXiv 1504.08083](https://arxiv.org/abs/1504.08083); SSD paper, eq. 2),
# with β = 1:
#
# $$\text{smooth}_{L1}(x) = \begin{cases} 0.5\,x^2 & |x| < 1 \\ |x| - 0.5 & \text{otherwise} \end{cases}$$
#
# Near 0 it is the quadratic L2 loss (gentle, smooth gradients for fine adjustments); far from 0 it grows
# only linearly, so its gradient never exceeds 1. At the start of training some offsets are off by several
# units; with L2 their gradient would be proportional to the error and would dominate the update.

# %%
x = torch.linspace(-3, 3, 601, requires_grad=True)
losses = {"smooth-L1 (beta = 1)": F.smooth_l1_loss(x, torch.zeros_like(x), reduction="none", beta=1.0),
          "L2 (0.5 x^2)": 0.5 * x**2, "L1 (|x|)": x.abs()}
fig = Figure(figsize=(10, 3.6), layout="constrained")
value_ax, grad_ax = fig.subplots(1, 2)
for (name, loss), style in zip(losses.items(), ("-", "--", ":")):
    (grad,) = torch.autograd.grad(loss.sum(), x)
    value_ax.plot(x.detach(), loss.detach(), style, label=name, linewidth=2)
    grad_ax.plot(x.detach(), grad, style, label=name, linewidth=2)
value_ax.set(xlabel="x = prediction - target", ylabel="loss", title="loss")
grad_ax.set(xlabel="x = prediction - target", ylabel="d loss / dx", title="gradient: smooth-L1 is capped at ±1")
value_ax.legend()
fig

# %% [markdown]
# ### Exercise: smooth-L1 by hand
#
# What is the smooth-L1 loss (β = 1, summed over the 4 coordinates) of the prediction (0.2, −1.5, 3.0, 0.5)
# against the target (0.0, 0.0, 1.0, 0.0)? Work it out with pencil and paper first, then assign it to `loss`
# (a Python float).

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
loss = 0.5 * 0.2**2 + (1.5 - 0.5) + (2.0 - 0.5) + 0.5 * 0.5**2
### END SOLUTION
exercises.check("05_smooth_l1", loss);

# %% [markdown]
# ## The whole MultiBox loss, by hand
#
# With P = Σ_i P_i the positives of the **batch**, the package's `multibox_loss` returns two terms (SSD paper, eq. 1
# with α = 1, the sum of the two being what is minimised):
#
# - `loss_loc` = Σ smooth-L1 over positive anchors and their 4 offsets / max(P, 1);
# - `loss_cls` = Σ cross-entropy over positives and kept negatives / max(P, 1).
#
# Written out on our image with the trained model's predictions:

# %% tags=["nbval-check-output"]
loss_loc = F.smooth_l1_loss(loc_preds[0][positive], loc_targets[0][positive], reduction="sum", beta=1.0) / max(P, 1)
loss_cls = (ce[positive].sum() + ce[kept].sum()) / max(P, 1)
package = ssd.multibox_loss(loc_preds, cls_logits, loc_targets, cls_targets, neg_pos_ratio=cfg.neg_pos_ratio)
assert torch.allclose(loss_loc, package["loss_loc"]) and torch.allclose(loss_cls, package["loss_cls"])
print("by hand and multibox_loss agree")

# %% [markdown]
# ## The NaN trap: an image without objects
#
# Some generated images have no object, like real photographs of empty streets (notebook 06 counts 15 in its
# first 200 training images). A batch made only of such images has P = 0 positives, and there are three rules
# for what the loss is then:
#
# 1. **The SSD paper** (eq. 1): L = (L_conf + α L_loc) / N with N the matched default boxes, and "if N = 0, we set
#    the loss to 0". No NaN, but such a batch teaches nothing: no gradient at all.
# 2. **The article** divides both terms by **P itself**: 0 / 0 for the boxes and (the CE of its mined negatives)
#    / 0 for the classes, NaN and inf. (Its mining, like ours, keeps at least 3 negatives per image, which is
#    what `article_loss` below reproduces; with a plain `3 × P_i` an empty image would keep no negative, and
#    the class term would be 0 / 0, NaN, as well.) Its data loader never meets this, because it drops every image without
#    annotations.
# 3. **This package** (`multibox_loss`) keeps empty images (they teach "background"): every image keeps
#    `neg_pos_ratio` × max(P_i, 1) hardest negatives, so an empty image keeps 3, and both terms are divided
#    by max(P, 1).
#
# Here is an empty image and the three rules written out:

# %% tags=["nbval-check-output"]
empty_image, empty_target = ShapesDataset(11, image_size=cfg.image_size, seed=0)[10]
print("boxes in this image:", empty_target["boxes"].shape[0])
empty_loc_t, empty_cls_t = ssd.encode_targets([empty_target], anchors_cxcywh, cfg)


def article_loss(loc_preds, cls_logits, loc_targets, cls_targets, neg_pos_ratio=3):
    positive = cls_targets > 0
    num_pos = positive.sum()  # no max(P, 1)
    loss_loc = F.smooth_l1_loss(loc_preds[positive], loc_targets[positive], reduction="sum")
    ce = F.cross_entropy(cls_logits.flatten(0, 1), cls_targets.flatten(), reduction="none").view_as(cls_targets)
    kept = positive | hard_negative_mask(ce, positive, neg_pos_ratio)  # at least 3 negatives per image
    return {"loss_loc": loss_loc / num_pos, "loss_cls": ce[kept].sum() / num_pos}


def paper_loss(loc_preds, cls_logits, loc_targets, cls_targets, neg_pos_ratio=3):
    if int((cls_targets > 0).sum()) == 0:  # SSD paper, eq. 1: "if N = 0, we set the loss to 0"
        zero = (loc_preds.sum() + cls_logits.sum()).abs() * 0.0  # 0, still attached to the graph
        return {"loss_loc": zero, "loss_cls": zero}
    return article_loss(loc_preds, cls_logits, loc_targets, cls_targets, neg_pos_ratio)


trainable = ssd.load_pretrained(CHECKPOINT).train()
empty_loc_p, empty_cls_p = trainable.forward_heads(empty_image[None])
papers = paper_loss(empty_loc_p, empty_cls_p, empty_loc_t, empty_cls_t)
theirs = article_loss(empty_loc_p, empty_cls_p, empty_loc_t, empty_cls_t)
ours = ssd.multibox_loss(empty_loc_p, empty_cls_p, empty_loc_t, empty_cls_t)
print(f"paper:   loss_loc = {papers['loss_loc'].item()}, loss_cls = {papers['loss_cls'].item()}")
print(f"article: loss_loc = {theirs['loss_loc'].item()}, loss_cls = {theirs['loss_cls'].item()}")
print(f"ours:    loss_loc = {ours['loss_loc'].item():.1f}, loss_cls = {ours['loss_cls'].item():.4f}")
assert all(torch.isfinite(v) for v in ours.values())

# %% [markdown]
# One such batch is enough to ruin a run. The inf and NaN flow back through every layer that computed the
# mined negatives' scores: the backbone and most class heads (the localisation heads get a clean 0, as no
# anchor is positive). One optimizer step writes NaN or inf into all those weights, and from then on the network's
# outputs are NaN or inf even on images with objects (the shares of non-finite box offsets and class scores on the
# demo image are printed below):

# %% tags=["nbval-check-output"]
(theirs["loss_loc"] + theirs["loss_cls"]).backward(retain_graph=True)  # the graph is reused for ours below
poisoned = sum(int(not p.grad.isfinite().all()) for p in trainable.parameters() if p.grad is not None)
total = len(list(trainable.parameters()))
print(f"parameters with a NaN or inf gradient after the article's loss: {poisoned} of {total}")
stepped = copy.deepcopy(trainable).eval()  # a copy takes one plain SGD step with these gradients
with torch.no_grad():
    for weight, used in zip(stepped.parameters(), trainable.parameters()):
        weight -= 1e-3 * used.grad
    loc_after, logits_after = stepped.forward_heads(image[None])  # the demo image, which has objects
print(f"after one SGD step: {sum(int(not w.isfinite().all()) for w in stepped.parameters())} of {total} "
      f"parameters hold NaN or inf; on the demo image, non-finite box offsets: "
      f"{(~loc_after.isfinite()).float().mean():.0%}, non-finite class scores: "
      f"{(~logits_after.isfinite()).float().mean():.0%}")
trainable.zero_grad()
(ours["loss_loc"] + ours["loss_cls"]).backward()
poisoned = sum(int(not p.grad.isfinite().all()) for p in trainable.parameters() if p.grad is not None)
print(f"parameters with a NaN or inf gradient after our loss: {poisoned} of {total}")

# %% [markdown]
# Ours stays finite: the empty image keeps its 3 hardest negatives (as if P were 1), so it still pushes the
# network towards "background" where it sees objects that are not there, and dividing by max(P, 1) = 1 is
# safe. The paper's rule is safe too, but gives this batch no gradient at all.
#
# Two setups, kept apart: the **article's own pipeline** never meets the NaN, since its loader drops empty images.
# The trap is for whoever combines its divide-by-P loss with a loader that **keeps** empty images, as ours does.
# How often would a batch be all empty then? With the fraction of empty images of the shapes data:

# %% tags=["nbval-check-output"]
empty_share = sum(len(t["boxes"]) == 0 for _, t in ShapesDataset(1000, image_size=cfg.image_size, seed=0)) / 1000
print(f"empty images in the first 1000 training images: {empty_share:.1%}")
for batch_size in (4, 32):
    print(f"batch of {batch_size:>2}: all empty with probability {empty_share ** batch_size:.1e}")

# %% [markdown]
# At batch 32 practically never; at the article's batch size of 4 about once in ten thousand batches, so a run of
# tens of thousands of iterations would meet it, and once is enough.
#
# ## Recap
#
# - **Matching** (`match_anchors`, SSD paper Sec. 2.2 "Matching strategy", after MultiBox): a greedy bipartite step
#   (the authors' code and the article's) gives every box its own best anchor, the best-overlapping pairs first;
#   then every other anchor with IoU ≥ 0.5 takes its best box. Everything else is background.
# - torchvision's `SSDMatcher` takes each box's best anchor independently; when two boxes share it, the box
#   listed last wins and the other may end with no positive at all.
# - **Targets** (`encode_targets`): positives learn the box relative to their anchor,
#   ((gx−ax)/(0.1·aw), (gy−ay)/(0.1·ah), log(gw/aw)/0.2, log(gh/ah)/0.2), and their box's class.
# - **Loss** (`multibox_loss`): smooth-L1 on positives, cross-entropy on positives plus the hardest
#   negatives of each image i (3·P_i, at least 3), both over max(P, 1). Without mining, background is 99 % of the loss.
# - P = 0: the paper sets the loss to 0 (no gradient), the article's divide-by-P gives NaN (its loader drops empty
#   images), the package keeps 3 negatives per empty image and divides by max(P, 1): finite, and still teaching.
# - Matching works the same on a real photograph: it only sees boxes.
#
# What SSD reaches on its real task (SSD300 and SSD512 on PASCAL VOC, the paper's Table 1) is in notebook 07's
# paragraph on real photographs.
#
# **Next:** [06_training.ipynb](06_training.ipynb) puts the model, the data and this loss into a training
# loop and trains `TINY_SHAPES` from scratch.
