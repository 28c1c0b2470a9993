"""Validation loss and accuracy by epoch, a line for each group of runs (the seeds of a
setting), drawn for both of the report's questions: the balanced ones where every run has them
(validation classes of unequal sizes, where they rank the runs)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from ..results import counted, pyplot, save_figure
from ..stats import estimate
from .runs import Run


def plot_curves(path: Path, groups: dict[str, list[Run]]) -> None:
    """Two panels, validation loss and validation accuracy by epoch (balanced_curves): each
    group's mean over its runs as a line, with its 95% interval as a band, named in one legend
    below them (the names of settings are long)."""
    fig, (ax_loss, ax_acc) = pyplot().subplots(1, 2, figsize=(11, 4.5))
    balanced = balanced_curves([run for group in groups.values() for run in group])
    prefix, named = ("val_balanced", "balanced validation") if balanced else ("val", "validation")
    for label, group in groups.items():
        for ax, column, bounds in ((ax_loss, f"{prefix}_loss", (0, math.inf)),
                                   (ax_acc, f"{prefix}_accuracy", (0, 1))):  # fmt: skip
            _mean_with_band(ax, group, column, label, bounds)
    for ax, what in (
        (ax_loss, f"{named} loss (cross-entropy)"),
        (ax_acc, f"{named} accuracy (fraction)"),
    ):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(what + ", mean over seeds")
        ax.set_title(what.split(" (")[0].capitalize() + " by epoch (band: 95% interval)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.legend(*ax_acc.get_legend_handles_labels(), loc="upper center", fontsize=8,
               bbox_to_anchor=(0.5, 0.0), ncol=2 if len(groups) > 4 else 1)  # fmt: skip
    save_figure(fig, path)


def balanced_curves(runs: list[Run]) -> bool:
    """Whether every epoch of ``runs`` (one at least) has the balanced validation figures,
    which the curves then show."""
    epochs = [m for run in runs for m in run.metrics]
    return bool(epochs) and all(m.get("val_balanced_loss") is not None for m in epochs)


def caption(runs: list[Run]) -> str:
    """How the caption of the curves of ``runs`` begins: what they show."""
    shown = "Balanced validation" if balanced_curves(runs) else "Validation"
    return f"{shown} loss and accuracy by epoch"


def _mean_with_band(
    ax: Any, runs: list[Run], column: str, label: str, bounds: tuple[float, float]
) -> None:
    """``column`` by epoch: the mean over ``runs`` as a line, its 95% interval as a band, cut
    to the ``bounds`` the column's values lie in (an interval of few seeds can pass them)."""
    epochs = sorted({m["epoch"] for run in runs for m in run.metrics})
    fits = [
        estimate([m[column] for run in runs for m in run.metrics if m["epoch"] == e])
        for e in epochs
    ]
    (line,) = ax.plot(epochs, [f.mean for f in fits], "-o", markersize=3,
                      label=f"{label} ({counted(len(runs), 'run')})")  # fmt: skip
    if len(runs) > 1:
        low, high = bounds
        ax.fill_between(epochs, [max(f.low, low) for f in fits], [min(f.high, high) for f in fits],
                        color=line.get_color(), alpha=0.2)  # fmt: skip
