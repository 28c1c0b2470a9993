"""A trained run's folder as the commands that start from one read it (evaluate, predict,
visualize, and a run with train.init_from): its summary.json and the file of its weights."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import GpucnnError
from . import checkpoint
from .results import counted, other_results, read_summary, run_dirs
from .sweep import best_run

log = logging.getLogger(__name__)


class RunError(GpucnnError):
    """The run directory cannot be used (no finished run, no weights)."""


def finished_run(run_dir: Path) -> tuple[dict[str, Any], Path]:
    """(the run's summary.json, the file of its weights: weights_file). RunError saying what
    ``run_dir`` is instead: a sweep's folder (naming its best run), another command's, or no
    run's."""
    summary = read_summary(run_dir)
    if not summary and Path(run_dir).is_dir():
        jobs = run_dirs(run_dir)
        if jobs:
            example = best_run(Path(run_dir)) or jobs[0]
            raise RunError(
                f"{run_dir} holds the folders of {counted(len(jobs), 'run')} (a sweep's, say), "
                f"not a run's results: give one run's folder, e.g. {example}"
            )
    if not summary or not isinstance(summary.get("config"), dict):
        other = other_results(Path(run_dir)) if Path(run_dir).is_dir() else None
        why = other or "it holds no readable run summary"
        raise RunError(f"{run_dir}: {why}: give a finished run's folder (outputs/runs/<time>)")
    return summary, weights_file(Path(run_dir), summary)


def weights_file(run_dir: Path, summary: dict[str, Any]) -> Path:
    """The run's final weights, model.npz; for a run stopped before it wrote them (or made with
    train.save_model=false), its last checkpoint's (which hold the best epoch's with
    train.patience: Model.load takes those), with a warning. RunError if neither, saying how
    the run ended (its ``summary``'s status and reason)."""
    final, last = run_dir / "model.npz", run_dir / checkpoint.CURRENT
    if final.is_file():
        return final
    if not last.is_file():
        status, reason = summary.get("status"), summary.get("reason")
        ended = f" (it ended {status}: {reason})" if status and reason else ""
        raise RunError(
            f"{run_dir} has no model.npz and no checkpoint: the run stopped before writing "
            f"either{ended}"
        )
    log.warning(
        "%s has no model.npz (the run did not finish, or train.save_model=false): using the "
        "weights its last checkpoint keeps, %s (with train.patience, the best epoch's so far)",
        run_dir,
        last.name,
    )
    return last
