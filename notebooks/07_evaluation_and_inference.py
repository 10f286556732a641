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
#       BATCH_SIZE: 24
#       NUM_EVAL_IMAGES: 24
#       TIMING_REPEATS: 1
# ---

# %% [markdown]
# # 07 — Evaluation and inference
#
# How good is a trained SSD, and how do we know? This notebook runs a trained detector on images it has never
# seen and measures it the way detection papers do. The measure is **average precision** (AP): for one class, the
# area under its precision–recall curve (both explained below); **mAP**, the *mean* average precision, is the mean
# of the per-class APs. We compute it by the PASCAL VOC rule (the official
# [VOC2007 devkit](http://host.robots.ox.ac.uk/pascal/VOC/voc2007/), whose `VOCevaldet.m` the package follows,
# except for the devkit's +1-pixel box areas: the package uses continuous coordinates; Everingham et al., "The
# PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010, for the 11-point AP, and Everingham et al., "The PASCAL
# Visual Object Classes Challenge: A Retrospective", IJCV 2015, for the all-point AP used since VOC2010) and by
# COCO's rule ([COCO detection evaluation](https://cocodataset.org/#detection-eval), computed with
# [pycocotools](https://github.com/cocodataset/cocoapi)). The SSD paper (Liu et al. 2016,
# [arXiv:1512.02325](https://arxiv.org/abs/1512.02325)) reports both; the article this series follows ("The Hero
# Rises: Build Your Own SSD", Allegro AI blog, 2020) trains on COCO and reports COCO's AP at an IoU
# (intersection over union: the area two boxes share divided by the area they cover together) of 0.5 after every
# epoch.
#
# **Which model?** Not the one you trained in notebook 06. The model evaluated here is the checkpoint shipped
# inside the package, `load_pretrained("tiny_shapes")`, made by `make checkpoint`:
# `python -m ssd_tutorial train --preset tiny_shapes --seed 0 --epochs 12 --num-train 6400`, i.e. 12 epochs on
# 6 400 `ShapesDataset` images, keeping the epoch with the best validation mAP. Notebook 06's recipe trains 8 epochs
# on 3 200 images, a third of the image passes, so 06's own model scores lower. To evaluate that one instead, set
# `CHECKPOINT` to the `best.pt` that notebook 06 wrote.
#
# **After this notebook you will be able to**
# - run a trained SSD once and re-use its raw outputs to try different post-processing settings;
# - say whether a detection is a true or a false positive (or ignored, on a "difficult" box) under the PASCAL
#   VOC rule, and why;
# - draw precision–recall curves and compute the VOC2007 11-point AP **by hand**, next to the all-point AP and
#   COCO's mAP;
# - pick the score and NMS thresholds for *evaluation* (low) and for *deployment* (higher), and see the
#   trade-off move with two sliders;
# - find the worst mistakes of a detector (confident false positives, missed objects) and measure its
#   speed in images per second.

# %% [markdown]
# ## Parameters
#
# `CHECKPOINT` is the model to evaluate: `"tiny_shapes"` is the one shipped with the package (12 epochs on 6 400
# shapes images, see above); a path to a checkpoint that `fit` wrote works too, e.g. notebook 06's `best.pt`.
# The tests run this notebook with fewer images.

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
CHECKPOINT = "tiny_shapes"  # shipped model, or a path such as "runs/tiny_shapes/best.pt"
NUM_EVAL_IMAGES = 200  # held-out ShapesDataset images
BATCH_SIZE = 50  # images per forward pass
TIMING_REPEATS = 5  # repetitions of each speed measurement

# %%
# %matplotlib inline
# %config InlineBackend.figure_formats = ["jpeg"]
# %config InlineBackend.print_figure_kwargs = {"bbox_inches": "tight", "pil_kwargs": {"quality": 85}}
import math
import time

import matplotlib.pyplot as plt
import torch
from torchvision.ops import box_iou

import ssd_tutorial as ssd
from ssd_tutorial import exercises, viz
from ssd_tutorial.evaluate import precision_recall_curve
from ssd_tutorial.widgets import threshold_detections, threshold_numbers, threshold_view, threshold_widget

_ = torch.manual_seed(0)

# %% [markdown]
# ## The trained model
#
# `load_pretrained` rebuilds the SSD from the configuration saved in the checkpoint, loads the weights and
# puts the model in **eval mode**: called on images, it now returns detections instead of losses.

# %% tags=["nbval-check-output"]
model = ssd.load_pretrained(CHECKPOINT)
cfg = model.cfg
print(f"{cfg.name}: {cfg.image_size}x{cfg.image_size} input, classes {cfg.class_names}")
print(f"{cfg.num_anchors} anchors, {sum(p.numel() for p in model.parameters()):,} parameters, "
      f"training mode: {model.training}")
print(f"post-processing: score > {cfg.score_threshold}, the best {cfg.pre_nms_top_k} per class, "
      f"NMS IoU {cfg.nms_threshold}, at most {cfg.max_detections} detections per image")

# %% [markdown]
# ## Held-out images
#
# The model was trained on `ShapesDataset(seed=0)` and validated on `seed=1`. Seed 1000 (the seed
# `python -m ssd_tutorial evaluate` uses) draws images it has never seen. Every item is a pure function of
# (seed, index), so these are the same images on every machine.

# %%
eval_set = ssd.ShapesDataset(NUM_EVAL_IMAGES, image_size=cfg.image_size, seed=1000)
images, targets = ssd.collate_detection([eval_set[i] for i in range(len(eval_set))])
num_objects = sum(len(t["boxes"]) for t in targets)
print(f"images {list(images.shape)}, {num_objects} objects, "
      f"{sum(len(t['boxes']) == 0 for t in targets)} images without any")

# %% [markdown]
# ## Run the network once, post-process as often as we like
#
# Inference has two stages. `model.forward_heads` is the network: for every one of the A anchors it gives
# 4 box offsets and C class logits. `decode_detections` is cheap arithmetic after it: decode the offsets
# into boxes, softmax the logits, drop scores ≤ `score_threshold`, keep the `pre_nms_top_k` best per class,
# run **non-maximum suppression** (NMS) per class (of two boxes of the same class that overlap by more than
# `nms_threshold` IoU, drop the lower-scored one), keep the best `max_detections`. Calling `model(images)` in eval mode does both.
#
# We keep the raw head outputs of all held-out images, so trying other thresholds later costs milliseconds.

# %%
with torch.inference_mode():
    heads = [model.forward_heads(batch) for batch in images.split(BATCH_SIZE)]
loc_preds = torch.cat([loc for loc, _ in heads])  # [B, A, 4] encoded offsets
cls_logits = torch.cat([logits for _, logits in heads])  # [B, A, C] class logits, 0 = background
print("loc_preds", list(loc_preds.shape), " cls_logits", list(cls_logits.shape))

detections = ssd.decode_detections(loc_preds, cls_logits, model.anchors, cfg)
print(f"{sum(len(d['scores']) for d in detections) / len(detections):.2f} detections per image "
      f"at score > {cfg.score_threshold}, of which "
      f"{sum(int((d['scores'] >= 0.5).sum()) for d in detections) / len(detections):.2f} score >= 0.5; "
      f"{num_objects / len(targets):.2f} objects per image")

# %% [markdown]
# Same thing as the model's own eval forward? Compare on the first batch.

# %%
with torch.inference_mode():
    direct = model(images[:BATCH_SIZE])
for mine, theirs in zip(detections[:BATCH_SIZE], direct):
    assert len(mine["scores"]) == len(theirs["scores"])
    assert torch.equal(mine["labels"], theirs["labels"])
    assert torch.allclose(mine["boxes"], theirs["boxes"]) and torch.allclose(mine["scores"], theirs["scores"])
print("decode_detections(forward_heads(images)) == model(images)")

# %% [markdown]
# Evaluation keeps every detection above 0.01 because average precision (AP, the area under the precision–recall
# curve, defined below) rewards a complete ranked list (more on
# that below). The printed counts say what that list looks like for this model: more than half of the detections
# per image score 0.5 or more, about as many as there are objects, and the rest is a tail of low-scored guesses.
# To *look* at the results we keep only the confident ones, score ≥ 0.5. Ground truth is dashed white.

# %%
viz.plot_detections(images[:8], detections[:8], targets[:8], class_names=cfg.class_names, min_score=0.5)


# %% [markdown]
# ## When is a detection right? The PASCAL VOC rule
#
# The rule of the VOC devkit (`VOCevaldet.m`, which the package follows except for the devkit's +1-pixel box
# areas: continuous coordinates here), per class and per image: visit the detections by descending score;
# for each, find its **best** ground-truth box of its class (highest IoU). If that IoU is ≥ 0.5 and the box has
# not been claimed yet, the detection is a **true positive** (TP) and claims the box. If the box was already
# claimed by a more confident detection, it is a **false positive** (FP), a *duplicate*. An IoU below 0.5 (or no
# box of its class at all) is a false positive too. Ground-truth boxes that no detection claims are **missed**
# (false negatives).
#
# The package implements the rule in `ssd.mean_average_precision`. Here it is written out for one
# image at a time (claims never cross images, so the global score order and this per-image order give the
# same verdicts). It also says *why* each false positive is wrong:
#
# - `duplicate`: IoU ≥ 0.5 with a box of its class that a better detection already claimed;
# - `wrong class`: otherwise, IoU ≥ 0.5 with a box of another class;
# - `localisation`: otherwise, it touches a box of its class (0.1 ≤ IoU < 0.5) but not well enough;
# - `background`: none of the above.
#
# Image 12 has a bit of everything: three confident true positives, then two detections of the wrong
# class, then the fourth object found with a lower score.

# %%
def judge_image(det, tgt, iou_threshold=0.5):
    # Per detection (by descending score): (verdict, IoU with its best box of the same class); per gt: claimed?
    order = det["scores"].argsort(descending=True, stable=True)
    claimed = torch.zeros(len(tgt["boxes"]), dtype=torch.bool)
    verdicts = {}
    iou = box_iou(det["boxes"], tgt["boxes"])  # [N, M]
    for n in order.tolist():
        same = tgt["labels"] == det["labels"][n]  # [M] boxes of the detection's class
        best_iou, best = (iou[n] * same).max(dim=0) if same.any() else (torch.tensor(0.0), None)
        if best is not None and best_iou >= iou_threshold:
            verdict = "duplicate" if claimed[best] else "TP"
            claimed[best] = True
        elif ((iou[n] >= iou_threshold) & ~same).any():
            verdict = "wrong class"
        elif best_iou >= 0.1:
            verdict = "localisation"
        else:
            verdict = "background"
        verdicts[n] = (verdict, float(best_iou))
    return [verdicts[n] for n in range(len(order))], claimed


image_index = 12
verdicts_12, claimed = judge_image(detections[image_index], targets[image_index])
det = detections[image_index]
print(f"image {image_index}: {len(targets[image_index]['boxes'])} objects, {len(det['scores'])} detections; "
      f"the best {min(6, len(verdicts_12))}:")
for n in range(min(6, len(verdicts_12))):
    print(f"  {cfg.class_names[det['labels'][n]]:>8} score {det['scores'][n]:.3f}: {verdicts_12[n][0]:<12} "
          f"(IoU with its best {cfg.class_names[det['labels'][n]]} {verdicts_12[n][1]:.2f})")
print(f"objects claimed: {claimed.tolist()}")

# %% [markdown]
# Now for every image. The number of true positives per class must agree with the package, whose
# `precision_recall_curve` gives, per class, the precision and recall after each detection in score order
# (precision after the last detection × number of detections = number of TPs).

# %%
judged = [judge_image(d, t) for d, t in zip(detections, targets)]
curves = precision_recall_curve(detections, targets)
for label, curve in curves.items():
    mine = sum(v == "TP" for (image_verdicts, _), d in zip(judged, detections)
               for (v, _), lab in zip(image_verdicts, d["labels"].tolist()) if lab == label)
    package = round(float(curve["precision"][-1]) * len(curve["precision"]))
    assert mine == package, (label, mine, package)
    print(f"{cfg.class_names[label]:>8}: {mine} true positives of {len(curve['precision'])} detections")


# %% [markdown]
# ### VOC's "difficult" flag
#
# VOC's annotators marked objects that are hard to recognise (very small, heavily occluded or truncated) as
# `difficult`. The devkit neither rewards nor punishes a detector on them: difficult boxes are not counted among
# the ground-truth boxes (so missing one does not lower the recall), and a detection whose best box is difficult
# **and** reaches IoU ≥ 0.5 with it is **ignored**, neither TP nor FP (below 0.5 it is a false positive like any
# other). `ShapesDataset` has no difficult boxes; the VOC loader of the package puts the
# flags in `targets[i]["difficult"]` (a bool tensor), and `mean_average_precision` / `precision_recall_curve`
# follow the rule. Here is image 12 again, for its class with the most boxes: once as annotated, and once with the
# box that the class's best detection claims marked difficult:

# %%
det, tgt = detections[image_index], targets[image_index]
top_label = max(det["labels"].tolist(), key=lambda c: int((tgt["labels"] == c).sum()))  # class with most boxes
first = int((det["labels"] == top_label).nonzero()[0])  # its best detection
same = (tgt["labels"] == top_label).nonzero().flatten()  # boxes of that class
hard_box = int(same[box_iou(det["boxes"][first : first + 1], tgt["boxes"][same])[0].argmax()])
marked = {**tgt, "difficult": torch.zeros(len(tgt["boxes"]), dtype=torch.bool)}
marked["difficult"][hard_box] = True
print(f"class {cfg.class_names[top_label]}: {len(same)} boxes, {int((det['labels'] == top_label).sum())} detections")
for name, t in (("as annotated", tgt), (f"box {hard_box} difficult", marked)):
    curve = precision_recall_curve([det], [t])[top_label]
    hard = t.get("difficult", torch.zeros(len(t["boxes"]), dtype=torch.bool))
    print(f"  {name:<16}: detections scored {len(curve['precision'])}, ground-truth boxes counted "
          f"{int(((t['labels'] == top_label) & ~hard).sum())}, precision after the last "
          f"{float(curve['precision'][-1]):.2f}, recall {float(curve['recall'][-1]):.2f}")

# %% [markdown]
# With the box marked difficult, the detection on it drops out of the ranked list (one detection fewer is scored)
# and the box drops out of the count. The recall of what is left is unchanged; the precision falls here, because
# the detection that was ignored had been a true positive.
#
# ### Exercise: the TP/FP verdict
#
# Write `verdicts(det_boxes, gt_boxes, difficult)` for the detections of **one class in one image**:
# `det_boxes` `Tensor[N, 4]` (xyxy pixels) sorted by descending score, `gt_boxes` `Tensor[M, 4]` (xyxy pixels) the
# ground truth of that class,
# `difficult` `Tensor[M]` bool. Return a list of N strings, `"TP"`, `"FP"` or `"ignored"`, by the devkit's rule
# above (look only at each detection's best box). The checker tries duplicates, an IoU of exactly 0.5, a
# difficult box, an image without ground truth and one without detections.
# Hint: `exercises.hint("07_tp_fp")`.

# %% tags=["nbval-check-output"]
def verdicts(det_boxes, gt_boxes, difficult):
    ### BEGIN SOLUTION
    if len(gt_boxes) == 0:
        return ["FP"] * len(det_boxes)
    iou = box_iou(det_boxes, gt_boxes)  # [N, M]
    claimed = [False] * len(gt_boxes)
    out = []
    for n in range(len(det_boxes)):
        best_iou, m = iou[n].max(dim=0)  # the best box only
        if best_iou < 0.5:
            out.append("FP")
        elif difficult[m]:
            out.append("ignored")  # neither TP nor FP
        elif claimed[m]:
            out.append("FP")  # a duplicate
        else:
            claimed[m] = True
            out.append("TP")
    return out
    ### END SOLUTION


exercises.check("07_tp_fp", verdicts);

# %% [markdown]
# Your function on image 12, class by class, next to the verdicts of `judge_image` (every kind of FP there is an
# `FP` here):

# %%
for label in sorted(set(det["labels"].tolist())):
    mine = det["labels"] == label  # already sorted by descending score
    gt = tgt["labels"] == label
    yours = verdicts(det["boxes"][mine], tgt["boxes"][gt], torch.zeros(int(gt.sum()), dtype=torch.bool))
    judged_here = [v if v == "TP" else "FP" for (v, _), keep in zip(verdicts_12, mine.tolist()) if keep]
    assert yours == judged_here, (label, yours, judged_here)
    print(f"{cfg.class_names[label]:>8}: {yours}")

# %% [markdown]
# ## Precision and recall
#
# Walk down the detections of one class by descending score. After the k-th detection (k is its rank, 1 for the
# best),
#
# $$\text{precision}_k = \frac{TP_k}{k}, \qquad \text{recall}_k = \frac{TP_k}{\text{number of ground-truth boxes}}.$$
#
# Recall can only grow; precision drops at every false positive and rises (or stays at 1) at every true positive,
# so the curve zig-zags. A detector that ranks all its true positives before its false positives keeps precision 1
# until recall stops growing.
#
# ### Exercise: precision and recall after each detection
#
# Write `precision_recall(tp, num_gt)`: `tp` is a list of booleans, the detections of one class by
# descending score (`True` = true positive), and `num_gt` the number of ground-truth boxes of that class.
# Return `(precision, recall)`, two 1-D tensors of length `len(tp)`. You may assume `num_gt` ≥ 1 (the checker never
# passes 0: a class without ground truth has no recall, and the package leaves it out of the mAP). Hint: `exercises.hint("07_precision_recall")`.

# %% tags=["nbval-check-output"]
def precision_recall(tp, num_gt):
    ### BEGIN SOLUTION
    hits = torch.tensor(tp, dtype=torch.float64).cumsum(0)  # TP after each detection
    ranks = torch.arange(1, len(tp) + 1, dtype=torch.float64)  # detections so far
    return hits / ranks, hits / num_gt
    ### END SOLUTION


exercises.check("07_precision_recall", precision_recall);

# %% [markdown]
# Your function on a short list of ten detections, five of them right, for a class with 6 boxes. Dashed is
# the **interpolated** precision, the best precision at this recall *or beyond*. It removes the zig-zag: if
# a longer list reaches a higher precision at a higher recall, a user would just take the longer list.

# %%
toy_tp = [True, True, False, True, False, False, True, True, False, False]
toy_precision, toy_recall = precision_recall(toy_tp, num_gt=6)
print("precision", [round(float(p), 2) for p in toy_precision])
print("recall   ", [round(float(r), 2) for r in toy_recall])
fig = viz.plot_pr_curves({1: {"precision": toy_precision, "recall": toy_recall}}, class_names=["", "toy class"])
ax = fig.axes[0]
ax.legend(ax.get_lines()[:2], ["toy class: precision after each detection", "interpolated precision"],
          loc="lower left", fontsize=8)
fig

# %% [markdown]
# The package's curves for every class of the model (the legend gives each class's VOC07 11-point AP, computed
# below). After k detections, one more true positive changes the precision by at most 1/(k + 1); each class has
# about 250 detections (printed above), and beyond the first hundred a step is below 0.01, while the top of each
# list is almost all true positives (precision near 1). So the zig-zag is tiny and the dashed envelope lies on the
# solid line almost everywhere.

# %%
voc07 = ssd.mean_average_precision(detections, targets, method="voc07")
fig = viz.plot_pr_curves(curves, class_names=cfg.class_names, ap=voc07["ap_per_class"])
for text in fig.axes[0].get_legend().get_texts():  # say which AP the legend shows
    text.set_text(text.get_text().replace("(AP ", "(VOC07 AP "))
fig

# %% [markdown]
# ## Average precision, by hand
#
# AP summarises a curve in one number. **PASCAL VOC 2007** (Everingham et al., IJCV 2010) samples the interpolated
# precision at the 11 recall levels t_i = i × 0.1, i = 0, 1, …, 10, and averages:
#
# $$AP_{11} = \frac{1}{11}\sum_{i=0}^{10} \max_{k:\ \text{recall}_k \ge t_i} \text{precision}_k$$
#
# (0 for a t that no point reaches). The official devkit writes exactly this in MATLAB:
# `for t=0:0.1:1, p=max(prec(rec>=t)); ... ap=ap+p/11; end`. We take the class with the lowest AP, where the
# curve has the most to show, and write t the way MATLAB computes `0:0.1:1` (more on that just below).

# %%
label = min(voc07["ap_per_class"], key=voc07["ap_per_class"].get)
precision, recall = curves[label]["precision"], curves[label]["recall"]
devkit_t = [i * 0.1 if i <= 5 else 1 - (10 - i) * 0.1 for i in range(11)]  # MATLAB's 0:0.1:1, built from both ends
sampled = []
for t in devkit_t:
    reach = recall >= t
    sampled.append(float(precision[reach].max()) if reach.any() else 0.0)
ap11_by_hand = sum(sampled) / 11
print(f"class {cfg.class_names[label]}: {len(precision)} detections, final recall {float(recall[-1]):.3f}")
print("t        " + " ".join(f"{i / 10:5.1f}" for i in range(11)))
print("p_interp " + " ".join(f"{p:5.3f}" for p in sampled))
print(f"11-point AP by hand: {ap11_by_hand:.4f}; package: {voc07['ap_per_class'][label]:.4f}")
assert math.isclose(ap11_by_hand, voc07["ap_per_class"][label], rel_tol=1e-12, abs_tol=1e-12)

# %% [markdown]
# ### 0.3 is not 0.3: where the way of writing t matters
#
# In floating point, `0.1 * 3` is `0.30000000000000004`. MATLAB builds the range `0:0.1:1` from both ends
# (i × 0.1, not i / 10, for the first half, 1 − (10 − i) × 0.1 for the second), so the devkit's 4th threshold is
# that number, not the double nearest 0.3 (which `i / 10` gives). py-faster-rcnn's Python port (`voc_eval.py`,
# `np.arange(0., 1.1, 0.1)`) computes i × 0.1 throughout and is also off at 0.6 and 0.7. The three forms agree except when a recall lands **exactly** on one
# of those steps, e.g. a class with 10 boxes of which exactly 3 are found:

# %% tags=["nbval-check-output"]
import numpy as np  # noqa: E402  (only for np.arange, the way py-faster-rcnn writes the thresholds)

forms = {"i / 10": [i / 10 for i in range(11)], "devkit 0:0.1:1": devkit_t,
         "np.arange(0, 1.1, 0.1)": np.arange(0, 1.1, 0.1).tolist()}
for name, ts in forms.items():
    print(f"{name:<24} t[3] = {ts[3]!r:<21} t[6] = {ts[6]!r:<20} t[7] = {ts[7]!r}")
exact_p, exact_r = precision_recall([True, True, False, True, False], num_gt=10)  # recall ends at exactly 0.3
for name, ts in forms.items():
    ap = sum(float(exact_p[exact_r >= t].max()) if bool((exact_r >= t).any()) else 0.0 for t in ts) / 11
    print(f"recall ends at 0.3: AP with {name:<24} {ap:.4f}")

# %% [markdown]
# With `i / 10` the sample at t = 0.3 counts the precision reached at recall 0.3 (0.75 here); with the devkit's
# threshold no point reaches t, and that sample is 0. The package's `method="voc07"` follows the devkit's
# thresholds exactly. On the model's curves above no recall lands on a step, so all three forms give the same AP:

# %%
for name, ts in forms.items():
    aps = [sum(float(c["precision"][c["recall"] >= t].max()) if bool((c["recall"] >= t).any()) else 0.0
               for t in ts) / 11 for c in curves.values()]  # fmt: skip
    print(f"mAP VOC07 with {name:<24} {sum(aps) / len(aps):.6f}")

# %%
envelope = precision.flip(0).cummax(0).values.flip(0)  # best precision at this recall or beyond
fig, ax = plt.subplots(figsize=(5.5, 3.8))
ax.plot(recall, precision, color="tab:blue", linewidth=1, label="precision after each detection")
ax.plot(recall, envelope, color="tab:blue", linestyle="--", linewidth=1, label="interpolated")
ax.scatter(devkit_t, sampled, color="tab:red", zorder=3, label="the 11 samples")
ax.set_xlabel("recall")
ax.set_ylabel("precision")
ax.set_xlim(0, 1.02)
ax.set_ylim(0, 1.05)
ax.set_title(f"{cfg.class_names[label]}: 11-point AP = {ap11_by_hand:.3f}")
ax.legend(loc="lower left", fontsize=8);


# %% [markdown]
# ### Exercise: the 11-point AP as a function
#
# This exercise is the by-hand loop of "Average precision, by hand" above, turned into a function: try to write
# it without scrolling up, then compare. `ap11(precision, recall)` takes 1-D tensors and returns a float. The
# checker tries it on several curves, two of which end at a recall of exactly 0.3 and 0.7, where the three ways
# of writing t give different APs (the cell above); it accepts the result of any one of them, `i / 10`, the
# devkit's `0:0.1:1` or `np.arange(0, 1.1, 0.1)`, used for all 11 steps. Hint: `exercises.hint("07_voc07_ap")`.

# %% tags=["nbval-check-output"]
def ap11(precision, recall):
    ### BEGIN SOLUTION
    total = 0.0
    for i in range(11):
        reach = recall >= i / 10
        total += float(precision[reach].max()) if bool(reach.any()) else 0.0
    return total / 11
    ### END SOLUTION


exercises.check("07_voc07_ap", ap11);

# %% [markdown]
# **All-point AP** (VOC2010 onwards; Everingham et al., IJCV 2015) integrates the interpolated curve exactly instead of sampling it: the
# area under the dashed staircase, summed over the recall steps.

# %%
mrec = torch.cat([torch.tensor([0.0]), recall, torch.tensor([1.0])]).double()
mpre = torch.cat([torch.tensor([0.0]), precision, torch.tensor([0.0])]).double()
mpre = mpre.flip(0).cummax(0).values.flip(0)  # the staircase
steps = (mrec[1:] != mrec[:-1]).nonzero().flatten()  # where recall moves
all_point_by_hand = float(((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]).sum())
all_points = ssd.mean_average_precision(detections, targets, method="all_points")
print(f"all-point AP by hand: {all_point_by_hand:.4f}; package: {all_points['ap_per_class'][label]:.4f}")
assert math.isclose(all_point_by_hand, all_points["ap_per_class"][label], rel_tol=1e-12, abs_tol=1e-12)

# %% [markdown]
# ## VOC07, all-point and COCO side by side
#
# mAP is the mean of the per-class APs. COCO's headline number, mAP@[.5:.95], averages AP over ten IoU
# thresholds 0.5, 0.55, …, 0.95 (it rewards tight boxes, not just "roughly there"); COCO interpolates at 101
# recall points and keeps at most 100 detections per image. `ssd.coco_map` runs pycocotools on the same
# detections.

# %%
coco = ssd.coco_map(detections, targets)
rows = [("VOC2007 11-point mAP@0.5", voc07["map"]), ("VOC all-point mAP@0.5", all_points["map"]),
        ("COCO mAP@0.5 (101 points)", coco["map_50"]), ("COCO mAP@0.75", coco["map_75"]),
        ("COCO mAP@[.5:.95]", coco["map"])]
print(f"{NUM_EVAL_IMAGES} held-out images, {num_objects} objects")
for name, value in rows:
    print(f"  {name:<28} {value:.4f}")
print("per class (VOC07 / all-point):",
      ", ".join(f"{cfg.class_names[c]} {voc07['ap_per_class'][c]:.3f} / {all_points['ap_per_class'][c]:.3f}"
                for c in sorted(voc07["ap_per_class"])))

# %% [markdown]
# The three numbers at IoU 0.5 integrate the same curves in different ways. All-point AP is the exact area
# under the staircase; COCO's 101 samples come close to it. The 11-point AP is coarse, and it is hard on a
# detector whose recall stops short of 1: the sample at t = 1.0 then counts as precision 0, a loss of 1/11
# ≈ 0.09 however good the rest of the curve is (the last column of the triangle's 11-point table above).
# That is why the VOC07 numbers sit below the all-point numbers here, and why papers must say which one
# they report. The drop from 0.5 to 0.75 and to [.5:.95] says how tight the boxes are, something
# IoU ≥ 0.5 alone cannot see.
#
# ## Thresholds: evaluation versus deployment
#
# Two post-processing knobs matter most:
#
# - **score threshold**: detections with a score at or below it are dropped. For *evaluation* keep it low
#   (0.01): AP averages over the whole ranked list, and a cut only truncates the curve, so AP can only
#   fall. For *deployment* raise it: a user wants few, confident boxes.
# - **NMS threshold**: two boxes of the same class overlapping more than this are considered the same
#   object and the lower-scored one is removed. Too low merges neighbouring objects (recall falls); too
#   high lets duplicates through (precision falls).
#
# `threshold_view` re-runs `decode_detections` on the stored head outputs with
# `cfg.replace(score_threshold=…, nms_threshold=…)` and scores the result. The tables below sweep the score
# threshold at NMS 0.45, then the NMS threshold at score 0.5; precision and recall count the detections
# that survive.

# %%
print(f"{'score >':>8} {'det/img':>8} {'precision':>10} {'recall':>8} {'mAP VOC07':>10}")
for score in (0.01, 0.1, 0.3, 0.5, 0.7, 0.9):
    kept = threshold_detections(loc_preds, cls_logits, model.anchors, cfg, score_threshold=score,
                                nms_threshold=cfg.nms_threshold)
    n = threshold_numbers(kept, targets)
    print(f"{score:>8.2f} {n['detections_per_image']:>8.2f} {n['precision']:>10.3f} {n['recall']:>8.3f} "
          f"{n['map_voc07']:>10.4f}")
print(f"\n{'NMS IoU':>8} {'det/img':>8} {'TP':>5} {'FP':>5} {'precision':>10} {'recall':>8}")
for nms in (0.3, 0.45, 0.6, 0.8, 1.0):
    kept = threshold_detections(loc_preds, cls_logits, model.anchors, cfg, score_threshold=0.5, nms_threshold=nms)
    n = threshold_numbers(kept, targets)
    print(f"{nms:>8.2f} {n['detections_per_image']:>8.2f} {n['true_positives']:>5} {n['false_positives']:>5} "
          f"{n['precision']:>10.3f} {n['recall']:>8.3f}")
no_nms = threshold_detections(loc_preds, cls_logits, model.anchors, cfg, score_threshold=0.5, nms_threshold=1.0)
fp_kinds = {kind: 0 for kind in ("duplicate", "localisation", "wrong class", "background")}
for d, t in zip(no_nms, targets):
    for verdict, _ in judge_image(d, t)[0]:
        if verdict != "TP":
            fp_kinds[verdict] += 1
print(f"false positives at NMS 1.00 by kind: {fp_kinds}")

# %% [markdown]
# Move the sliders to redraw the detections of four images and the numbers over all held-out images
# (the picture below the widget is the same view at score 0.5 and NMS 0.45, for readers without a kernel).
# Try NMS 1.0 (no suppression at all) and watch the false positives: in the table above they grow from
# 9 to about 600 while the true positives stay the same; the last line of the table counts them by kind at
# NMS 1.0: almost every new one is a duplicate.

# %% tags=["nbval-ignore-output"]
threshold_widget(images, loc_preds, cls_logits, targets, cfg, anchors_cxcywh=model.anchors)

# %%
fig, numbers = threshold_view(images, loc_preds, cls_logits, targets, cfg, anchors_cxcywh=model.anchors,
                              score_threshold=0.5, nms_threshold=0.45)
print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items()))
fig

# %% [markdown]
# ## Gallery of mistakes
#
# Aggregate numbers say *how often* a detector is wrong; pictures say *how*. The verdicts of `judge_image`
# rank the false positives by score (the most confident mistakes first) and list the objects that no
# detection with score ≥ 0.5 found, with the best score any detection of the right class reached on them
# (IoU ≥ 0.5); 0.000 means that no detection of its class found it at any score.

# %%
false_positives = []  # (score, image, detection index, verdict, IoU)
missed = []  # (size, image, gt index, best score of an overlapping detection of its class)
for b, ((image_verdicts, _), det, tgt) in enumerate(zip(judged, detections, targets)):
    for n, (verdict, best_iou) in enumerate(image_verdicts):
        if verdict != "TP":
            false_positives.append((float(det["scores"][n]), b, n, verdict, best_iou))
    confident = det["scores"] >= 0.5
    _, claimed_confident = judge_image({k: v[confident] for k, v in det.items()}, tgt)
    iou = box_iou(tgt["boxes"], det["boxes"])  # [M, N]
    for m in (~claimed_confident).nonzero().flatten().tolist():
        near = (iou[m] >= 0.5) & (det["labels"] == tgt["labels"][m])
        best = float(det["scores"][near].max()) if near.any() else 0.0
        side = float((tgt["boxes"][m, 2:] - tgt["boxes"][m, :2]).prod().sqrt())
        missed.append((side, b, m, best))
false_positives.sort(key=lambda x: -x[0])
print(f"{len(false_positives)} false positives over all scores, {len(missed)} objects missed at score 0.5, "
      f"{sum(best == 0.0 for *_, best in missed)} of them found at IoU >= 0.5 by no detection of their class at any score")
print("false positives with score >= 0.5 by kind:",
      {kind: sum(1 for s, *_, v, _ in false_positives if v == kind and s >= 0.5)
       for kind in ("duplicate", "localisation", "wrong class", "background")})


# %%
def gallery(items, title, draw):
    if not items:
        print(f"{title}: none")
        return
    fig, axes = plt.subplots(1, len(items), figsize=(2.6 * len(items), 3.0), squeeze=False)
    for ax, item in zip(axes[0], items):
        draw(ax, item)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)


def draw_fp(ax, item):
    score, b, n, verdict, best_iou = item
    det = detections[b]
    viz.show_image(ax, images[b])
    for patch in viz.draw_boxes(ax, targets[b]["boxes"], color="white").patches:
        patch.set_linestyle("--")  # ground truth dashed, as in the other figures
    viz.draw_boxes(ax, det["boxes"][n : n + 1], det["labels"][n : n + 1], det["scores"][n : n + 1],
                   class_names=cfg.class_names, color="red")
    ax.set_title(f"image {b}: {verdict}\nIoU {best_iou:.2f} with its class", fontsize=8)


def draw_miss(ax, item):
    side, b, m, best = item
    viz.show_image(ax, images[b])
    viz.draw_boxes(ax, targets[b]["boxes"][m : m + 1], targets[b]["labels"][m : m + 1],
                   class_names=cfg.class_names, color="orange")
    ax.set_title(f"image {b}: {side:.0f} px object\nbest score on it {best:.3f}", fontsize=8)


gallery(false_positives[:6], "The most confident false positives (red; ground truth dashed white)", draw_fp)

# %%
worst_misses = sorted(missed, key=lambda x: (x[3], x[0]))[:6]  # lowest best score first, then smallest
gallery(worst_misses, "Objects missed at score 0.5 (orange), by lowest best score on them, ties by size (smallest "
        "first)", draw_miss)

# %% [markdown]
# Here all six shown have best score 0.000 (the count printed before the galleries says how many such objects
# there are), so the gallery orders them by size alone. "Best score 0.000" says only that no detection **of its
# class** reached IoU 0.5 on it. What did the model do
# there instead? For each of these objects, the detection of **any** class that overlaps it most:

# %%
for side, b, m, _ in worst_misses:
    det, tgt = detections[b], targets[b]
    name = cfg.class_names[tgt["labels"][m]]
    if len(det["boxes"]) == 0:
        print(f"image {b:>3}: {side:3.0f} px {name:<8} no detection at all in this image")
        continue
    iou = box_iou(tgt["boxes"][m : m + 1], det["boxes"])[0]  # [N]
    n = int(iou.argmax())
    print(f"image {b:>3}: {side:3.0f} px {name:<8} best overlap: {cfg.class_names[det['labels'][n]]:<8} "
          f"score {float(det['scores'][n]):.3f}, IoU {float(iou[n]):.2f}")


# %% [markdown]
# What the pictures and the list show for this model. The confident false positives are mostly **wrong
# classes**, and most of them sit where shapes overlap (a circle with a triangle drawn over part of it is, in its
# pixels, partly a triangle). The worst misses are of two kinds. Some are shapes painted **on top of another
# shape** in a colour close to it: `ShapesDataset` picks each colour far from the background's, not from the shape
# underneath, so such a shape can almost vanish (images 153 and 89), and the small ones (images 154 and 46, 15–16 px)
# are hard to see and to localise. Others are **large, high-contrast** shapes that are plainly visible (images 128
# and 2): there the list shows the model either put a box of the right class on the object that misses IoU 0.5, a
# localisation error, or found it only under another class with a very low score. Size and contrast are not the
# whole story. Duplicates are rare at NMS 0.45.
# Each kind of mistake points to a different fix: duplicates to the NMS threshold, localisation errors to
# anchors that fit the objects (notebook 08), confusions and low-contrast objects to more (and more varied)
# training data.
#
# ## Inference speed
#
# Throughput in images per second, on this machine's CPU, for one image at a time (latency-bound, what an
# interactive application sees) and for a batch (what offline processing sees). The numbers depend on the
# machine and its load; they are not compared by the tests.

# %% tags=["nbval-ignore-output"]
def images_per_second(batch, repeats=TIMING_REPEATS):
    with torch.inference_mode():
        model(batch)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            loc, logits = model.forward_heads(batch)
        heads_s = (time.perf_counter() - start) / repeats
        start = time.perf_counter()
        for _ in range(repeats):
            ssd.decode_detections(loc, logits, model.anchors, cfg)
        decode_s = (time.perf_counter() - start) / repeats
    n = len(batch)
    return n / heads_s, n / decode_s, n / (heads_s + decode_s)


print(f"torch threads: {torch.get_num_threads()}")
print(f"{'batch':>6} {'network img/s':>14} {'post-proc img/s':>16} {'total img/s':>12}")
for size in (1, BATCH_SIZE):
    net, post, total = images_per_second(images[:size])
    print(f"{size:>6} {net:>14.1f} {post:>16.1f} {total:>12.1f}")

# %% [markdown]
# On a CPU the network dominates; batching helps because one large matrix product per layer uses the
# cores better than many small ones. `python -m ssd_tutorial detect image.png` runs the same model on your
# own image files and writes PNGs with the boxes drawn.
#
# ## A real photograph
#
# Everything above is generated shapes. What does this detector make of a real photo? Matplotlib ships one, the
# portrait of Grace Hopper (`matplotlib.cbook.get_sample_data("grace_hopper.jpg")`). We resize it to the model's
# square input, 128 × 128 (squashing its 512 × 600 (W × H) portrait a little: faces look wider), and print the five
# best detections, whatever their score.

# %%
from matplotlib import cbook  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.transforms.functional import pil_to_tensor  # noqa: E402

with cbook.get_sample_data("grace_hopper.jpg") as file:
    photo = pil_to_tensor(Image.open(file).convert("RGB"))  # [3, H, W] uint8
print(f"photo {list(photo.shape)} (C, H, W)")
photo_in = torch.nn.functional.interpolate(photo[None].float() / 255, size=(cfg.image_size, cfg.image_size),
                                           mode="bilinear", antialias=True).clamp(0, 1)  # [1, 3, S, S] in [0, 1]
with torch.inference_mode():
    on_photo = model(photo_in)[0]
top5 = {key: value[:5] for key, value in on_photo.items()}  # already sorted by descending score
print(f"{len(on_photo['scores'])} detections above {cfg.score_threshold}; the best five:")
for box, score, lab in zip(top5["boxes"], top5["scores"], top5["labels"]):
    print(f"  {cfg.class_names[lab]:>8} score {float(score):.3f} at {[round(float(v)) for v in box]}")
viz.plot_detections(photo_in, [top5], class_names=cfg.class_names, min_score=0.0,
                    titles=["Grace Hopper through tiny_shapes: its five best guesses"])

# %% [markdown]
# This is the honest failure it has to be: the model knows three classes, circle, square and triangle, drawn
# flat on noisy backgrounds, so on a person it can only answer with those. Its best guesses sit on flat,
# high-contrast patches: two on the flag behind her (top left), one on the white edge of her cap against the
# background (top right), one on the medal ribbons on her chest and one on a dark patch at the left edge; it calls
# them all triangles and gives them high
# scores (printed above): a score ranks the model's own classes on what it has learned to see, it is not a
# probability that the object is really there. Nothing here is a person, because "person" is not one of its
# classes. A detector only recognises what it was trained on.
#
# **SSD on its real task.** The paper trains SSD300 and SSD512 on PASCAL VOC2007 + VOC2012 trainval (16 551
# photos, 20 classes) from an ImageNet-trained VGG16 and reports **74.3 mAP** (SSD300) and **76.8 mAP** (SSD512)
# on VOC2007 test (Liu et al. 2016, Table 1; mAP at IoU 0.5, VOC2007 11-point metric). The package has the same presets; with
# VOC extracted into a folder (`VOCdevkit/VOC2012/`) and torchvision's VGG16 weights in the local torch cache,
#
# ```
# python -m ssd_tutorial train --preset ssd512_voc --data voc:/path/to/voc --voc-year 2012 \
#     --train-split train --val-split val --pretrained-backbone --device cuda
# python -m ssd_tutorial evaluate --checkpoint runs/ssd512_voc/best.pt --data voc:/path/to/voc --split val
# ```
#
# trains and evaluates it (on a GPU: hours to days, not minutes). The CLI reads one VOC year at a time, so this
# trains on VOC2012 train and evaluates on VOC2012 val, not the paper's 07+12 / VOC2007 test protocol; its
# number is not directly comparable with Table 1. Nothing of that ran here: the figures above are the paper's.
#
# ## Recap
#
# - Run the network once (`model.forward_heads`), keep the raw outputs, and re-run the cheap
#   `decode_detections` with `cfg.replace(score_threshold=…, nms_threshold=…)` to explore post-processing.
# - VOC rule: by descending score, a detection is a TP if it reaches IoU ≥ 0.5 with an unclaimed box of its
#   class; duplicates, poor localisation, wrong classes and background hits are FPs.
# - VOC's "difficult" boxes are neither counted nor punished: a detection whose best box is difficult and reaches
#   IoU ≥ 0.5 with it is ignored (below 0.5 it is an FP).
# - Precision and recall after each detection give the PR curve; the VOC07 11-point AP samples its
#   interpolated version at 11 recall levels (the devkit's `0:0.1:1`, whose 4th step is 0.30000000000000004),
#   all-point AP integrates it, COCO averages over IoU 0.5 … 0.95.
# - Evaluate with a low score threshold (AP needs the whole ranked list); deploy with a higher one.
# - Look at the worst mistakes, not just the mean: they tell you what to change.
# - A detector knows only its classes: the shapes model has nothing to say about a photograph. The real SSD
#   reaches 74.3 (SSD300) and 76.8 (SSD512) mAP on VOC2007 test (paper, Table 1; VOC2007 11-point metric).
#
# **Next:** [08_your_own_dataset.ipynb](08_your_own_dataset.ipynb) fits the anchors to a dataset of your
# own, the part of SSD the article left for later.
