"""An Optuna search that an interruption does not lose (the sweeper of
``experiment=optuna_search``; needs the sweep extra, which brings Hydra's Optuna sweeper).

Hydra's Optuna sweeper asks ``n_trials`` new trials every time it runs. With the study in a
database file, this one counts the trials the study already finished towards ``n_trials``, so
rerunning an interrupted search runs only the trials still missing; trials the interrupted run
left running (never told a result) are marked failed and "interrupted", and do not count. One
search per study at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as HydraOptunaSweeper

log = logging.getLogger(__name__)

SQLITE = "sqlite:///"


class TrialFailed(Exception):
    """A trial's run did not end ok (its summary.json says how); Optuna counts it failed."""


class _FailedWhereNaN:
    """The sweep's launcher, but a job that returned NaN is reported failed. A gpucnn job in
    a sweep returns NaN when it does not end ok (an impossible architecture, a diverged run),
    so that one bad job does not stop the others; told NaN, Optuna 2.10 fails the trial by
    raising, and Hydra's sweeper then fails on telling it again, ending the search."""

    def __init__(self, launcher: Any) -> None:
        self.launcher = launcher
        self.completed = 0  # trials whose runs ended ok

    def launch(self, overrides: Any, initial_job_idx: int) -> Any:
        from omegaconf import OmegaConf

        returns = self.launcher.launch(overrides, initial_job_idx=initial_job_idx)
        for number, job in enumerate(returns):
            value = job._return_value  # the property raises for a failed job
            if job.status == JobStatus.COMPLETED and isinstance(value, float) and value != value:
                run_dir = OmegaConf.select(job.hydra_cfg, "hydra.runtime.output_dir")
                why = TrialFailed(
                    f"the run did not end ok: its reason is in {run_dir}/summary.json"
                )
                returns[number] = job = _quiet_failure(job, why)
            self.completed += job.status == JobStatus.COMPLETED
        return returns


class _FailedTrial(JobReturn):
    """A job that did not end ok, whose return_value raises its reason without Hydra's "Error
    executing job with overrides: [...]" line: the run has logged why, and the sweeper logs
    the failed trial with the reason."""

    @property
    def return_value(self) -> Any:
        raise self._return_value


def _quiet_failure(job: JobReturn, why: TrialFailed) -> _FailedTrial:
    """``job`` as failed, with ``why``."""
    fields = {f.name: getattr(job, f.name) for f in dataclasses.fields(JobReturn)}
    return _FailedTrial(**{**fields, "status": JobStatus.FAILED, "_return_value": why})


class OptunaSweeper(HydraOptunaSweeper):
    def sweep(self, arguments: list[str]) -> None:
        import optuna

        # Optuna's own handler colours its lines with terminal codes, even into a log file:
        # its messages go to Hydra's handlers instead, in the format of the sweep's others.
        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
        search = self.sweeper
        search.launcher = launcher = _FailedWhereNaN(search.launcher)
        if search.storage:
            done = _finished(search.storage, search.study_name)
            search.n_trials = max(0, search.n_trials - done)
            log.info(
                "study %s has %d finished trials: %d to run (a new search needs another "
                "hydra.sweeper.study_name)",
                search.study_name,
                done,
                search.n_trials,
            )
        try:
            return search.sweep(arguments)
        except TrialFailed:  # more trials failed than hydra.sweeper.max_failure_rate allows
            pass
        except ValueError:  # Hydra's sweeper asks Optuna for the best trial, of none
            if launcher.completed:
                raise
        # The search stopped on its failed trials: the sweep summary says why each failed,
        # and the exit code that not every job ended ok.
        from gpucnn.app.sweep import SweepSummaryCallback

        SweepSummaryCallback().on_multirun_end(search.config)


def _finished(storage: str, study_name: str) -> int:
    """How many trials the stored study has finished (0 if there is none yet), not counting
    those an interrupted search left running, which are marked failed."""
    import optuna

    if storage.startswith(SQLITE):  # SQLite makes the file, not its folder
        Path(storage[len(SQLITE) :]).parent.mkdir(parents=True, exist_ok=True)
    study = _load(storage, study_name)
    if study is None:
        return 0
    for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
        # Optuna 2.10 (the sweeper's pin) reaches a running trial's attributes only by its id.
        optuna.trial.Trial(study, trial._trial_id).set_user_attr("interrupted", True)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return sum(not t.user_attrs.get("interrupted") for t in study.get_trials(deepcopy=False))


def _load(storage: str, study_name: str, tries: int = 5) -> Any:
    """The stored study, or None if there is none yet. Optuna makes a new database's tables when
    it first opens it, and two processes doing so at once collide (a dashboard or a script
    reading the study just as the search starts, say): the one that fails opens it again once
    the other has made them."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(1, tries + 1):
        try:
            return optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:  # no such study yet
            return None
        except SQLAlchemyError:
            if attempt == tries:
                raise
            time.sleep(0.2 * attempt)
