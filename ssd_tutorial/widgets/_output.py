"""Drawing into an ``ipywidgets.Output`` without output capture, shared by the notebook widgets.

``with out: display(...)`` routes the kernel's display messages to the widget through the front end. Headless
runs (nbclient, which papermill and scripts/nbbuild.py use) sometimes wait for those routed messages until the
cell times out (jupyter/nbclient issue 312). Setting the widget's ``outputs`` state from the kernel sends no
output messages at all, so it behaves the same in JupyterLab, in a browser test and headless.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figure_png", "show_in"]


def figure_png(fig: Figure, **savefig_kwargs: Any) -> bytes:
    """The PNG bytes of ``fig`` (``savefig`` keyword arguments, e.g. ``dpi`` or ``bbox_inches``, pass through)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig_kwargs)
    return buffer.getvalue()


def show_in(out: Any, *items: Any) -> None:
    """Replace what the Output widget ``out`` shows with ``items`` (IPython display objects or Figures).

    A Matplotlib Figure is shown as a PNG image; other items go through IPython's display formatter.
    """
    from IPython.display import Image

    out.outputs = ()
    for item in items:
        if hasattr(item, "savefig"):
            item = Image(data=figure_png(item, bbox_inches="tight"), format="png")
        out.append_display_data(item)
