"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is one .npz file (read with allow_pickle=False) holding the parameters, the
optimiser's state, and a JSON record of the position (epoch, batch, step), the epoch's running
sums, the metrics so far and the config it was written for. Random numbers need no saved state:
batch orders come from (seed, epoch) and dropout masks from (seed, step).

Writing is atomic (a temporary file, flushed, fsynced, renamed), and the previous checkpoint is
kept as checkpoint.prev.npz, so a file damaged on disk still leaves one good checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GpucnnError
from ..fileio import atomic_write
from ..model import Model
from ..optimizers import Optimizer

log = logging.getLogger(__name__)

CURRENT, PREVIOUS = "checkpoint.npz", "checkpoint.prev.npz"
DAMAGED = "checkpoint.damaged.npz"  # a current checkpoint found unusable, kept for a look
FORMAT = 1


class CheckpointError(GpucnnError):
    """No usable checkpoint (each candidate named with what is wrong with it)."""


def exists(run_dir: str | os.PathLike) -> bool:
    return any((Path(run_dir) / name).is_file() for name in (CURRENT, PREVIOUS))


def save(run_dir: str | os.PathLike, model: Model, optimizer: Optimizer, meta: dict) -> Path:
    """Write a checkpoint into ``run_dir``; the one it replaces becomes checkpoint.prev.npz."""
    run_dir = Path(run_dir)
    opt = optimizer.state_dict()
    arrays = {f"param/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"opt/{k}": v for k, v in opt["slots"].items()})
    record = {**meta, "format": FORMAT, "optimizer_steps": opt["steps"]}
    arrays["meta"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    path = run_dir / CURRENT
    if path.is_file():
        os.replace(path, run_dir / PREVIOUS)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(meta, params, optimiser slots) of one checkpoint file; CheckpointError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{path} is corrupt or truncated ({type(exc).__name__}: {exc})"
        ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')}, expected {FORMAT}")
    params = {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}
    slots = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
    return meta, params, slots


def load(run_dir: str | os.PathLike, model: Model, optimizer: Optimizer) -> dict[str, Any] | None:
    """Restore the newest usable checkpoint of ``run_dir`` into ``model`` and ``optimizer``;
    returns its record, or None if the directory has none. A damaged checkpoint is reported
    and the previous one used; the damaged one is set aside as checkpoint.damaged.npz, so that
    the next save keeps the good previous one. CheckpointError if none is usable."""
    problems = []
    for name in (CURRENT, PREVIOUS):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        try:
            meta, params, slots = _read(path)
            model.load_state_dict(params, source=f"the parameters in {path}")
        except (CheckpointError, ValueError) as exc:
            log.warning("skipping %s: %s", path, exc)
            problems.append(str(exc))
            continue
        if name == PREVIOUS and (Path(run_dir) / CURRENT).is_file():
            os.replace(Path(run_dir) / CURRENT, Path(run_dir) / DAMAGED)
            log.warning("the damaged checkpoint is kept as %s", Path(run_dir) / DAMAGED)
        optimizer.load_state_dict({"steps": meta["optimizer_steps"], "slots": slots})
        log.info("resuming from %s: epoch %d, batch %d", path, meta["epoch"] + 1, meta["batch"])
        return meta
    if problems:
        raise CheckpointError(f"no usable checkpoint in {run_dir}: " + "; ".join(problems))
    return None
