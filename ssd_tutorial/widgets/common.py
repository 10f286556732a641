"""What every notebook widget shares: one table style, error messages, figures as PNG at the size they are shown,
and a figure area that swaps its picture in place.

Updating a widget replaces the bytes of an ``ipywidgets.Image`` and the text of an ``ipywidgets.HTML``; nothing is
cleared and refilled (an ``ipywidgets.Output`` that is cleared collapses for a moment and everything below it jumps).
Figures are drawn at :data:`DPI` pixels per inch and shown at exactly that size (never stretched), so a figure of
``figsize=(6.0, 4.0)`` is a 600 x 400 px PNG shown 600 px wide; font sizes in points are then ``DPI / 72`` px each.

Introduced in: 02_anchor_tiling.ipynb
"""

from __future__ import annotations

import functools
import html
import io
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import Tensor

    from ..config import SSDConfig

__all__ = [
    "DPI",
    "ERROR_CLASS",
    "TABLE_CLASS",
    "error_html",
    "rows_to_html",
    "pairs_to_html",
    "figure_png",
    "png_size",
    "figure_area",
    "show_figure",
    "show_error",
    "redraw",
    "widget_box",
    "slider_tooltip",
    "control_columns",
    "resolve_config",
    "check_level",
    "check_image",
]

DPI = 100  # pixels per inch of every widget figure: figsize x DPI = the size shown, in CSS pixels
ERROR_CLASS = "ssd-widget-error"  # the message shown, instead of a traceback, for a setting that makes no sense
TABLE_CLASS = "ssd-table"  # every widget table carries it, beside its own class
FALLBACK_TEXT = "{title}: an interactive widget. Run this cell (and the ones above it) to use it."

# One style for every table, written inline: a widgets.HTML gets none of JupyterLab's table CSS, and inline
# styles look the same in JupyterLab, VS Code and a browser test.
_TABLE_STYLE = "border-collapse:collapse;font-size:13px;line-height:1.4;margin:4px 0"
_HEAD_STYLE = "padding:3px 6px;border-bottom:1px solid #888;font-weight:600;white-space:nowrap"
_CELL_STYLE = "padding:2px 6px;white-space:nowrap"
_ROW_HEAD_STYLE = _CELL_STYLE + ";font-weight:600"  # the quantity column of a (quantity, value) table
_CAPTION_STYLE = "caption-side:top;text-align:left;padding:0 0 4px 0;font-size:13px"


def error_html(error: Exception | str) -> str:
    """A short red message (class :data:`ERROR_CLASS`) saying why a setting cannot be shown.

    Introduced in: 02_anchor_tiling.ipynb
    """
    return f'<div class="{ERROR_CLASS}" style="color:#b00020">⚠ {html.escape(str(error))}</div>'


def _cell(tag: str, text: str, numeric: bool, style: str = "") -> str:
    style = (style or (_HEAD_STYLE if tag == "th" else _CELL_STYLE)) + (";text-align:right" if numeric else
                                                                         ";text-align:left")  # fmt: skip
    return f'<{tag} style="{style}">{html.escape(text)}</{tag}>'


def _table(css_class: str, head: str, body: str, caption: str) -> str:
    classes = html.escape(f"{TABLE_CLASS} {css_class}".strip())
    cap = f'<caption style="{_CAPTION_STYLE}">{html.escape(caption)}</caption>' if caption else ""
    head_html = f"<thead>{head}</thead>" if head else ""
    return f'<table class="{classes}" style="{_TABLE_STYLE}">{cap}{head_html}<tbody>{body}</tbody></table>'


def rows_to_html(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]], css_class: str,
                 caption: str = "") -> str:  # fmt: skip
    """An HTML table of ``rows``: ``columns`` are (key, header, format spec such as ``".1f"``); None shows "—".

    Numbers are right-aligned, text left-aligned; every table has the same spacing (:data:`TABLE_CLASS`).

    Introduced in: 02_anchor_tiling.ipynb
    """

    def numeric(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    first = rows[0] if rows else {}
    head = "<tr>" + "".join(_cell("th", header, numeric(first.get(key))) for key, header, _ in columns) + "</tr>"
    body = "".join(
        "<tr>" + "".join(_cell("td", "—" if row.get(key) is None else format(row.get(key), spec),
                               numeric(row.get(key))) for key, _, spec in columns) + "</tr>"
        for row in rows
    )  # fmt: skip
    return _table(css_class, head, body, caption)


def pairs_to_html(pairs: Sequence[tuple[str, str]], css_class: str, caption: str = "") -> str:
    """A two-column HTML table of (quantity, value) strings, in the style of :func:`rows_to_html`.

    Introduced in: 03_heads.ipynb
    """
    body = "".join(f"<tr>{_cell('th', key, False, _ROW_HEAD_STYLE)}{_cell('td', value, False)}</tr>"
                   for key, value in pairs)  # fmt: skip
    return _table(css_class, "", body, caption)


def figure_png(fig: Figure, width_px: int | None = None) -> bytes:
    """The PNG bytes of ``fig`` at :data:`DPI` (or at the dpi that makes it ``width_px`` pixels wide).

    No ``bbox_inches="tight"``: the PNG is exactly ``figsize x dpi`` pixels, the size it is shown at.

    Introduced in: 02_anchor_tiling.ipynb
    """
    dpi = DPI if width_px is None else width_px / fig.get_figwidth()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels of PNG ``data``, read from its header.

    Introduced in: 02_anchor_tiling.ipynb
    """
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError(f"data must be PNG bytes, got {len(data)} bytes starting {data[:8]!r}")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def figure_area(css_class: str, *, table_beside: bool = True) -> Any:
    """A VBox(message, body) that shows a figure and a table; body is an HBox(Image, HTML), or a VBox when
    ``table_beside`` is False. Attributes ``.message``, ``.image`` and ``.table`` are those three widgets.

    Fill it with :func:`show_figure` and :func:`show_error`: both replace values in place, so the area keeps its
    size while a new picture is drawn (the browser shows the old image until the new one is decoded).

    Introduced in: 02_anchor_tiling.ipynb
    """
    import ipywidgets as widgets

    message = widgets.HTML()
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto", flex="0 0 auto"))
    table = widgets.HTML(layout=widgets.Layout(margin="0 0 0 12px" if table_beside else "0"))
    body = (widgets.HBox if table_beside else widgets.VBox)([image, table])
    if table_beside:
        body.layout = widgets.Layout(flex_flow="row wrap", align_items="flex-start")
    area = widgets.VBox([message, body])
    area.add_class(css_class)
    area.message, area.image, area.table, area.body = message, image, table, body
    return area


def show_figure(area: Any, fig: Figure, *, table: str = "", message: str = "") -> None:
    """Show ``fig`` (as a PNG at the size it was drawn), ``table`` (HTML) and ``message`` in a :func:`figure_area`.

    Introduced in: 02_anchor_tiling.ipynb
    """
    png = figure_png(fig)
    width, _ = png_size(png)
    with area.image.hold_sync():
        area.image.value = png
        area.image.layout.width = f"{width}px"
    area.table.value = table
    area.message.value = message
    area.body.layout.visibility = None


def show_error(area: Any, error: Exception | str) -> None:
    """Show why a setting cannot be drawn, in the message line of a :func:`figure_area`; the picture and the table
    are hidden but keep their place, so nothing below the widget moves.

    Introduced in: 02_anchor_tiling.ipynb
    """
    area.message.value = error_html(error)
    area.body.layout.visibility = "hidden"


def redraw(area: Any, state: dict, make: Callable[[], tuple[Figure, Any]], table: Callable[[Any], str], *,
           key: str = "rows") -> bool:  # fmt: skip
    """Run ``make()`` -> (figure, data) and show the figure and ``table(data)`` in ``area``; on ValueError or
    TypeError show the message instead. ``state`` gets ``figure``, ``key`` (the data) and ``error``.

    Returns True when the figure was drawn.

    Introduced in: 02_anchor_tiling.ipynb
    """
    try:
        fig, data = make()
        table_html = table(data)
    except (ValueError, TypeError) as error:
        state.update({"figure": None, key: None, "error": str(error)})
        show_error(area, error)
        return False
    state.update({"figure": fig, key: data, "error": None})  # the old Figure is dropped (not in pyplot: no leak)
    show_figure(area, fig, table=table_html)
    return True


@functools.cache
def _widget_box_class() -> type:
    import ipywidgets as widgets

    class WidgetBox(widgets.VBox):
        """A VBox whose plain-text form says "run this cell" instead of ``VBox(children=(FloatSlider(…``.

        Front ends that cannot draw the widget (a notebook opened before its cells ran: JupyterLab does not render
        saved widget state in an untrusted notebook) show the ``text/plain`` entry of the display data.
        """

        fallback_text = "An interactive widget. Run this cell to use it."

        def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
            data = super()._repr_mimebundle_(**kwargs)
            if data is not None:
                data["text/plain"] = self.fallback_text
            return data

    return WidgetBox


def widget_box(children: Sequence[Any], *, title: str, css_class: str | None = None) -> Any:
    """The outer VBox of a notebook widget, with a text fallback ``"<title>: an interactive widget. Run this cell
    …"`` shown where the widget itself cannot be (see ``WidgetBox``).

    Introduced in: 02_anchor_tiling.ipynb
    """
    box = _widget_box_class()(list(children))
    box.fallback_text = FALLBACK_TEXT.format(title=title)
    if css_class:
        box.add_class(css_class)
    return box


def slider_tooltip(step: str) -> str:
    """Tooltip of a slider: its step and that the number beside it can be typed into.

    Introduced in: 02_anchor_tiling.ipynb
    """
    return f"arrow keys move by {step}; click the number on the right to type an exact value"


def control_columns(*columns: Sequence[Any]) -> Any:
    """An HBox with one VBox of controls per column (e.g. two columns of three sliders).

    Introduced in: 02_anchor_tiling.ipynb
    """
    import ipywidgets as widgets

    return widgets.HBox([widgets.VBox(list(column)) for column in columns])


def resolve_config(preset: str | SSDConfig) -> SSDConfig:
    """``preset`` itself if it is an SSDConfig, else the preset of that name (``"ssd512_voc"`` …).

    Introduced in: 02_anchor_tiling.ipynb
    """
    from ..config import SSDConfig, get_config

    if isinstance(preset, SSDConfig):
        return preset
    if isinstance(preset, str):
        return get_config(preset)
    raise TypeError(f"preset must be a preset name or an SSDConfig, got {type(preset).__name__}")


def check_level(cfg: SSDConfig, level: int) -> None:
    """ValueError unless ``level`` is an int in [0, L - 1] for ``cfg``.

    Introduced in: 02_anchor_tiling.ipynb
    """
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < cfg.num_levels:
        raise ValueError(f"level must be an int in [0, {cfg.num_levels - 1}] for {cfg.name}, got {level!r}")


def check_image(image: Tensor | None, size: int) -> None:
    """ValueError unless ``image`` is None or a Tensor whose last two sides are ``size``.

    Introduced in: 02_anchor_tiling.ipynb
    """
    from torch import Tensor

    if image is not None and (not isinstance(image, Tensor) or tuple(image.shape[-2:]) != (size, size)):
        got = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be [3, {size}, {size}] for this preset, got {got}")
