"""Live training plot of 06_training.ipynb: a ``log_fn`` for ``fit`` that redraws the curves after every epoch.

``fit`` reports each finished epoch as one line of text through ``log_fn`` (the library never prints);
:func:`parse_epoch_line` reads that line back into a history record and :class:`LiveHistoryPlot` redraws
:func:`~ssd_tutorial.viz.plot_history` in place in the notebook output (an IPython display handle).

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["parse_epoch_line", "LiveHistoryPlot"]

_FIELDS = ("epoch", "loss", "loss_loc", "loss_cls", "lr", "images_per_s")


def parse_epoch_line(line: str) -> dict[str, float] | None:
    """One history record from a line ``fit`` gives ``log_fn``; ``None`` for the header or any other line.

    The line holds ``epoch loss loc cls lr img/s [mAP@0.5]`` separated by spaces (values rounded for display).

    Introduced in: 06_training.ipynb
    """
    if not isinstance(line, str):
        raise TypeError(f"line must be a str, got {type(line).__name__}")
    tokens = line.split()
    if len(tokens) not in (len(_FIELDS), len(_FIELDS) + 1) or not tokens[0].isdigit():
        return None
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        return None
    record: dict[str, float] = dict(zip(_FIELDS, values))
    record["epoch"] = int(values[0])
    if len(values) > len(_FIELDS):
        record["map"] = values[-1]
    return record


class LiveHistoryPlot:
    """A ``log_fn`` for ``fit`` that keeps the history and redraws the training curves after every epoch.

    Args:
        history: records already known (e.g. those of an interrupted run), drawn from the start.
        epochs: planned number of epochs (fixes the x axis).
        title: figure title.
        show: display the figure in the notebook and update it in place (IPython display handle);
            ``False`` keeps it in ``.figure`` only (tests, scripts).

    Calling the object with a line of ``fit``'s log appends the parsed record (lines that are not epoch
    records, like the header, are kept in ``.lines`` only) and redraws.

    Introduced in: 06_training.ipynb
    """

    def __init__(self, history: Iterable[dict] = (), *, epochs: int | None = None, title: str | None = None,
                 show: bool = True) -> None:  # fmt: skip
        self.history: list[dict] = [dict(r) for r in history]
        self.lines: list[str] = []
        self.epochs = epochs
        self.title = title
        self.figure: Figure | None = None
        self._handle: Any = None
        self._show = show
        self.redraw()

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        record = parse_epoch_line(line)
        if record is not None:
            self.history.append(record)
            self.redraw()

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
