"""Tests for ssd_tutorial.widgets.common (tables, errors, PNGs at their shown size, the swapping figure area,
the text fallback) and for rules every widget module keeps: no private cross-imports, figures shown unstretched."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from ssd_tutorial import widgets  # noqa: E402
from ssd_tutorial.config import TINY_SHAPES  # noqa: E402
from ssd_tutorial.viz import new_figure  # noqa: E402
from ssd_tutorial.widgets import common  # noqa: E402

WIDGETS_DIR = Path(widgets.__file__).parent


# --- tables and messages ------------------------------------------------------------------------------------------


def test_rows_to_html_escapes_formats_and_aligns():
    rows = [{"a": 1, "b": 0.12345, "c": "<x>"}, {"a": 2, "b": None, "c": "y"}]
    text = common.rows_to_html(rows, [("a", "A", ""), ("b", "B & co", ".2f"), ("c", "C", "")], "my-table", "cap")
    assert text.startswith('<table class="ssd-table my-table"') and ">cap</caption>" in text
    assert ">B &amp; co</th>" in text and ">0.12</td>" in text and "&lt;x&gt;" in text and ">—</td>" in text
    assert text.count("<tr>") == 3
    cells = re.findall(r'<td style="([^"]*)">([^<]*)</td>', text)
    assert [value for _, value in cells] == ["1", "0.12", "&lt;x&gt;", "2", "—", "y"]
    aligns = [re.search(r"text-align:(\w+)", style).group(1) for style, _ in cells]
    assert aligns == ["right", "right", "left", "right", "left", "left"]  # numbers right, text and "—" left
    assert all("padding:2px 6px" in style for style, _ in cells)  # columns are spaced apart


def test_pairs_table_has_the_same_style_as_rows_table():
    pairs = common.pairs_to_html([("level", "3"), ("a < b", "x & y")], "pairs")
    rows = common.rows_to_html([{"k": "v"}], [("k", "K", "")], "rows")
    assert pairs.startswith('<table class="ssd-table pairs"') and "a &lt; b" in pairs and "x &amp; y" in pairs
    style = re.compile(r'<table class="[^"]*" style="([^"]*)">')
    assert style.search(pairs).group(1) == style.search(rows).group(1)
    cell = re.compile(r'<td style="padding:([^;]*);')
    assert cell.search(pairs).group(1) == cell.search(rows).group(1) == "2px 6px"


def test_empty_rows_give_a_table_with_only_the_header():
    text = common.rows_to_html([], [("k", "K", "")], "t")
    assert ">K</th>" in text and "<tbody></tbody>" in text


def test_error_html_escapes_and_carries_the_class():
    text = common.error_html(ValueError("ratio must be > 0, got <-1>"))
    assert f'class="{common.ERROR_CLASS}"' in text and "&gt; 0" in text and "&lt;-1&gt;" in text


# --- figures at the size shown ---------------------------------------------------------------------------------------


def test_figure_png_is_figsize_times_dpi():
    fig = new_figure((4.3, 2.1))
    fig.add_subplot().plot([0, 1], [1, 0])
    png = common.figure_png(fig)
    assert common.png_size(png) == (430, 210)
    assert common.png_size(common.figure_png(fig, width_px=215)) == (215, 105)


def test_png_size_rejects_other_data():
    with pytest.raises(ValueError, match="PNG"):
        common.png_size(b"\xff\xd8\xff\xe0 a JPEG header, not a PNG")


def test_figure_area_swaps_the_image_and_keeps_its_place_on_error():
    pytest.importorskip("ipywidgets")
    area = common.figure_area("my-area")
    assert "my-area" in area._dom_classes and area.children == (area.message, area.body)
    fig = new_figure((3.0, 2.0))
    fig.add_subplot()
    common.show_figure(area, fig, table="<table></table>")
    first = area.image.value
    assert common.png_size(first) == (300, 200) and area.image.layout.width == "300px"
    assert area.image.layout.max_width == "100%" and area.image.layout.height == "auto"  # never stretched
    common.show_error(area, "no such level")
    assert "no such level" in area.message.value and area.body.layout.visibility == "hidden"
    assert area.image.value == first  # the old picture keeps the space; nothing is cleared
    fig2 = new_figure((3.0, 2.0))
    fig2.add_subplot().plot([0, 1])
    common.show_figure(area, fig2)
    assert area.image.value != first and area.message.value == "" and area.body.layout.visibility is None


def test_redraw_fills_state_and_reports_errors():
    pytest.importorskip("ipywidgets")
    area, state = common.figure_area("a"), {}
    fig = new_figure((2.0, 1.0))
    assert common.redraw(area, state, lambda: (fig, [1, 2]), lambda data: f"<p>{len(data)}</p>")
    assert state == {"figure": fig, "rows": [1, 2], "error": None} and area.table.value == "<p>2</p>"

    def broken():
        raise ValueError("threshold must be in (0, 1], got 0")

    assert not common.redraw(area, state, broken, str, key="numbers")
    assert state["figure"] is None and state["numbers"] is None and "threshold" in state["error"]


# --- text fallback ---------------------------------------------------------------------------------------------------


def test_widget_box_shows_a_run_this_cell_text_instead_of_its_repr():
    pytest.importorskip("ipywidgets")
    import ipywidgets

    slider = ipywidgets.IntSlider()
    box = common.widget_box([slider], title="Anchor explorer", css_class="c")
    bundle = box._repr_mimebundle_()
    assert bundle["text/plain"].startswith("Anchor explorer: an interactive widget. Run this cell")
    assert "IntSlider" not in bundle["text/plain"]
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id  # still a widget
    assert isinstance(box, ipywidgets.VBox) and "c" in box._dom_classes


# --- rules for every widget module -----------------------------------------------------------------------------------


def _private_imports(path: Path) -> list[str]:
    """``name`` for every private name a module imports from the package (``from .x import _y``), or reads from
    a package module it imported (``from .. import viz`` then ``viz._color``)."""
    tree = ast.parse(path.read_text())
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            ours = node.level > 0 or (node.module or "").startswith("ssd_tutorial")
            for alias in node.names if ours else ():
                if alias.name.startswith("_"):
                    found.append(f"{node.module}.{alias.name}")
                modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(f"{node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", sorted(WIDGETS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_widget_module_imports_a_private_name(path):
    assert _private_imports(path) == []


def test_the_private_import_check_finds_them(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from .nb03 import _figure_png, table\nfrom .. import viz\nx = viz._color(1)\n"
                      "from __future__ import annotations\nimport os\ny = os._exit\n")  # fmt: skip
    assert _private_imports(sample) == ["nb03._figure_png", "viz._color"]


def _tiny_widgets():
    from ssd_tutorial.anchors import default_boxes
    from ssd_tutorial.widgets import nb02, nb02_positives, nb05, nb08

    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[10.0, 20.0, 60.0, 90.0], [70.0, 30.0, 120.0, 60.0]])
    return [
        nb02.anchor_explorer_widget("tiny_shapes", level=1, row=2, col=3),
        nb02_positives.positive_anchors_widget("tiny_shapes", box_cxcywh=(64.0, 64.0, 40.0, 40.0)),
        nb05.matching_widget(image, boxes, default_boxes(TINY_SHAPES), labels=[1, 2]),
        nb08.coverage_widget(boxes, TINY_SHAPES),
    ]


def test_widget_figures_are_encoded_at_the_size_shown():
    pytest.importorskip("ipywidgets")
    for box in _tiny_widgets():
        fig, image = box.state["figure"], box.output.image
        width, height = common.png_size(image.value)
        assert (width, height) == (round(fig.get_figwidth() * common.DPI), round(fig.get_figheight() * common.DPI))
        assert image.layout.width == f"{width}px" and image.layout.max_width == "100%"
        assert width <= 930, f"{box.fallback_text}: {width} px is wider than the notebook at 1366 x 768"
        assert "Run this cell" in box._repr_mimebundle_()["text/plain"]


def test_dropdowns_never_show_blank_and_pixel_sliders_step_usefully():
    pytest.importorskip("ipywidgets")
    import ipywidgets

    from ssd_tutorial.widgets import nb02_positives

    for box in _tiny_widgets():
        for control in box.controls.values():
            if isinstance(control, ipywidgets.Dropdown):
                assert control.value is not None and control.label, (box.fallback_text, control.description)
            if isinstance(control, (ipywidgets.IntSlider, ipywidgets.FloatSlider, ipywidgets.FloatLogSlider)):
                assert "type an exact value" in control.tooltip, (box.fallback_text, control.description)
    positives = nb02_positives.positive_anchors_widget("ssd512_voc")
    for name in ("cx", "cy", "w", "h"):  # 512 px: 4 px per key press, and the tooltip says how to type a value
        assert positives.controls[name].step == 4.0 and "type" in positives.controls[name].tooltip
    level = positives.controls["level"]
    assert level.label == "all levels" and positives.state["error"] is None
    level.value = 2
    assert "level 2" in positives.state["figure"].axes[0].get_title()


def test_widget_figure_text_is_readable_at_the_size_shown():
    pytest.importorskip("ipywidgets")
    from matplotlib.text import Text

    for box in _tiny_widgets():
        texts = [t for t in box.state["figure"].findobj(Text) if t.get_visible() and t.get_text().strip()]
        assert texts
        small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() * common.DPI / 72 < 9.0]
        assert small == [], f"{box.fallback_text}: text under 9 px: {small}"
