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
#       BATCH_SIZE: 2
#       NUM_EVAL_IMAGES: 4
#       NUM_SAMPLE_IMAGES: 300
#       TRAIN_ITERS: 2
# ---

# %% [markdown]
# # 08 — Fit SSD to your own dataset
#
# The article ends its tour of SSD's constants with a promise: the box sizes and aspect ratios tuned for
# PASCAL VOC are not sacred, and a later part would adapt them to other data. This notebook keeps that
# promise. The anchors are SSD's prior about where objects are and what shape they have; a model whose
# anchors fit the data starts every box regression closer to the answer.
#
# **After this notebook you will be able to**
# - load a detection dataset in PASCAL VOC or COCO layout from a folder and bring its boxes into the
#   model's input pixels;
# - plot the sizes and aspect ratios of its boxes against the anchors of a preset;
# - measure **anchor coverage**, the share of ground-truth boxes whose best anchor reaches IoU ≥ 0.5, per
#   feature-map level and overall, and explain what limits it;
# - find the typical box shapes with **k-means on IoU distance**, turn them into a new `SSDConfig`, and train it.

# %% [markdown]
# ## Parameters
#
# Point `DATA_FORMAT` and the paths at your own data: a VOC folder (the one that contains `VOCdevkit/`) or a
# COCO images folder plus its annotation json. The defaults are the tiny fixtures shipped in
# `data/fixtures/` (paths are relative to `notebooks/`). `PRESET` is the configuration to start from.

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
DATA_FORMAT = "voc"  # "voc" or "coco"
VOC_ROOT = "../data/fixtures/voc"  # contains VOCdevkit/VOC<year>/
VOC_YEAR = "2012"
VOC_SPLIT = "train"
COCO_IMAGES = "../data/fixtures/coco/images"
COCO_ANNOTATIONS = "../data/fixtures/coco/annotations.json"
PRESET = "tiny_shapes"
NUM_SAMPLE_IMAGES = 1500  # ShapesDataset images for the box statistics
TRAIN_ITERS = 60  # training iterations in the brief training run
BATCH_SIZE = 16
NUM_EVAL_IMAGES = 100  # held-out images for the mAP after training

# %%
# %matplotlib inline
# %config InlineBackend.figure_formats = ["jpeg"]
# %config InlineBackend.print_figure_kwargs = {"bbox_inches": "tight", "pil_kwargs": {"quality": 85}}
import warnings

import matplotlib.pyplot as plt
import torch
from torch.utils.data import DataLoader
from torchvision.ops import box_iou

import ssd_tutorial as ssd
from ssd_tutorial import exercises, viz
from ssd_tutorial.analysis import (anchor_coverage, centered_iou, config_from_shapes, dataset_boxes,
                                   kmeans_box_shapes)
from ssd_tutorial.anchors import format_anchor_table, level_box_shapes
from ssd_tutorial.widgets import coverage_view, coverage_widget, ratios_text

_ = torch.manual_seed(0)
cfg = ssd.get_config(PRESET)


# %% [markdown]
# ## Your dataset
#
# `ssd.voc_dataset` and `ssd.coco_dataset` read the two common layouts from a local folder (they never
# download). Both return `(image, target)` with boxes as xyxy pixels of the original image and labels
# numbered from 1 (0 is background), plus `dataset.class_names`. The fixture is four small images in VOC
# layout, three of them in the `train` split read here. Its shapes borrow VOC class names (circle → bottle,
# square → cow, triangle → person); one of its boxes reaches past the image on purpose, and the loader says
# so when it clips it.

# %% tags=["nbval-check-output"]
def load_dataset(transforms=None):
    if DATA_FORMAT == "voc":
        return ssd.voc_dataset(VOC_ROOT, VOC_SPLIT, transforms=transforms, year=VOC_YEAR)
    if DATA_FORMAT == "coco":
        return ssd.coco_dataset(COCO_IMAGES, COCO_ANNOTATIONS, transforms=transforms)
    raise ValueError(f"DATA_FORMAT must be 'voc' or 'coco', got {DATA_FORMAT!r}")


with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    dataset = load_dataset()
    raw = [dataset[i] for i in range(len(dataset))]
for warning in caught:
    print("loader warning:", str(warning.message).split("/")[-1])
used = sorted({int(label) for _, t in raw for label in t["labels"]})
print(f"{len(dataset)} images, {sum(len(t['boxes']) for _, t in raw)} boxes, "
      f"classes used: {[dataset.class_names[c] for c in used]}")
print("image sizes (H, W):", sorted({tuple(image.shape[-2:]) for image, _ in raw}))

# %%
fig, axes = plt.subplots(1, len(raw), figsize=(3.0 * len(raw), 2.6), squeeze=False)
for ax, (image, target) in zip(axes[0], raw):
    viz.show_image(ax, image)
    viz.draw_boxes(ax, target["boxes"], target["labels"], class_names=dataset.class_names)
    ax.set_xlabel("x (px)", fontsize=8)
axes[0, 0].set_ylabel("y (px)", fontsize=8)
fig.suptitle(f"the dataset in its own pixels ({DATA_FORMAT} layout)");

# %% [markdown]
# ## Into the model's pixels
#
# Anchors live in the model's input: a `cfg.image_size` square. `eval_transforms(cfg)` resizes every image
# to that square and moves the boxes with it. The two axes are scaled differently when an image is not
# square: a 160 × 120 image becomes 128 × 128, so widths shrink by 0.8 and heights grow by 1.07, and every
# box becomes **taller relative to its width** by a factor 1.33. VOC's photos are mostly 500 × 375 (4:3),
# so this happens to all of them. Statistics for anchors must be taken *after* the resize.
#
# By hand first: scale each box by (S / W, S / H), then compare with the transform.

# %% tags=["nbval-check-output"]
S = cfg.image_size
by_hand = []
for image, target in raw:
    height, width = image.shape[-2:]
    by_hand.append(target["boxes"] * torch.tensor([S / width, S / height, S / width, S / height]))
by_hand = torch.cat(by_hand)  # [N, 4] xyxy in model pixels

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the clipping warning again
    fixture = dataset_boxes(load_dataset(ssd.eval_transforms(cfg)))
assert torch.allclose(by_hand, fixture["boxes"], atol=1e-4)
fixture_wh = fixture["boxes"][:, 2:] - fixture["boxes"][:, :2]  # [N, 2]
raw_wh = torch.cat([t["boxes"][:, 2:] - t["boxes"][:, :2] for _, t in raw])  # [N, 2] original pixels
print(f"{len(fixture_wh)} boxes")
print(f"w/h before: {[round(float(r), 2) for r in raw_wh[:, 0] / raw_wh[:, 1]]}")
print(f"w/h after:  {[round(float(r), 2) for r in fixture_wh[:, 0] / fixture_wh[:, 1]]}")

# %% [markdown]
# ## A bigger sample
#
# A handful of boxes cannot tell us much about sizes. The fixture images were cut from `ShapesDataset`
# (`scripts/make_fixtures.py`), so for the statistics we draw many more boxes from the same generator, at the
# model's input size. With your own data, use all of its training boxes instead:
# `dataset_boxes(load_dataset(ssd.eval_transforms(cfg)))`.

# %%
sample = dataset_boxes(ssd.ShapesDataset(NUM_SAMPLE_IMAGES, image_size=S, seed=2024))
boxes = sample["boxes"]  # [N, 4] xyxy in model pixels
wh = boxes[:, 2:] - boxes[:, :2]  # [N, 2]
side = wh.prod(dim=1).sqrt()
print(f"{len(boxes)} boxes from {NUM_SAMPLE_IMAGES} images; size sqrt(w h) from {side.min():.0f} to "
      f"{side.max():.0f} px (median {side.median():.0f}); w/h from {(wh[:, 0] / wh[:, 1]).min():.2f} to "
      f"{(wh[:, 0] / wh[:, 1]).max():.2f}")

# %% [markdown]
# Left: every box as a point (width, height) on log axes. Size grows along the diagonal, elongation moves a
# point across it. The crosses are the anchor shapes of the preset (each level's two squares and its
# lying/standing rectangles). Right: the aspect ratios w / h against the anchors' ratios.

# %%
preset_shapes = torch.tensor([wh_ for k in range(cfg.num_levels) for wh_ in level_box_shapes(cfg, k)])
viz.plot_box_shapes(wh, preset_shapes, extra={"fixture boxes (resized)": fixture_wh},
                    title=f"{len(wh)} sample boxes against the anchor shapes of {cfg.name}")

# %% [markdown]
# The shapes are squares (circles and squares have square boxes, so do the triangles) from about 13 to 77 px.
# The preset spends 2:1 and 1:2 rectangles on every location, and 3:1 and 1:3 ones on the 8 × 8 and 4 × 4
# maps: shapes no box in this data has.
# The fixture's boxes sit a little above the diagonal: the 4:3 resize made them taller.
#
# ## Anchor coverage
#
# Matching (notebook 05) first gives every ground-truth box one anchor (its best, unless a box with a higher
# IoU took it), then every anchor with IoU ≥ 0.5 becomes a positive. A box whose best anchor stays below 0.5
# gets only that one anchor, and its regression starts far from the answer. So a useful number for a
# dataset is
#
# > **coverage** = share of ground-truth boxes whose best anchor has IoU ≥ 0.5.
#
# Unlike the (w, h) plot above, coverage counts **where** the anchors are: a box between two anchor
# centres may be missed even though its shape is right. By hand with `box_iou` against all anchors:

# %%
anchors_xyxy = ssd.cxcywh_to_xyxy(ssd.default_boxes(cfg))  # [A, 4], unclipped as matching uses them
iou = box_iou(boxes, anchors_xyxy)  # [N, A]
best_iou = iou.max(dim=1).values  # [N]
covered_by_hand = float((best_iou >= 0.5).double().mean())
per_level_by_hand = [float((part.max(dim=1).values >= 0.5).double().mean())
                     for part in iou.split(cfg.anchors_per_level, dim=1)]  # anchors are stored level by level
coverage = anchor_coverage(boxes, cfg)
assert abs(coverage["overall"] - covered_by_hand) < 1e-12
assert all(abs(a - b) < 1e-12 for a, b in zip(coverage["per_level"], per_level_by_hand))
print(f"overall coverage: {coverage['overall']:.3f}")
print("covered by each level alone:", [round(v, 3) for v in coverage["per_level"]])
print("best anchor on each level:  ", [round(v, 3) for v in coverage["best_level_share"]], "(sums to overall)")

# %% [markdown]
# `anchor_coverage` returns both per-level views: what each level could cover **alone**, and on which level
# the best anchor of each covered box lies (these shares add up to the overall coverage). The same view with
# pictures: bars per level, and the boxes coloured by whether they are covered.

# %%
fig, rows = coverage_view(boxes, cfg)
fig

# %% [markdown]
# Which boxes are missed? Not odd shapes (right panel: every box is a square) but boxes of certain sizes
# (middle panel): about a third of the 13–15 px boxes, and a fifth or more of those around 27–30 px and of
# 48–63 px. Their position is to blame. The smallest fall to the 16 × 16 map, whose centres are 8 px apart:
# a 15 px box 4 px off a centre in x and in y overlaps its anchors of 12.8 and 18.1 px with IoU 0.34 and
# 0.40. The 48–63 px boxes fall between the 44.8 and 53.5 px anchors of the 4 × 4 map, whose centres are
# 32 px apart, and the 64 px anchors of the 2 × 2 map, 64 px apart. Two numbers set a level's reach: its
# step and its box size. An anchor needs to be at least about twice its step for most boxes of its size to
# find one close enough.
#
# ## Tune the anchors yourself
#
# The widget scales every box size and replaces the aspect ratios (one set like `2, 3` for all levels, or
# one set per level separated by `|`; empty means squares only). Watch the overall coverage, the anchor
# count in the title, and which levels do the work. Try: squares only; sizes × 2; sizes × 0.5.

# %% tags=["nbval-ignore-output"]
coverage_widget(boxes, cfg)

# %% [markdown]
# Without a kernel, here are three settings side by side:

# %%
for scale, ratios in ((1.0, None), (1.0, ""), (2.0, "")):
    _, rows = coverage_view(boxes, cfg, size_scale=scale, aspect_ratios=ratios)
    print(f"sizes x {scale:g}, ratios {'preset' if ratios is None else ratios or 'none (squares)':>15}: "
          f"coverage {rows[-1]['alone']:.3f} with {rows[-1]['anchors']} anchors")


# %% [markdown]
# Dropping the rectangles costs little coverage on square data and removes more than half of the anchors.
# Scaling every size by the same factor mostly moves boxes from one level to another: what limits coverage
# is how each level's size compares with its step. A systematic way to choose the sizes is next.
#
# ## k-means on IoU distance
#
# YOLOv2 (Redmon & Farhadi, 2017) picked its anchor shapes by clustering the (w, h) of the training boxes.
# The trick is the distance: Euclidean distance in pixels would let big boxes dominate (a 10 px error is
# nothing for a 300 px box and everything for a 15 px one), so it uses
#
# $$d(\text{box}, \text{centroid}) = 1 - \mathrm{IoU}(\text{box}, \text{centroid}),$$
#
# with both boxes placed on the **same centre**, so that only their sizes matter. Then the overlap is
# simply $\min(w_1, w_2) \cdot \min(h_1, h_2)$.
#
# ### Exercise: IoU of centred boxes
#
# Write `my_centered_iou(wh_a, wh_b)` for `Tensor[N, 2]` and `Tensor[K, 2]` of (w, h) in pixels, returning
# the IoU of every pair as `Tensor[N, K]`. Hint: `exercises.hint("08_centered_iou")`.

# %% tags=["nbval-check-output"]
def my_centered_iou(wh_a, wh_b):
    ### BEGIN SOLUTION
    inter = (torch.minimum(wh_a[:, None, 0], wh_b[None, :, 0])
             * torch.minimum(wh_a[:, None, 1], wh_b[None, :, 1]))  # [N, K]
    union = wh_a.prod(dim=1)[:, None] + wh_b.prod(dim=1)[None, :] - inter  # [N, K]
    return inter / union
    ### END SOLUTION


_ = exercises.check("08_centered_iou", my_centered_iou)


# %% [markdown]
# k-means alternates two steps until nothing changes (Lloyd's algorithm): **assign** every box to the
# centroid of highest IoU (smallest distance), then **move** every centroid to the mean (w, h) of its boxes.
#
# ### Exercise: one k-means step
#
# Write `kmeans_step(wh, centroids)` for `wh` `Tensor[N, 2]` and `centroids` `Tensor[k, 2]`, returning
# `(assignment Tensor[N] long, new_centroids Tensor[k, 2])`; use your `my_centered_iou`. You may assume that
# every centroid gets at least one box. Hint: `exercises.hint("08_kmeans_step")`.

# %% tags=["nbval-check-output"]
def kmeans_step(wh, centroids):
    ### BEGIN SOLUTION
    assignment = my_centered_iou(wh, centroids).argmax(dim=1)  # [N] highest IoU = nearest
    new_centroids = torch.stack([wh[assignment == j].mean(dim=0) for j in range(len(centroids))])  # [k, 2]
    return assignment, new_centroids
    ### END SOLUTION


_ = exercises.check("08_kmeans_step", kmeans_step)

# %% [markdown]
# The package's `kmeans_box_shapes` repeats that step until the assignments stop changing. It also chooses
# the start (k-means++ seeding with the IoU distance, seeded for reproducibility), handles empty clusters and
# sorts the shapes by area. Its answer is a fixed point of your step. We ask for L + 1 shapes, one per entry
# of `box_sizes`.

# %%
k = cfg.num_levels + 1
result = kmeans_box_shapes(wh, k, seed=0)
shapes = result["shapes_wh"]  # [k, 2] sorted by area

assignment, moved = kmeans_step(wh, shapes)  # one of your steps from the package's answer…
assert torch.equal(assignment, result["assignment"]) and torch.allclose(moved, shapes, rtol=1e-5)  # …stays put
print(f"converged after {result['iterations']} iterations; your step leaves the answer where it is")


def mean_best_iou(candidates):  # how well a set of shapes fits the boxes, positions ignored
    return float(centered_iou(wh, candidates).max(dim=1).values.mean())

print(f"k-means shapes (w, h) px: {[tuple(round(float(v), 1) for v in s) for s in shapes]}")
print(f"mean IoU of each box with its best shape: k-means {result['mean_iou']:.3f} ({k} shapes), "
      f"preset {mean_best_iou(preset_shapes):.3f} ({len(preset_shapes)} shapes)")

# %%
viz.plot_box_shapes(wh, preset_shapes, extra={f"k-means shapes (k = {k})": shapes},
                    title="k-means on 1 - IoU: the typical shapes of the data")

# %% [markdown]
# ## From shapes to a configuration
#
# `config_from_shapes(cfg, shapes)` keeps the backbone and the feature maps of `cfg` and replaces the
# anchors, with two rules:
#
# 1. **Sizes.** The scales $\sqrt{wh}$ of the L + 1 shapes become `box_sizes`, but level k's size is raised
#    to at least `min_size_per_step × step_k`. k-means ignores positions; the grid does not. A 15 px anchor
#    on a map whose centres are 32 px apart covers only the boxes that happen to sit on a centre.
# 2. **Aspect ratios.** A shape elongated by at least `ratio_threshold` (1.5) proposes its ratio, rounded to
#    0.5; the most frequent ones go to every level. Square data gets none: 2 anchors per location.
#
# First the raw k-means sizes (`min_size_per_step=0`), then with the default floor of 2 steps:

# %%
raw_fit = config_from_shapes(cfg, shapes, min_size_per_step=0, name="kmeans_raw")
fitted = config_from_shapes(cfg, shapes)  # min_size_per_step=2.0
print(f"{'config':<20} {'box sizes (px)':<44} {'ratios per level':<24} {'anchors':>7} {'coverage':>8}")
for c in (cfg, raw_fit, fitted):
    sizes = ", ".join(f"{s:g}" for s in c.box_sizes)
    ratios = ratios_text(c) if any(c.aspect_ratios) else "none (squares)"
    print(f"{c.name:<20} {sizes:<44} {ratios:<24} {c.num_anchors:>7} {anchor_coverage(boxes, c)['overall']:>8.3f}")

# %% [markdown]
# The raw k-means sizes describe the shapes well (mean IoU 0.87 with 6 shapes, against 0.88 for the
# preset's 24) and cover the boxes worst: the data's boxes from about 40 px up are given to the 2 × 2 and
# 1 × 1 maps, whose handful of centres rarely sit where those boxes are. With the floor, the
# 16 × 16, 8 × 8 and 4 × 4 maps take the boxes from small to large with anchors of 2 steps and more, and
# cover more boxes than the preset with less than half its anchors. The floor pushes the 2 × 2 and 1 × 1 maps
# to 128–269 px anchors, larger than any box here, so they cover nothing (see the bars below); they cost only
# 10 anchors, and a dataset without large objects could drop those maps.

# %%
print(format_anchor_table(fitted))

# %%
fig, _ = coverage_view(boxes, fitted)
fig

# %% [markdown]
# ## When sizes are not enough: small objects
#
# The floor also tells us what no choice of sizes can fix. Suppose your objects were half as large
# (`size_range=(0.05, 0.3)` of the image). Anchors below two steps of the finest map (16 px here) miss most
# of them wherever the sizes are set. The remedy is a finer grid: feed the model larger images.
# `ssd.adapt_config(cfg, 256)` measures the feature maps of the backbone at 256 px (a dry run on the meta
# device) and scales the box sizes; the same objects are then twice as many pixels wide, and k-means can be
# run again on the boxes at that scale.

# %%
small = dataset_boxes(ssd.ShapesDataset(max(NUM_SAMPLE_IMAGES // 3, 50), image_size=S, seed=7,
                                        size_range=(0.05, 0.3)))["boxes"]
small_wh = small[:, 2:] - small[:, :2]
small_fit = config_from_shapes(cfg, kmeans_box_shapes(small_wh, k, seed=0)["shapes_wh"], name="small_fitted")
big = ssd.adapt_config(cfg, 2 * S)
big_fit = config_from_shapes(big, kmeans_box_shapes(2 * small_wh, k, seed=0)["shapes_wh"], name="big_fitted")
print(f"{len(small)} small boxes, median size {float(small_wh.prod(1).sqrt().median()):.0f} px at {S} px input")
for name, c, b in (("preset", cfg, small), ("fitted", small_fit, small),
                   ("preset adapted", big, 2 * small), ("fitted again", big_fit, 2 * small)):
    print(f"  {name:<15} {c.image_size:>4} px input, maps {str(c.feature_map_sizes):<19} "
          f"{c.num_anchors:>5} anchors, coverage {anchor_coverage(b, c)['overall']:.3f}")

# %% [markdown]
# At 128 px, fitting the sizes cannot beat the preset: the grid is the limit. At 256 px both do better, and
# the config fitted at that scale covers nearly every box (with four times the pixels to compute, the price of
# a finer grid).
#
# The article makes the same point from the other side: datasets **without** small objects can drop the
# high-resolution maps (fewer anchors, less compute), and small images need fewer feature maps.
#
# ## Train the fitted configuration briefly
#
# A new config means new heads: 2 anchors per location instead of 4 or 6, so the head convolutions have
# other shapes, and the matching targets change with the anchors. The backbone does not change at all: same
# layers, same feature maps. So, as the article does with an ImageNet-trained VGG or ResNet, we start from a
# **trained backbone**, here the one inside the shipped `tiny_shapes` model, and train new heads (and
# fine-tune the backbone) with the `fit` loop and recipe of notebook 06 for a few iterations.

# %%
recipe = ssd.train.TRAIN_RECIPES["tiny_shapes"]
torch.manual_seed(0)
model = ssd.build_ssd(fitted)  # fresh heads for 2 anchors per location
model.backbone.load_state_dict(ssd.load_pretrained("tiny_shapes").backbone.state_dict())

epochs = min(4, TRAIN_ITERS)
train_set = ssd.ShapesDataset(BATCH_SIZE * (TRAIN_ITERS // epochs), image_size=S, seed=0,
                              transforms=ssd.train_transforms(fitted))
loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True, collate_fn=ssd.collate_detection)
history = ssd.fit(model, loader, epochs=epochs, optimizer=recipe["optimizer"], lr=recipe["lr"],
                  weight_decay=recipe["weight_decay"], warmup_iters=TRAIN_ITERS // epochs, schedule="cosine",
                  channels_last=recipe.get("channels_last", False), progress=False, seed=0)
for record in history:
    print(f"epoch {record['epoch']}: loss {record['loss']:.3f} (loc {record['loss_loc']:.3f}, "
          f"cls {record['loss_cls']:.3f})")

eval_set = ssd.ShapesDataset(NUM_EVAL_IMAGES, image_size=S, seed=1000)
eval_loader = DataLoader(eval_set, batch_size=16, collate_fn=ssd.collate_detection)
detections, targets = ssd.train.collect_detections(model, eval_loader)
map50 = ssd.mean_average_precision(detections, targets, method="all_points")["map"]
print(f"all-point mAP@0.5 on {NUM_EVAL_IMAGES} held-out images after {TRAIN_ITERS} iterations: {map50:.3f}")

# %%
images, _ = ssd.collate_detection([eval_set[i] for i in range(min(8, len(eval_set)))])
viz.plot_detections(images, detections[:len(images)], targets[:len(images)], class_names=fitted.class_names,
                    min_score=0.5)

# %% [markdown]
# With a trained backbone, a few dozen iterations are enough for the new heads to find the shapes. Whether
# the fitted anchors end up better than the preset's is a question for two full training runs (notebook 06's
# recipe for each), not for a short fine-tuning.
#
# ## The same on your own data
#
# The model only needs the class names of your dataset; everything else in `fitted` stays. The cell below
# runs two iterations on the fixture, to show the pieces fit together (with a handful of images it
# cannot learn anything; with your folder, raise the epochs and follow notebook 06). Training transforms
# resize to the model's input and augment, so the boxes again reach the model in its own pixels.

# %%
mine = fitted.replace(name="my_dataset", num_classes=len(dataset.class_names), class_names=dataset.class_names)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    my_set = load_dataset(ssd.train_transforms(mine))
    my_loader = DataLoader(my_set, batch_size=min(2, len(my_set)), shuffle=True, collate_fn=ssd.collate_detection)
    torch.manual_seed(0)
    my_model = ssd.build_ssd(mine)
    history = ssd.fit(my_model, my_loader, epochs=1, max_iters=2, optimizer="adamw", lr=1e-3, warmup_iters=0,
                      schedule="constant", progress=False)
print(f"{mine.name}: {mine.num_classes} classes (with background), {mine.num_anchors} anchors, "
      f"loss after 2 iterations {history[-1]['loss']:.2f}")

# %% [markdown]
# ## Recap
#
# - Bring the boxes into the model's pixels first (`eval_transforms(cfg)`): resizing a non-square image to
#   the square input changes every box's aspect ratio.
# - **Coverage** (share of boxes whose best anchor reaches IoU ≥ 0.5) measures anchors on the real grid,
#   positions included; per level it shows which maps do the work.
# - **k-means with distance 1 − IoU of centred boxes** finds the typical shapes of the data, positions
#   ignored; `config_from_shapes` turns them into `box_sizes` and `aspect_ratios`, keeping each size at
#   least about two steps of its level so the grid can reach the boxes.
# - When objects are smaller than the finest grid allows, no sizes help: use a larger input
#   (`adapt_config`) or a finer feature map.
# - A fitted configuration can cover more boxes with fewer anchors. It needs new heads, not a new backbone:
#   train it with `fit`, starting from a trained backbone when you have one.
#
# That closes the series: from the constants of SSD512 (notebook 01) to a detector fitted to your own data.
