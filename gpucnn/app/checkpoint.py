"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is one .npz file (read with allow_pickle=False) holding the parameters, the
optimiser's state, and a JSON record of the position (epoch, batch, step), the epoch's running
sums, the metrics so far, the config it was written for and the run its weights started from
(train.init_from); with train.patience, also the weights of the epoch with the lowest validation
loss so far. Random numbers need no saved state:
batch orders come from (seed, epoch) and dropout masks from (seed, step).

Writing is atomic (a temporary file, flushed, fsynced, renamed), and the previous checkpoint is
kept as checkpoint.prev.npz, so a file damaged on disk still leaves one good checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GpucnnError
from ..fileio import atomic_write
from ..model import CHECKPOINT_BEST, CHECKPOINT_PARAMS, Model, checkpoint_weights
from ..optimizers import Optimizer

log = logging.getLogger(__name__)

CURRENT, PREVIOUS = "checkpoint.npz", "checkpoint.prev.npz"
DAMAGED = "checkpoint.damaged.npz"  # a current checkpoint found unusable, kept for a look
FORMAT = 1


class CheckpointError(GpucnnError):
    """No usable checkpoint (each candidate named with what is wrong with it)."""


def exists(run_dir: str | os.PathLike) -> bool:
    return any((Path(run_dir) / name).is_file() for name in (CURRENT, PREVIOUS))


def save(
    run_dir: str | os.PathLike,
    model: Model,
    optimizer: Optimizer,
    meta: dict,
    best: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a checkpoint into ``run_dir``; the one it replaces becomes checkpoint.prev.npz.
    ``best``: a state_dict to keep beside the model's (the best epoch's weights), whose epoch
    ``meta["best"]`` records."""
    run_dir = Path(run_dir)
    opt = optimizer.state_dict()
    arrays = {CHECKPOINT_PARAMS + k: v for k, v in model.state_dict().items()}
    arrays.update({CHECKPOINT_BEST + k: v for k, v in (best or {}).items()})
    arrays.update({f"opt/{k}": v for k, v in opt["slots"].items()})
    record = {**meta, "format": FORMAT, "optimizer_steps": opt["steps"]}
    arrays["meta"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    path = run_dir / CURRENT
    if path.is_file():
        os.replace(path, run_dir / PREVIOUS)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of one checkpoint file; CheckpointError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{path} is corrupt or truncated ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise CheckpointError(f"{path} has format {found!r}, expected {FORMAT}")
    return meta, arrays


RECORD = {"epoch": int, "batch": int, "step": int, "optimizer_steps": int, "sums": dict,
          "rows": list, "run": dict}  # fmt: skip
SUMS = ("loss", "correct", "seen", "seconds")


def _check(path: Path, meta: dict, arrays: dict[str, np.ndarray], model: Model, opt: Optimizer):
    """CheckpointError naming ``path`` unless its record is complete, its arrays (the
    parameters and the optimiser's state) are all there and of this run's dtype, and the
    optimiser's state is finite (the parameters' values are checked as they are loaded)."""
    for key, kind in RECORD.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise CheckpointError(f"{path}: its record has no valid {key} (found {value!r})")
    if not all(isinstance(meta["sums"].get(k), (int, float)) for k in SUMS):
        raise CheckpointError(f"{path}: its record's running sums are incomplete")
    rows = meta["rows"]
    if len(rows) != meta["epoch"] or not all(isinstance(r, dict) for r in rows):
        raise CheckpointError(
            f"{path}: its record holds {len(rows)} epochs' metrics, not {meta['epoch']}"
        )
    params = {name: p for name, p, _ in model.parameters()}
    learning = (name for name, _, _ in model.trainable_parameters())  # frozen ones: no slots
    slots = {f"opt/{n}/{s}": params[n] for n in learning for s in opt.SLOTS}
    names = [*params, *(name for name, _ in model.buffers())]
    best = meta.get("best")
    if best is not None and not (
        isinstance(best, dict) and isinstance(best.get("epoch"), int) and best["epoch"] >= 1
        and isinstance(best.get("val_loss"), float) and math.isfinite(best["val_loss"])
    ):  # fmt: skip
        raise CheckpointError(f"{path}: its record's best epoch is not valid (found {best!r})")
    wanted = (
        {CHECKPOINT_PARAMS + n for n in names}
        | (slots.keys() if meta["optimizer_steps"] else set())
        | ({CHECKPOINT_BEST + n for n in names} if best is not None else set())
    )
    missing, extra = sorted(wanted - arrays.keys()), sorted(arrays.keys() - wanted)
    if missing or extra:
        raise CheckpointError(
            f"{path} does not match this model and {type(opt).__name__}: missing "
            f"{missing or 'none'}, unexpected {extra or 'none'}"
        )
    dtype = np.dtype(next(iter(params.values())).dtype)  # the model's: this run's backend.dtype
    for key, value in arrays.items():
        if value.dtype != dtype:
            raise CheckpointError(f"{path}: {key} is {value.dtype}, this run uses {dtype}")
        if key not in slots:
            continue  # a parameter: load_state_dict checks its shape and values
        if value.shape != slots[key].shape:
            raise CheckpointError(f"{path}: {key} has shape {value.shape}, not {slots[key].shape}")
        if not np.isfinite(value).all():
            raise CheckpointError(f"{path}: {key} holds NaN or infinite values")


def _best_state(path: Path, arrays: dict[str, np.ndarray], model: Model) -> dict[str, np.ndarray]:
    """The best epoch's state_dict in a checkpoint's arrays, checked as the model's own are:
    ValueError naming ``path`` if it does not fit ``model``."""
    state = checkpoint_weights(arrays, CHECKPOINT_BEST)
    model.check_state_dict(state, source=f"the best epoch's weights in {path}")
    return state


def load(run_dir: str | os.PathLike, model: Model, optimizer: Optimizer) -> dict[str, Any] | None:
    """Restore the newest usable checkpoint of ``run_dir`` into ``model`` and ``optimizer``;
    returns its record (with the best epoch's state_dict as ``record["best"]["state"]``, where
    it keeps one), or None if the directory has none. A damaged checkpoint is reported
    and the previous one used; the damaged one is set aside as checkpoint.damaged.npz, so that
    the next save keeps the good previous one. CheckpointError if none is usable."""
    problems = []
    for name in (CURRENT, PREVIOUS):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        try:
            meta, arrays = _read(path)
            _check(path, meta, arrays, model, optimizer)
            model.load_state_dict(checkpoint_weights(arrays), source=f"the parameters in {path}")
            if meta.get("best") is not None:
                meta["best"]["state"] = _best_state(path, arrays, model)
        except (CheckpointError, ValueError) as exc:
            log.warning("skipping %s: %s", path, exc)
            problems.append(str(exc))
            continue
        if name == PREVIOUS and (Path(run_dir) / CURRENT).is_file():
            os.replace(Path(run_dir) / CURRENT, Path(run_dir) / DAMAGED)
            log.warning("the damaged checkpoint is kept as %s", Path(run_dir) / DAMAGED)
        slots = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
        optimizer.load_state_dict({"steps": meta["optimizer_steps"], "slots": slots})
        log.info("resuming from %s: epoch %d, batch %d", path, meta["epoch"] + 1, meta["batch"])
        return meta
    if problems:
        raise CheckpointError(f"no usable checkpoint in {run_dir}: " + "; ".join(problems))
    return None
