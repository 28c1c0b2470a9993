"""Finding the earlier attempt at a run, for ``train.resume=true`` in a new run directory.

A run (or a sweep's job) is the same run if its overrides are the same, leaving out
``train.resume`` and Hydra's own settings. The newest such directory under the same outputs root
is adopted: a finished one's results are copied (the job is skipped); an unfinished one's
checkpoints and metrics are copied and training continues from them.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from .checkpoint import CURRENT, PREVIOUS
from .results import parse_overrides

log = logging.getLogger(__name__)

FINAL = ("ok", "invalid_config", "diverged")  # statuses that rerunning would only repeat
RESULTS = ("summary.json", "metrics.csv", "curves.png", "model.npz")
PROGRESS = (CURRENT, PREVIOUS, "metrics.csv")


def _identity(overrides: list[str]) -> list[tuple[str, str]]:
    """The overrides that make a run what it is (not train.resume, not Hydra's own)."""
    skip = ("hydra.", "hydra/")
    return sorted(
        (k, v)
        for k, v in parse_overrides(overrides).items()
        if k != "train.resume" and not k.startswith(skip)
    )


def outputs_root(run_dir: Path) -> Path:
    """The nearest ancestor named ``outputs``, else the run directory's grandparent."""
    for parent in run_dir.resolve().parents:
        if parent.name == "outputs":
            return parent
    return run_dir.resolve().parent.parent


def find_previous(run_dir: Path, overrides: list[str]) -> Path | None:
    """The newest other run directory under the outputs root with the same overrides."""
    wanted, here = _identity(overrides), run_dir.resolve()
    matches = []
    for saved in outputs_root(run_dir).rglob(".hydra/overrides.yaml"):
        candidate = saved.parent.parent
        if candidate.resolve() == here:
            continue
        try:
            theirs = _identity([str(o) for o in OmegaConf.load(saved)])
        except Exception:  # an unreadable overrides file is not a match
            continue
        if theirs == wanted and any((candidate / n).is_file() for n in RESULTS + PROGRESS):
            matches.append(candidate)
    return max(matches, key=lambda p: p.stat().st_mtime, default=None)


def adopt(previous: Path, run_dir: Path, finished: bool) -> None:
    """Copy a finished run's results, or an unfinished run's progress, into ``run_dir``."""
    for name in RESULTS if finished else PROGRESS:
        if (previous / name).is_file():
            shutil.copy2(previous / name, run_dir / name)
    log.info("%s %s", "results copied from" if finished else "resuming the run in", previous)
