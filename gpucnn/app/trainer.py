"""The epochs of one run: steps, validation, metrics.csv, checkpoints, divergence, signals, and
stopping early (train.patience).

A checkpoint is written at the end of every epoch and every ``train.checkpoint_every_steps``
steps; ``restore`` continues from the newest one exactly (see gpucnn.app.checkpoint). A stop
signal (gpucnn.app.signals) finishes the current step, writes a checkpoint and raises
Interrupted; a non-finite loss raises Diverged without overwriting the last good checkpoint.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .. import backend, data
from ..errors import ConfigError, GpucnnError
from ..losses import for_outputs
from ..model import Model
from ..schedules import ON_VALIDATION
from ..steps import make_step
from ..train import check_batches, evaluate_balanced, unequal_classes
from . import checkpoint
from .config import build_optimizer, build_schedule, config_group, on_validation
from .diagnostics import Diagnostics
from .results import counted, metric_columns, split_counts, write_csv
from .rundir import MISSING, as_now
from .signals import Interrupted, Stops

log = logging.getLogger(__name__)

# What a checkpoint must have been written for to be resumed (bit for bit) by this config.
SAME_RUN_KEYS = ("model", "data", "optimizer", "train.seed", "train.batch_size", "train.drop_last",
                 "train.patience", "train.label_smoothing")  # fmt: skip
GPU_CHECK_EVERY = 32  # on the GPU, reading the loss waits for the device: check it this often


class Diverged(GpucnnError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, batch: int, value: float, saved: tuple[int, int] | None) -> None:
        """``saved``: the (epoch, batch) position of the run's last checkpoint, None if none."""
        if saved is None:
            kept = "no checkpoint had been written yet"
        else:
            at = (
                f"epoch {saved[0]}"
                if saved[1] == 0
                else f"batch {saved[1]} of epoch {saved[0] + 1}"
            )
            kept = f"its last good checkpoint, after {at}, is kept"
        super().__init__(
            f"the training loss became {value} in epoch {epoch + 1} by batch {batch}: "
            f"lower optimizer.lr (or clip the gradients, optimizer.clip_norm=1, or add weight "
            f"decay); {kept}"
        )
        self.epoch, self.batch, self.value = epoch, batch, value


@contextmanager
def _numbers_leaving_range_unwarned() -> Iterator[None]:
    """NumPy's overflow and invalid-value warnings off (in every thread of the step): a loss
    that leaves the finite numbers stops the run as Diverged, in one line naming the epoch,
    batch and fix, which the warnings before it, with their source lines, would bury."""
    with warnings.catch_warnings():
        message = r"(overflow|invalid value|divide by zero) encountered"
        warnings.filterwarnings("ignore", message, RuntimeWarning)
        yield


def _fresh_sums() -> dict[str, float]:
    return {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


def _run_identity(cfg: DictConfig) -> dict[str, Any]:
    """The settings (SAME_RUN_KEYS) that decide a run's trajectory, as plain values."""
    identity = {}
    for key in SAME_RUN_KEYS:
        value = OmegaConf.select(cfg, key)
        identity[key] = OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
    return identity


def images_record(splits: data.Prepared) -> dict[str, Any]:
    """What the data gave a run: the images per class in each split, and the training images'
    per-channel mean and standard deviation (which move when an image is replaced)."""
    return {
        "balance": splits.balance,
        "mean": [float(m) for m in splits.mean],
        "std": [float(s) for s in splits.std],
    }


def images_changed(then: dict[str, Any], now: dict[str, Any]) -> str | None:
    """How two images_record records differ, or None for the same data: the same counts, and
    the same means and standard deviations up to the rounding another machine's summation may
    give."""
    if then["balance"] != now["balance"]:
        return (
            f"images per class then {split_counts(then['balance'])}, now "
            f"{split_counts(now['balance'])}"
        )
    for key in ("mean", "std"):
        if len(then[key]) != len(now[key]) or not all(
            math.isclose(a, b, rel_tol=1e-5) for a, b in zip(then[key], now[key])
        ):
            return f"the training images' {key} per channel was {then[key]}, is {now[key]}"
    return None


def training_batches(cfg: DictConfig, splits: data.Prepared, model: Model) -> data.Batches:
    """The training split's batches as ``cfg`` draws them, checked for ``model``: ConfigError,
    naming the setting, for a batch larger than the training images, a shift that moves them
    out of themselves or a batch too small for a BatchNorm; a warning for mirrored digits."""
    t, d = cfg.train, cfg.data
    if t.batch_size > len(splits.train):
        n_train, n_val = len(splits.train), len(splits.val)
        held_out = (
            f" left by data.val_fraction={d.val_fraction}, which holds out {n_val:,} "
            f"of {n_train + n_val:,} for validation"
            if n_val
            else ""
        )
        raise ConfigError(
            f"train.batch_size={t.batch_size} is larger than the {n_train:,} training images"
            f"{held_out}: lower it{', or data.val_fraction' * bool(n_val)} (or use more data)"
        )
    if d.shift >= min(splits.input_shape[1:]):
        raise ConfigError(
            f"data.shift={d.shift} would move the {splits.input_shape[1]}x"
            f"{splits.input_shape[2]} training images out of themselves: give fewer pixels"
        )
    if d.flip and d.name == "mnist":
        log.warning(
            "data.flip=true mirrors MNIST's digits, and a mirrored digit is another shape "
            "(a mirrored 2 is no 2): the model learns both as one class"
        )
    if d.balanced and not unequal_classes(splits.train.y):
        log.warning(
            "data.balanced=true, but the training classes have equal numbers of images "
            "already: its draws only repeat some images in an epoch and leave out others; "
            "leave it out"
        )
    with config_group("train"):
        batches = data.Batches(
            splits.train, t.batch_size, True, t.drop_last, t.seed, d.flip, d.shift, d.balanced
        )
        check_batches(model, batches)
    return batches


class Trainer:
    def __init__(
        self,
        cfg: DictConfig,
        model: Model,
        splits: data.Prepared,
        run_dir: Path,
        stops: Stops | None = None,
        threads: int | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        started_from: dict[str, Any] | None = None,
    ) -> None:
        """``threads``: the CPU threads of the training step (None: ``train.threads``);
        ``on_epoch(row)`` is called with each epoch's metrics.csv row (the loggers);
        ``started_from``: the record of the run whose weights this one started from
        (train.init_from), which checkpoints keep."""
        t = cfg.train
        self.batches = training_batches(cfg, splits, model)
        watchers = on_validation(cfg)
        if watchers and not len(splits.val):
            watcher, instead = watchers[0]
            raise ConfigError(
                f"{watcher}, but data.val_fraction={cfg.data.val_fraction} of the "
                f"{len(splits.train):,} training images is no image: give a larger "
                f"data.val_fraction (or more data), or {instead}"
            )
        self.cfg, self.model, self.splits, self.run_dir = cfg, model, splits, Path(run_dir)
        self.stops = stops or Stops()  # none given: nothing installs handlers for it
        self.loss = for_outputs(splits.n_outputs, t.label_smoothing)
        self.optimizer = build_optimizer(cfg.optimizer)
        self.schedule = build_schedule(cfg.optimizer, t.epochs)
        threads = t.threads if threads is None else threads
        self.step = make_step(model, self.loss, self.optimizer, threads, t.micro_batch)
        self.diagnostics = Diagnostics(model, run_dir) if cfg.diagnostics.enabled else None
        self.epoch, self.batch = 0, 0  # the position: batches done in the current epoch
        self.saved: tuple[int, int] | None = None  # the position of the last checkpoint
        self.sums = _fresh_sums()
        self.rows: list[dict[str, Any]] = []
        # With train.patience: the epoch (from 1) of the lowest validation loss so far, that
        # loss, and the model's state_dict then
        self.best: dict[str, Any] | None = None
        self.on_epoch = on_epoch or (lambda row: None)
        self.started_from = started_from

    # ----- checkpoints --------------------------------------------------------------------
    def save(self) -> None:
        meta = {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step.count,
            "sums": self.sums,
            "rows": self.rows,
            "diagnostics": self.diagnostics.rows if self.diagnostics is not None else [],
            "run": {**_run_identity(self.cfg), "images": images_record(self.splits)},
            "best": None if self.best is None else {k: self.best[k] for k in ("epoch", "val_loss")},
            "init_from": self.started_from,
        }
        best = None if self.best is None else self.best["state"]
        checkpoint.save(self.run_dir, self.model, self.optimizer, meta, best)
        self.stops.checkpointed = True
        self.saved = (self.epoch, self.batch)

    def restore(self) -> dict[str, Any] | None:
        """Continue from the run directory's newest usable checkpoint; its record, or None."""
        meta = checkpoint.load(self.run_dir, self.model, self.optimizer)
        if meta is None:
            return None
        ours = _run_identity(self.cfg)
        changed = [k for k in SAME_RUN_KEYS if as_now(k, meta["run"].get(k, MISSING)) != ours[k]]
        if changed:
            raise ConfigError(
                f"the checkpoint in {self.run_dir} was written for a different {', '.join(changed)}"
                ": resume with the same settings, or start a new run directory"
            )
        then = meta["run"].get("images")  # older checkpoints did not record them
        changed = then and images_changed(then, images_record(self.splits))
        if changed:
            raise ConfigError(
                f"the checkpoint in {self.run_dir} was written for other images than the data "
                f"gives now ({changed}): the data changed since (images added, removed or "
                "replaced in its folder or files), and resuming would train on other images "
                "than it began with (and may test on some it trained on). Restore the data, or "
                "start a new run directory"
            )
        self.epoch, self.batch, self.step.count = meta["epoch"], meta["batch"], meta["step"]
        self.saved = (self.epoch, self.batch)
        self.sums, self.rows, self.best = meta["sums"], meta["rows"], meta.get("best")
        # The start of the weights restored, whether or not train.init_from names it now (or
        # its folder is still there); older checkpoints did not record it
        self.started_from = meta.get("init_from", self.started_from)
        if self.diagnostics is not None:
            self.diagnostics.rows = list(meta.get("diagnostics", []))
        return meta

    # ----- training -----------------------------------------------------------------------
    def fit(self) -> None:
        """Train until train.epochs are done, or train.patience epochs without a lower
        validation loss (the model then gets the best epoch's weights back); raises Diverged or
        Interrupted."""
        with self.stops.deferred(), _numbers_leaving_range_unwarned():
            while self.epoch < self.cfg.train.epochs and not self._out_of_patience():
                self._train_epoch()
                self._end_epoch()
                self.epoch, self.batch, self.sums = self.epoch + 1, 0, _fresh_sums()
                self.save()
                self._stop_if_signalled()
        if self.best is not None and self.best["epoch"] < self.epoch:
            log.info(
                "keeping the weights of epoch %d, whose %s (%.4g) was the lowest",
                self.best["epoch"],
                self._watched,
                self.best["val_loss"],
            )
            self.model.load_state_dict(self.best["state"])

    @property
    def kept_epoch(self) -> int:
        """The epoch (from 1) whose weights the model has after fit: the best one with
        train.patience, else the last."""
        return self.epoch if self.best is None else self.best["epoch"]

    def _out_of_patience(self) -> bool:
        """Whether train.patience epochs have passed since the lowest validation loss (said
        once, as training stops)."""
        patience = self.cfg.train.patience
        if self.best is None or self.epoch - self.best["epoch"] < patience:
            return False
        if self.epoch < self.cfg.train.epochs:
            log.info(
                "stopping after epoch %d of %d: %s without a %s below epoch %d's "
                "(train.patience=%d)",
                self.epoch,
                self.cfg.train.epochs,
                counted(self.epoch - self.best["epoch"], "epoch"),
                self._watched,
                self.best["epoch"],
                patience,
            )
        return True

    def _train_epoch(self) -> None:
        t = self.cfg.train
        every = t.checkpoint_every_steps
        check = 1 if not backend.active().is_gpu else GPU_CHECK_EVERY
        bar = _progress(len(self.batches), f"epoch {self.epoch + 1}/{t.epochs}", t.progress)
        if bar is not None:
            bar.update(self.batch)
        self._set_rate()
        xp = backend.xp()
        loss_sum, correct = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.int64)
        start = opened = time.perf_counter()
        seen_before = self.sums["seen"]
        sample_every = self.cfg.diagnostics.every
        for x, y in self.batches.epoch(self.epoch, start=self.batch):
            if self.diagnostics is not None and self.step.count % sample_every == 0:
                value, hits = self.diagnostics.sample(self.step, x, y)
            else:
                value, hits = self.step(x, y)
            loss_sum += value * len(y)
            correct += hits
            self.batch += 1
            self.sums["seen"] += len(y)
            if self.batch % check == 0:
                self._check(loss_sum)
            if bar is not None:
                bar.update()
                if self.batch % 10 == 0:  # reading the loss waits for the GPU: not every step
                    seen, elapsed = self.sums["seen"], time.perf_counter() - opened
                    bar.set_postfix(
                        loss=f"{(self.sums['loss'] + float(loss_sum)) / seen:.4f}",
                        img_s=f"{(seen - seen_before) / elapsed:.0f}",
                    )
            if (every and self.step.count % every == 0) or self.stops.received is not None:
                self._fold(loss_sum, correct, start)
                loss_sum, correct, start = loss_sum * 0, correct * 0, time.perf_counter()
                self.save()
                self._stop_if_signalled()
        self._fold(loss_sum, correct, start)
        if bar is not None:
            bar.close()

    def _set_rate(self) -> None:
        """Give the optimiser the schedule's rate for this epoch, saying why where the
        validation loss lowered it (optimizer.schedule=plateau)."""
        before = self.rows[-1].get("lr") if self.rows else None
        self.optimizer.lr = self.schedule(self.epoch, [watched_loss(row) for row in self.rows])
        if self.schedule.name in ON_VALIDATION and before and self.optimizer.lr < before:
            log.info(
                "learning rate %.3g from epoch %d: %s without a %s below the lowest before "
                "(optimizer.decay_every=%d)",
                self.optimizer.lr,
                self.epoch + 1,
                counted(self.schedule.decay_every, "epoch"),
                self._watched,
                self.schedule.decay_every,
            )

    def _check(self, loss_sum: Any) -> float:
        """The running loss sum as a number; Diverged if it is not finite."""
        total = float(loss_sum)
        if not math.isfinite(total):
            raise Diverged(self.epoch, self.batch, total, self.saved)
        return total

    def _fold(self, loss_sum: Any, correct: Any, start: float) -> None:
        """Move the device-side running sums into self.sums (host numbers, checkpointable),
        after checking them: nothing non-finite reaches a checkpoint."""
        backend.synchronize()
        self.sums["loss"] += self._check(loss_sum)
        self.sums["correct"] += int(correct)
        self.sums["seconds"] += time.perf_counter() - start

    def _end_epoch(self) -> None:
        t, s = self.cfg.train, self.sums
        row = {
            "epoch": self.epoch + 1,
            "train_loss": s["loss"] / s["seen"],
            "train_accuracy": s["correct"] / s["seen"],
            "seconds": round(s["seconds"], 4),
            "images_per_second": round(s["seen"] / max(s["seconds"], 1e-9), 1),
        }
        val = self.splits.val
        if len(val):  # classes of unequal sizes: the balanced figures, which rank runs
            e = evaluate_balanced(self.model, self.loss, val.x, val.y, t.eval_batch_size)
            row["val_loss"], row["val_accuracy"] = e.loss, e.accuracy
            if e.balanced_loss is not None:
                row["val_balanced_loss"] = e.balanced_loss
                row["val_balanced_accuracy"] = e.balanced_accuracy
        if t.patience is not None:
            self._remember_if_best(row)
        scheduled = self.schedule.name != "constant"
        if scheduled:  # the rate the epoch trained with
            row["lr"] = self.optimizer.lr
        self.rows.append(row)
        write_csv(self.run_dir / "metrics.csv", self.rows, metric_columns(self.rows))
        self.on_epoch(row)
        if self.diagnostics is not None:
            self.diagnostics.end_epoch(self.epoch)
        log.info(
            "epoch %d/%d: %s",
            self.epoch + 1,
            t.epochs,
            "  ".join(f"{k} {shown(k, v)}" for k, v in row.items() if k != "epoch"),
        )

    def _remember_if_best(self, row: dict[str, Any]) -> None:
        """Keep the model's weights if this epoch's validation loss (``watched_loss``) is the
        lowest so far."""
        loss = watched_loss(row)
        if self.best is None or loss < self.best["val_loss"]:
            state = self.model.state_dict()  # host copies
            self.best = {"epoch": row["epoch"], "val_loss": loss, "state": state}

    @property
    def _watched(self) -> str:
        """The loss that train.patience watches, in words (_remember_if_best)."""
        balanced = self.rows and "val_balanced_loss" in self.rows[-1]
        return f"{'balanced ' * bool(balanced)}validation loss"

    def _stop_if_signalled(self) -> None:
        if self.stops.received is not None:
            raise Interrupted(self.stops.received)

    def close(self) -> None:
        self.step.close()


def watched_loss(row: dict[str, Any]) -> float:
    """An epoch's validation loss as train.patience and the plateau schedule watch it: the
    balanced one where the classes are of unequal sizes (a class of many images would otherwise
    outweigh the rest); NaN for an epoch without validation images."""
    return row.get("val_balanced_loss", row.get("val_loss", math.nan))


def shown(key: str, value: float) -> str:
    """A figure of an epoch's row as its log line gives it: losses and accuracies with four
    decimals, so that the lines of a run line up, seconds with two, speed in whole images."""
    if key == "images_per_second":
        return f"{value:.0f}"
    if key == "seconds":
        return f"{value:.2f}"
    if key == "lr":
        return f"{value:.3g}"
    return f"{value:.4f}"


def _progress(total: int, desc: str, enabled: bool):
    """A tqdm bar on a terminal when enabled, else None (plain log lines instead)."""
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)
