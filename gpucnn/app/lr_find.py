"""``python -m gpucnn.lr_find``: the learning-rate range test, the rates worth a sweep in one run.

Trains the model that ``python -m gpucnn.run`` would train with the same overrides, for
``lr_find.steps`` steps whose learning rate grows by the same factor at every step from
``lr_find.min_lr`` to ``lr_find.max_lr`` (gpucnn.lr_range), stopping once the smoothed loss is
``lr_find.stop_factor`` times its lowest. Prints the rate where the loss was lowest, the rate to
train with (a third of it) and the sweep to run next, which compares it with a rate 3x lower
and 3x higher; writes lr_find.csv (each step's rate and loss), lr_find.json and lr_find.png
into its directory.
"""

from __future__ import annotations

import logging
import shlex
import signal
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from .. import backend, lr_range
from ..fileio import write_json
from ..losses import for_outputs
from . import cores, exits, pretrained
from .config import (
    LrFindConfig,
    build_model,
    build_optimizer,
    check_overrides_read,
    config_group,
    override_key,
    refuse_unread,
    register,
    single_for_list,
    unknown_override,
    validate,
)
from .experiment import check_memory, init_source, load_splits
from .results import pyplot, save_figure, write_csv
from .run import CONF_DIR, fail
from .trainer import training_batches

log = logging.getLogger("gpucnn.lr_find")

# Settings of a training run that the test does not read: each with what to give instead.
NOT_READ = {
    "optimizer.lr": "lr_find.min_lr and lr_find.max_lr set the rates it tries",
    "optimizer.schedule": "the rate grows at every step",
    "train.epochs": "lr_find.steps sets how long it trains",
    "train.patience": "it stops on lr_find.stop_factor",
    "train.repeats": "it trains one seed: sweep train.seed for more (-m train.seed=0,1,2)",
    **dict.fromkeys(
        ("train.resume", "train.resume_from", "train.checkpoint_every_steps", "train.save_model"),
        "it saves no weights (a test is as short as its steps)",
    ),
    **dict.fromkeys(
        ("diagnostics.enabled", "diagnostics.every"),
        "it records each step's loss only: python -m gpucnn.run takes diagnostics",
    ),
}

register()


def check_command_line(argv: list[str]) -> str | None:
    """Why the command line cannot run, said before Hydra reads it: an override of no setting,
    or one value for a list; else None."""
    return unknown_override(argv, LrFindConfig) or single_for_list(argv, LrFindConfig)


def find(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Run the range test ``cfg`` describes; write lr_find.csv, .json and .png into ``run_dir``;
    return lr_find.json's record."""
    validate(cfg, LrFindConfig)
    check_overrides_read(cfg, overrides)
    refuse_unread(overrides, NOT_READ, "lr_find")
    f, t, c = cfg.lr_find, cfg.train, cfg.backend
    with config_group("lr_find"):
        lr_range.check_settings(f.min_lr, f.max_lr, f.steps, f.stop_factor)
    active = backend.use(c.name, c.dtype, t.seed, kernels=c.kernels, tf32=c.tf32)
    if not active.is_gpu:
        backend.recycle_host_memory()
    start = init_source(cfg)
    splits = load_splits(cfg)
    model = build_model(cfg.model, splits.input_shape, splits.n_outputs)
    if start is not None:  # the rates worth a sweep of fine-tuning
        pretrained.start_from(model, start, cfg, splits)
    pretrained.freeze(model, cfg)
    loss = for_outputs(splits.n_outputs, t.label_smoothing)
    optimizer = build_optimizer(cfg.optimizer)
    batches = training_batches(cfg, splits, model)
    threads = cores.job_threads(t.threads)
    check_memory(model, cfg, threads, 0)
    log.info(
        "range test: %d steps of %d images, lr %g to %g", f.steps, t.batch_size, f.min_lr, f.max_lr
    )
    with threadpool_limits(limits=threads):
        result = lr_range.range_test(
            model, loss, optimizer, batches, f.min_lr, f.max_lr, f.steps, f.stop_factor,
            threads, t.micro_batch,
        )  # fmt: skip
    record = {
        **result.record(),
        "command": _sweep_command(result.sweep, overrides),
        "model": cfg.model.name,
        "data": cfg.data.name,
        "optimizer": cfg.optimizer.name,
        "batch_size": t.batch_size,
        "backend": active.name,
        "device": active.device,
        "overrides": overrides,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    _write_steps(result, run_dir / "lr_find.csv")
    _plot(result, run_dir / "lr_find.png", f"{cfg.model.name}, {cfg.optimizer.name}")
    write_json(run_dir / "lr_find.json", record)
    return record


def _sweep_command(rates: list[float] | None, overrides: list[str]) -> str | None:
    """The run command that compares ``rates``, three seeds each, with the test's other
    overrides (not its own lr_find.* nor Hydra's), so that it trains what the test trained."""
    if rates is None:
        return None
    kept = [o for o in overrides if override_key(o).partition(".")[0] not in ("lr_find", "hydra")]
    lrs = ",".join(f"{rate:g}" for rate in rates)
    return shlex.join(
        ["python", "-m", "gpucnn.run", "-m", *kept, f"optimizer.lr={lrs}", "train.repeats=3"]
    )


def _write_steps(result: lr_range.RangeTest, path: Path) -> None:
    """lr_find.csv: each step's number (from 1), rate, loss and smoothed loss (empty where the
    window of steps centred on it is not whole)."""
    half, smoothed = result.width // 2, result.smoothed
    rows = [
        {"step": i + 1, "lr": float(lr), "loss": float(loss)}
        for i, (lr, loss) in enumerate(zip(result.lrs, result.losses))
    ]
    for row, value in zip(rows[half:], smoothed):
        row["smoothed"] = float(value)
    write_csv(path, rows, ["step", "lr", "loss", "smoothed"])


def _plot(result: lr_range.RangeTest, path: Path, title: str) -> None:
    """lr_find.png: each step's loss and the smoothed loss against the rate (log scale), the
    lowest and the suggested rate marked, the sweep's rates shaded."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(result.lrs, result.losses, color="0.7", lw=1, label="each step's loss")
    smoothed = result.smoothed
    ax.plot(result.smoothed_lrs, smoothed, color="C0", lw=2, label=f"mean of {result.width} steps")
    if result.lowest is not None:
        ax.axvline(result.lowest, color="C3", ls=":", label=f"lowest: {result.lowest:.2g}")
    if result.fell:
        ax.axvline(result.suggested, color="C2", ls="--", label=f"suggested: {result.suggested:g}")
        ax.axvspan(result.sweep[0], result.sweep[-1], color="C2", alpha=0.12, label="sweep")
    if len(smoothed):  # up to half again the highest before the lowest: the rise runs off it
        ax.set_ylim(0, 1.5 * smoothed[: int(smoothed.argmin()) + 1].max())
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (grows at every step)")
    ax.set_ylabel("training loss")
    ax.set_title(f"learning-rate range test: {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def summary_text(record: dict[str, Any]) -> list[str]:
    """What the test found, in lines to print: how far it went, the rate, the sweep to run."""
    c = record["config"]["lr_find"]
    stops = {
        "max_lr": f"it reached lr_find.max_lr={c['max_lr']:g}",
        "rose": f"the smoothed loss rose above {c['stop_factor']:g} times its lowest",
        "not_finite": "a loss was NaN or infinite",
    }
    taken = record["steps_taken"]
    lines = [f"range test: {taken} of {c['steps']} steps ({stops[record['stopped']]})"]
    lowest = record["lowest"]
    if lowest is None:
        return lines + [
            f"too few steps to smooth the loss over {record['width']}: lower lr_find.min_lr, "
            "so that the first steps train without diverging"
        ]
    if not record["fell"]:
        return lines + [
            f"the smoothed loss never fell below its first value: lower "
            f"lr_find.min_lr={c['min_lr']:g}, or check that the model learns this data at all"
        ]
    lines.append(
        f"the smoothed loss fell from {record['first_loss']:.3g} to {record['lowest_loss']:.3g}, "
        f"lowest at lr {lowest:.2g}: train at about a third of it, "
        f"optimizer.lr={record['suggested']:g}"
    )
    if record["stopped"] == "max_lr" and record["still_falling"]:
        lines.append(
            f"it was still falling at lr_find.max_lr={c['max_lr']:g}: raise it to see it turn"
        )
    lines += [
        "to compare it with a rate about 3x lower and 3x higher, 3 seeds each:",
        f"  {record['command']}",
    ]
    return lines


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="lr_find")
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        record = find(cfg, run_dir, list(hc.overrides.task))
    except KeyboardInterrupt:
        log.warning("interrupted: nothing written")
        raise SystemExit(exits.SIGNAL_BASE + signal.SIGINT) from None
    except Exception as exc:
        fail(exc, log, hc.mode == RunMode.MULTIRUN)
        return
    print("\n".join(summary_text(record)))
    print(f"written: {run_dir / 'lr_find.json'}, lr_find.csv, lr_find.png")
