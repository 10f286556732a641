"""ipywidgets builders for the notebooks (imported lazily; the core package never needs ipywidgets).

Each notebook's widgets live in modules of their own (``widgets/nb02.py``, ``nb02_positives.py``, ``nb03.py`` …).
The figure/table logic behind every widget is a plain function (``*_view`` / ``*_state``) that takes numbers and
returns a Figure and data, so it is tested with pytest without a browser; the ``*_widget`` builders only wire
sliders to those functions, through the shared pieces of ``widgets/common.py`` (one table style, error messages,
figures as PNG at the size shown, a figure area that swaps its picture in place, a "run this cell" text
fallback). All public names of the ``nb*`` modules are re-exported here.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__: list[str] = []


def _load_notebook_widgets() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("nb"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            for name in getattr(module, "__all__", ()):
                globals()[name] = getattr(module, name)
                __all__.append(name)


_load_notebook_widgets()
