"""ipywidgets builders for the notebooks (imported lazily; the core package never needs ipywidgets).

Each notebook's widgets live in a module of their own (``widgets/nb02.py`` …). The figure/table
logic behind every widget is a plain function (``*_view`` / ``*_state``) that takes numbers and returns
a Figure and data, so it is tested with pytest without a browser; the ``*_widget`` builders only wire
sliders to those functions. All public names of the ``nbNN`` modules are re-exported here.
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
