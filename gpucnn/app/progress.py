"""How far a sweep has got: after each job, one line with the jobs done out of those planned and
the time the rest will take at the pace so far.

``sweep: 12 of 36 jobs done (1 failed), about 6 min left``

The jobs done are read from the sweep directory (each job's summary.json), not counted in
memory, so the line is right under any launcher: jobs in this process one after another, in
parallel worker processes (joblib), or on other machines (the Slurm launcher says it as it
collects each job's result, in the console the sweep was started from). The pace is that of the
jobs that trained since this sweep started, which already counts the jobs running side by side;
jobs finished in an earlier attempt and skipped now count as done but set no pace.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .results import counted, read_summary, run_dirs
from .sweep import is_optuna

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def planned_jobs(config: DictConfig) -> int | None:
    """How many jobs the multirun ``config`` will launch: Hydra's basic sweeper runs every
    combination of the swept values (its ``params``, then the command line's, a key given in
    both taking the command line's), an Optuna search its ``n_trials``; None for a sweeper
    whose number is not known in advance, or a sweep that cannot be parsed without loading
    configs (``model=glob(*)``)."""
    sweeper = config.hydra.sweeper
    if is_optuna(config):
        return sweeper.get("n_trials")
    if sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    params = sweeper.get("params") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    values: dict[str, int] = {}
    try:
        for override in OverridesParser.create().parse_overrides(lines):
            many = override.is_sweep_override()
            values[override.get_key_element()] = (
                len(list(override.sweep_string_iterator())) if many else 1
            )
    except Exception:  # a glob needs the config loader; Hydra says what is wrong itself
        return None
    return math.prod(values.values())


def _duration(seconds: float) -> str:
    """``40 s``, ``6 min``, ``1.5 h``: a time left, as precise as an estimate deserves."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def progress_line(sweep_dir: Path, planned: int | None, started: float | None, now: float) -> str:
    """The sweep's progress as ``sweep: 12 of 36 jobs done (1 failed), about 6 min left``:
    the jobs in ``sweep_dir`` that ended since ``started`` (a time.time(); None: whenever),
    how each that did not end ok ended, and the time left at their pace (at ``now``) for the
    rest of ``planned`` (None: unknown, so no time left either)."""
    done, trained, not_ok = 0, 0, {}
    for job_dir in run_dirs(sweep_dir):
        summary = read_summary(job_dir)
        if summary is None or summary["status"] == "running":
            continue
        if started is not None and (job_dir / "summary.json").stat().st_mtime < started:
            continue  # left by an earlier attempt, and this one has not reached the job yet
        status = summary["status"]
        done += 1
        trained += not summary.get("skipped")
        if status != "ok":
            not_ok[status] = not_ok.get(status, 0) + 1
    line = f"sweep: {done:,} of {planned:,} jobs" if planned else f"sweep: {counted(done, 'job')}"
    line += " done"
    if not_ok:
        line += " (" + ", ".join(f"{n} {status}" for status, n in not_ok.items()) + ")"
    left = None if planned is None else planned - done
    if left and trained and started is not None:
        line += f", about {_duration(left * (now - started) / trained)} left"
    return line


def of_sweep(sweep_dir: Path) -> str:
    """The progress_line of a sweep that may be running in another process, from the
    multirun.yaml Hydra's basic sweeper writes into its folder as it starts (what it plans, and
    when it started), or an Optuna search's trials from a job's .hydra/hydra.yaml; without
    either, the jobs that ended, and no time left."""
    multirun = sweep_dir / "multirun.yaml"
    if multirun.is_file():
        planned, started = _planned(multirun), multirun.stat().st_mtime
    else:
        jobs = [d / ".hydra" / "hydra.yaml" for d in run_dirs(sweep_dir)]
        found = next((_planned(f, optuna_only=True) for f in jobs if f.is_file()), None)
        planned, started = found, None
    return progress_line(sweep_dir, planned, started, time.time())


def _planned(path: Path, optuna_only: bool = False) -> int | None:
    """planned_jobs of the config saved at ``path`` (a job's config holds its own overrides,
    not the sweep's: only an Optuna search's n_trials is read from one, ``optuna_only``)."""
    from .config import register  # the resolver of the seeds that train.repeats sweeps

    register()
    try:
        config = OmegaConf.load(path)
        if optuna_only and not is_optuna(config):
            return None
        return planned_jobs(config)
    except Exception:  # a file of an older or damaged sweep: the jobs still count
        return None


class SweepProgress(Callback):
    """Hydra callback: the sweep's progress_line after each of its jobs (nothing in a single
    run, which has no multirun start)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.planned: int | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started, self.planned = time.time(), planned_jobs(config)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        self.say(Path(config.hydra.sweep.dir))

    def say(self, sweep_dir: Path) -> None:
        """Print the progress_line of ``sweep_dir`` (as a job ends: in the job's process,
        or in a launcher's that collects the jobs' results from elsewhere)."""
        if self.started is None or not sweep_dir.is_dir():
            return
        try:
            line = progress_line(sweep_dir, self.planned, self.started, time.time())
        except OSError:  # a job folder removed while it was read: the next job's line will do
            return
        print(line, flush=True)


def among(callbacks: Any) -> SweepProgress | None:
    """The SweepProgress among a Hydra context's ``callbacks`` (None if it is not configured)."""
    return next((c for c in callbacks.callbacks if isinstance(c, SweepProgress)), None)
