"""Training pictures: loss and validation mAP curves from ``fit``'s history.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .images import new_figure, palette_color

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_history"]


def plot_history(history: Sequence[Mapping[str, float]], *, epochs: int | None = None,
                 title: str | None = None) -> Figure:  # fmt: skip
    """Training curves from ``fit``'s history: the losses per epoch and, where present, validation mAP@0.5.

    Args:
        history: one dict per epoch with ``epoch``, ``loss``, ``loss_loc``, ``loss_cls`` and optionally ``map``
            (what :func:`~ssd_tutorial.train.fit` returns); may be empty (empty axes, e.g. before epoch 1).
        epochs: x-axis extent (the planned number of epochs), so a live plot does not rescale every epoch.
        title: figure title.

    Introduced in: 06_training.ipynb
    """
    records = list(history)
    for record in records:
        missing = [k for k in ("epoch", "loss", "loss_loc", "loss_cls") if k not in record]
        if missing:
            raise ValueError(f"every history record needs epoch, loss, loss_loc and loss_cls; missing {missing} "
                             f"in {dict(record)}")  # fmt: skip
    fig = new_figure((10.0, 3.6))
    loss_ax, map_ax = fig.subplots(1, 2)
    xs = [int(r["epoch"]) for r in records]
    for key, style in (("loss", "-o"), ("loss_loc", "--s"), ("loss_cls", ":^")):
        loss_ax.plot(xs, [float(r[key]) for r in records], style, label=key, markersize=4)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("mean training loss")
    loss_ax.set_title("training loss")
    loss_ax.legend(fontsize=8)
    with_map = [(int(r["epoch"]), float(r["map"])) for r in records if r.get("map") is not None]
    map_ax.plot([e for e, _ in with_map], [m for _, m in with_map], "-o", color=palette_color(3), markersize=4,
                label="validation mAP@0.5")  # fmt: skip
    map_ax.set_ylim(0.0, 1.0)
    map_ax.set_xlabel("epoch")
    map_ax.set_ylabel("mAP@0.5")
    map_ax.set_title("validation mAP@0.5" + (f" (last {with_map[-1][1]:.3f})" if with_map else ""))
    map_ax.grid(alpha=0.3)
    last = max([epochs or 0, *xs, 1])
    for ax in (loss_ax, map_ax):
        ax.set_xlim(0.5, last + 0.5)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title is not None:
        fig.suptitle(title)
    return fig
