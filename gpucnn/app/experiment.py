"""One training job from a composed config: check it, build, load data, train, write results.

Writes into ``run_dir``: metrics.csv (a row per epoch), summary.json (status, test metrics,
counts, shapes, timings, versions, the resolved config), curves.png and model.npz, plus the
checkpoints. Returns the final validation accuracy, the value a Hydra sweeper optimises (NaN when
the job did not finish).

Statuses, each written to summary.json: ``running`` from the start; then ``ok``;
``invalid_config`` (then ConfigError is raised); ``diverged`` (Diverged); ``interrupted``
(Interrupted); ``failed`` (OutOfMemory, or whatever else went wrong, re-raised).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from .. import __version__, backend, data, kernels, memory
from ..errors import BackendError, ConfigError, DataError, GpucnnError, NotEnoughMemory
from ..fileio import remove_leftovers, write_json
from ..model import Model, param_counts
from ..optimizers import OPTIMIZERS
from ..schedules import ALONG_THE_RUN
from ..steps import micro_batched
from ..train import evaluate_balanced
from . import checkpoint, cores, pretrained, resume, rundir, signals
from .config import build_model, check_overrides_read, config_group, validate
from .loggers import Loggers, open_loggers
from .results import chosen_on, plot_curves, read_summary
from .signals import Interrupted
from .trainer import Diverged, Trainer

log = logging.getLogger(__name__)


class OutOfMemory(GpucnnError):
    """The device (or host) ran out of memory; says how much and what to change."""


@dataclass
class Job:
    """A run's directory and the summary it accumulates."""

    cfg: DictConfig
    run_dir: Path
    overrides: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    loggers: Loggers = field(default_factory=Loggers)

    def write_summary(self, status: str, **extra: Any) -> None:
        """Record ``status`` (with the time, once the job has ended) in summary.json, and once
        the job has ended tell the loggers (which then send the run's files)."""
        if status != "running":
            extra["finished"] = _now()
        self.summary.update(status=status, **extra)
        write_json(self.run_dir / "summary.json", self.summary)
        if status != "running":
            self.loggers.finish(status, self.summary)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    import hydra

    return {
        "gpucnn": __version__,
        "python": platform.python_version(),
        "hydra": hydra.__version__,
        **backend.versions(),
    }


def load_raw(cfg: DictConfig, own_names_stand: bool = False) -> data.RawData:
    """The raw train and test images the data config names. ``own_names_stand``: a file that
    names its classes keeps its names rather than being refused for data.classes (which then
    came with a trained run: evaluation matches classes by name)."""
    d = cfg.data
    root = _from_launch_dir(d.root)
    if d.name == "folder":
        with config_group("data"):
            return data.folder.load(
                root,
                d.channels,
                d.image_size,
                d.fit,
                d.test_fraction,
                d.split_seed,
                progress=cfg.train.progress,
            )
    if d.name == "arrays":
        path = _from_launch_dir(d.path)
        raw = data.arrays.load(path, d.test_fraction, d.split_seed)
        if d.classes is None:
            return raw
        names = [str(n).strip() for n in d.classes]
        return data.arrays.named(raw, names, path, "data.classes", own_names_stand)
    try:
        return data.load(d.name, root, d.download, d.url)
    except DataError as exc:  # its advice names the library's arguments: say the keys too
        raise DataError(f"{exc}\n(here root is data.root, download is data.download)") from None


def _from_launch_dir(path: str | None) -> str | None:
    """``path`` (``~`` expanded), a relative one taken from the directory the command was
    started in, not the job's working directory (its run directory with hydra.job.chdir=true)."""
    from hydra.utils import to_absolute_path

    return None if path is None else to_absolute_path(os.path.expanduser(path))


def load_splits(
    cfg: DictConfig,
    normalisation: tuple | None = None,
    logged: bool = True,
    own_names_stand: bool = False,
) -> data.Prepared:
    """The train / val / test splits the data config describes, on the device; ``logged``:
    described in the log, with warnings for classes missing from a split. ``normalisation``:
    (mean, std) of each channel to use instead of the training split's. ``own_names_stand``:
    as in load_raw."""
    d, t = cfg.data, cfg.train
    raw = load_raw(cfg, own_names_stand)
    with config_group("data"):
        splits = data.prepare(
            raw,
            d.task,
            list(d.positive),
            list(d.negative),
            d.pad_to,
            d.val_fraction,
            t.seed,
            d.limit_train,
            d.limit_test,
            normalisation,
        )
    if not logged:
        return splits
    for line in data.describe(splits).splitlines():
        log.info(line)
    train_limit = f"data.limit_train={d.limit_train}" if d.limit_train else None
    test_limit = f"data.limit_test={d.limit_test}" if d.limit_test else None
    # validation images are drawn from the training ones
    limits = {"train": train_limit, "val": train_limit, "test": test_limit}
    for warning in data.gaps(splits, limits):
        log.warning(warning)
    return splits


class AlreadyFinished(GpucnnError):
    """The run finished (diverged) in an earlier attempt; rerunning would only repeat it."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"already finished ({status}) in an earlier attempt: {reason}")
        self.status = status


def _adopt_earlier_attempt(job: Job, roots: Sequence[Path]) -> None:
    """With train.resume, in a directory without results or progress (a failed start's summary
    is neither): copy in the newest earlier attempt at the same run found under ``roots``, or
    else the progress of the same run for fewer epochs (gpucnn.app.resume). With
    train.resume_from, that directory is searched instead, and finding neither there is a
    ConfigError."""
    t = job.cfg.train
    if not (t.resume or t.resume_from) or resume.left_something(
        job.run_dir, read_summary(job.run_dir)
    ):
        return
    if t.resume_from:
        roots = [_resume_from(t.resume_from)]
    earlier = resume.attempts(job.run_dir, roots)
    near = resume.closest(earlier, job.summary["config"])
    if near is not None and not near[1]:  # the same config: an earlier attempt at this run
        previous = near[0]
        status = next(attempt.status for attempt in earlier if attempt.path == previous)
        finished = status in rundir.FINISHED
        resume.adopt(previous, job.run_dir, finished)
        log.info("%s %s", "results copied from" if finished else "resuming the run in", previous)
        job.summary["resumed_from"] = str(previous)
        return
    shorter = resume.shorter(earlier, job.summary["config"])
    if shorter is not None:  # the same run for fewer epochs: trained on from its checkpoint
        resume.adopt(shorter, job.run_dir, finished=False)
        log.info(
            "training on to train.epochs=%d from %s, the same settings for fewer epochs",
            job.cfg.train.epochs,
            shorter,
        )
        job.summary["resumed_from"] = str(shorter)
        return
    closest = f"; the closest, {near[0]}, differs in {'; '.join(near[1])}" if near else ""
    schedule = job.cfg.optimizer.schedule
    if schedule in ALONG_THE_RUN:
        closest += (
            f" (optimizer.schedule={schedule} spreads the learning rate's fall over "
            "train.epochs: no run for fewer epochs is trained on)"
        )
    if t.resume_from:
        raise ConfigError(
            f"train.resume_from={t.resume_from} holds no attempt at this run (the same config) "
            f"and no run of its settings for fewer epochs with a checkpoint{closest}"
        )
    log.warning(
        "train.resume=true: no earlier attempt at this run (the same config) under %s%s: "
        "training from the start",
        ", ".join(map(str, roots)) or "no folder (the output directories have no fixed part)",
        closest,
    )


def init_source(cfg: DictConfig, run_dir: Path | None = None) -> pretrained.Source | None:
    """The run whose weights train.init_from starts from, checked before any data is loaded;
    None without one, or where it cannot be read but ``run_dir`` holds a checkpoint, whose
    weights take the place of that run's anyway (a run resumed after its source was moved)."""
    given = cfg.train.init_from
    if given is None:
        return None
    try:
        return pretrained.source(
            given,
            _idle_folder("train.init_from", given, "a trained run's folder (outputs/runs/<time>)"),
        )
    except ConfigError as exc:
        if run_dir is None or not checkpoint.exists(run_dir):
            raise
        log.info("%s; not needed: this run resumes from its checkpoint in %s", exc, run_dir)
        return None


def _resume_from(path: str) -> Path:
    """train.resume_from as a directory; ConfigError if there is none, or a run is still going
    in it."""
    return _idle_folder(
        "train.resume_from", path, "a run's directory (outputs/runs/<time>) or a sweep's"
    )


def _idle_folder(key: str, given: str, wanted: str) -> Path:
    """The folder of setting ``key``=``given`` (relative to where the command started), read
    as a run's or a sweep's: ConfigError where there is none (naming ``wanted``), or a process
    is still training in it (its checkpoint and weights are still being written)."""
    directory = Path(_from_launch_dir(given))
    if directory.is_file():  # a run's model.npz, say
        raise ConfigError(
            f"{key}={given}: a file, not a folder: give {wanted}, such as the one it is in, "
            f"{directory.parent}"
        )
    if not directory.is_dir():
        raise ConfigError(f"{key}={given}: no such folder ({directory}): give {wanted}")
    if rundir.in_use(directory):
        raise ConfigError(
            f"{key}={given}: a process is still training in it: wait for it to end (or stop "
            "it: it writes a checkpoint)"
        )
    return directory


def _skip_finished(job: Job) -> float | None:
    """If this run already finished in this directory (adopted or not), say so in its summary
    and return its value (ok), or raise AlreadyFinished (diverged); else None."""
    earlier = read_summary(job.run_dir)
    if not earlier or earlier.get("status") not in rundir.FINISHED:
        return None
    log.info("already finished (%s) in an earlier attempt: skipped", earlier["status"])
    keep = ("overrides", "config", "resumed_from")  # the same run (rundir), as asked for now
    earlier.update({k: job.summary[k] for k in keep if k in job.summary}, skipped=True)
    write_json(job.run_dir / "summary.json", earlier)
    if earlier["status"] != "ok":
        raise AlreadyFinished(earlier["status"], earlier.get("reason", ""))
    return validation_score(earlier)


def validation_score(summary: dict[str, Any]) -> float:
    """What a finished run scores for a search to maximise: the accuracy that ranks it
    (results.chosen_on) of those on validation images; NaN where it held out none."""
    column = chosen_on([summary])
    return summary[column] if column != "test_accuracy" else math.nan


def run_job(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str],
    job_num: int | None = None,
    roots: Sequence[Path] = (),
    sharing: int = 1,
    sweep_dir: Path | None = None,
) -> float:
    """Train as ``cfg`` says, writing results into ``run_dir``; see the module docstring.

    The directory is locked while the job runs and must not hold another run's finished
    results (gpucnn.app.rundir). The run continues from a checkpoint in ``run_dir`` if there
    is one (a job restarted, say by Slurm after preemption); with ``train.resume`` an earlier
    attempt under ``roots`` (the outputs tree) is found by its config; a finished run is not
    run again. ``sharing``: how many jobs a launcher runs on this machine at once, which share
    its cores when ``train.threads`` is not set (gpucnn.app.cores). ``sweep_dir``: the sweep
    the job belongs to, which loggers group their runs by.
    """
    job = Job(cfg, Path(run_dir), list(overrides))
    job.summary = {
        "status": "running",
        "started": _now(),
        "overrides": job.overrides,
        "seed": cfg.train.seed,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    claim = rundir.claimed(job.run_dir, job.summary["config"], job.overrides, sweep_dir)
    with claim, signals.caught() as stops:
        for path in remove_leftovers(job.run_dir):
            log.info("removed %s, left by a write that was interrupted", path.name)
        try:
            _adopt_earlier_attempt(job, roots)
        except ConfigError as exc:
            job.write_summary("invalid_config", reason=str(exc))
            raise
        value = _skip_finished(job)
        if value is not None:
            return value
        job.write_summary("running", threads=cores.job_threads(cfg.train.threads, sharing))
        with threadpool_limits(limits=job.summary["threads"]):  # BLAS too, for the whole job
            return _run(job, job_num, stops, sweep_dir)


def _check_names_free(run_dir: Path) -> None:
    """IsADirectoryError (a file system error) now, not after training, if a folder has the
    name of a file the run writes."""
    names = (*resume.RESULTS, checkpoint.CURRENT, checkpoint.PREVIOUS, checkpoint.DAMAGED)
    for path in (run_dir / name for name in (*names, "diagnostics.csv")):
        if path.exists() and not path.is_file():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))


def _run(job: Job, job_num: int | None, stops: signals.Stops, sweep_dir: Path | None) -> float:
    """Check, build, train and evaluate, recording how the job ended in its summary."""
    cfg, model = job.cfg, None
    try:
        _check_names_free(job.run_dir)
        validate(cfg)
        check_overrides_read(cfg, job.overrides)
        if job_num is None and cfg.train.repeats > 1:
            raise ConfigError(
                f"train.repeats={cfg.train.repeats} runs each setting with several seeds, as "
                "separate jobs of a sweep: add --multirun (-m)"
            )
        b = cfg.backend
        active = backend.use(
            b.name, b.dtype, cfg.train.seed, job=job_num, kernels=b.kernels, tf32=b.tf32
        )
        if not active.is_gpu:
            backend.recycle_host_memory()
        job.summary.update(backend=active.name, device=active.device, versions=_versions())
        start = init_source(cfg, job.run_dir)
        splits = load_splits(cfg)
        job.summary.update(_describe_data(splits))
        model = build_model(cfg.model, splits.input_shape, splits.n_outputs)
        job.summary.update(_describe_model(model))
        if start is not None:
            job.summary["init_from"] = pretrained.start_from(model, start, cfg, splits)
        pretrained.freeze(model, cfg)
        job.summary["learning_weights"] = model.count_params(learning=True)  # train.freeze's
        log.info(
            "model %s: %d layers, %s weights, %s multiply-adds per image (its table: python -m "
            "gpucnn.describe with the same overrides)",
            cfg.model.name,
            len(model.layers),
            f"{job.summary['weights']:,}",
            f"{job.summary['multiply_adds']:,}",
        )
        check_memory(model, cfg, job.summary["threads"], max(len(splits.val), len(splits.test)))
        job.loggers = open_loggers(cfg, job.run_dir, model, job.overrides, sweep_dir)
        return _train(job, model, splits, stops)
    except (ConfigError, BackendError) as exc:
        job.write_summary("invalid_config", reason=str(exc))
        raise
    except Diverged:
        raise  # its summary is written where it is caught, with the epoch and batch
    except Interrupted as exc:
        job.write_summary("interrupted", reason=str(exc))
        raise
    except NotEnoughMemory as exc:  # refused before allocating: the message names the setting
        job.write_summary("failed", reason=str(exc))
        raise
    except KeyboardInterrupt:
        job.write_summary("interrupted", reason="interrupted by the user")
        raise
    except Exception as exc:
        if _is_out_of_memory(exc):
            message = _out_of_memory_message(exc, cfg)
            job.write_summary("failed", reason=message)
            raise OutOfMemory(message) from None
        job.write_summary("failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        del model  # its layers hold device arrays of the last batch they saw
        backend.release()


def _train(job: Job, model: Model, splits: data.Prepared, stops: signals.Stops) -> float:
    cfg, t = job.cfg, job.cfg.train
    trainer = Trainer(
        cfg,
        model,
        splits,
        job.run_dir,
        stops,
        job.summary["threads"],
        job.loggers.epoch,
        job.summary.get("init_from"),
    )
    try:
        meta = trainer.restore()
        if meta is not None:
            job.summary["resumed_at"] = {"epoch": meta["epoch"] + 1, "batch": meta["batch"]}
            if trainer.started_from is not None:  # the checkpoint's: its source may be gone
                job.summary["init_from"] = trainer.started_from
        if meta is not None and "resumed_from" in job.summary:
            for row in meta["rows"]:  # loggers new to this directory: the adopted epochs too
                job.loggers.epoch(row)
        try:
            trainer.fit()
        except Diverged as exc:
            job.write_summary(
                "diverged",
                reason=str(exc),
                epoch=exc.epoch + 1,
                batch=exc.batch,
                epochs_completed=exc.epoch,
            )
            raise
    finally:
        trainer.close()
    rows = trainer.rows
    test = evaluate_balanced(model, trainer.loss, splits.test.x, splits.test.y, t.eval_batch_size)
    test_balanced = test.balanced_accuracy
    balanced = f"  test balanced accuracy {test_balanced:.4f}" if test_balanced is not None else ""
    log.info("test loss %.4f  test accuracy %.4f%s", test.loss, test.accuracy, balanced)
    if t.save_model:
        model.save(job.run_dir / "model.npz")
    kept = trainer.kept_epoch  # whose weights were tested: the last, or patience's best
    plot_curves(
        job.run_dir / "curves.png",
        rows,
        f"{cfg.model.name}: {', '.join(job.overrides) or 'defaults'}",
        kept,
    )
    epoch_seconds = [r["seconds"] for r in rows]
    val = rows[kept - 1]
    # Classes of unequal sizes: their balanced accuracy too
    balanced = {"val": val.get("val_balanced_accuracy"), "test": test_balanced}
    job.write_summary(
        "ok",
        test_accuracy=test.accuracy,
        test_loss=test.loss,
        val_accuracy=val.get("val_accuracy", math.nan),
        **{f"{split}_balanced_accuracy": v for split, v in balanced.items() if v is not None},
        epochs_completed=len(rows),
        kept_epoch=kept,
        epoch_seconds=epoch_seconds,
        # the median, the lower one of an even count: of two epochs the one without the
        # first's start-up (on the GPU, compiling kernels and capturing the step)
        seconds_per_epoch=sorted(epoch_seconds)[(len(epoch_seconds) - 1) // 2],
        images_per_second=rows[-1]["images_per_second"],
    )
    return validation_score(job.summary)


@dataclass
class StepMemory:
    """What a training step holds at least: ``parts`` (name, bytes) of the activations of
    ``images`` images at once, which the setting ``key`` sets; ``state``, the bytes of the
    optimiser's slots; ``weights``, the bytes of the parameters (their gradients take as many
    again)."""

    key: str
    images: int
    parts: list[tuple[str, int]]
    state: int
    weights: int


def step_memory(model: Model, cfg: DictConfig, threads: int) -> StepMemory:
    """The least memory a training step of ``model`` holds as ``cfg`` trains it: on NumPy one
    micro-batch per thread (``threads``) at a time; the GPU's step never writes out the
    columns that its kernels gather (gpucnn.kernels.gpu.implicit_conv)."""
    t = cfg.train
    item = np.dtype(backend.dtype()).itemsize
    params = model.count_params(bias=True) * item
    learning = model.count_params(bias=True, learning=True) * item
    state = learning * len(OPTIMIZERS[cfg.optimizer.name].SLOTS)  # none for frozen layers
    key, images = "train.batch_size", t.batch_size
    if micro_batched(model, t.micro_batch) and threads * t.micro_batch < t.batch_size:
        key, images = "train.micro_batch", threads * t.micro_batch
    gathered = kernels.for_array_module(backend.xp()).implicit_conv
    return StepMemory(key, images, model.activation_bytes(images, True, gathered), state, params)


def check_memory(model: Model, cfg: DictConfig, threads: int, evaluated: int) -> None:
    """NotEnoughMemory, naming the setting and the largest part, if a training step
    (step_memory) or an evaluation batch would need more memory than is available. An
    evaluation batch holds at most the ``evaluated`` images of the larger split evaluated
    (validation or test)."""
    need = step_memory(model, cfg, threads)
    # The optimiser's state is still to be made when training starts.
    _require_activations(cfg, need.key, need.images, need.parts, need.state)
    images = min(cfg.train.eval_batch_size, evaluated)
    eval_parts = model.activation_bytes(images, training=False)
    _require_activations(cfg, "train.eval_batch_size", images, eval_parts, 0)


def _require_activations(
    cfg: DictConfig, key: str, images: int, parts: list[tuple[str, int]], extra: int
) -> None:
    """NotEnoughMemory if ``parts`` (of the activations of ``images`` images at once) and
    ``extra`` bytes exceed what is available; ``key``: the setting that sets ``images``."""
    name, largest = max(parts, key=lambda part: part[1])
    memory.require(
        sum(b for _, b in parts) + extra,
        f"{key}={OmegaConf.select(cfg, key)}: the activations of {images:,} images at once",
        f"lower {key} (the largest part: {name}, {memory.size(largest)}), or make the model "
        "smaller (model.filter_size, model.channels)",
        argument=key,
    )


def _describe_data(splits: data.Prepared) -> dict[str, Any]:
    """What the data held, and what gpucnn.predict needs to prepare new images as these were."""
    return {
        "classes": list(splits.classes),
        "balance": splits.balance,
        "image_shape": list(splits.image_shape),  # (C, H, W) before padding
        "input_shape": list(splits.input_shape),
        "normalisation": {"mean": list(splits.mean), "std": list(splits.std)},
        "value_range": list(splits.value_range),  # new images are checked against it
        "dark_edges": splits.dark_edges,  # and their backgrounds against this
        "skipped_files": list(splits.skipped),
    }


def _describe_model(model: Model) -> dict[str, Any]:
    layers = []
    for i, (layer, shape) in enumerate(zip(model.layers, model.shapes)):
        weights, biases = param_counts(layer)
        layers.append(
            {
                "index": i,
                "layer": repr(layer),
                "output_shape": list(shape),
                "weights": int(weights),
                "biases": int(biases),
                "multiply_adds": layer.multiply_adds(shape),
            }
        )
    weights = model.count_params(bias=False)
    return {
        "weights": weights,
        "biases": model.count_params(bias=True) - weights,
        "multiply_adds": model.count_multiply_adds(),
        "layers": layers,
    }


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


def _out_of_memory_message(exc: BaseException, cfg: DictConfig) -> str:
    """One line: what ran out, at which batch size, how much was asked and free, what to do."""
    where = "host"
    free = ""
    if backend.active().is_gpu:
        where = f"GPU ({backend.active().device})"
        free_b, total_b = backend.xp().cuda.runtime.memGetInfo()
        free = f"; {free_b / 2**20:,.0f} MB free of {total_b / 2**20:,.0f} MB"
    return (
        f"out of {where} memory at train.batch_size={cfg.train.batch_size} ({exc}{free}): "
        "lower train.batch_size, use a smaller model, or run fewer jobs per device"
    )
