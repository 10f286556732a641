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
# SSD (the *Single Shot MultiBox Detector*, Liu et al. 2016, [arXiv 1512.02325](https://arxiv.org/abs/1512.02325))
# finds objects in one pass of a convolutional network. It does not search the image for objects: it starts from
# a fixed set of boxes laid over the image, the **anchors** (the paper calls them *default boxes*), and for every
# anchor the network predicts two things:
#
# - **C class scores** — is there a circle, a person, a dog … or only background (class 0) in this anchor?
# - **4 offsets** — how to shift and stretch the anchor so that it fits the object exactly.
#
# Before any learning happens, SSD is therefore a long list of numbers: how many feature maps it looks at, how
# large each one is, and how big the anchors it starts from are and what shapes they have. This notebook reads
# those numbers one by one, for the SSD512 model tuned to PASCAL VOC that the article *The Hero Rises: Build Your
# Own SSD* (Allegro AI blog, 2020) builds, and checks them against the paper.
#
# **After this notebook you will be able to**
# - read every field of an `SSDConfig` and say what it controls;
# - explain why SSD512 has 7 feature maps but 8 box sizes;
# - compute the article's box sizes with the SSD paper's own rule (eq. 4);
# - count the anchors of a model by hand — 24 564 for SSD512, 8 732 for SSD300 — and check the count
#   against the package.

# %% [markdown]
# ## Parameters
#
# The scale range of the SSD paper's linear rule (Sec. 2.2, eq. 4), as fractions of the image side; 0.2 and 0.9
# are the paper's values. Only the comparison with the plain rule uses them (the last table and the figure of "Where
# the article's box sizes come from"); change them and re-run the notebook to see how the rule moves. The tests run
# with the defaults.

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
S_MIN = 0.2  # scale of the first (finest) feature map in the paper's rule
S_MAX = 0.9  # scale of the last (coarsest) feature map

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

import ssd_tutorial as ssd
from ssd_tutorial import exercises, viz
from ssd_tutorial.anchors import anchor_table, format_anchor_table

cfg = ssd.SSD512_VOC

# %% [markdown]
# ## The whole detector on one picture
#
# Notebooks 02–04 build the boxes of this picture; 05–06 train it, 07 evaluates it, 08 adapts it to your data.
# The numbers are SSD512's real ones: the shapes of the 7 feature maps (the *sources*) come from a dry run of the
# network (notebook 03), not from a table. Notebook 02 places the anchors, 03 builds the backbone and the heads,
# 04 decodes the predictions and applies non-maximum suppression (NMS). Names in the picture that this notebook
# does not explain, such as `L2Norm` (a rescaling of conv4_3's features) and `extras[0]` (the first of the extra
# layers added after the backbone), are built in notebook 03.

# %%
viz.plot_architecture(cfg)

# %% [markdown]
# > **Notation used in every notebook and in the package**
# >
# > | symbol | meaning | SSD512 example |
# > |---|---|---|
# > | **k** | feature-map level, counted from 0 in the code and the tables | k = 0 is the 64×64 map |
# > | f_k | side of level k's feature map (`cfg.feature_map_sizes[k]`) | f_0 = 64 |
# > | **i**, **j** | row i (counts down along y) and column j (across along x) of a cell of a feature map | 0 … f_k − 1 |
# > | **d** | the shape index of one anchor at one location, d = 0 … n_k − 1 | d = 0 is the s_k square |
# > | n_k | anchors per location on level k (`cfg.anchors_per_location[k]`) | n_0 = 4 |
# > | f_k²·n_k | anchors on level k | 64² · 4 = 16 384 |
# > | s_k | box size of level k (`cfg.box_sizes[k]`) | s_0 = 35.84 px |
# > | A, C | all anchors, all classes (background included) | 24 564, 21 |
# >
# > The paper counts its levels **k = 1 … m** (eq. 4); the code counts them from 0, so our level k is the paper's
# > level k + 1 when every level follows the rule. Where the article gives conv4_3 a scale of its own (below), its
# > rule runs over our levels 1 … 6.
#
# ## One object holds every constant
#
# The package keeps all of a model's numbers in a frozen dataclass, `SSDConfig`. Frozen means no
# cell of a notebook can change a value behind your back: `cfg.replace(...)` makes a new, validated
# copy instead. `ssd.SSD512_VOC` holds the article's constants exactly.

# %% tags=["nbval-check-output"]
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
# `in_channels` is the depth of each feature map, its number of **channels** (512 for VGG16's conv4_3, 1024 for
# conv7, and so on; the tables below shorten it to "ch"); notebook 03 builds the network that produces them.
# `variances` scale the 4 offsets the network predicts (notebook 04): 0.1 for the centre offsets, 0.2 for the size
# offsets. These two numbers come from the authors' released code
# ([weiliu89/caffe, branch ssd](https://github.com/weiliu89/caffe/tree/ssd)), not from the paper.
#
# ## Steps: how many input pixels one cell spans
#
# Cell (i, j) of level k, with step `step_k`, is centred at `((j + 0.5)·step_k, (i + 0.5)·step_k)` input
# pixels: column j gives x, row i gives y. For SSD512 every map tiles the 512-pixel image exactly:
# `f_k × step_k = 512`.

# %% tags=["nbval-check-output"]
for fm, step in zip(cfg.feature_map_sizes, cfg.steps):
    print(f"{fm:>2}x{fm:<2} map, step {step:>3} px: {fm} * {step} = {fm * step}")
    assert fm * step == cfg.image_size

# %% [markdown]
# ## Why 8 box sizes for 7 feature maps?
#
# Each level k starts from square anchors of two sizes (SSD paper, Sec. 2.2 "Choosing scales and aspect
# ratios for default boxes"):
#
# - side $s_k$, the level's own size;
# - side $s'_k = \sqrt{s_k \, s_{k+1}}$, the geometric mean with the **next** level's size, a square
#   halfway (on a log scale) between this level and the next.
#
# The last level also needs an $s_{k+1}$, hence one size more than there are levels.

# %% tags=["nbval-check-output"]
print("level k   s_k    s_k+1   sqrt(s_k * s_k+1)")
for k in range(cfg.num_levels):
    s_k, s_next = cfg.box_sizes[k], cfg.box_sizes[k + 1]
    print(f"{k:>7} {s_k:>6.2f} {s_next:>7.2f} {math.sqrt(s_k * s_next):>12.2f}")

# %% [markdown]
# ## Where the article's box sizes come from: the paper's rule
#
# The SSD paper spreads the scales linearly between $s_{\min}$ and $s_{\max}$ over the $m$ feature maps
# (Sec. 2.2, eq. 4):
#
# $$s_k = s_{\min} + \frac{s_{\max} - s_{\min}}{m - 1}(k - 1), \qquad k \in [1, m]$$
#
# as fractions of the image side, with $s_{\min} = 0.2$, $s_{\max} = 0.9$ — and, for SSD300 on VOC, conv4_3 (the
# first map) set apart with its own scale **0.1** (Sec. 3.1). A scale is a fraction: **box size in pixels = $s_k$ ×
# image size** (the notation table's $s_k$ and `cfg.box_sizes` are already in pixels). The article's SSD512 uses
# the **same rule** with the numbers the paper gives for its COCO models (Sec. 3.4): conv4_3 gets the scale
# **0.07** (0.07 × 512 = 35.84 px), and eq. 4 with $s_{\min} = 0.15$, $s_{\max} = 0.9$ runs over the $m = 6$ maps
# after it (our levels k = 1 … 6, the paper's k = 1 … 6), continued one step further to $s_{m+1} = 1.05$ for the
# last level's second square. The paper does not say how $s'_k$ of the last level is chosen; continuing the ramp
# one step is the convention of the authors' released code. Let's compute that by hand and compare with the
# config:

# %% tags=["nbval-check-output"]
S = cfg.image_size
m = cfg.num_levels - 1  # the levels after conv4_3
first = 0.07 * S  # conv4_3's own scale
rule = [(0.15 + (0.9 - 0.15) * (k - 1) / (m - 1)) * S for k in range(1, m + 2)]  # k = 1 … m, then s_{m+1}
by_hand = [first] + rule
print("level k  paper's k   scale   by hand  cfg.box_sizes")
for level, (mine, theirs) in enumerate(zip(by_hand, cfg.box_sizes)):
    paper_k = "-" if level == 0 else ("m+1" if level == m + 1 else str(level))
    print(f"{level:>7} {paper_k:>10} {mine / S:>7.3f} {mine:>9.2f} {theirs:>14.2f}")
    assert math.isclose(mine, theirs, rel_tol=1e-9)
assert all(math.isclose(a, b) for a, b in zip(rule, ssd.paper_box_sizes(S, m, s_min=0.15, s_max=0.9)))  # eq. 4

# %% [markdown]
# Read the table as: level k = 0 (conv4_3) has no paper k, it is set by hand; levels 1 … 6 are the paper's
# k = 1 … 6; the 8th size is $s_{m+1}$. So the article keeps the paper's linear ramp, starts it at 0.15 instead
# of 0.2 and gives the 64×64 map small boxes of its own. These are the paper's own COCO settings (Sec. 3.4: COCO's
# objects are smaller), which the authors' released SSD512 ([code](https://github.com/weiliu89/caffe/tree/ssd),
# `ssd_pascal_512.py`: `min_ratio` 15, conv4_3 at 7 %) also uses. Small boxes on the finest map are what lets SSD find small objects at all;
# notebook 08 fits these sizes to a dataset of your own.
#
# For comparison, the plain rule with the parameters of this notebook ($s_{\min}$ = `S_MIN`, $s_{\max}$ = `S_MAX`)
# over all 7 levels, without a scale of its own for conv4_3. Mind the numbering: here every level follows the rule,
# so our level k is the paper's k + 1 (our 0 is its 1), whereas in the table above, where conv4_3 stood apart,
# our k and the paper's k were equal:

# %% tags=["nbval-check-output"]
paper = ssd.paper_box_sizes(cfg.image_size, cfg.num_levels, s_min=S_MIN, s_max=S_MAX)
print(f"plain rule, s_min={S_MIN}, s_max={S_MAX}:", [round(p, 1) for p in paper])

# %%
viz.plot_box_sizes({"article (SSD512 / VOC)": cfg.box_sizes, f"plain rule s_min={S_MIN}, s_max={S_MAX}": paper},
                   image_size=cfg.image_size)

# %% [markdown]
# ## Anchors per location: n_k = 2 + 2 × (number of aspect ratios)
#
# At every cell SSD places the two squares above, and for each aspect ratio $r$ two rectangles of
# the same area as the $s_k$ square: a lying one, $w = s_k\sqrt{r}$, $h = s_k/\sqrt{r}$, and a standing
# one with $w$ and $h$ swapped. Ratios (2,) give n_k = 4 anchors per location, ratios (2, 3) give 6.

# %% tags=["nbval-check-output"]
per_location = [2 + 2 * len(ratios) for ratios in cfg.aspect_ratios]
for k, (ratios, n) in enumerate(zip(cfg.aspect_ratios, per_location)):
    print(f"level {k}: ratios {str(ratios):<7} -> 2 squares + 2 x {len(ratios)} rectangles = {n}")
assert tuple(per_location) == cfg.anchors_per_location == (4, 6, 6, 6, 6, 4, 4)

# %% [markdown]
# Here they are, one location per level, drawn around its centre. **All panels share one scale** (pixels, y
# grows downwards as in an image), so you can compare sizes across levels; the grey frame is the whole 512×512
# image for scale. The colour is the shape index d, explained by the legend. `ssd.level_box_shapes(cfg, k)` lists
# the same (w, h) pairs in the order the model uses.

# %%
shape_names = ["d=0: s_k square", "d=1: sqrt(s_k s_k+1) square", "d=2: ratio 2, lying", "d=3: ratio 2, standing",
               "d=4: ratio 3, lying", "d=5: ratio 3, standing"]
fig, axes = plt.subplots(2, 4, figsize=(12, 6.6), sharex=True, sharey=True, layout="constrained")
half = 340  # px: room for the widest box, level 6's 652-px lying rectangle
for k, ax in enumerate(axes.flat[:cfg.num_levels]):
    ax.add_patch(Rectangle((-S / 2, -S / 2), S, S, fill=False, color="grey", linestyle=":"))
    for d, (w, h) in enumerate(ssd.level_box_shapes(cfg, k)):
        ax.add_patch(Rectangle((-w / 2, -h / 2), w, h, fill=False, lw=1.5, color=f"C{d}", label=shape_names[d]))
    fm = cfg.feature_map_sizes[k]
    ax.set(xlim=(-half, half), ylim=(half, -half), aspect="equal")
    ax.set_title(f"level {k}: {fm}x{fm}, n_k={cfg.anchors_per_location[k]}, s_k={cfg.box_sizes[k]:g}", fontsize=9)
for ax in axes[-1]:
    ax.set_xlabel("x − cx (px)")
for ax in axes[:, 0]:
    ax.set_ylabel("y − cy (px)")
legend_ax = axes.flat[-1]
legend_ax.axis("off")
legend_ax.legend(*axes.flat[1].get_legend_handles_labels(), loc="center", fontsize=9,
                 title="shape d (dotted: the 512 px image)")
fig.suptitle("SSD512: the anchors of one location per level, all on the same pixel scale");

# %% [markdown]
# ## Anchors per level, and in all
#
# Level k has an f_k × f_k feature map, so f_k² locations, each with n_k anchors: **f_k²·n_k anchors**. Count by
# hand first, then compare with the package.

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
# shell). Column "ch" is `in_channels`, "per loc" is n_k.

# %% tags=["nbval-check-output"]
print(format_anchor_table(cfg))

# %% tags=["nbval-check-output"]
rows = anchor_table(cfg)
share = rows[0]["anchors"] / cfg.num_anchors
print(f"the 64x64 map alone holds {rows[0]['anchors']} of {cfg.num_anchors} anchors ({share:.1%})")

# %% [markdown]
# Two thirds of all anchors sit on the finest map. Most of them cover background. Training (notebook 05) calls
# an anchor that is matched to an object a *positive* and one left on background a *negative*; the loss must keep
# the many easy negatives from drowning out the few positives.
#
# ## SSD300 beside SSD512
#
# The SSD paper's SSD300 takes a 300×300 input and has one feature map fewer. Its steps and box sizes are those of
# the authors' released code ([weiliu89/caffe, branch ssd](https://github.com/weiliu89/caffe/tree/ssd)): its first
# map gets the scale 0.1 (30 px), as the paper says for VOC (Sec. 3.1); its other sizes (60, 111, 162, …) climb in
# equal steps of 51 px, close to but not exactly eq. 4 with 0.2 … 0.9. Its steps are not all exact divisors of 300:
# the cells overhang the image, by a little on the first map (38 × 8 = 304) and by more on the 10×10 and 5×5 maps
# (10 × 32 = 5 × 64 = 320 px); the last centre of the 10×10 map, 9.5 × 32 = 304 px, even lies outside the 300-px
# image (notebook 02 tabulates this).

# %% tags=["nbval-check-output"]
print(format_anchor_table(ssd.SSD300_VOC))

# %% [markdown]
# The two models have different levels (SSD512's 4×4 map has no counterpart in SSD300, whose maps are 38, 19,
# 10, 5, 3, 1), so the picture puts each level at its own feature-map size f_k instead of pairing levels by index:

# %%
fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
for preset, marker in ((ssd.SSD512_VOC, "o"), (ssd.SSD300_VOC, "s")):
    ax.plot(preset.feature_map_sizes, preset.anchors_per_level, marker=marker,
            label=f"{preset.name}: {preset.num_anchors} anchors")
    for fm, count in zip(preset.feature_map_sizes, preset.anchors_per_level):
        ax.annotate(f"{count}", (fm, count), textcoords="offset points", fontsize=7,
                    xytext=(4, 4) if marker == "o" else (4, -10))  # SSD300's labels below its points
ax.set(xscale="log", yscale="log", xlabel="feature-map side f_k (cells)", ylabel="anchors on the level, f_k² n_k",
       title="Anchors per level against the feature-map size")
ax.margins(x=0.12, y=0.2)  # room for the labels at the ends
ax.legend();

# %% [markdown]
# The article's dry run measures each feature map and sets its step to `image_size // f_k`. At 300 px that
# gives `300 // 38 = 7` for the 38×38 map. Two numbers describe the damage, and they measure different things:
# the **last anchor centre** sits at 37.5 × 7 = 262.5 px, **37.5 px** from the right and bottom edges; the
# **cells** themselves end at 38 × 7 = 266 px, so a **34 px** band along those edges belongs to no level-0 cell.
# With step 8 the centres reach the edge (notebook 02 shows both, and a third choice, the fractional step 300 / 38).

# %% tags=["nbval-check-output"]
last_center_floor = (38 - 0.5) * (300 // 38)
last_center_paper = (38 - 0.5) * ssd.SSD300_VOC.steps[0]
print(f"step 300 // 38 = {300 // 38}: last centre {last_center_floor} px ({300 - last_center_floor} px from the "
      f"edge), cells end at {38 * (300 // 38)} px ({300 - 38 * (300 // 38)} px short)")
print(f"step 8: last centre {last_center_paper} px")


# %% [markdown]
# ## Exercise: how many anchors does level k have?
#
# Complete `anchors_at_level(k, cfg)` so that it returns the number of anchors on level `k` of **any** config,
# using only `cfg.feature_map_sizes` and `cfg.aspect_ratios` of the `cfg` it is given. The next cell checks it on
# every level of SSD512, SSD300 and `ssd.TINY_SHAPES` (the small preset for the shapes dataset, used from notebook
# 05 on). Stuck? `exercises.hint("01_anchors_per_level")`
# gives a hint and `exercises.solution("01_anchors_per_level")` a worked answer.

# %% tags=["nbval-check-output"]
def anchors_at_level(k, cfg=ssd.SSD512_VOC):
    ### BEGIN SOLUTION
    fm = cfg.feature_map_sizes[k]
    return fm * fm * (2 + 2 * len(cfg.aspect_ratios[k]))
    ### END SOLUTION


exercises.check("01_anchors_per_level", anchors_at_level);

# %% [markdown]
# And one more, a number no cell above prints: how many anchors would SSD300 have in all if **every** level used
# the aspect ratios (2, 3)? Build that config with `ssd.SSD300_VOC.replace(aspect_ratios=((2, 3),) * 6)`, use your
# function on each of its levels and store the sum in `total_300`.

# %% tags=["nbval-check-output"]
### BEGIN SOLUTION
cfg_all_six = ssd.SSD300_VOC.replace(aspect_ratios=((2, 3),) * 6)
total_300 = sum(anchors_at_level(k, cfg_all_six) for k in range(cfg_all_six.num_levels))
### END SOLUTION
exercises.check("01_total_anchors", total_300);

# %% [markdown]
# ## Recap
#
# - SSD predicts, for every anchor (default box), C class scores and 4 offsets; `SSDConfig` holds every constant,
#   and `ssd.SSD512_VOC` is the article's model: 7 feature maps (64 … 1), steps 8 … 512 with f_k × step_k = 512,
#   21 classes including background.
# - Notation: level k (from 0 in the code, the paper's k = 1 … m), cell row i (y) and column j (x), shape d at a
#   location, n_k anchors per location, f_k²·n_k anchors on level k.
# - Level k uses two square sizes, $s_k$ and $\sqrt{s_k s_{k+1}}$, so there are 8 box sizes for 7 levels. The
#   article's sizes are the paper's eq. 4 with $s_{\min}$ = 0.15, $s_{\max}$ = 0.9 over the six levels after
#   conv4_3 (plus $s_{m+1}$ = 1.05), and conv4_3's own scale 0.07 — the paper's COCO settings (Sec. 3.4); the
#   paper's SSD300 on VOC uses 0.2 … 0.9 and 0.1 (Sec. 3.1).
# - n_k = 2 + 2 × (number of aspect ratios): 4 or 6. SSD512 has 24 564 anchors, SSD300 8 732, two thirds of
#   SSD512's on its 64×64 map.
#
# **Sources:** Liu et al., *SSD: Single Shot MultiBox Detector*, ECCV 2016, [arXiv 1512.02325](https://arxiv.org/abs/1512.02325)
# (Sec. 2.2, eq. 4; Sec. 3.1; Sec. 3.4); the authors' released code,
# [weiliu89/caffe, branch ssd](https://github.com/weiliu89/caffe/tree/ssd); the article *The Hero Rises: Build Your Own SSD* (Allegro AI blog, 2020).
#
# **Next:** [02_anchor_tiling.ipynb](02_anchor_tiling.ipynb) places these anchors on every cell of
# every feature map and turns the counts into boxes.
