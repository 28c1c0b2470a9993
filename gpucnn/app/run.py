"""``python -m gpucnn.run``: train one model, or sweep many with ``--multirun``.

    python -m gpucnn.run                                   # lab CNN, embedded data, binary task
    python -m gpucnn.run model=cnn model.filter_size=5 data.task=multiclass train.epochs=10
    python -m gpucnn.run -m model.filter_size=3,5,7 model.pool_size=2,3
    python -m gpucnn.run -m experiment=filter_pool_sweep
    python -m gpucnn.run -m experiment=filter_pool_sweep train.resume=true   # finish a killed sweep

Each run writes into its own directory under outputs/ (see gpucnn.app.experiment); a sweep also
gets sweep_summary.csv / .md and sweep.png at its end (gpucnn.app.sweep). A failure the user can
cause is one line naming the cause and the fix, and an exit code (EXIT_CODES); a job of a sweep
records it and the sweep goes on, and the sweep's exit code says whether every job ended ok.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .. import backend
from ..errors import BackendError, ConfigError, DataError, NotEnoughMemory
from . import exits
from .checkpoint import CheckpointError
from .config import register, single_for_list, unknown_override
from .console import survive_closed_output
from .experiment import AlreadyFinished, OutOfMemory, run_job
from .resume import root
from .rundir import RunDirError
from .signals import Interrupted
from .trainer import Diverged

CONF_DIR = "pkg://gpucnn.conf"  # conf/ in the repository
log = logging.getLogger("gpucnn")

# The failures a user can cause: their exit codes (gpucnn.app.exits) and the word logged first.
EXIT_CODES = {
    ConfigError: (exits.INVALID_CONFIG, "invalid config"),
    BackendError: (exits.INVALID_CONFIG, "invalid config"),
    Diverged: (exits.DIVERGED, "diverged"),
    OutOfMemory: (exits.OUT_OF_MEMORY, "out of memory"),
    NotEnoughMemory: (exits.OUT_OF_MEMORY, "out of memory"),
    DataError: (exits.DATA_ERROR, "data error"),
    RunDirError: (exits.RUN_DIR_REFUSED, "run directory refused"),
    CheckpointError: (exits.RUN_DIR_REFUSED, "unusable checkpoint"),
    OSError: (exits.FILE_SYSTEM, exits.FILE_SYSTEM_ERROR),  # the errnos in STORAGE_HINTS
}
STATUS_CODES = {"diverged": exits.DIVERGED}  # an earlier attempt that ended so: the same code

register()

# Overrides that need a plugin of the sweep extra: the plugin's module, and what it is.
SWEEP_EXTRA = {
    "hydra/launcher=joblib": ("hydra_plugins.hydra_joblib_launcher", "joblib launcher"),
    "hydra/sweeper=optuna": ("hydra_plugins.hydra_optuna_sweeper", "Optuna sweeper"),
    "experiment=optuna_search": ("hydra_plugins.hydra_optuna_sweeper", "Optuna sweeper"),
    **{
        f"hydra/launcher={name}": ("hydra_plugins.hydra_submitit_launcher", "submitit launcher")
        for name in ("submitit_local", "submitit_slurm", "slurm_cpu", "slurm_gpu")
    },
}


def check_command_line(argv: list[str]) -> str | None:
    """Why the command line cannot run, said before Hydra reads it: an override of no setting
    (epochs=5 for train.epochs), one value for a list (data.positive=6), or a plugin it names
    that is not installed; else None."""
    return unknown_override(argv) or single_for_list(argv) or missing_extra(argv)


def missing_extra(argv: list[str]) -> str | None:
    """Why the command line cannot run here (a plugin of the sweep extra it names is not
    installed, which Hydra would report as a config it cannot load), else None."""
    for arg in argv:
        needed = SWEEP_EXTRA.get(arg.lstrip("+"))
        if needed and importlib.util.find_spec(needed[0]) is None:
            return (
                f"{arg} needs Hydra's {needed[1]}, which the sweep extra installs: "
                "pip install 'gpucnn[sweep]' (in a checkout: pip install -e '.[sweep]')"
            )
    return None


def expected_failure(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, kind) of a failure the user can cause, else None (a bug)."""
    if isinstance(exc, AlreadyFinished):
        return STATUS_CODES[exc.status], exc.status
    if isinstance(exc, OSError) and exc.errno not in exits.STORAGE_HINTS:
        return None
    return next((v for t, v in EXIT_CODES.items() if isinstance(exc, t)), None)


def failure_message(exc: BaseException) -> str:
    if isinstance(exc, OSError):  # none of gpucnn's own errors is one
        return exits.storage_message(exc)
    return str(exc)


def fail(exc: Exception, logger: logging.Logger, multirun: bool) -> None:
    """End a command's job that raised ``exc``: a bug is raised again (Hydra prints its
    traceback); a failure the user can cause is logged in one line and, but in a sweep, whose
    other jobs go on, exits with its code."""
    expected = expected_failure(exc)
    if expected is None:
        raise exc
    code, kind = expected
    logger.error("%s: %s", kind, failure_message(exc))
    if not multirun:
        raise SystemExit(code) from None


def output_roots() -> list[Path]:
    """The fixed parts of the configured run and sweep directory patterns: where earlier
    attempts at a run may be (gpucnn.app.resume)."""
    hc = HydraConfig.get()
    cwd = Path(hc.runtime.cwd)
    patterns = (OmegaConf.to_container(hc.run)["dir"], OmegaConf.to_container(hc.sweep)["dir"])
    return [r for r in (root(str(p), cwd) for p in patterns) if r is not None]


def _jobs_at_once() -> int:
    """How many jobs the launcher runs on this machine at once: the joblib launcher's n_jobs
    (-1: one per core), else 1 (the basic launcher runs one after another; Slurm allocates)."""
    n_jobs = OmegaConf.select(HydraConfig.get(), "launcher.n_jobs")
    if not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    return backend.available_cores() if n_jobs < 0 else n_jobs


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    survive_closed_output()  # again in a launcher's worker process
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        value = run_job(
            cfg,
            run_dir,
            list(hc.overrides.task),
            hc.job.num if multirun else None,
            output_roots(),
            sharing=_jobs_at_once() if multirun else 1,
            sweep_dir=Path(hc.sweep.dir) if multirun else None,
        )
    except Interrupted as exc:
        log.warning("%s; %s (results in %s)", exc, exc.next_step, run_dir)
        raise SystemExit(exits.SIGNAL_BASE + exc.signum) from None
    except Exception as exc:
        expected = expected_failure(exc)
        if expected is None and not multirun:
            raise  # a bug: Hydra prints the traceback
        if expected is None:  # one job's bug must not stop the sweep: its log has the traceback
            log.exception("failed with an unexpected error (please report it)")
            return math.nan
        code, kind = expected
        log.error("%s: %s", kind, failure_message(exc))
        if multirun:  # one bad job must not stop the sweep
            return math.nan
        raise SystemExit(code) from None
    log.info("results in %s", run_dir)
    return value
