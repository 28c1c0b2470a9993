"""``python -m gpucnn.run``: train one model, or sweep many with ``--multirun``.

    python -m gpucnn.run                                   # lab CNN, embedded data, binary task
    python -m gpucnn.run model=cnn model.filter_size=5 data.task=multiclass train.epochs=10
    python -m gpucnn.run -m model.filter_size=3,5,7 model.pool_size=2,3
    python -m gpucnn.run -m experiment=filter_pool_sweep
    python -m gpucnn.run -m experiment=filter_pool_sweep train.resume=true   # finish a killed sweep

Each run writes into its own directory under outputs/ (see gpucnn.app.experiment); a sweep also
gets sweep_summary.csv / .md and sweep.png at its end (gpucnn.app.sweep). A job that cannot be
built, diverges, runs out of memory or finds no usable data records why and lets the rest of a
sweep go on; a single run exits with status 2, 3, 4 or 5 for those, and 128 + the signal's
number when interrupted.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ..errors import BackendError, ConfigError, DataError
from .config import register
from .experiment import OutOfMemory, run_job
from .trainer import Diverged, Interrupted

CONF_DIR = "pkg://gpucnn.conf"  # conf/ in the repository
EXIT_CODES = {ConfigError: 2, BackendError: 2, Diverged: 3, OutOfMemory: 4, DataError: 5}
KINDS = {ConfigError: "invalid config", BackendError: "invalid config", DataError: "data error"}
log = logging.getLogger("gpucnn")

register()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        value = run_job(cfg, run_dir, list(hc.overrides.task), hc.job.num if multirun else None)
    except Interrupted as exc:
        log.warning("%s; resume with train.resume=true (results in %s)", exc, run_dir)
        raise SystemExit(128 + exc.signum) from None
    except tuple(EXIT_CODES) as exc:
        kind = next((k for t, k in KINDS.items() if isinstance(exc, t)), type(exc).__name__.lower())
        log.error("%s: %s", kind, exc)
        if multirun:  # one bad job must not stop the sweep
            return math.nan
        raise SystemExit(next(c for t, c in EXIT_CODES.items() if isinstance(exc, t))) from None
    log.info("results in %s", run_dir)
    return value
