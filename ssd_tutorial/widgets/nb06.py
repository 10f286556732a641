"""Live training plot of 06_training.ipynb: an ``on_epoch_end`` callback for ``fit`` that redraws the curves.

``fit`` hands ``on_epoch_end`` each finished epoch's record (the dict it also returns in the history) and its
printed table, line by line, to ``log_fn``. :class:`LiveHistoryPlot` takes both: it redraws
:func:`~ssd_tutorial.viz.plot_history` in place in the notebook output (an IPython display handle) and keeps the
table.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["LiveHistoryPlot"]

class LiveHistoryPlot:
    """An ``on_epoch_end`` callback for ``fit`` that keeps the history and redraws the curves after every epoch.

    ``fit(..., on_epoch_end=plot, log_fn=plot.log)``: calling the object with an epoch's record appends it and
    redraws; :meth:`log` keeps the lines of ``fit``'s printed table in ``.lines``.

    Args:
        history: records already known (e.g. those of an interrupted run), drawn from the start.
        epochs: planned number of epochs (fixes the x axis).
        title: figure title.
        show: display the figure in the notebook and update it in place (IPython display handle);
            ``False`` keeps it in ``.figure`` only (tests, scripts).

    Attributes: ``history`` (all records, the given ones first), ``received`` (the records ``fit`` handed over),
    ``lines`` (the printed table), ``figure`` (the last drawing).

    Introduced in: 06_training.ipynb
    """

    def __init__(self, history: Iterable[dict] = (), *, epochs: int | None = None, title: str | None = None,
                 show: bool = True) -> None:  # fmt: skip
        self.history: list[dict] = [dict(r) for r in history]
        self.received: list[dict] = []
        self.lines: list[str] = []
        self.epochs = epochs
        self.title = title
        self.figure: Figure | None = None
        self._handle: Any = None
        self._show = show
        self.redraw()

    def __call__(self, record: dict) -> None:
        if not isinstance(record, dict) or "epoch" not in record:
            raise TypeError(f"expected an epoch record (a dict with 'epoch', as fit gives on_epoch_end), "
                            f"got {type(record).__name__}; pass log lines to .log")  # fmt: skip
        self.received.append(dict(record))
        self.history.append(dict(record))
        self.redraw()

    def log(self, line: str) -> None:
        """A ``log_fn`` for ``fit``: keep one line of its printed table."""
        self.lines.append(line)

    def redraw(self) -> None:
        """Draw the current history; in a notebook, replace the figure shown by this object."""
        from ..viz import plot_history

        self.figure = plot_history(self.history, epochs=self.epochs, title=self.title)  # old Figure dropped
        if not self._show:
            return
        from IPython.display import display

        if self._handle is None:
            self._handle = display(self.figure, display_id=True)
        else:
            self._handle.update(self.figure)
