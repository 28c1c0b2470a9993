"""An Optuna search that an interruption does not lose (the sweeper of
``experiment=optuna_search``; needs the sweep extra, which brings Hydra's Optuna sweeper).

Hydra's Optuna sweeper asks ``n_trials`` new trials every time it runs. With the study in a
database file, this one counts the trials the study already finished towards ``n_trials``, so
rerunning an interrupted search runs only the trials still missing; trials the interrupted run
left running (never told a result) are marked failed and "interrupted", and do not count. One
search per study at a time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as HydraOptunaSweeper

log = logging.getLogger(__name__)

SQLITE = "sqlite:///"


class OptunaSweeper(HydraOptunaSweeper):
    def sweep(self, arguments: list[str]) -> None:
        search = self.sweeper
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
        return search.sweep(arguments)


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
