"""``python -m gpucnn.report <run or sweep dirs...> [--out DIR]``: the lab's three questions,
answered from the user's own runs.

1. ReLU or sigmoid in the conv blocks? Gradient norm by layer depth, loss and accuracy curves,
   sparsity and saturation, time per step, and a conclusion in words made from the numbers
   (needs runs with diagnostics.enabled=true, e.g. ``-m experiment=relu_vs_sigmoid``).
2. Which filter size, channels, pool size? The runs side by side, accuracy against weights,
   multiply-adds per image and seconds per epoch, the effect of each swept setting across the
   rest with its 95% interval (gpucnn.app.effects: a difference is claimed only when the
   interval excludes zero), and the best setting on average with its cost. Every config key
   that differs between the runs is a setting (INERT ones aside), so runs pair only when all
   the others agree.
3. How many parameters, CNN against the fully connected networks? Per-layer counts (and
   multiply-adds) computed from the models, and what weight sharing saves and costs.

Writes report.md with PNG figures beside it, and report.html with the figures embedded.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from .. import presets
from ..fileio import write_text
from ..layers import Conv, Dense
from ..model import Model
from .diagnostics import COLUMNS as DIAGNOSTICS
from .document import Block, to_html, to_markdown
from .effects import effects, ordered
from .groups import SEED
from .results import (
    COSTS,
    METRICS,
    cost_axis,
    counted,
    finite,
    flat,
    not_recorded,
    pyplot,
    read_summary,
    run_dirs,
    save_figure,
)
from .rundir import identity
from .stats import estimate

# Config keys that change how a run is shown, saved, spread over cores or where its data is
# read from, not what it trains: runs that differ only in these are the same setting.
INERT = ("train.progress", "train.threads", "train.micro_batch", "train.eval_batch_size",
         "train.save_model", "train.checkpoint_every_steps", "diagnostics.", "data.root",
         "data.download", "data.url")  # fmt: skip


def _short(key: str) -> str:
    """A setting's name in sentences and labels: ``filter_size`` for model.filter_size."""
    return key.removeprefix("model.")


@dataclass
class Run:
    """One run directory's results."""

    path: Path
    summary: dict[str, Any]
    metrics: list[dict[str, float]] = field(default_factory=list)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # why a CSV of the run was left out

    @property
    def model_cfg(self) -> dict[str, Any]:
        return self.summary.get("config", {}).get("model", {})

    @cached_property
    def config(self) -> dict[str, Any]:
        """The run's config as dotted keys (``model.filter_size``, ``optimizer.lr``), but
        those that do not make a run what it is (rundir.identity)."""
        return flat(identity(self.summary.get("config") or {}))

    @property
    def settings(self) -> dict[str, Any]:
        """What the run trained: its config but the seed and the INERT keys."""
        return {k: v for k, v in self.config.items() if k != SEED and not k.startswith(INERT)}

    @property
    def seed(self) -> Any:
        return self.config.get(SEED, self.summary.get("seed"))

    @property
    def conv_layers(self) -> int:
        return sum(
            1 for layer in self.summary.get("layers", []) if layer["layer"].startswith("Conv")
        )

    @property
    def label(self) -> str:
        return f"{self.model_cfg.get('activation', '?')}, {self.conv_layers} conv layers"


def _read_csv(path: Path, columns: tuple[str, ...], text: tuple[str, ...] = ()) -> list[dict]:
    """The rows of a run's CSV with ``columns``, numbers as floats (empty cells None, the
    ``text`` columns as they are); [] if there is none. ValueError, naming the file and line,
    if it is damaged: not text, a column missing, a row cut short or too long, a number
    unreadable."""
    if not path.is_file():
        return []
    rows: list[dict] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        try:
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"no column {', '.join(missing)}")
            for row in reader:
                if None in row or None in row.values():
                    raise ValueError(f"line {reader.line_num}: {len(columns)} fields expected")
                try:
                    rows.append({k: v if k in text else _number(v) for k, v in row.items()})
                except ValueError as exc:
                    raise ValueError(f"line {reader.line_num}: {exc}") from None
        except csv.Error as exc:  # raised while reading the line after line_num
            raise ValueError(f"{path}: line {reader.line_num + 1}: {exc}") from None
        except ValueError as exc:  # UnicodeDecodeError too
            raise ValueError(f"{path}: {exc}") from None
    return rows


def _number(value: str) -> float | None:
    return float(value) if value != "" else None


def collect(paths: list[Path]) -> list[Run]:
    """The runs in ``paths``: each a run directory, or a sweep directory holding them; a run
    named twice (a sweep and one of its jobs, say) counts once. A damaged CSV is left out of
    its run, and the run says why (``damaged``)."""
    runs, seen = [], set()
    for path in paths:
        for run_dir in run_dirs(path):
            summary = read_summary(run_dir)
            if summary is None or run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            run = Run(run_dir, summary)
            for name, columns, text in (
                ("metrics", METRICS, ()),
                ("diagnostics", tuple(DIAGNOSTICS), ("layer", "kind")),
            ):
                try:
                    setattr(run, name, _read_csv(run_dir / f"{name}.csv", columns, text))
                except (OSError, ValueError) as exc:
                    run.damaged.append(str(exc))
            runs.append(run)
    return runs


def distinct(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(runs, repeats): of runs with the same settings and seed, which train the same network
    (a sweep run twice, say), one is kept: the newest finished one, else the newest. Counted
    as separate seeds, repeats would narrow every interval without adding information."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        same = [run.settings, run.seed]
        key = json.dumps(same, sort_keys=True, default=str) if run.settings else str(run.path)
        groups[key].append(run)
    kept, repeats = [], []
    for group in groups.values():
        best = max(group, key=lambda r: (r.summary.get("status") == "ok", _mtime(r.path)))
        kept.append(best)
        repeats += [r for r in group if r is not best]
    return [r for r in runs if r in kept], repeats


def _mtime(run_dir: Path) -> float:
    try:
        return (run_dir / "summary.json").stat().st_mtime
    except OSError:
        return 0.0


# ----- 1. ReLU vs sigmoid -----------------------------------------------------------------
def _first_epoch(run: Run, column: str, kinds: tuple[str, ...]) -> list[float]:
    """``column`` of the layers of ``kinds`` in epoch 1, in depth order."""
    return [
        r[column]
        for r in run.diagnostics
        if r["epoch"] == 1 and r["kind"] in kinds and r[column] is not None
    ]


def _last_epoch(run: Run) -> list[dict[str, Any]]:
    last = max(r["epoch"] for r in run.diagnostics)
    return [r for r in run.diagnostics if r["epoch"] == last]


def _conv_activations(run: Run) -> list[dict[str, Any]]:
    """Last-epoch rows of the activations that follow a conv layer, in depth order."""
    rows = {int(r["layer_index"]): r for r in _last_epoch(run)}
    return [rows[i + 1] for i, r in sorted(rows.items()) if r["kind"] == "Conv" and i + 1 in rows]


def relu_vs_sigmoid(runs: list[Run], out: Path) -> list[Block]:
    blocks: list[Block] = [("h2", "1. ReLU or sigmoid in the convolutional blocks?")]
    diag = [r for r in runs if r.diagnostics and r.summary.get("status") == "ok"]
    if not diag:
        return blocks + [
            (
                "p",
                "No run here has diagnostics. Run `python -m gpucnn.run -m "
                "experiment=relu_vs_sigmoid` and pass its sweep directory.",
            )
        ]
    diag.sort(key=lambda r: (r.conv_layers, r.model_cfg.get("activation", "")))
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 5))
    groups = _by_label(diag)
    for label, group in groups.items():
        norms = _mean_by_position(
            [_first_epoch(r, "grad_norm_W", ("Conv", "Dense")) for r in group]
        )
        style = "-o" if group[0].model_cfg.get("activation") == "relu" else "--s"
        ax.plot(range(1, len(norms) + 1), norms, style, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("parameter layer, from the input (convolutions first, then dense)")
    ax.set_ylabel("weight gradient L2 norm, epoch 1 mean (log scale)")
    ax.set_title("Gradient norm by layer depth")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save_figure(fig, out / "gradient_norms.png")

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.5))
    for label, group in _by_label(diag).items():
        for ax, column, bounds in ((ax_loss, "val_loss", (0, math.inf)),
                                   (ax_acc, "val_accuracy", (0, 1))):  # fmt: skip
            _mean_with_band(ax, group, column, label, bounds)
    for ax, what in (
        (ax_loss, "validation loss (cross-entropy)"),
        (ax_acc, "validation accuracy (fraction)"),
    ):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(what + ", mean over seeds")
        ax.set_title(what.split(" (")[0].capitalize() + " by epoch (band: 95% interval)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, out / "curves.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    panels = (
        (
            axes[0],
            "zero_fraction",
            ("relu",),
            "Sparsity: exact zeros after ReLU",
            "fraction of activations exactly 0",
        ),
        (
            axes[1],
            "saturated_fraction",
            ("sigmoid", "tanh"),
            "Saturation: sigmoid < 0.01 or > 0.99, tanh beyond +-0.99",
            "fraction saturated",
        ),
    )
    for ax, column, names, title, ylabel in panels:
        shown = [(k, g) for k, g in groups.items() if g[0].model_cfg.get("activation") in names]
        width = 0.8 / max(len(shown), 1)
        top = 0.0
        for k, (label, group) in enumerate(shown):
            values = _mean_by_position(
                [[a[column] or 0 for a in _conv_activations(r)] for r in group]
            )
            xs = [i + 1 + (k - (len(shown) - 1) / 2) * width for i in range(len(values))]
            ax.bar(xs, values, width, label=label)
            top = max([top, *values])
        ax.set_ylim(0, min(1.0, max(0.05, 1.25 * top)))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("conv block, from the input")
        ax.set_ylabel(ylabel + " (last epoch)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if shown:
            ax.legend(fontsize=8)
        if shown and top == 0:  # bars of height 0 draw nothing: say why the panel is empty
            ax.text(0.5, 0.5, "0 in every block", transform=ax.transAxes, ha="center",
                    color="0.4")  # fmt: skip
    save_figure(fig, out / "sparsity_saturation.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    kinds = ("Conv", "relu", "sigmoid", "MaxPool", "Dense")
    bottom = [0.0] * len(groups)
    for kind in kinds:
        ms = [
            statistics.mean(
                sum(
                    (r["forward_ms"] or 0) + (r["backward_ms"] or 0)
                    for r in _last_epoch(run)
                    if r["kind"] == kind
                )
                for run in group
            )
            for group in groups.values()
        ]
        if any(ms):
            ax.bar(list(groups), ms, bottom=bottom, label=kind)
            bottom = [b + m for b, m in zip(bottom, ms)]
    ax.set_ylabel("milliseconds per instrumented step (forward + backward)")
    ax.set_title("Time per training step by layer type")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8)
    save_figure(fig, out / "step_time.png")

    blocks += [("p", line) for line in _activation_findings(diag)]
    blocks += [
        ("img", "gradient_norms.png", "Gradient norm of each layer's weights, by depth"),
        ("img", "curves.png", "Validation loss and accuracy by epoch"),
        ("img", "sparsity_saturation.png", "Sparsity and saturation after each conv block"),
        ("img", "step_time.png", "Time per step by layer type"),
    ]
    return blocks


def _by_label(runs: list[Run]) -> dict[str, list[Run]]:
    """The runs of each setting (activation and depth), its seeds together, in order."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.label].append(run)
    return groups


def _mean_by_position(lists: list[list[float]]) -> list[float]:
    """The element-wise mean of equally long lists (one per seed of a setting)."""
    return [statistics.mean(values) for values in zip(*lists)]


def _mean_with_band(
    ax: Any, runs: list[Run], column: str, label: str, bounds: tuple[float, float]
) -> None:
    """``column`` by epoch: the mean over ``runs`` as a line, its 95% interval as a band, cut
    to the ``bounds`` the column's values lie in (an interval of few seeds can pass them)."""
    epochs = sorted({m["epoch"] for run in runs for m in run.metrics})
    fits = [
        estimate([m[column] for run in runs for m in run.metrics if m["epoch"] == e])
        for e in epochs
    ]
    (line,) = ax.plot(epochs, [f.mean for f in fits], "-o", markersize=3,
                      label=f"{label} ({counted(len(runs), 'run')})")  # fmt: skip
    if len(runs) > 1:
        low, high = bounds
        ax.fill_between(epochs, [max(f.low, low) for f in fits], [min(f.high, high) for f in fits],
                        color=line.get_color(), alpha=0.2)  # fmt: skip


def _activation_findings(runs: list[Run]) -> list[str]:
    """Sentences comparing ReLU and sigmoid runs of the same depth, from their numbers (means
    over the seeds of each)."""
    by_depth: dict[int, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        by_depth[run.conv_layers][run.model_cfg.get("activation")].append(run)
    lines = []
    for depth, pair in sorted(by_depth.items()):
        if not {"relu", "sigmoid"} <= pair.keys():
            continue
        relu, sig = pair["relu"], pair["sigmoid"]
        mean = statistics.mean
        g_relu = mean(_first_epoch(r, "grad_norm_W", ("Conv",))[0] for r in relu)
        g_sig = mean(_first_epoch(r, "grad_norm_W", ("Conv",))[0] for r in sig)
        ratio = g_relu / g_sig if g_sig else math.inf
        relation = (
            f"{ratio:.0f}x smaller"
            if ratio >= 1.5
            else f"{1 / ratio:.1f}x larger"
            if ratio < 1 / 1.5
            else "about the same"
        )
        zeros = mean(a["zero_fraction"] for r in relu for a in _conv_activations(r))
        saturation = mean(a["saturated_fraction"] for r in sig for a in _conv_activations(r))
        t_relu = mean(r.summary.get("seconds_per_epoch", math.nan) for r in relu)
        t_sig = mean(r.summary.get("seconds_per_epoch", math.nan) for r in sig)
        if saturation >= 0.01:
            why = (
                f"sigmoid keeps {saturation:.1%} of them saturated, where its gradient all "
                "but vanishes"
            )
        else:
            why = (
                f"sigmoid's units are rarely saturated ({saturation:.1%}), so the shrinking "
                "comes from its derivative's ceiling of 0.25, compounding block after block"
            )
        lines.append(
            f"**{depth} conv layers.** The first conv layer's weight gradient is {relation} "
            f"with sigmoid than with ReLU ({g_sig:.2e} against {g_relu:.2e}, epoch 1). "
            f"Test accuracy: ReLU {_shown(relu)}, sigmoid {_shown(sig)}. ReLU leaves "
            f"{zeros:.0%} of the conv activations at exactly 0 (sparse); {why}. An epoch took "
            f"{t_relu:.2f} s with ReLU and {t_sig:.2f} s with sigmoid."
        )
    return lines or ["No ReLU and sigmoid runs of the same depth to compare."]


# ----- 2. Architecture ----------------------------------------------------------------------
def _varying(runs: list[Run]) -> list[str]:
    """The settings whose values differ between ``runs``: the model's first, then the rest."""
    keys = sorted({k for run in runs for k in run.settings}, key=lambda k: (_short(k) == k, k))
    return [k for k in keys if len({str(run.settings.get(k)) for run in runs}) > 1]


def architecture(runs: list[Run], out: Path) -> list[Block]:
    blocks: list[Block] = [("h2", "2. Which filter size, channels and pool size?")]
    done = [
        r
        for r in runs
        if r.summary.get("status") == "ok" and finite(r.summary.get("test_accuracy"))
    ]
    keys = _varying(done)
    advice = "run a sweep, e.g. `python -m gpucnn.run -m experiment=filter_pool_sweep`."
    if len(done) < 2:
        return blocks + [("p", f"Fewer than two finished runs: {advice}")]
    if not keys:  # seeds only
        return blocks + [("p", f"The {len(done)} finished runs share one setting: {advice}")]
    done.sort(key=lambda r: -r.summary["test_accuracy"])
    header = ["run", *keys, "test accuracy", "weights"]
    header += ["multiply-adds", "s / epoch"]
    rows = [
        [
            r.path.name,
            *[str(r.settings.get(k)) for k in keys],
            f"{r.summary['test_accuracy']:.4f}",
            f"{r.summary['weights']:,}",
            _count(r.summary.get("multiply_adds")),
            f"{r.summary['seconds_per_epoch']:.2f}",
        ]
        for r in done
    ]
    blocks.append(("table", header, rows))

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(20, 5.5))
    legend = " / ".join(map(_short, keys))
    for ax, (x_key, x_label) in zip(axes, COSTS):
        shown = [r for r in done if finite(r.summary.get(x_key))]  # older runs lack some
        xs = [r.summary[x_key] for r in shown]
        accuracies = [r.summary["test_accuracy"] for r in shown]
        ax.scatter(xs, accuracies, label=f"a run, labelled {legend}")
        for r in shown:
            tag = " / ".join(str(r.settings.get(k)).replace(" ", "") for k in keys)
            ax.annotate(
                tag,
                (r.summary[x_key], r.summary["test_accuracy"]),
                fontsize=7,
                xytext=(4, 2),
                textcoords="offset points",
            )
        cost_axis(ax, xs, x_label)
        ax.set_ylabel("test accuracy (fraction)")
        ax.set_title(f"Accuracy against {x_label}")
        ax.grid(alpha=0.3)
        if shown:
            ax.legend(fontsize=8, loc="best")
        else:
            not_recorded(ax)
    fig.tight_layout()
    save_figure(fig, out / "accuracy_vs_cost.png")

    records = [
        {
            "settings": {_short(k): r.settings.get(k) for k in keys},
            "seed": r.seed,
            "accuracy": r.summary["test_accuracy"],
        }
        for r in done
    ]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
    sentences = []
    for ax, full in zip(axes[0], keys):
        key = _short(full)
        levels: dict[str, list[float]] = defaultdict(list)
        for rec in records:
            levels[str(rec["settings"][key])].append(rec["accuracy"])
        values = ordered(set(levels))
        fits = [estimate(levels[v]) for v in values]
        bars = [f.half_width if finite(f.half_width) else 0.0 for f in fits]
        ax.bar(values, [f.mean for f in fits], yerr=bars, capsize=4,
               label="mean over the other settings and seeds, 95% interval")  # fmt: skip
        ax.set_ylim(min(f.mean for f in fits) - 0.05, 1.0)
        ax.set_xlabel(full)
        ax.set_ylabel("test accuracy (fraction)")
        ax.set_title(f"Effect of {key}")
        ax.legend(fontsize=8)
        sentences += [e.sentence() for e in effects(records, key)]
    save_figure(fig, out / "effects.png")

    best, cheapest = _best_setting(done, keys)
    macs = best[0].summary.get("multiply_adds")
    costs = [f"{best[0].summary['weights']:,} weights"]
    costs += [f"{macs:,} multiply-adds per image"] if finite(macs) else []  # older runs: none
    seconds = statistics.mean(r.summary["seconds_per_epoch"] for r in best)
    text = (
        f"Best on average: {_setting(best, keys)} with test accuracy {_shown(best)}, "
        f"{', '.join(costs)} and {seconds:.2f} s per epoch."
    )
    if cheapest is not best:
        text += (
            f" Within one point of it, {_setting(cheapest, keys)} ({_shown(cheapest)}) needs only "
            f"{cheapest[0].summary['weights']:,} weights."
        )
    blocks += [
        ("p", text),
        (
            "p",
            "Each setting against its first value, on runs that agree in everything else "
            "(the other settings and the seed), in accuracy points:",
        ),  # fmt: skip
        ("list", sentences or ["No pairs of runs that differ in one setting only."]),
        ("img", "accuracy_vs_cost.png", "Test accuracy against weights, arithmetic and time"),
        ("img", "effects.png", "Effect of each setting, over the others, with 95% intervals"),
    ]
    return blocks


def _best_setting(done: list[Run], keys: list[str]) -> tuple[list[Run], list[Run]]:
    """The runs of the setting with the best mean test accuracy, and the runs of the cheapest
    setting (fewest weights) whose mean is within one point of it."""
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for r in done:
        groups[tuple(str(r.settings.get(k)) for k in keys)].append(r)

    def mean(runs: list[Run]) -> float:
        return statistics.mean(r.summary["test_accuracy"] for r in runs)

    best = max(groups.values(), key=mean)
    close = [g for g in groups.values() if mean(g) >= mean(best) - 0.01]
    return best, min(close, key=lambda g: g[0].summary["weights"])


def _count(value: Any) -> str:
    """A count with thousands separators; blank where a run did not record it."""
    return f"{value:,}" if finite(value) else ""


def _setting(runs: list[Run], keys: list[str]) -> str:
    """``filter_size=5, pool_size=2``: the setting that ``runs`` share."""
    return ", ".join(f"{_short(k)}={runs[0].settings.get(k)}" for k in keys)


def _shown(runs: list[Run]) -> str:
    """``0.842 ± 0.010 (95% interval, 3 seeds)``, or the one run's accuracy."""
    e = estimate([r.summary["test_accuracy"] for r in runs])
    if e.n < 2:
        return f"{e.mean:.3f} (one run)"
    return f"{e.mean:.3f} ± {e.half_width:.3f} (95% interval, {e.n} seeds)"


# ----- 3. Parameters ------------------------------------------------------------------------
def _count_table(model: Model) -> tuple[list[str], list[list[str]]]:
    rows = []
    for layer, shape in zip(model.layers, model.shapes):
        if layer.params:
            rows.append(
                [
                    repr(layer),
                    str(shape),
                    f"{layer.params['W'].size:,}",
                    f"{layer.params['b'].size:,}",
                    f"{layer.multiply_adds(shape):,}",
                ]
            )
    weights, total = model.count_params(), model.count_params(bias=True)
    macs = model.count_multiply_adds()
    rows.append(["**total**", "", f"**{weights:,}**", f"**{total - weights:,}**", f"**{macs:,}**"])
    return ["layer", "output shape", "weights", "biases", "multiply-adds per image"], rows


def _dense_multiply_adds(model: Model) -> int:
    """The multiply-adds per image of the model's Dense layers."""
    pairs = zip(model.layers, model.shapes)
    return sum(layer.multiply_adds(shape) for layer, shape in pairs if isinstance(layer, Dense))


def parameters(runs: list[Run]) -> list[Block]:
    cnn = presets.lab_cnn3()
    models = [
        ("The lab CNN (lab_cnn3, 1x32x32 input, one output)", cnn),
        ("Fully connected 784-128-128-64-64-32-4", presets.lab_mlp4()),
        ("Fully connected 784-100-200-200-100-1", presets.lab_mlp1()),
    ]
    blocks: list[Block] = [("h2", "3. How many learnable parameters?")]
    summary_rows = []
    for title, model in models:
        header, rows = _count_table(model)
        blocks += [("h3", title), ("table", header, rows)]
        counts = (model.count_params(), model.count_params(bias=True), model.count_multiply_adds())
        summary_rows.append([title, *(f"{n:,}" for n in counts)])
    header = ["network", "weights only", "with biases", "multiply-adds per image"]
    blocks += [("h3", "Side by side"), ("table", header, summary_rows)]
    first = next(layer for layer in cnn.layers if isinstance(layer, Conv))
    dense = next(layer for layer in cnn.layers if isinstance(layer, Dense))
    c, h, w = cnn.input_shape
    out_c, out_h, out_w = cnn.shapes[cnn.layers.index(first)]
    n_in, n_out = c * h * w, out_c * out_h * out_w
    sharing = (
        f"Why convolution needs fewer: the first conv layer slides the same {out_c} filters "
        f"of {first.k}x{first.k}x{c} = {first.params['W'].size:,} weights over all "
        f"{out_h * out_w:,} positions of the {h}x{w} image (weight sharing), while a dense "
        f"layer producing the same {out_c}x{out_h}x{out_w} map would need {n_in:,} x "
        f"{n_out:,} = {n_in * n_out:,} weights. lab_cnn3 has {cnn.count_params():,} weights "
        f"in all, {dense.params['W'].size:,} of them in its first dense layer: pooling shrank "
        f"the map to {dense.n_in:,} features before any dense layer sees it. Sharing saves "
        f"weights, not arithmetic: the first conv layer uses each of its weights at all "
        f"{out_h * out_w:,} positions ({first.multiply_adds((out_c, out_h, out_w)):,} "
        f"multiply-adds per image), a dense layer each of its weights once; of "
        f"lab_cnn3's {cnn.count_multiply_adds():,} multiply-adds per image, its dense layers do "
        f"{_dense_multiply_adds(cnn):,}."
    )
    blocks.append(("p", sharing))
    run_cnns = {r.summary.get("weights"): r for r in runs if r.conv_layers}
    if run_cnns:
        lines = [f"{r.path.name}: {w:,} weights ({r.label})" for w, r in sorted(run_cnns.items())]
        blocks.append(("p", "The CNNs among these runs: " + "; ".join(lines) + "."))
    return blocks


def build(paths: list[Path], out: Path) -> Path:
    """Write the report for the runs under ``paths`` into ``out``; returns report.md's path."""
    runs, repeats = distinct(collect(paths))
    out.mkdir(parents=True, exist_ok=True)
    title = "What the runs say"
    sources = ", ".join(f"`{p}`" for p in paths)
    blocks: list[Block] = [("h1", title), ("p", f"{counted(len(runs), 'run')} from {sources}.")]
    damaged = "; ".join(why for run in runs for why in run.damaged)
    if damaged:
        why = f"Left out, damaged (rerun those runs, or restore the files): {damaged}."
        blocks.append(("p", why))
    if repeats:
        again = ", ".join(f"`{r.path}`" for r in repeats)
        why = f"Left out, the same config and seed as a run kept (a repeat, no new seed): {again}."
        blocks.append(("p", why))
    blocks += relu_vs_sigmoid(runs, out)
    blocks += architecture(runs, out)
    blocks += parameters(runs)
    write_text(out / "report.md", to_markdown(blocks))
    write_text(out / "report.html", to_html(blocks, out, title))
    return out / "report.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpucnn.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # examples one per line
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories")
    parser.add_argument(
        "--out", type=Path, help="report directory (default outputs/reports/<time>)"
    )
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    out = args.out or Path("outputs/reports") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file, not a directory: name a new folder", file=sys.stderr)
        return 2
    if (out / "report.md").exists():
        print(f"error: {out} already holds a report: name a new --out folder", file=sys.stderr)
        return 2
    path = build(args.dirs, out)
    print(f"report: {path} and {path.with_suffix('.html')}")
    return 0
