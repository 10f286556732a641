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
#     ci_parameters: {}
# ---

# %% [markdown]
# # 01 — The constants of SSD512
#
# An SSD detector is, before any learning happens, a long list of numbers: how many feature maps it
# looks at, how large each one is, how big the boxes it starts from are and what shapes they have.
# This notebook reads those numbers one by one, for the SSD512 model tuned to PASCAL VOC that the
# article *The Hero Rises: Build Your Own SSD* builds.
#
# **After this notebook you will be able to**
# - read every field of an `SSDConfig` and say what it controls;
# - explain why SSD512 has 7 feature maps but 8 box sizes;
# - compute box sizes with the SSD paper's `s_min`/`s_max` rule and compare them with the article's;
# - count the anchors of a model by hand — 24 564 for SSD512, 8 732 for SSD300 — and check the count
#   against the package.

# %% [markdown]
# ## Parameters
#
# The scale range of the SSD paper's linear rule (section 2.2), as fractions of the image side.
# Change them and re-run the notebook to see how the rule moves; the tests run with the defaults.

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
S_MIN = 0.2  # scale of the first (finest) feature map
S_MAX = 0.9  # scale of the last (coarsest) feature map

# %%
# %matplotlib inline
import math

import ssd_tutorial as ssd
from ssd_tutorial import exercises, viz
from ssd_tutorial.anchors import anchor_table, format_anchor_table

# %% [markdown]
# ## One object holds every constant
#
# The package keeps all of a model's numbers in a frozen dataclass, `SSDConfig`. Frozen means no
# cell of a notebook can change a value behind your back: `cfg.replace(...)` makes a new, validated
# copy instead. `ssd.SSD512_VOC` holds the article's constants exactly.

# %% tags=["nbval-check-output"]
cfg = ssd.SSD512_VOC
for field in ("name", "image_size", "num_classes", "feature_map_sizes", "steps", "box_sizes",
              "aspect_ratios", "in_channels", "variances"):
    print(f"{field:>17}: {getattr(cfg, field)}")
print(f"{'class_names':>17}: {cfg.class_names[:4]} ... ({len(cfg.class_names)} names)")

# %% [markdown]
# Most tuples have **one entry per feature map**. SSD predicts boxes from 7 feature maps of
# decreasing resolution, 64×64 down to 1×1: the fine maps see small objects, the coarse maps large ones.
#
# `num_classes` is 21: the 20 VOC object classes **plus background**, which is class 0 — an anchor
# that covers no object must still be classified, as "nothing".
#
# `in_channels` is the depth of each feature map (512 for VGG16's conv4_3, 1024 for conv7, and so on);
# notebook 03 builds the network that produces them.
#
# ## Steps: how many input pixels one cell spans
#
# Cell (i, j) of a feature map with step `step` is centred at `((j + 0.5)·step, (i + 0.5)·step)` input
# pixels. For SSD512 every map tiles the 512-pixel image exactly: `feature map × step = 512`.

# %% tags=["nbval-check-output"]
for fm, step in zip(cfg.feature_map_sizes, cfg.steps):
    print(f"{fm:>2}x{fm:<2} map, step {step:>3} px: {fm} * {step} = {fm * step}")
    assert fm * step == cfg.image_size

# %% [markdown]
# ## Why 8 box sizes for 7 feature maps?
#
# Each level k starts from square anchors of two sizes (SSD paper, section 2.2):
#
# - side $s_k$, the level's own size;
# - side $s'_k = \sqrt{s_k \, s_{k+1}}$, the geometric mean with the **next** level's size, a square
#   halfway (on a log scale) between this level and the next.
#
# The last level also needs an $s_{k+1}$, hence one size more than there are levels.

# %% tags=["nbval-check-output"]
print("level   s_k    s_k+1   sqrt(s_k * s_k+1)")
for k in range(cfg.num_levels):
    s_k, s_next = cfg.box_sizes[k], cfg.box_sizes[k + 1]
    print(f"{k:>5} {s_k:>6.2f} {s_next:>7.2f} {math.sqrt(s_k * s_next):>12.2f}")

# %% [markdown]
# ## The paper's rule against the article's sizes
#
# The SSD paper spreads the scales linearly between $s_{\min}$ and $s_{\max}$ over the $m$ feature maps
# (eq. 4):
#
# $$s_k = s_{\min} + \frac{s_{\max} - s_{\min}}{m - 1}(k - 1), \qquad k = 1, \dots, m$$
#
# with $s_{\min} = 0.2$ and $s_{\max} = 0.9$ as fractions of the image side. `ssd.paper_box_sizes`
# computes it in pixels and continues the line by one step for the extra size. Let's put it beside the
# article's sizes.

# %% tags=["nbval-check-output"]
paper = ssd.paper_box_sizes(cfg.image_size, cfg.num_levels, s_min=S_MIN, s_max=S_MAX)
print("  k  article  (/512)    paper  (/512)  article - paper")
for k, (a, p) in enumerate(zip(cfg.box_sizes, paper)):
    print(f"{k:>3} {a:>8.2f} {a / cfg.image_size:>7.3f} {p:>8.2f} {p / cfg.image_size:>7.3f} {a - p:>+16.2f}")

# %%
viz.plot_box_sizes({"article (SSD512 / VOC)": cfg.box_sizes, f"paper rule s_min={S_MIN}, s_max={S_MAX}": paper},
                   image_size=cfg.image_size)

# %% [markdown]
# Divided by 512, the article's sizes show their own pattern: **0.07** for the first map, then a straight
# line from 0.15 in steps of 0.15 (0.15, 0.30, …, 0.90, 1.05). So the article keeps the paper's idea — a
# linear ramp — but starts it lower, and gives the 64×64 map much smaller boxes (36 px instead of 102 px).
# The paper does the same for COCO, whose objects are smaller: it lowers $s_{\min}$ to 0.15 and gives
# conv4_3 a scale of 0.07. Small boxes on the finest map are what lets SSD find small objects at all;
# notebook 08 fits these sizes to a dataset of your own.
#
# ## Anchors per location: 2 + 2 × (number of aspect ratios)
#
# At every cell SSD places the two squares above, and for each aspect ratio $r$ two rectangles of
# the same area as the $s_k$ square: a lying one, $w = s_k\sqrt{r}$, $h = s_k/\sqrt{r}$, and a standing
# one with $w$ and $h$ swapped. Ratios (2,) give 4 anchors per location, ratios (2, 3) give 6.

# %% tags=["nbval-check-output"]
per_location = [2 + 2 * len(ratios) for ratios in cfg.aspect_ratios]
for k, (ratios, n) in enumerate(zip(cfg.aspect_ratios, per_location)):
    print(f"level {k}: ratios {str(ratios):<7} -> 2 squares + 2 x {len(ratios)} rectangles = {n}")
assert tuple(per_location) == cfg.anchors_per_location == (4, 6, 6, 6, 6, 4, 4)

# %% [markdown]
# Here they are, one location per level, each panel to scale in pixels around its centre (y grows
# downwards, as in an image). Blue is the $s_k$ square, orange the $s'_k$ square, green and red the lying
# and standing boxes of ratio 2, purple and brown those of ratio 3 (levels 1–4 only).
# `ssd.level_box_shapes(cfg, k)` lists the same (w, h) pairs in the order the model uses.

# %%
viz.plot_anchor_shapes(cfg)

# %% [markdown]
# ## Anchors per level, and in all
#
# A level with an f×f feature map has f² locations, each with its anchors per location. Count by hand
# first, then compare with the package.

# %% tags=["nbval-check-output"]
by_hand = [fm * fm * n for fm, n in zip(cfg.feature_map_sizes, per_location)]
total = sum(by_hand)
print("anchors per level:", by_hand)
print("total:", total)
assert tuple(by_hand) == cfg.anchors_per_level
assert total == cfg.num_anchors == 24564
assert len(ssd.default_boxes(cfg)) == total  # notebook 02 builds these boxes

# %% [markdown]
# The package prints the whole picture as one table (`format_anchor_table`; `anchor_table` gives the
# same rows as dictionaries, and `python -m ssd_tutorial anchors --preset ssd512_voc` prints it from a
# shell).

# %% tags=["nbval-check-output"]
print(format_anchor_table(cfg))

# %% tags=["nbval-check-output"]
rows = anchor_table(cfg)
share = rows[0]["anchors"] / cfg.num_anchors
print(f"the 64x64 map alone holds {rows[0]['anchors']} of {cfg.num_anchors} anchors ({share:.1%})")

# %% [markdown]
# Two thirds of all anchors sit on the finest map. Most of them cover background, which is why the
# loss (notebook 05) must keep the easy negatives from drowning out the few positives.
#
# ## SSD300 beside SSD512
#
# The SSD paper's SSD300 takes a 300×300 input and has one feature map fewer. Its steps, taken from the
# authors' released code, are not all exact divisors of 300: 38 × 8 = 304, so its first map slightly
# overhangs the image.

# %% tags=["nbval-check-output"]
print(format_anchor_table(ssd.SSD300_VOC))

# %%
viz.plot_anchor_counts([ssd.SSD512_VOC, ssd.SSD300_VOC])

# %% [markdown]
# The article's dry run measures each feature map and sets its step to `image_size // fm`. At 300 px that
# gives `300 // 38 = 7` for the 38×38 map, whose last centre then sits at 37.5 × 7 = 262.5 px: the right
# and bottom 37.5 px of the image get no level-0 centre. With step 8 the centres reach the edge
# (notebook 02 shows both, and a third choice, the fractional step 300 / 38).

# %% tags=["nbval-check-output"]
last_center_floor = (38 - 0.5) * (300 // 38)
last_center_paper = (38 - 0.5) * ssd.SSD300_VOC.steps[0]
print(f"last centre with step 300 // 38 = {300 // 38}: {last_center_floor} px; with step 8: {last_center_paper} px")


# %% [markdown]
# ## Exercise: how many anchors does level k have?
#
# Complete `anchors_at_level(k)` so that it returns the number of anchors on level `k` of a config,
# using only `cfg.feature_map_sizes` and `cfg.aspect_ratios`. The next cell checks it on all seven
# levels of SSD512. Stuck? `exercises.hint("01_anchors_per_level")` gives a hint and
# `exercises.solution("01_anchors_per_level")` a worked answer.

# %% tags=["nbval-check-output"]
def anchors_at_level(k, cfg=ssd.SSD512_VOC):
    ### BEGIN SOLUTION
    fm = cfg.feature_map_sizes[k]
    return fm * fm * (2 + 2 * len(cfg.aspect_ratios[k]))
    ### END SOLUTION


exercises.check("01_anchors_per_level", anchors_at_level)

# %% [markdown]
# And one more: how many anchors does SSD300 have in all? Use your function with
# `cfg=ssd.SSD300_VOC` on each of its levels and store the sum in `total_300`.

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
total_300 = sum(anchors_at_level(k, ssd.SSD300_VOC) for k in range(ssd.SSD300_VOC.num_levels))
### END SOLUTION
exercises.check("01_total_anchors", total_300)

# %% [markdown]
# ## Recap
#
# - `SSDConfig` holds every constant; `ssd.SSD512_VOC` is the article's model: 7 feature maps
#   (64 … 1), steps 8 … 512 with feature map × step = 512, 21 classes including background.
# - Level k uses two square sizes, $s_k$ and $\sqrt{s_k s_{k+1}}$, so there are 8 box sizes for
#   7 levels. The article's sizes start at 0.07 × 512 and then climb by 0.15 × 512; the paper's rule
#   spreads 0.2 … 0.9 evenly.
# - Anchors per location are 2 + 2 × (number of aspect ratios): 4 or 6. Anchors per level are f² times
#   that; SSD512 has 24 564 anchors, SSD300 8 732, two thirds of SSD512's on its 64×64 map.
#
# **Next:** [02_anchor_tiling.ipynb](02_anchor_tiling.ipynb) places these anchors on every cell of
# every feature map and turns the counts into boxes.
