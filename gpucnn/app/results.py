"""What a run leaves behind: metrics.csv, summary.json, curves.png (all written atomically)."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..errors import GpucnnError
from ..fileio import atomic_write, is_locked, write_text
from . import exits

LOCK = ".lock"  # held by the process running in a run directory (gpucnn.app.rundir)
JOBS = "jobs.json"  # a cluster sweep's submitted jobs (hydra_plugins.gpucnn_plugins)

METRICS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "images_per_second",
)
#: metrics.csv's columns that only some runs have: the balanced validation loss and accuracy
#: (validation classes of unequal sizes) and the learning rate (optimizer.schedule).
SOME_METRICS = ("val_balanced_loss", "val_balanced_accuracy", "lr")


def metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    """metrics.csv's columns for the epochs' ``rows``: METRICS, then those of SOME_METRICS
    that they have."""
    present = {key for row in rows for key in row}
    return [*METRICS, *(key for key in SOME_METRICS if key in present)]


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A CSV with ``columns`` (missing values left empty), written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf of a nested config by its dotted key: {"model.filter_size": 3, ...}."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def cannot_write(where: Path, exc: OSError, more: str) -> int:
    """Say in one line that a command's files could not be written into ``where``, ending in
    ``more`` (another way out, or what happens instead); the exit code for it."""
    print(
        f"error: cannot write into {where} ({exc.strerror or exc}): free some space or fix the "
        f"permissions{more}",
        file=sys.stderr,
    )
    return exits.FILE_SYSTEM


def write_into(out: Path, work: Callable[[], Any]) -> tuple[Any, int]:
    """(what ``work`` returns, 0) for a command's work that writes its files into the folder
    ``out``; or (None, the exit code) after one line on stderr saying why not: ``out`` is a
    file, the work refused its input (GpucnnError), or ``out`` cannot be made or written."""
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file, not a directory: name a folder", file=sys.stderr)
        return None, exits.INVALID_CONFIG
    try:
        return work(), 0
    except GpucnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, exits.INVALID_CONFIG
    except OSError as exc:  # the folder cannot be made or written
        return None, cannot_write(out, exc, ", or name another folder with --out")


def setting_text(value: Any) -> str:
    """A setting's value as tables, figures and sentences show it: a fraction written with more
    than 6 significant digits (as Optuna samples them) to 6; a list as its items, unquoted, as
    Hydra's overrides write them ([Shirt], not ['Shirt']); None as null, as they write it;
    anything else (integers too) as it is."""
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(setting_text(v) for v in value) + "]"
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    if number.is_integer() or not math.isfinite(number):
        return text
    short = f"{number:.6g}"
    return text if float(short) == number else short


def split_counts(balance: dict[str, list[int]]) -> str:
    """A data set's images per class in each split, as its summary records them (balance):
    "train [29, 29]; val [3, 3]; test [8, 8]"."""
    return "; ".join(f"{split} {counts}" for split, counts in balance.items())


def counted(n: int, noun: str) -> str:
    """``1 run``, ``3 runs``: a count and its noun, in the singular or the plural."""
    return f"{n:,} {noun}{'s' * (n != 1)}"


def first_of(items: list[str], shown: int, sep: str = ", ") -> str:
    """The first ``shown`` of ``items`` joined by ``sep``, and how many more there are:
    ``a, b, c and 2 more``."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return sep.join(items[:shown]) + more


def finite(value: Any) -> bool:
    """Whether ``value`` is a real number (not None, NaN or infinite): what can be ranked."""
    return isinstance(value, (int, float)) and math.isfinite(value)


ACCURACIES = {
    "val_balanced_accuracy": "balanced validation accuracy",
    "val_accuracy": "validation accuracy",
    "test_balanced_accuracy": "balanced test accuracy",
    "test_accuracy": "test accuracy",
}


def chosen_on(summaries: list[dict[str, Any]]) -> str:
    """The accuracy that ranks runs and picks the best (a key of ACCURACIES): the first of them
    that every finished one of ``summaries`` has. The validation images' balanced accuracy where
    their classes are of unequal sizes (a class of many images would otherwise outweigh the
    rest: data.balanced=true may lower the accuracy on them while raising every class's
    recall), else their accuracy, else the test images' likewise (data.val_fraction=0 holds out
    none). The best of many test accuracies is high partly by luck that new images do not
    repeat: chosen on validation, the test accuracy stays honest."""
    done = [s for s in summaries if s.get("status") == "ok"]
    return next(
        (key for key in ACCURACIES if done and all(finite(s.get(key)) for s in done)),
        "test_accuracy",
    )


def chosen_on_test(column: str) -> str:
    """A warning for runs ranked on ``column`` where that is a test accuracy; else ""."""
    if not column.startswith("test"):
        return ""
    return (
        f"Ranked on {ACCURACIES[column]}, as not every finished run held out validation images "
        "(data.val_fraction=0): the best of them is flattered by being chosen on it."
    )


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A run's summary.json; None if it has none (yet); ``{"status": "unreadable", "reason":
    ...}`` if the file is there but cannot be read or is not a summary; status ``stopped`` if
    it says running but no process holds the run directory's lock (the run was killed)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"status": "unreadable", "reason": f"{path}: {exc}"}
    if not isinstance(summary, dict) or not isinstance(summary.get("status"), str):
        return {"status": "unreadable", "reason": f"{path} holds no run summary"}
    if summary["status"] == "running" and not is_locked(Path(run_dir) / LOCK):
        reason = "its process ended without a final status (killed?): resume with train.resume=true"
        return {**summary, "status": "stopped", "reason": reason}
    return summary


# Fonts with the scripts DejaVu Sans lacks (Chinese, Japanese, Korean), which the figures fall
# back to, where one is installed, for class names written in them (a folder named 猫).
WIDE_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
              "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
              "Microsoft YaHei", "Microsoft JhengHei", "PingFang SC", "Hiragino Sans",
              "Malgun Gothic", "Arial Unicode MS")  # fmt: skip


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed), its text in DejaVu
    Sans with the installed WIDE_FONTS behind it for the characters DejaVu Sans lacks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    wide = [name for name in WIDE_FONTS if name in installed]
    plt.rcParams["font.family"] = ["DejaVu Sans", *wide]
    # Some of those come in one weight only, which matplotlib takes after a warning each time.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    return plt


def save_figure(fig: Any, path: str | os.PathLike) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    pyplot().close(fig)


# What a setting costs, as its summary records it, and how the figures name it.
COSTS = (
    ("weights", "learnable weights"),
    ("multiply_adds", "multiply-adds per image"),
    ("seconds_per_epoch", "seconds per epoch"),
)


def cost_axis(ax: Any, values: list[float], label: str) -> None:
    """A log x axis for ``values`` of a cost, with a few round ticks labelled like 50k, 1.5M or
    0.2 (matplotlib's own labels of a range under a decade run into each other), and room on
    the right for the labels of the points."""
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log")
    ax.set_xlabel(f"{label} (log scale)")
    if not values:
        return
    lo, hi = min(values) / 1.3, max(values) * 1.6
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for steps in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7)):  # finer when the coarse give too few
        ticks = [m * 10.0**e for e in decades for m in steps if lo <= m * 10.0**e <= hi]
        if len(ticks) >= 3:
            break
    ax.set_xlim(lo, hi)
    ax.set_xticks(ticks, [_short(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


TICKED = 10  # a setting's axis is ticked at each of its values up to this many
SLANTED = 5  # beyond this many ticks, their labels are slanted so that they do not overlap


def setting_axis(ax: Any, values: list[float], key: str, at_values: bool = True) -> None:
    """An x axis for a setting's values, ticked at them (``at_values``, up to TICKED of them;
    else at round numbers): logarithmic where they are positive and span ten times or more
    (learning rates, data sizes), else linear."""
    from matplotlib.ticker import NullLocator

    ax.set_xlabel(key)
    if values and min(values) > 0 and max(values) >= 10 * min(values):
        if not at_values:
            cost_axis(ax, values, key)
            return
        ax.set_xscale("log")
        ax.set_xlabel(f"{key} (log scale)")
        ax.xaxis.set_minor_locator(NullLocator())
    if at_values and 1 < len(set(values)) <= TICKED:
        ticks = sorted(set(values))
        ax.set_xticks(ticks, [setting_text(f"{t:g}") for t in ticks])
        if len(ticks) > SLANTED:
            ax.tick_params(axis="x", labelrotation=35)


def _short(value: float) -> str:
    """1500000 -> 1.5M, 50000 -> 50k, 0.2 -> 0.2."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{unit}"
    return f"{value:g}"


def not_recorded(ax: Any) -> None:
    """Say on an empty panel why it is empty: no run's summary has its figure (summaries
    written before that figure was recorded)."""
    ax.text(0.5, 0.5, "not in these runs' summaries\n(written by an older gpucnn)",
            transform=ax.transAxes, ha="center", va="center", color="0.4")  # fmt: skip


def plot_curves(
    path: str | os.PathLike, rows: list[dict[str, Any]], title: str, kept: int | None = None
) -> None:
    """Loss and accuracy against epoch, training and validation, side by side, and the
    learning rate where it was scheduled (rows with ``lr``); ``kept``: the epoch whose weights
    the run kept, marked where it is not the last (train.patience)."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    rates = [r.get("lr") for r in rows]
    scheduled = bool(rows) and all(finite(lr) for lr in rates)
    fig, axes = plt.subplots(
        1, 2 + scheduled, figsize=(10 + 4 * scheduled, 4), layout="constrained"
    )
    ax_loss, ax_acc = axes[:2]
    epochs = [r["epoch"] for r in rows]
    if scheduled:
        axes[2].plot(epochs, rates, "-o", markersize=4)
        axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate by epoch")
        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[2].grid(alpha=0.3)
    for ax, metric, label in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        for split, style in (("train", "-o"), ("val", "--s")):
            values = [r.get(f"{split}_{metric}") for r in rows]
            if all(v is not None and math.isfinite(v) for v in values):
                ax.plot(epochs, values, style, label=f"{split}", markersize=4)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(
            f"{label} (mean over the split)" if metric == "loss" else "accuracy (fraction)"
        )
        if kept is not None and kept < len(rows):
            ax.axvline(kept, color="grey", linestyle=":", label=f"weights kept (epoch {kept})")
        ax.set_title(f"{label} by epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(textwrap.fill(title, 110))  # a run's overrides can be many: lines, not a band
    save_figure(fig, path)


# The results that the other Hydra commands write into folders of their own, which have a
# .hydra/ folder as a run's has: file -> the command.
OTHER_RESULTS = {"lr_find.json": "python -m gpucnn.lr_find", "bench.json": "python -m gpucnn.bench"}


def other_results(path: Path) -> str | None:
    """Why ``path`` is not a run's folder where another command wrote it: "it holds the
    results of python -m gpucnn.lr_find (lr_find.json), not a run's"; else None."""
    for name, command in OTHER_RESULTS.items():
        if (path / name).is_file() and not (path / "summary.json").is_file():
            return f"it holds the results of {command} ({name}), not a run's"
    return None


def run_dirs(path: str | Path) -> list[Path]:
    """The run directories at ``path``: itself when it is one (it has a .hydra/ folder or a
    summary.json, and is not another command's: other_results), else its subdirectories that
    are, in job order (0, 1, ..., 10)."""
    path = Path(path)

    def is_run(p: Path) -> bool:
        has = (p / ".hydra").is_dir() or (p / "summary.json").is_file()
        return has and other_results(p) is None

    if is_run(path):
        return [path]
    children = [p for p in path.iterdir() if p.is_dir() and is_run(p)] if path.is_dir() else []
    return sorted(children, key=lambda p: (len(p.name), p.name))


def no_runs(folder: Path, wanted: str) -> str:
    """Why ``folder``, which holds no run, cannot be read as ``wanted`` (what the command
    takes), naming the sweeps below it where it holds those (outputs/multiruns itself)."""
    other = other_results(folder)
    if other:
        return f"{folder}: {other}: give {wanted} (outputs/multiruns/<time>)"
    sweeps = sorted(p for p in folder.iterdir() if p.is_dir() and run_dirs(p))
    if sweeps:
        return (
            f"{folder} holds sweeps, not runs: give {wanted}, e.g. {sweeps[-1]} (all "
            f"{len(sweeps)}: {folder}/*)"
        )
    return f"{folder} holds no runs: give {wanted} (outputs/multiruns/<time>)"


def read_overrides(run_dir: str | Path) -> list[str]:
    """A run's command-line overrides: from its summary.json, else .hydra/overrides.yaml."""
    summary = read_summary(run_dir) or {}
    if summary.get("overrides") is not None:
        return list(summary["overrides"])
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """{'model.filter_size': '3', ...} from override strings (Hydra's +/~ prefixes dropped)."""
    out = {}
    for item in overrides:
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out
