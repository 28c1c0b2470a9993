"""One training job from a composed config: check it, build, load data, train, write results.

Writes into ``run_dir``: metrics.csv (a row per epoch), summary.json (status, test metrics,
counts, shapes, timings, versions, the resolved config), curves.png and model.npz. Returns the
final validation accuracy, the value a Hydra sweeper optimises (NaN when the job did not train).
"""

from __future__ import annotations

import logging
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from . import __version__, backend, data
from .config import build_model, build_optimizer, validate
from .errors import ConfigError
from .fileio import write_json
from .losses import for_outputs
from .parallel import make_step
from .results import METRICS, plot_curves, write_csv
from .train import evaluate

log = logging.getLogger(__name__)


@dataclass
class Job:
    """A run's directory and the summary it accumulates."""

    cfg: DictConfig
    run_dir: Path
    overrides: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def write_summary(self, status: str, **extra: Any) -> None:
        self.summary.update(status=status, finished=_now(), **extra)
        write_json(self.run_dir / "summary.json", self.summary)


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


def run_job(
    cfg: DictConfig, run_dir: Path, overrides: list[str], job_num: int | None = None
) -> float:
    """Train as ``cfg`` says, writing results into ``run_dir``; see the module docstring.

    A config that cannot work raises ConfigError after writing ``status: invalid_config``.
    """
    job = Job(cfg, Path(run_dir), list(overrides))
    job.summary = {
        "status": "running",
        "started": _now(),
        "overrides": job.overrides,
        "seed": cfg.train.seed,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    try:
        validate(cfg)
        active = backend.use(cfg.backend.name, cfg.backend.dtype, cfg.train.seed, job=job_num)
        job.summary.update(backend=active.name, device=active.device, versions=_versions())
        model = build_model(cfg.model, cfg.data)
    except ConfigError as exc:
        job.write_summary("invalid_config", reason=str(exc))
        raise
    job.summary.update(_describe_model(model))
    try:
        return _train(job, model)
    except KeyboardInterrupt:
        job.write_summary("interrupted", reason="interrupted by the user")
        raise
    except ConfigError as exc:
        job.write_summary("invalid_config", reason=str(exc))
        raise
    except Exception as exc:
        job.write_summary("failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        backend.release()


def _describe_model(model) -> dict[str, Any]:
    layers = []
    for i, (layer, shape) in enumerate(zip(model.layers, model.shapes)):
        w, b = layer.params.get("W"), layer.params.get("b")
        layers.append(
            {
                "index": i,
                "layer": repr(layer),
                "output_shape": list(shape),
                "weights": int(w.size) if w is not None else 0,
                "biases": int(b.size) if b is not None else 0,
            }
        )
    weights = model.count_params(bias=False)
    return {"weights": weights, "biases": model.count_params(bias=True) - weights, "layers": layers}


def _progress(total: int, desc: str, enabled: bool):
    """A tqdm bar on a terminal when enabled, else None (plain log lines instead)."""
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


def load_splits(cfg: DictConfig) -> data.Prepared:
    """The train / val / test splits the data config describes, on the device; logged."""
    d, t = cfg.data, cfg.train
    raw = data.load(d.name, d.root, d.download, d.url)
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
    )
    for line in data.describe(splits).splitlines():
        log.info(line)
    return splits


def _epoch(step, batches: data.Batches, epoch: int, bar) -> dict[str, Any]:
    """Train one epoch with ``step`` (parallel.make_step); the row of metrics.csv without the
    validation columns."""
    xp = backend.xp()
    total_loss, correct, seen = xp.zeros(()), xp.zeros((), dtype=xp.int64), 0
    start = time.perf_counter()
    for i, (x, y) in enumerate(batches.epoch(epoch)):
        value, hits = step(x, y)
        total_loss += value * len(y)
        correct += hits
        seen += len(y)
        if bar is not None:
            bar.update()
            if i % 10 == 0:  # reading the loss waits for the GPU: not every step
                bar.set_postfix(
                    loss=f"{float(total_loss) / seen:.4f}",
                    img_s=f"{seen / (time.perf_counter() - start):.0f}",
                )
    backend.synchronize()
    seconds = time.perf_counter() - start
    return {
        "epoch": epoch + 1,
        "train_loss": float(total_loss) / seen,
        "train_accuracy": float(correct) / seen,
        "seconds": round(seconds, 4),
        "images_per_second": round(seen / seconds, 1),
    }


def _train(job: Job, model) -> float:
    cfg, t = job.cfg, job.cfg.train
    splits = load_splits(cfg)
    job.summary.update(classes=list(splits.classes), balance=splits.balance)
    loss, optimizer = for_outputs(splits.n_outputs), build_optimizer(cfg.optimizer)
    batches = data.Batches(
        splits.train, t.batch_size, shuffle=True, drop_last=t.drop_last, seed=t.seed
    )
    step = make_step(model, loss, optimizer, t.threads, t.micro_batch)
    try:
        return _fit(job, model, splits, loss, step, batches)
    finally:
        step.close()


def _fit(job: Job, model, splits: data.Prepared, loss, step, batches: data.Batches) -> float:
    """The epochs, then the test evaluation and the result files."""
    cfg, t = job.cfg, job.cfg.train
    val_acc = math.nan
    for epoch in range(t.epochs):
        bar = _progress(len(batches), f"epoch {epoch + 1}/{t.epochs}", t.progress)
        row = _epoch(step, batches, epoch, bar)
        if bar is not None:
            bar.close()
        if len(splits.val):
            row["val_loss"], row["val_accuracy"] = evaluate(
                model, loss, splits.val.x, splits.val.y, t.eval_batch_size
            )
            val_acc = row["val_accuracy"]
        job.rows.append(row)
        write_csv(job.run_dir / "metrics.csv", job.rows, list(METRICS))
        log.info(
            "epoch %d/%d: %s",
            epoch + 1,
            t.epochs,
            "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"),
        )
        if not math.isfinite(row["train_loss"]):
            job.write_summary(
                "diverged",
                epochs_completed=epoch,
                reason=(
                    f"the training loss became {row['train_loss']} in epoch {epoch + 1}: "
                    "lower optimizer.lr"
                ),
            )
            return math.nan
    test_loss, test_acc = evaluate(model, loss, splits.test.x, splits.test.y, t.eval_batch_size)
    log.info("test loss %.4f  test accuracy %.4f", test_loss, test_acc)
    if t.save_model:
        model.save(job.run_dir / "model.npz")
    plot_curves(
        job.run_dir / "curves.png",
        job.rows,
        f"{cfg.model.name}: {', '.join(job.overrides) or 'defaults'}",
    )
    epoch_seconds = [r["seconds"] for r in job.rows]
    job.write_summary(
        "ok",
        test_accuracy=test_acc,
        test_loss=test_loss,
        val_accuracy=val_acc,
        epochs_completed=t.epochs,
        epoch_seconds=epoch_seconds,
        seconds_per_epoch=sorted(epoch_seconds)[len(epoch_seconds) // 2],
        images_per_second=job.rows[-1]["images_per_second"],
    )
    return val_acc
