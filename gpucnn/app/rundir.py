"""Keeping runs apart: one process per run directory, and finished results never relabelled.

A run directory is locked (an advisory ``flock`` on its ``.lock`` file, released by the kernel
when the process ends, however it ends) for as long as a job runs in it. A run is identified by
its resolved config without the keys that do not change it (``identity``): a directory
whose finished results (status ``ok`` or ``diverged``, or final weights) were made by another
config, or by one that cannot be read, is refused, naming what differs, and left as it was.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ..errors import GpucnnError
from ..fileio import is_locked, write_json, write_text
from . import exits
from .results import LOCK, first_of, read_summary

FINISHED = ("ok", "diverged")  # statuses with results that rerunning would only repeat
# train.* keys that do not make a run what it is: how it is resumed, how many seeds its sweep
# ran (its own is train.seed), how it shows progress, how often it checkpoints, in what batches
# it is evaluated. threads and micro_batch are not among them: they fix the order in which
# gradients are summed, so a resumed run repeats an uninterrupted one bit for bit.
NOT_THE_RUN = ("resume", "resume_from", "repeats", "progress", "checkpoint_every_steps",
               "eval_batch_size")  # fmt: skip
SHOWN = 4  # differing keys named in a refusal
PROBE_BYTES = 1 << 16  # written to check an output folder before Hydra writes into it
REFUSED = "refused"  # in a sweep directory: the jobs refused their directories, one file each


class RunDirError(GpucnnError):
    """The run directory is in use by another process, or holds another run's results."""


@contextmanager
def claimed(
    run_dir: Path,
    config: dict[str, Any],
    overrides: list[str] | None = None,
    sweep_dir: Path | None = None,
) -> Iterator[dict[str, Any] | None]:
    """Hold ``run_dir``'s lock for the block, after checking that the directory is free and
    holds no other run's finished results; yields its summary.json as it was (or None).
    On RunDirError, Hydra's copies of the config and overrides, which it has already
    overwritten, are put back as the directory's summary has them; a job of the sweep in
    ``sweep_dir`` records the refusal with its ``overrides`` there (``refusal``)."""
    summary = read_summary(run_dir)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(run_dir) / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            _lock(fd, run_dir)
            _refuse_other_results(run_dir, summary, config)
        except RunDirError as exc:
            _restore_hydra_files(run_dir, summary)
            _record_refusal(run_dir, sweep_dir, overrides or [], summary, str(exc))
            raise
        _clear_refusal(run_dir, sweep_dir)  # the directory is this job's now
        yield summary
    finally:
        os.close(fd)  # closing releases the lock


def _refusal_path(run_dir: Path, sweep_dir: Path | None) -> Path | None:
    """Where the refusal of the sweep job in ``run_dir`` is recorded: REFUSED/<job>.json in
    its sweep directory (None for a single run, or a job directory nested deeper)."""
    if sweep_dir is None or Path(run_dir).parent.resolve() != Path(sweep_dir).resolve():
        return None
    return Path(sweep_dir) / REFUSED / f"{Path(run_dir).name}.json"


def _record_refusal(
    run_dir: Path,
    sweep_dir: Path | None,
    overrides: list[str],
    summary: dict[str, Any] | None,
    reason: str,
) -> None:
    """Record that a sweep job was refused ``run_dir``, with its ``overrides`` and the
    ``reason``. The directory itself is left as it was, so without this the sweep's summary
    would show what another run left there as the job's."""
    path = _refusal_path(run_dir, sweep_dir)
    if path is not None:
        path.parent.mkdir(exist_ok=True)
        write_json(path, {"overrides": overrides, "reason": reason, "found": _state(summary)})


def _clear_refusal(run_dir: Path, sweep_dir: Path | None) -> None:
    """Remove a refusal recorded for the sweep job in ``run_dir`` by an earlier launch."""
    path = _refusal_path(run_dir, sweep_dir)
    if path is not None:
        path.unlink(missing_ok=True)


def _state(summary: dict[str, Any] | None) -> list[Any]:
    """What a run directory held: its summary's status and start, which another process
    that finishes or restarts there changes."""
    return [(summary or {}).get("status"), (summary or {}).get("started")]


def refusal(
    run_dir: Path, sweep_dir: Path, summary: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The refusal recorded for the sweep job in ``run_dir``, whose summary.json is
    ``summary`` ({"overrides": [...], "reason": ...}), or None: none was, or the directory has
    changed since (a run in it ended)."""
    path = _refusal_path(run_dir, sweep_dir)
    try:
        record = json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("found") != _state(summary):
        return None
    return record


def _lock(fd: int, run_dir: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        raise RunDirError(
            f"{run_dir} is in use by another process (pid {holder}): wait for it to end, "
            "or give this run its own directory (hydra.run.dir / hydra.sweep.dir)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def in_use(run_dir: Path) -> bool:
    """Whether a live process holds ``run_dir``'s lock."""
    return is_locked(Path(run_dir) / LOCK)


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """What makes a run the run it is: its resolved config without the train keys that do
    not (NOT_THE_RUN) and ``logger`` (where its metrics are also sent). A setting added to
    gpucnn since the run was made counts as its default, which is what the run did then
    (train.patience: none, optimizer.schedule: constant)."""
    ident = json.loads(json.dumps(config, default=str))  # a deep copy in plain JSON types
    _fill(ident, _schema_defaults())
    for key in NOT_THE_RUN:
        ident.get("train", {}).pop(key, None)
    ident.pop("logger", None)
    return ident


MISSING = object()  # a setting a run did not save: gpucnn had none of that name then


def as_now(key: str, value: Any) -> Any:
    """A run's saved setting ``key`` (dotted: "optimizer", "train.patience") as this version
    of gpucnn would save it: a section with the keys added since filled in with their
    defaults, and a setting added since (``value`` MISSING) its default."""
    default = _schema_defaults()
    for part in key.split("."):
        default = default[part]
    if value is MISSING:
        return default
    if isinstance(value, dict) and isinstance(default, dict):
        value = json.loads(json.dumps(value))  # a copy to fill
        _fill(value, default)
    return value


@functools.cache
def _schema_defaults() -> dict[str, Any]:
    from .config import Config  # the schema: config imports the loggers, which import rundir

    return json.loads(json.dumps(OmegaConf.to_container(OmegaConf.structured(Config))))


def _fill(config: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Add to ``config`` the keys of ``defaults`` it lacks, at every depth, in place."""
    for key, default in defaults.items():
        if key not in config:
            config[key] = default
        elif isinstance(config[key], dict) and isinstance(default, dict):
            _fill(config[key], default)


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every dotted key whose value differs between two configs."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, "(unset)"), new.get(key, "(unset)")
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out


def saved_config(run_dir: Path, summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """The resolved config a run directory was made with: its summary's, else Hydra's saved
    ``.hydra/config.yaml``; None when neither can be read."""
    if summary and isinstance(summary.get("config"), dict):
        return summary["config"]
    try:
        saved = OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml")
        config = OmegaConf.to_container(saved, resolve=True)
    except Exception:  # missing, unparsable or with interpolations that no longer resolve
        return None
    return config if isinstance(config, dict) else None


def has_results(run_dir: Path, summary: dict[str, Any] | None) -> bool:
    """Whether ``run_dir`` holds a finished run's results: a finished status, or final
    weights."""
    finished = (summary or {}).get("status") in FINISHED
    return finished or (Path(run_dir) / "model.npz").is_file()


def _refuse_other_results(run_dir: Path, summary: dict[str, Any] | None, config: dict) -> None:
    """RunDirError if ``run_dir`` holds finished results (a finished status, or final weights)
    of a config other than ``config``, or of a config that cannot be read."""
    if not summary or not has_results(run_dir, summary):
        return
    keep = (
        "they are left as they were; give this run its own directory (hydra.run.dir / "
        "hydra.sweep.dir), or delete that one"
    )
    if not isinstance(summary.get("config"), dict):
        why = summary.get("reason") or "its summary names no config"
        raise RunDirError(
            f"{run_dir} holds results of settings that cannot be read ({why}): {keep}"
        )
    changed = differences(identity(summary["config"]), identity(config))
    if changed:
        if _more_epochs(summary["config"], config, changed):
            keep += f"; to train it on, in a directory of its own: train.resume_from={run_dir}"
        raise RunDirError(
            f"{run_dir} holds the results ({summary['status']}) of other settings "
            f"({first_of(changed, SHOWN, '; ')}): {keep}"
        )


def _more_epochs(old: dict[str, Any], new: dict[str, Any], changed: list[str]) -> bool:
    """Whether ``new`` is ``old`` trained for more epochs (all that ``changed``)."""
    before, after = old.get("train", {}).get("epochs"), new.get("train", {}).get("epochs")
    only_epochs = len(changed) == 1 and changed[0].startswith("train.epochs:")
    return only_epochs and isinstance(before, int) and isinstance(after, int) and after > before


def _restore_hydra_files(run_dir: Path, summary: dict[str, Any] | None) -> None:
    """Put back .hydra/config.yaml and overrides.yaml as the summary has them."""
    hydra_dir = Path(run_dir) / ".hydra"
    if not summary or not hydra_dir.is_dir():
        return
    if isinstance(summary.get("config"), dict):
        write_text(hydra_dir / "config.yaml", OmegaConf.to_yaml(summary["config"]))
    if isinstance(summary.get("overrides"), list):
        write_text(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(summary["overrides"]))


class WritableOutputs(Callback):
    """Hydra callback: a run or sweep directory that cannot be written is one line and exit
    code 7 before Hydra writes into it (Hydra itself would end in a traceback)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_writable(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_writable(Path(config.hydra.sweep.dir))


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-test-")
        try:  # some bytes, synced: a full disk still makes empty files
            os.write(fd, bytes(PROBE_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        print(
            f"{exits.FILE_SYSTEM_ERROR}: cannot write into {directory} ({exc.strerror}): free some "
            "space or fix the permissions, or point hydra.run.dir (hydra.sweep.dir) at another "
            "folder",
            file=sys.stderr,
        )
        raise SystemExit(exits.FILE_SYSTEM) from None
