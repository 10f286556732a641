"""Tests for ssd_tutorial.viz on the Agg backend: figures, not pixels; no pyplot state left behind."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ssd_tutorial import viz  # noqa: E402
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC, paper_box_sizes  # noqa: E402


@pytest.fixture
def ax():
    fig = Figure()
    return fig.add_subplot()


def _rectangles(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_show_image_pixel_coordinates_origin_top_left(ax):
    image = torch.zeros(3, 20, 30)
    image[0, 0, 0] = 1.0  # top-left pixel red
    viz.show_image(ax, image)
    assert ax.get_xlim() == (0.0, 30.0)
    assert ax.get_ylim() == (20.0, 0.0)  # y grows downwards
    shown = ax.images[0]
    assert shown.get_extent() == [0, 30, 20, 0]
    data = shown.get_array()
    assert data.shape == (20, 30, 3) and data[0, 0, 0] == 1.0


@pytest.mark.parametrize("image", [torch.rand(1, 8, 8), torch.rand(8, 8), torch.randint(0, 256, (3, 8, 8),
                                                                                        dtype=torch.uint8)])
def test_show_image_accepts_gray_and_uint8(ax, image):
    viz.show_image(ax, image)
    data = ax.images[0].get_array()
    assert float(data.max()) <= 1.0


@pytest.mark.parametrize("bad, error", [(torch.rand(4, 8, 8), ValueError), (torch.rand(2, 3, 8, 8), ValueError),
                                        ([[0.0]], TypeError)])
def test_show_image_rejects_bad_input(ax, bad, error):
    with pytest.raises(error, match="image_chw"):
        viz.show_image(ax, bad)


def test_draw_boxes_rectangles_and_captions(ax):
    boxes = torch.tensor([[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 5.0, 5.0]])
    viz.draw_boxes(ax, boxes, labels=torch.tensor([1, 3]), scores=[0.873, 0.5], class_names=SSD512_VOC.class_names)
    rects = _rectangles(ax)
    assert len(rects) == 2
    assert rects[0].get_xy() == (10.0, 20.0)
    assert rects[0].get_width() == 40.0 and rects[0].get_height() == 20.0
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["aeroplane 0.87", "bird 0.50"]
    assert rects[0].get_edgecolor() != rects[1].get_edgecolor()  # colour per label


def test_draw_boxes_without_names_and_fixed_color(ax):
    viz.draw_boxes(ax, torch.tensor([[1.0, 2.0, 3.0, 4.0]]), labels=[7], color="red")
    assert [t.get_text() for t in ax.texts] == ["7"]
    assert _rectangles(ax)[0].get_edgecolor() == matplotlib.colors.to_rgba("red")


def test_draw_boxes_empty_and_no_captions(ax):
    viz.draw_boxes(ax, torch.zeros(0, 4))
    assert _rectangles(ax) == [] and len(ax.texts) == 0
    viz.draw_boxes(ax, torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert len(_rectangles(ax)) == 1 and len(ax.texts) == 0


def test_draw_boxes_errors(ax):
    with pytest.raises(ValueError, match=r"\[N, 4\], got \[4\]"):
        viz.draw_boxes(ax, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="labels must have one value per box"):
        viz.draw_boxes(ax, torch.zeros(2, 4), labels=[1])


def test_plot_anchor_counts_bars_are_the_config_counts():
    before = plt.get_fignums()
    fig = viz.plot_anchor_counts([SSD512_VOC, SSD300_VOC])
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == before  # not registered with pyplot: no leak, no implicit show
    ax = fig.axes[0]
    heights = [round(p.get_height()) for p in _rectangles(ax)]
    assert heights == list(SSD512_VOC.anchors_per_level) + list(SSD300_VOC.anchors_per_level)
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["ssd512_voc (24564 anchors)", "ssd300_voc (8732 anchors)"]
    assert viz.plot_anchor_counts(SSD300_VOC, log=False).axes[0].get_yscale() == "linear"
    with pytest.raises(TypeError, match="SSDConfig"):
        viz.plot_anchor_counts(["ssd512_voc"])


def test_plot_box_sizes_lines():
    paper = paper_box_sizes(512, 7)
    fig = viz.plot_box_sizes({"article": SSD512_VOC.box_sizes, "paper": paper}, image_size=512)
    lines = fig.axes[0].get_lines()
    assert list(lines[0].get_ydata()) == list(SSD512_VOC.box_sizes)
    assert list(lines[1].get_ydata()) == pytest.approx(paper)
    assert list(lines[2].get_ydata()) == [512, 512]
    with pytest.raises(TypeError, match="mapping"):
        viz.plot_box_sizes([1, 2, 3])


def test_plot_anchor_shapes_one_panel_per_level():
    fig = viz.plot_anchor_shapes(SSD512_VOC)
    assert len(fig.axes) == 7
    counts = [len(_rectangles(ax)) for ax in fig.axes]
    assert counts == list(SSD512_VOC.anchors_per_location)
    # level 0: s_k = 35.84 square first, then sqrt(35.84 * 76.8)
    first = _rectangles(fig.axes[0])
    assert first[0].get_width() == pytest.approx(35.84)
    assert first[1].get_width() == pytest.approx((35.84 * 76.8) ** 0.5)
    assert first[2].get_width() == pytest.approx(35.84 * 2**0.5) and first[2].get_height() == pytest.approx(
        35.84 / 2**0.5)
    fig.canvas.draw()  # renders without error
    assert len(viz.plot_anchor_shapes(SSD300_VOC, levels=[0, 5]).axes) == 2
    with pytest.raises(ValueError, match="level"):
        viz.plot_anchor_shapes(SSD300_VOC, levels=[6])


def test_split_package_reexports_every_public_name():
    import importlib
    import pkgutil

    modules = [importlib.import_module(f"ssd_tutorial.viz.{info.name}") for info in pkgutil.iter_modules(viz.__path__)]
    assert len(modules) >= 9
    names = [name for module in modules for name in module.__all__]
    assert sorted(names) == sorted(viz.__all__) and len(set(names)) == len(names)
    for module in modules:
        for name in module.__all__:
            assert getattr(viz, name) is getattr(module, name)


def test_pixel_anchor_counts_has_one_name():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
    assert viz.pixel_anchor_counts(boxes, 4)[1, 1] == 2  # pixel (1, 1): centre (1.5, 1.5) lies in both boxes
    assert not hasattr(viz, "anchor_coverage")  # analysis.anchor_coverage (share of boxes covered) is another idea
