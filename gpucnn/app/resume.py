"""Finding the earlier attempt at a run, for ``train.resume=true`` in a new run directory.

Only the outputs tree the config names is searched: the fixed part of Hydra's run and sweep
directory patterns (``outputs/runs`` and ``outputs/multiruns`` by default; a pattern without an
interpolation is one fixed directory, so nothing beside it is searched). A candidate is the same
run if its saved resolved config is the same, apart from ``train.resume`` and the other keys
that do not change what is trained (gpucnn.app.rundir.identity). The newest is adopted: a
finished one's results are copied (the job is skipped); an unfinished one's checkpoints and
metrics are copied and training continues from them. Where there is none, a run of the same
settings for fewer epochs is trained on from its checkpoint; where there is none of those
either, the run whose config differs in the fewest settings is named.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..fileio import copy_file
from ..schedules import ALONG_THE_RUN
from .checkpoint import CURRENT, PREVIOUS
from .checkpoint import exists as checkpoint_exists
from .results import read_summary
from .rundir import differences, has_results, identity, in_use, saved_config

RESULTS = ("summary.json", "metrics.csv", "curves.png", "model.npz")
PROGRESS = (CURRENT, PREVIOUS, "metrics.csv")
MAX_DEPTH = 4  # run directories sit this deep at most below a root (a sweep's jobs: 2)


def root(pattern: str, cwd: Path) -> Path | None:
    """The directory a Hydra output-directory pattern always lies in: its path up to the first
    interpolation (the whole path if it has none); None if it starts with one."""
    fixed = pattern.split("${", 1)[0]
    if "${" in pattern:
        fixed = fixed.rpartition("/")[0] + "/" if "/" in fixed else ""
    if not fixed:
        return None
    return (cwd / fixed).resolve()


def _run_dirs_under(top: Path) -> Iterator[Path]:
    """Directories under ``top`` (itself included, MAX_DEPTH levels down) that Hydra made;
    unreadable folders are passed over, links are not followed."""
    top_depth = len(top.parts)
    for here, dirs, _ in os.walk(top, onerror=lambda exc: None):
        path = Path(here)
        if (path / ".hydra").is_dir():
            yield path
        if len(path.parts) - top_depth >= MAX_DEPTH:
            dirs.clear()
        dirs[:] = [d for d in dirs if d != ".hydra"]


class Attempt(NamedTuple):
    """An earlier run directory: where it is, the identity of its saved config, its status."""

    path: Path
    identity: dict[str, Any]
    status: str | None


def left_something(run_dir: Path, summary: dict[str, Any] | None) -> bool:
    """Whether a run directory holds what resuming can use: a checkpoint, final weights or a
    finished status (a start that failed, or was killed before its first checkpoint, does not)."""
    return has_results(run_dir, summary) or checkpoint_exists(run_dir)


def attempts(run_dir: Path, roots: Sequence[Path]) -> list[Attempt]:
    """Every other run directory under ``roots`` that left something to resume from
    (``left_something``) and no process is still running, read once for ``closest`` and
    ``shorter``."""
    here = Path(run_dir).resolve()
    found = []
    for candidate in {d for top in roots if top.is_dir() for d in _run_dirs_under(top)}:
        if candidate.resolve() == here or in_use(candidate):
            continue
        summary = read_summary(candidate)
        if not left_something(candidate, summary):
            continue
        theirs = saved_config(candidate, summary)
        if theirs is not None:
            found.append(Attempt(candidate, identity(theirs), (summary or {}).get("status")))
    return found


def closest(
    earlier: Sequence[Attempt], config: dict[str, Any], most: int = 3
) -> tuple[Path, list[str]] | None:
    """The newest of the ``earlier`` attempts whose config differs from ``config`` in the
    fewest keys (``most`` at most), and those differences: none for an earlier attempt at the
    same run."""
    wanted = identity(config)
    found: dict[Path, list[str]] = {}
    for attempt in earlier:
        changed = differences(attempt.identity, wanted)
        if len(changed) <= most:
            found[attempt.path] = changed
    if not found:
        return None
    fewest = min(len(changed) for changed in found.values())
    path = max((p for p in found if len(found[p]) == fewest), key=lambda p: p.stat().st_mtime)
    return path, found[path]


def shorter(earlier: Sequence[Attempt], config: dict[str, Any]) -> Path | None:
    """The one of the ``earlier`` attempts that ``config`` trains on: the same settings but
    fewer ``train.epochs``, with a checkpoint and not diverged; of several, the one trained
    longest (the newest of those). Its checkpoint is exactly where a run of ``config`` would be
    after those epochs: the batch order, the dropout masks and the updates do not depend on the
    number of epochs still to come; None where the learning rate does (ALONG_THE_RUN)."""
    if config.get("optimizer", {}).get("schedule") in ALONG_THE_RUN:
        return None
    wanted, epochs = _apart_from_epochs(identity(config))
    found: dict[Path, int] = {}
    for attempt in earlier:
        settings, trained = _apart_from_epochs(attempt.identity)
        if settings != wanted or not isinstance(trained, int) or not trained < epochs:
            continue
        if (attempt.path / CURRENT).is_file() and attempt.status != "diverged":
            found[attempt.path] = trained
    if not found:
        return None
    return max(found, key=lambda path: (found[path], path.stat().st_mtime))


def _apart_from_epochs(ident: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """(a config's identity without train.epochs, train.epochs)."""
    train = dict(ident.get("train", {}))
    epochs = train.pop("epochs", None)
    return {**ident, "train": train}, epochs


def adopt(previous: Path, run_dir: Path, finished: bool) -> None:
    """Copy a finished run's results, or an unfinished run's progress, into ``run_dir``."""
    for name in RESULTS if finished else PROGRESS:
        if (previous / name).is_file():
            copy_file(previous / name, run_dir / name)
