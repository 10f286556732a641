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
#       BATCH_SIZE: 4
#       TRAIN_STEPS: 2
# ---

# %% [markdown]
# # 04 — The forward pass: one image, end to end
#
# Notebook 03 built the backbone and the heads. Here one image goes all the way through an SSD: pixels →
# sources → head maps → one row of predictions per anchor → boxes → detections. We do every step by hand
# once — including non-maximum suppression — and check it against the package and `torchvision.ops`.
#
# Notation as in notebook 01: level **k**, cell row **i** and column **j**, shape **d** at one location, n_k
# anchors per location; an anchor is named (k, i, j, d). In formulas an anchor box is written **a** (the paper calls
# the default box d; here d is the shape index).
#
# **After this notebook you will be able to**
# - follow the shapes of one image through `forward_heads`: `[1, 3, S, S]` → L sources → `[1, A, 4]` and
#   `[1, A, C]`;
# - encode a box relative to an anchor with the SSD parameterization and its variances, and decode it back
#   — by hand, drawn, and checked against `ssd.encode_boxes` / `ssd.decode_boxes`;
# - say why this package's untrained SSD predicts "background" everywhere (an initialisation choice, not SSD);
# - write non-maximum suppression (NMS) by hand, see what it removes, and check it against `torchvision.ops.nms`;
# - turn raw predictions into detections (decode, clip, softmax, threshold, per-class NMS, top-k) and check
#   the result against `ssd.decode_detections` and the model's eval-mode output;
# - read what the model predicts for any single anchor;
# - adapt a configuration to another input size with a dry run (the article's `change_input_size`).
#
# We use the small `TINY_SHAPES` model (128×128 input, 1 524 anchors, 4 classes with background), which runs
# in a blink on a CPU; everything works the same for SSD512.

# %% [markdown]
# ## Parameters
#
# If the shipped checkpoint `tiny_shapes` is missing, the notebook trains the tiny model itself for
# `TRAIN_STEPS` steps of `BATCH_SIZE` images (about a minute on a laptop CPU at the defaults).

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
TRAIN_STEPS = 300  # only used without the shipped checkpoint
BATCH_SIZE = 16
SEED = 0

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch
from torchvision.ops import box_iou, nms

import ssd_tutorial as ssd
from ssd_tutorial import exercises, viz
from ssd_tutorial.widgets.nb04 import (anchor_location, anchor_prediction_explorer, anchor_prediction_view,
                                       box_coding_view)

torch.manual_seed(SEED)
cfg = ssd.TINY_SHAPES
C = cfg.num_classes

# %% [markdown]
# ## One image
#
# An image from the shapes data set (notebook 06 trains on it): float RGB in [0, 1], `[3, 128, 128]`, with
# its ground-truth boxes in pixels, `(x1, y1, x2, y2)`, and labels 1 circle, 2 square, 3 triangle.

# %% tags=["nbval-check-output"]
val = ssd.ShapesDataset(8, image_size=cfg.image_size, seed=SEED + 1)
image, target = val[0]
print("image", list(image.shape), image.dtype)
for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
    print(f"  {cfg.class_names[label]:<9} {box}")

# %%
fig, ax = plt.subplots(figsize=(4, 4))
viz.show_image(ax, image)
viz.draw_boxes(ax, target["boxes"], target["labels"], class_names=cfg.class_names)
ax.set_xlabel("x (px)")
ax.set_ylabel("y (px)")
ax.set_title("ground truth")
plt.show()

# %% [markdown]
# ## Step by step through an untrained model
#
# `ssd.build_ssd(cfg)` builds the backbone of `cfg.backbone` (here the small "tiny" net), the extra layers and
# the heads. `eval()` makes BatchNorm use its running statistics, so the output does not depend on the batch.
#
# **Step 1 — normalize.** The model takes images in [0, 1] and normalizes them itself with `cfg.mean` and
# `cfg.std` (ImageNet's), as torchvision's detection models do, so data pipelines never normalize.

# %% tags=["nbval-check-output"]
torch.manual_seed(SEED)
model = ssd.build_ssd(cfg).eval()
images = image[None]  # [1, 3, 128, 128]: a batch of one
mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
std = torch.tensor(cfg.std).view(1, 3, 1, 1)
x = (images - mean) / std  # [1, 3, 128, 128]
print("normalized", list(x.shape), "per-channel means", [round(v, 2) for v in x.mean(dim=(0, 2, 3)).tolist()])

# %% [markdown]
# **Step 2 — the backbone gives the L sources** (notebook 03): one feature map per level, with
# `cfg.in_channels` channels and `cfg.feature_map_sizes` cells a side.

# %% tags=["nbval-check-output"]
with torch.no_grad():
    sources = model.backbone(x)
for level, feature in enumerate(sources):
    print(f"level {level} source: {list(feature.shape)}")

# %% [markdown]
# **Step 3 — the heads.** A 3×3 conv per source for the offsets (n_k·4 channels) and one for the class
# scores (n_k·C channels), n_k anchors per cell. Here C = 4 (background, circle, square, triangle), so both heads
# happen to have n_k·4 channels — but 4 box numbers and 4 class scores per anchor.

# %% tags=["nbval-check-output"]
with torch.no_grad():
    loc_maps = [head(f) for head, f in zip(model.loc_heads, sources)]  # L x [1, n_k*4, H, W]
    cls_maps = [head(f) for head, f in zip(model.cls_heads, sources)]  # L x [1, n_k*C, H, W]
for level, (loc_map, cls_map) in enumerate(zip(loc_maps, cls_maps)):
    n_k = cfg.anchors_per_location[level]
    print(f"level {level}: n_k={n_k}  loc {list(loc_map.shape)}  cls {list(cls_map.shape)}")

# %% [markdown]
# **Step 4 — one row per anchor.** Channels last, cut into rows of 4 (or C), concatenate the levels: the
# order of `default_boxes` (notebook 03 proved it). This is all `model.forward_heads` does.

# %% tags=["nbval-check-output"]
loc_preds = torch.cat([m.permute(0, 2, 3, 1).reshape(1, -1, 4) for m in loc_maps], dim=1)  # [1, A, 4]
cls_logits = torch.cat([m.permute(0, 2, 3, 1).reshape(1, -1, C) for m in cls_maps], dim=1)  # [1, A, C]
print("loc_preds", list(loc_preds.shape), " cls_logits", list(cls_logits.shape), " anchors", cfg.num_anchors)

with torch.no_grad():
    package_loc, package_cls = model.forward_heads(images)
assert torch.allclose(loc_preds, package_loc) and torch.allclose(cls_logits, package_cls)

# %% [markdown]
# Row a of `loc_preds` holds 4 numbers for anchor a, row a of `cls_logits` holds C class scores. What do
# the 4 numbers mean? They are not coordinates.
#
# ## Box coding: how 4 numbers move an anchor onto a box
#
# The localisation head predicts how to shift and stretch an anchor $a = (a^{cx}, a^{cy}, a^w, a^h)$ (the paper
# calls the default box $d$) to reach a box $g$, with two **variances** $v_0, v_1$ (`cfg.variances`):
#
# $$t^{cx} = \frac{g^{cx} - a^{cx}}{v_0\, a^w}, \quad t^{cy} = \frac{g^{cy} - a^{cy}}{v_0\, a^h}, \quad
#   t^w = \frac{1}{v_1}\log\frac{g^w}{a^w}, \quad t^h = \frac{1}{v_1}\log\frac{g^h}{a^h}$$
#
# The SSD paper's eq. 2 (Sec. 2.2) is the case $v_0 = v_1 = 1$; the variances come from the authors' code.
#
# Centre shifts are measured in anchor widths and heights, so the same numbers work for the 12.8-pixel squares of
# level 0 and the 89.6-pixel squares of level 4 (`cfg.box_sizes`, printed below); sizes are log ratios, so
# "twice as wide" and "half as wide" are symmetric (log 2 = +0.69 and −0.69, before the division by $v_1$) and the
# decoded size is always positive. Here $v_0 = 0.1$ for the centre and $v_1 = 0.2$ for the size — more on why
# below.
#
# Take the small circle (the second ground-truth box) and the anchor that overlaps it most:

# %% tags=["nbval-check-output"]
anchors = model.anchors  # [A, 4] cxcywh px, = ssd.default_boxes(cfg)
print("cfg.box_sizes:", cfg.box_sizes, " cfg.variances:", cfg.variances)
gt_xyxy = target["boxes"][1]
ious = box_iou(gt_xyxy[None], ssd.cxcywh_to_xyxy(anchors))[0]  # [A]
best = int(ious.argmax())
print(f"anchor #{best} = (k, i, j, d) {anchor_location(cfg, best)}, IoU {ious[best]:.3f}")

gx, gy, gw, gh = ssd.xyxy_to_cxcywh(gt_xyxy).tolist()
ax_, ay, aw, ah = anchors[best].tolist()
v0, v1 = cfg.variances
t_mine = torch.tensor([(gx - ax_) / (aw * v0), (gy - ay) / (ah * v0),  # centre shift in anchor sizes / v0
                       math.log(gw / aw) / v1, math.log(gh / ah) / v1])  # log size ratio / v1
t_package = ssd.encode_boxes(ssd.xyxy_to_cxcywh(gt_xyxy), anchors[best], cfg.variances)
assert torch.allclose(t_mine, t_package, atol=1e-5)
print("anchor (cx, cy, w, h):", [round(v, 2) for v in anchors[best].tolist()])
print("box    (cx, cy, w, h):", [round(v, 2) for v in (gx, gy, gw, gh)])
print("offsets t:", [round(v, 3) for v in t_mine.tolist()])

# %%
fig, rows = box_coding_view(anchors[best], ssd.xyxy_to_cxcywh(gt_xyxy), cfg.variances, image=image)
fig

# %% [markdown]
# Decoding runs the four steps backwards: $g^{cx} = a^{cx} + t^{cx} v_0 a^w$, $g^w = a^w e^{t^w v_1}$, and
# the same for y and h. Back to the box we started from:

# %% tags=["nbval-check-output"]
tx, ty, tw, th = t_mine.tolist()
back = torch.tensor([ax_ + tx * v0 * aw, ay + ty * v0 * ah, aw * math.exp(tw * v1), ah * math.exp(th * v1)])
assert torch.allclose(back, ssd.decode_boxes(t_mine, anchors[best], cfg.variances), atol=1e-4)
assert torch.allclose(ssd.cxcywh_to_xyxy(back), gt_xyxy, atol=1e-3)
print("decoded (x1, y1, x2, y2):", [round(v, 2) for v in ssd.cxcywh_to_xyxy(back).tolist()])

# and for every anchor at once, against random boxes
generator = torch.Generator().manual_seed(SEED)
boxes = torch.cat([torch.rand(len(anchors), 2, generator=generator) * 128,
                   4 + torch.rand(len(anchors), 2, generator=generator) * 120], dim=1)  # [A, 4] cxcywh
round_trip = ssd.decode_boxes(ssd.encode_boxes(boxes, anchors, cfg.variances), anchors, cfg.variances)
assert torch.allclose(round_trip, boxes, atol=1e-3)
print(f"decode(encode(box)) == box for all {len(anchors)} anchors (to 1e-3 px)")

# %% [markdown]
# ### Why the variances?
#
# The loss (notebook 05) compares predicted and target offsets with a smooth-L1 loss, which is quadratic
# below 1 and linear above. The raw offsets of matched anchors are small — an anchor only matches when it
# already overlaps its box well (the paper: jaccard overlap higher than 0.5, or it is the box's best anchor).
# One way to see the variances: without scaling, these small offsets would all sit in the flat quadratic part of
# the loss; dividing by 0.1 and 0.2 brings them to about unit spread. This is the same idea as the normalisation
# of the regression targets in Fast R-CNN (Girshick 2015, [arXiv 1504.08083](https://arxiv.org/abs/1504.08083)).
# Measure it on the positive anchors of 64 images
# (matching is notebook 05's topic; `encode_targets` does it and encodes with the variances):

# %% tags=["nbval-check-output"]
some = ssd.ShapesDataset(64, image_size=cfg.image_size, seed=SEED + 2)
_, targets = ssd.collate_detection([some[i] for i in range(len(some))])
loc_targets, cls_targets = ssd.encode_targets(targets, anchors, cfg)  # [B, A, 4], [B, A]
positive = cls_targets > 0  # [B, A]
with_variances = loc_targets[positive]  # [P, 4]
raw = with_variances * torch.tensor([v0, v0, v1, v1])  # undo the division
print(f"{int(positive.sum())} positive anchors")
print("std of (tx, ty, tw, th) without variances:", [round(v, 2) for v in raw.std(dim=0).tolist()])
print("std of (tx, ty, tw, th) with variances:   ", [round(v, 2) for v in with_variances.std(dim=0).tolist()])

# %% [markdown]
# ## Exercise: encode one box
#
# Encode the ground-truth box `(x1, y1, x2, y2) = (20, 20, 68, 84)` relative to the anchor
# `(cx, cy, w, h) = (40, 56, 32, 64)`, variances (0.1, 0.2). Give `[tx, ty, tw, th]` as a list of 4 floats
# (`log` is the natural log, `math.log`).

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
gx_, gy_, gw_, gh_ = (20 + 68) / 2, (20 + 84) / 2, 68 - 20, 84 - 20
offsets = [(gx_ - 40) / (32 * 0.1), (gy_ - 56) / (64 * 0.1),
           math.log(gw_ / 32) / 0.2, math.log(gh_ / 64) / 0.2]
### END SOLUTION
exercises.check("04_encode_box", offsets);

# %% [markdown]
# ## What the untrained model predicts
#
# Decode every row of `loc_preds` against its anchor and take the softmax of every row of `cls_logits`:

# %% tags=["nbval-check-output"]
boxes_cxcywh = ssd.decode_boxes(loc_preds[0], anchors, cfg.variances)  # [A, 4]
probs = cls_logits[0].softmax(dim=-1)  # [A, C]
shift = (boxes_cxcywh[:, :2] - anchors[:, :2]).norm(dim=1) / anchors[:, 2:].min(dim=1).values
print(f"median centre shift: {shift.median():.2f} anchor sides")
print(f"background probability: mean {probs[:, 0].mean():.3f}, min {probs[:, 0].min():.3f}")
print(f"best object probability anywhere: {probs[:, 1:].max():.3f}")


# %% [markdown]
# The boxes barely move from their anchors: small random weights give small offsets. And the model is sure
# it sees background everywhere. **That is not SSD behaviour**: it comes from this package's initialisation.
# `ssd.SSD(cfg, background_prior=0.99)` (the default) sets the bias of the class heads so that every anchor
# starts with P(background) ≈ 0.99. The idea is RetinaNet's (Lin et al. 2017, *Focal Loss for Dense Object
# Detection*, Sec. 3.3 "Class Imbalance and Model Initialization", its "prior" π for the rare foreground class),
# not the SSD paper's, which does not describe such an initialisation. Nearly every anchor *is* background, so
# training starts from the right base rate instead of spending its first iterations learning it.
# `background_prior=None` leaves the heads at their plain random initialisation — then no class is favoured:

# %% tags=["nbval-check-output"]
for prior in (0.99, None):
    torch.manual_seed(SEED)
    probe = ssd.SSD(cfg, background_prior=prior).eval()
    with torch.no_grad():
        probe_probs = probe.forward_heads(images)[1][0].softmax(dim=-1)  # [A, C]
    print(f"background_prior={prior}: mean P(background) {probe_probs[:, 0].mean():.3f}, "
          f"mean P(each object class) {probe_probs[:, 1:].mean():.3f}  (1/C = {1 / C:.3f})")

# %% [markdown]
# ## Exercise: decode offsets
#
# Write `my_decode(deltas, anchors, variances)`: the inverse of the encoding. `deltas` holds the offsets
# `(tx, ty, tw, th)`, `anchors` the anchors in `(cx, cy, w, h)` pixels, both `[N, 4]`; return the boxes
# `[N, 4]` in `(cx, cy, w, h)` pixels. This is the decoding line of the cell above (`back = …`), written for N
# boxes at once with tensor operations instead of one box of Python floats.

# %% tags=["nbval-check-output"]
def my_decode(deltas, anchors, variances):
    ### BEGIN SOLUTION
    v0, v1 = variances
    centre = anchors[:, :2] + deltas[:, :2] * v0 * anchors[:, 2:]
    size = anchors[:, 2:] * torch.exp(deltas[:, 2:] * v1)
    return torch.cat([centre, size], dim=1)
    ### END SOLUTION


exercises.check("04_decode_boxes", my_decode);

# %% [markdown]
# ## From 1 524 rows to a handful of detections
#
# Each anchor proposes a box with a score for every class. Post-processing keeps the few that matter
# (`cfg` holds every threshold):
#
# 1. decode the offsets, convert to `(x1, y1, x2, y2)` and clip to the image;
# 2. softmax over the C classes; class 0 is background and never a detection;
# 3. per object class, keep the scores above `score_threshold`, at most `pre_nms_top_k` of them;
# 4. per class, **non-maximum suppression** (NMS, below);
# 5. the best `max_detections` over all classes, by score.
#
# The SSD paper (Sec. 3.7, "Inference time") uses a confidence threshold of 0.01, NMS with a Jaccard (IoU) overlap
# of 0.45 per class, and keeps the top 200 detections per image; `cfg.score_threshold`, `cfg.nms_threshold` and
# `cfg.max_detections` hold those numbers. `pre_nms_top_k = 400` is not in the paper: it comes from the authors'
# Caffe code ([weiliu89/caffe, branch ssd](https://github.com/weiliu89/caffe/tree/ssd)).
#
# ### Non-maximum suppression, by hand
#
# Many anchors around an object predict nearly the same box. NMS keeps the best of them and removes its
# duplicates: go through the boxes **by descending score**; the first box is kept; every later box is **kept
# unless it overlaps an already kept box** by IoU > `nms_threshold`. Only a *kept* box suppresses others: a box
# that was itself suppressed removes nothing, so two boxes that both overlap a suppressed one can both survive.
# About ten lines:

# %% tags=["nbval-check-output"]
def nms_by_hand(boxes, scores, iou_threshold):
    # boxes [N, 4] xyxy, scores [N] -> indices of the kept boxes [K], by descending score
    order = torch.sort(scores, descending=True, stable=True).indices  # best first
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for a in order.tolist():
        if suppressed[a]:
            continue  # removed by a kept box: it suppresses nothing itself
        keep.append(a)
        suppressed |= box_iou(boxes[a:a + 1], boxes)[0] > iou_threshold  # the duplicates of box a
    return torch.tensor(keep, dtype=torch.long)


# A (score 0.9) overlaps B (0.8); B overlaps C (0.7); A and C overlap little
toy_boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [3.0, 0.0, 13.0, 10.0], [6.0, 0.0, 16.0, 10.0]])
toy_scores = torch.tensor([0.9, 0.8, 0.7])
print("IoU(A, B), IoU(B, C), IoU(A, C):", [round(v, 3) for v in box_iou(toy_boxes, toy_boxes)[[0, 1, 0], [1, 2, 2]]
                                           .tolist()])
print("kept:", ["ABC"[i] for i in nms_by_hand(toy_boxes, toy_scores, 0.45).tolist()])
assert torch.equal(nms_by_hand(toy_boxes, toy_scores, 0.45), nms(toy_boxes, toy_scores, 0.45))

# %% [markdown]
# A is kept and removes B (IoU 0.54 > 0.45). C also overlaps B by 0.54, but B was suppressed, so it does not
# count; C overlaps the kept A by only 0.25 and is kept. torchvision's
# [`nms`](https://pytorch.org/vision/stable/generated/torchvision.ops.nms.html) agrees. The whole post-processing
# by hand, with a loop over classes and our NMS:

# %% tags=["nbval-check-output"]
print(f"score_threshold {cfg.score_threshold}, pre_nms_top_k {cfg.pre_nms_top_k}, "
      f"nms_threshold {cfg.nms_threshold}, max_detections {cfg.max_detections}")


def detections_by_hand(loc_preds, cls_logits, anchors, cfg):
    # one image: loc_preds [A, 4], cls_logits [A, C] -> {"boxes" [N, 4] xyxy, "scores" [N], "labels" [N]}
    boxes = ssd.cxcywh_to_xyxy(ssd.decode_boxes(loc_preds, anchors, cfg.variances))  # [A, 4]
    boxes = boxes.clamp(min=0, max=cfg.image_size)
    probs = cls_logits.softmax(dim=-1)  # [A, C]
    kept_boxes, kept_scores, kept_labels = [], [], []
    for c in range(1, cfg.num_classes):
        scores = probs[:, c]  # [A]
        top = scores.topk(min(cfg.pre_nms_top_k, len(scores))).indices
        top = top[scores[top] > cfg.score_threshold]
        keep = top[nms_by_hand(boxes[top], scores[top], cfg.nms_threshold)]
        kept_boxes.append(boxes[keep])
        kept_scores.append(scores[keep])
        kept_labels.append(torch.full_like(keep, c))
    scores = torch.cat(kept_scores)
    order = scores.argsort(descending=True)[: cfg.max_detections]
    boxes, labels = torch.cat(kept_boxes), torch.cat(kept_labels)
    return {"boxes": boxes[order], "scores": scores[order], "labels": labels[order]}


def same_detections(a, b):
    return all(a[key].shape == b[key].shape and torch.allclose(a[key].float(), b[key].float(), atol=1e-4)
               for key in ("boxes", "scores", "labels"))


# %%
mine = detections_by_hand(loc_preds[0], cls_logits[0], anchors, cfg)
package = ssd.decode_detections(loc_preds, cls_logits, anchors, cfg)[0]
with torch.no_grad():
    eval_output = model(images)[0]  # eval mode: forward_heads + decode_detections
assert same_detections(mine, package) and same_detections(mine, eval_output)
print(f"untrained model: {len(mine['scores'])} detections above {cfg.score_threshold}, "
      f"best score {mine['scores'].max().item() if len(mine['scores']) else 0:.3f}")


# %% [markdown]
# The package does the same for a whole batch at once — one `batched_nms` call over (image, class) groups
# instead of a Python loop — and gives the same answer. With P(background) ≈ 0.99 everywhere, the few boxes
# that pass the 0.01 threshold barely pass it: they are noise. Time for a trained model.
#
# ## A trained model
#
# The shipped checkpoint `tiny_shapes` was trained with the recipe of notebook 06. If it is not there, the
# next cell trains the tiny model here for `TRAIN_STEPS` steps — a bare loop, notebook 06 explains each part:
# in train mode the model returns the two losses of notebook 05 instead of detections.

# %% tags=["nbval-ignore-output"]
def train_tiny(steps, batch_size, seed):
    torch.manual_seed(seed)
    net = ssd.build_ssd(cfg)
    data = ssd.ShapesDataset(steps * batch_size, image_size=cfg.image_size, seed=seed + 10)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    net.train()
    for step in range(steps):
        batch = [data[step * batch_size + i] for i in range(batch_size)]
        images_b, targets_b = ssd.collate_detection(batch)
        losses = net(images_b, targets_b)  # {"loss_loc", "loss_cls"}
        loss = losses["loss_loc"] + losses["loss_cls"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % max(1, steps // 6) == 0 or step + 1 == steps:
            print(f"step {step + 1:>4}: loss_loc {losses['loss_loc']:.3f}  loss_cls {losses['loss_cls']:.3f}")
    return net.eval()


try:
    trained = ssd.load_pretrained("tiny_shapes")
    print("loaded the shipped checkpoint tiny_shapes")
except (ValueError, FileNotFoundError):
    print(f"no shipped checkpoint: training for {TRAIN_STEPS} steps of {BATCH_SIZE} images")
    trained = train_tiny(TRAIN_STEPS, BATCH_SIZE, SEED)

# %%
with torch.no_grad():
    loc_t, cls_t = trained.forward_heads(images)  # [1, A, 4], [1, A, C]
    detections = trained(images)[0]
assert same_detections(detections_by_hand(loc_t[0], cls_t[0], trained.anchors, cfg), detections)

min_score = 0.3  # for the picture only; cfg.score_threshold (0.01) keeps many more
confident = detections["scores"] > min_score
fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
for ax, title in zip(axes, ("ground truth", f"detections with score > {min_score}")):
    viz.show_image(ax, image)
    ax.set_title(title)
    ax.set_xlabel("x (px)")
axes[0].set_ylabel("y (px)")
viz.draw_boxes(axes[0], target["boxes"], target["labels"], class_names=cfg.class_names)
viz.draw_boxes(axes[1], detections["boxes"][confident], detections["labels"][confident],
               detections["scores"][confident], class_names=cfg.class_names)
plt.show()
print(f"{len(detections['scores'])} detections above {cfg.score_threshold}, "
      f"{int(confident.sum())} above {min_score}")
iou_gt = box_iou(target["boxes"], detections["boxes"])  # [M, N]
for m, label in enumerate(target["labels"].tolist()):
    same_class = detections["labels"] == label  # [N]
    if not same_class.any():
        print(f"  ground truth {m} ({cfg.class_names[label]}): no {cfg.class_names[label]} detection at all")
        continue
    n = int(torch.where(same_class, iou_gt[m], -1.0).argmax())
    print(f"  ground truth {m} ({cfg.class_names[label]}): best-overlapping {cfg.class_names[label]} detection "
          f"IoU {iou_gt[m, n]:.2f}, score {detections['scores'][n]:.2f}")

# %% [markdown]
# The same pipeline, now with weights that learned something: most of the 1 524 proposals fall below the
# score threshold or are removed by NMS, and the picture keeps only the boxes scored above 0.3. The lines
# under it pair each ground-truth box with the detection of its class that overlaps it most.
#
# This image is a hard one: the large circle hides the tip of the triangle. With the shipped checkpoint the
# small circle is found almost exactly (IoU 0.86, score 1.00) and the triangle roughly (IoU 0.59); the
# large circle gets a fair box (IoU 0.69) but a score of only 0.03 — kept above 0.01, left out of the
# picture — and a false "circle" with score 0.53 sits on the body of the triangle. A detector is judged on
# many images, not one: notebook 07 measures this checkpoint with mean average precision. (Without the
# checkpoint, the model trained above for a few hundred steps is far from done and misses or misplaces more.)
#
# ### What NMS removed
#
# Take the class "circle" of the trained model on this image: the candidates are its decoded, clipped boxes
# whose circle score passes `score_threshold`, at most `pre_nms_top_k`. Before NMS many of them sit on top of
# each other; after NMS one box is left per cluster. Both panels draw only the boxes with a circle score above
# `min_score`, so that the picture stays readable; the counts printed below are over all candidates.

# %%
circle = cfg.class_names.index("circle")
boxes_t = ssd.cxcywh_to_xyxy(ssd.decode_boxes(loc_t[0], trained.anchors, cfg.variances)).clamp(0, cfg.image_size)
scores_t = cls_t[0].softmax(dim=-1)[:, circle]  # [A]
top = scores_t.topk(min(cfg.pre_nms_top_k, len(scores_t))).indices
candidates = top[scores_t[top] > cfg.score_threshold]  # anchor indices, best first
kept = candidates[nms_by_hand(boxes_t[candidates], scores_t[candidates], cfg.nms_threshold)]
assert torch.equal(kept, candidates[nms(boxes_t[candidates], scores_t[candidates], cfg.nms_threshold)])
print(f"circle candidates above {cfg.score_threshold}: {len(candidates)}; kept by NMS: {len(kept)} "
      f"(nms_by_hand == torchvision.ops.nms)")
print(f"with a score above {min_score}: {int((scores_t[candidates] > min_score).sum())} before NMS, "
      f"{int((scores_t[kept] > min_score).sum())} after")

fig, axes = plt.subplots(1, 2, figsize=(8, 4.2), layout="constrained")
titles = ("before NMS", f"after NMS (suppressing IoU > {cfg.nms_threshold})")
for ax, chosen, title in zip(axes, (candidates, kept), titles):
    chosen = chosen[scores_t[chosen] > min_score]
    viz.show_image(ax, image)
    viz.draw_boxes(ax, boxes_t[chosen], torch.full((len(chosen),), circle), scores_t[chosen],
                   class_names=cfg.class_names)
    ax.set(title=f"{title}: {len(chosen)} boxes", xlabel="x (px)")
axes[0].set_ylabel("y (px)")
fig.suptitle(f"class circle, boxes with a score above {min_score}", y=1.04)
plt.show()

# %% [markdown]
# ## One anchor at a time
#
# First the anchor of the box-coding section, the one that overlaps the small circle most. Its row of
# `loc_preds` holds the offsets the trained model **predicts**; the encoding above gave the offsets it
# **should** predict (the targets, `t`). Side by side:

# %% tags=["nbval-check-output"]
predicted = loc_t[0, best]  # [4]
print(f"anchor #{best} (k, i, j, d) = {anchor_location(cfg, best)}")
print("            tx      ty      tw      th")
print("target  " + "".join(f"{v:>8.3f}" for v in t_mine.tolist()))
print("predicted" + "".join(f"{v:>8.3f}" for v in predicted.tolist()))
decoded = ssd.cxcywh_to_xyxy(ssd.decode_boxes(predicted, anchors[best], cfg.variances))
print(f"decoded prediction {[round(v, 1) for v in decoded.tolist()]}, ground truth {gt_xyxy.tolist()}, "
      f"IoU {box_iou(decoded[None], gt_xyxy[None]).item():.3f}")

# %% [markdown]
# The predicted offsets are not the targets exactly, but close enough that the decoded box lands on the small
# circle with the IoU printed above. Now the other way round — which anchor of the whole image is the most
# confident about an object? (Here it turns out to be the same anchor, as the first line below shows.)
#
# Its row in the predictions tells the whole story: the anchor (dashed), the offsets that move it, the decoded
# box (solid, labelled with the most probable class — background included) and the class probabilities.
# (The figure's title, like the widget's slider below, writes our shape index d as "k".)

# %%
probs_t = cls_t[0].softmax(dim=-1)  # [A, C]
top_anchor = int(probs_t[:, 1:].max(dim=1).values.argmax())
level, row, col, d = anchor_location(cfg, top_anchor)
print(f"most confident anchor: #{top_anchor} (k, i, j, d) = {(level, row, col, d)}; "
      f"the box-coding anchor was #{best}")
fig, rows = anchor_prediction_view(image, loc_t, cls_t, trained.anchors, cfg, level, row, col, d)
for name, value in rows:
    print(f"{name:>26}: {value}")
fig

# %% [markdown]
# **Explore:** pick any anchor by level, row, column and shape (the widget's slider "k" is our shape index d; it
# opens on anchor 0, in the top-left corner). Anchors on a shape, of about its size, move onto
# it and name its class. Anchors far from every shape say "background" — and their boxes can go anywhere:
# the localisation loss only trains matched anchors (notebook 05), and post-processing drops such a box
# anyway because of its low object scores. (The widget needs a running kernel; the figure of the cell above is the
# same view, frozen, for the most confident anchor.)

# %% tags=["nbval-ignore-output"]
anchor_prediction_explorer(trained, image)

# %% [markdown]
# **Task.** The small circle's best anchor is printed above; now find the triangle's. The triangle is ground-truth
# box 0 (printed at the top). In the explorer, set level 2 (step 32) and the cell under the triangle's centre —
# row i = cy // 32, column j = cx // 32 — and try every shape d = 0 … 5. Which d gives the highest probability of
# "triangle"? Store it in `best_shape`, then compare that anchor's size (`ssd.level_box_shapes(cfg, 2)`) with the
# triangle's.

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
best_shape = 1
### END SOLUTION
exercises.check("04_best_shape", best_shape);

# %% [markdown]
# ## Another input size: the article's `change_input_size`
#
# The feature-map sizes of a config are not free choices: they are whatever the backbone produces for the
# input size. The article measures them with a dry run on a dummy image; `ssd.adapt_config(cfg, S)` does
# the same on the meta device (notebook 03), then sets the steps to `S / size` and scales the box sizes by
# `S / cfg.image_size`. SSD512's network at 300 pixels:

# %% tags=["nbval-check-output"]
cfg300 = ssd.adapt_config(ssd.SSD512_VOC, 300)
print("feature maps:", cfg300.feature_map_sizes)
print("steps:       ", tuple(round(s, 3) for s in cfg300.steps))
print("box sizes:   ", tuple(round(s, 2) for s in cfg300.box_sizes))
print("anchors:     ", cfg300.num_anchors, f"(the paper's SSD300, one level fewer: {ssd.SSD300_VOC.num_anchors})")
assert cfg300.feature_map_sizes == (38, 19, 10, 5, 3, 2, 1)

# %% [markdown]
# There are 8 box sizes for 7 feature maps: the last entry is $s_{L+1}$, used only for the extra square
# $\sqrt{s_L s_{L+1}}$ of the last level (notebook 01).
#
# The steps are fractional: 300 / 38 = 7.895. The article computes them as `300 // 38 = 7`, which pulls
# every anchor centre towards the top-left corner — the last centre of a level lands well inside the image:

# %% tags=["nbval-check-output"]
print("level  map  step S/fm  last centre   step S//fm  last centre")
for level, (fm, step) in enumerate(zip(cfg300.feature_map_sizes, cfg300.steps)):
    floor_step = 300 // fm
    last, last_floor = (fm - 0.5) * step, (fm - 0.5) * floor_step
    print(f"{level:>5} {fm:>4} {step:>10.3f} {last:>12.1f} {floor_step:>12} {last_floor:>12.1f}")

# %% [markdown]
# With `S / fm` the last centre of every level sits half a step from the right and bottom edges, as the first
# sits half a step from the left and top. With `S // fm` only the levels whose size divides 300 (10, 5, 3, 2
# and 1) come out right: the last centre of the 38×38 level is at 262.5 px, **37.5 px** from the right and
# bottom edges (its cells end at 266 px, a 34 px band — notebook 02 measures both), and the 19×19 level's last
# centre is at 277.5 px. A model built from `cfg300`
# takes `[B, 3, 300, 300]` images and its anchors follow the new grid.
#
# ## Recap
#
# - `forward_heads`: normalize → backbone (L sources) → a loc and a cls 3×3 conv per source → permute,
#   reshape and concatenate → `loc_preds [B, A, 4]`, `cls_logits [B, A, C]`, row a for anchor a.
# - The loc head predicts offsets, not coordinates: `t = ((gx−ax)/(aw·0.1), (gy−ay)/(ah·0.1),
#   log(gw/aw)/0.2, log(gh/ah)/0.2)`; decoding inverts it exactly. The variances scale the offsets of
#   matched anchors to about unit spread.
# - This package's untrained SSD predicts background everywhere because its class-head bias is initialised to
#   P(background) = 0.99 (`background_prior`, RetinaNet's prior, not part of SSD).
# - NMS by descending score: a box is kept unless it overlaps an already *kept* box by IoU > 0.45; by hand it
#   equals `torchvision.ops.nms`.
# - Detections: decode, clip, softmax, per-class threshold and top-k, per-class NMS, best `max_detections`
#   — `decode_detections` does it for a whole batch at once, and eval mode returns exactly that.
# - `adapt_config(cfg, S)` re-measures the feature maps for another input size and uses fractional steps
#   `S / fm`.
#
# **Sources:** SSD paper, [arXiv 1512.02325](https://arxiv.org/abs/1512.02325) (Sec. 2.2, eq. 2; Sec. 3.7
# "Inference time": threshold 0.01, NMS 0.45 per class, top 200); the authors' Caffe code
# ([weiliu89/caffe, ssd](https://github.com/weiliu89/caffe/tree/ssd): variances, `pre_nms_top_k` 400); Girshick
# 2015, Fast R-CNN, [arXiv 1504.08083](https://arxiv.org/abs/1504.08083); Lin et al. 2017,
# [arXiv 1708.02002](https://arxiv.org/abs/1708.02002)
# (Sec. 3.3); the article *The Hero Rises: Build Your Own SSD* (Allegro AI blog, 2020);
# [torchvision.ops.nms](https://pytorch.org/vision/stable/generated/torchvision.ops.nms.html).
#
# **Next:** [05_loss.ipynb](05_loss.ipynb) matches anchors to ground-truth boxes and builds the loss that
# teaches the heads these offsets and classes.
