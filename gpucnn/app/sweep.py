"""Sweep summaries: one row per setting (its runs over seeds grouped, with intervals) and one
row per job, best first, as CSV and Markdown, and a labelled plot with error bars.

Written by a Hydra callback at the end of every multirun, and by ``python -m gpucnn.summarize``
for a sweep that was interrupted or is still running.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..fileio import write_text
from . import exits
from .groups import (
    BALANCED,
    COLUMNS,
    FRONTIER_COSTS,
    by_test_set,
    group,
    ranked_what,
    settings_of,
    shown,
    test_set_keys,
)
from .results import (
    ACCURACIES,
    COSTS,
    JOBS,
    chosen_on,
    chosen_on_test,
    cost_axis,
    counted,
    finite,
    not_recorded,
    parse_overrides,
    pyplot,
    read_overrides,
    read_summary,
    run_dirs,
    save_figure,
    setting_axis,
    setting_text,
    write_csv,
)
from .rundir import refusal

# The names of the settings under sweep.png's panels (_in_columns), 8-point monospace: inches.
NAMES_PER_COLUMN = 20
NAME_LINE = 0.14
NAME_CHARACTER = 0.07
FIXED = ["job", "status", "test_accuracy", "test_balanced_accuracy", "val_accuracy"]
FIXED += ["val_balanced_accuracy", "weights", "multiply_adds", "seconds_per_epoch"]
FIXED += ["epochs_completed", "reason"]
#: The accuracy columns of the table of settings, by the prefix of their groups' figures.
GROUPED = {"test accuracy": "test", "balanced test accuracy": "test_balanced",
           "val accuracy": "val", "balanced val accuracy": "val_balanced"}  # fmt: skip


def collect(sweep_dir: str | Path) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """One row per job, best first (on results.chosen_on's accuracy) within each test set
    (jobs a cluster has not started yet, listed in jobs.json, included); the keys whose values
    differ between jobs, in order of appearance; and the overrides all jobs share."""
    rows, keys = [], []
    submitted = _submitted(Path(sweep_dir))
    for job_dir in run_dirs(sweep_dir):
        found = read_summary(job_dir)
        summary = found or {"status": "running"}
        slurm = submitted.pop(job_dir.name, {}).get("state")
        if slurm in ("pending", "running") and summary["status"] == "stopped":
            summary = {**summary, "status": slurm}  # requeued, or on a node whose lock we miss
        overrides = read_overrides(job_dir)
        refused = refusal(job_dir, sweep_dir, found)
        if refused:  # what is in the directory is another run's, not this job's
            summary = {"status": "refused", "reason": refused["reason"]}
            overrides = refused["overrides"]
        swept = parse_overrides(overrides)
        keys += [k for k in swept if k not in keys]
        row = {"job": job_dir.name, **swept}
        row.update({k: summary.get(k) for k in FIXED[1:]})
        rows.append(row)
    for name, job in submitted.items():  # submitted, no directory yet
        swept = parse_overrides(job["overrides"])
        keys += [k for k in swept if k not in keys]
        rows.append({"job": name, **swept, "status": job.get("state") or "not started"})

    column = chosen_on(rows)

    def rank(row):
        acc = row.get(column)
        return (row["status"] != "ok", -(acc if finite(acc) else -1.0))  # NaN is never best

    rows.sort(key=rank)
    varying = [k for k in keys if len({str(r.get(k)) for r in rows}) > 1]
    rows = by_test_set(rows, varying)
    common = {k: rows[0][k] for k in keys if k not in varying and rows}
    for row in rows:
        for k in common:
            del row[k]
    return rows, varying, common


def best_run(sweep_dir: Path, rows: list[dict[str, Any]] | None = None) -> str | None:
    """``sweep_dir/5 (its best on validation accuracy 0.8610; test accuracy 0.8500)``: the
    finished job that collect ranks first (``rows``, collect's, where the caller has them),
    with its accuracies; None if no job ended ok."""
    rows = collect(sweep_dir)[0] if rows is None else rows
    if not rows or rows[0]["status"] != "ok":
        return None
    column = chosen_on(rows)
    said = [
        f"{ACCURACIES[c]} {rows[0][c]:.4f}"
        for c in dict.fromkeys((column, "test_accuracy", "test_balanced_accuracy"))
        if finite(rows[0].get(c))
    ]
    return f"{sweep_dir / rows[0]['job']} (its best on {'; '.join(said)})"


def _submitted(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """The jobs a cluster launcher submitted (jobs.json), by job number, each with its Slurm
    state ("pending", "running", ...) while squeue still lists it."""
    try:
        jobs = {str(j["job"]): j for j in json.loads((sweep_dir / JOBS).read_text())}
    except (OSError, ValueError, TypeError, KeyError):
        return {}
    states = slurm_states([j["slurm_id"] for j in jobs.values()])
    for job in jobs.values():
        job["state"] = states.get(job["slurm_id"])
    return jobs


def slurm_states(ids: list[str]) -> dict[str, str]:
    """{job id: state in lower case} of the jobs squeue lists ({} without Slurm)."""
    if not ids:
        return {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(ids)],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    pairs = (line.split() for line in out.splitlines())
    return {p[0]: p[1].lower() for p in pairs if len(p) == 2}


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return setting_text(value).replace("|", "\\|").replace("\n", " ")


def markdown(
    rows: list[dict[str, Any]], keys: list[str], common: dict[str, str], title: str, column: str
) -> str:
    """The per-run table (sweep_runs.md), ranked on ``column`` (results.chosen_on)."""
    cols = ["job", *keys, *FIXED[1:]]
    what = f"{counted(len(rows), 'job')}, {ranked_what(keys, f'best {ACCURACIES[column]}')}"
    return _table(title, what, common, cols, rows, lambda row, col: _fmt(row.get(col)), column)


def grouped_markdown(
    groups: list[dict[str, Any]], keys: list[str], common: dict[str, str], title: str, column: str
) -> str:
    """The table of settings (sweep_summary.md), ranked on ``column`` (results.chosen_on):
    accuracies as mean ± the half-width of the mean's 95% interval over the runs with that
    setting."""
    cols = [*settings_of(keys), "runs", "status", *GROUPED, "weights", "multiply_adds",
            "seconds_per_epoch", "epochs_completed", "frontier", "jobs", "reason"]  # fmt: skip

    def cell(row: dict[str, Any], col: str) -> str:
        if col.endswith(" accuracy"):
            p = GROUPED[col]
            return shown(row[f"{p}_accuracy"], row[f"{p}_low"], row[f"{p}_high"])
        if col == "epochs_completed" and finite(row.get(col)):
            return f"{row[col]:.3g}"  # a mean of whole epochs: 10, or 7.33 where runs stopped early
        return _fmt(row.get(col))

    ranked = ranked_what(keys, f"best mean {ACCURACIES[column]}")
    what = (
        f"{counted(len(groups), 'setting')}, {ranked}; accuracy: the mean over the runs ± the "
        "half-width of its 95% interval (Student's t; none from a single run)"
    )
    if any("frontier" in g for g in groups):
        what += "; frontier: the costs at which no other setting ranks as high for less"
    return _table(title, what, common, cols, groups, cell, column)


def _accuracy(col: str) -> str | None:
    """The key in ACCURACIES of a table's column (``val_accuracy`` or ``val accuracy``), or
    None for a column of something else."""
    key = f"{GROUPED[col]}_accuracy" if col in GROUPED else col
    return key if key in ACCURACIES else None


def present(cols: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """``cols`` without those of a balanced accuracy that no row has (the classes of its
    images were of equal sizes, where it is the accuracy), and without the frontier where no
    row has one (groups.frontier)."""
    absent = [p for p in BALANCED if not any(finite(row.get(f"{p}_accuracy")) for row in rows)]
    return [
        c
        for c in cols
        if not any(c.startswith(p) or _accuracy(c) == f"{p}_accuracy" for p in absent)
        and (c != "frontier" or any(c in row for row in rows))
    ]


def _ranking_first(cols: list[str], column: str) -> list[str]:
    """``cols`` with their accuracies reordered: the one that ranks (``column``) first, then
    the other of its images (validation or test), then the rest, in the order of ACCURACIES."""
    images = column.split("_")[0]

    def order(c: str) -> tuple[bool, bool, int]:
        key = _accuracy(c)
        return key != column, not key.startswith(images), list(ACCURACIES).index(key)

    accuracies = [c for c in cols if _accuracy(c)]
    ordered = iter(sorted(accuracies, key=order))
    return [next(ordered) if c in accuracies else c for c in cols]


def _table(
    title: str, what: str, common: dict[str, str], cols: list[str], rows, cell, column: str
) -> str:
    shared = ", ".join(f"`{k}={v}`" for k, v in common.items()) or "none"
    warning = chosen_on_test(column)
    cols = _ranking_first(present(cols, rows), column)
    lines = [
        f"# {title}",
        "",
        f"{what}. Overrides every job shares: {shared}.",
        "",
        *([warning, ""] if warning else []),
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(cell(r, c) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(path: Path, groups: list[dict[str, Any]], keys: list[str], title: str) -> None:
    """Mean test accuracy against weight count, multiply-adds per image and time per epoch: one
    point per setting that has a finished run and the figure on the axis (older summaries have
    no multiply-adds), with the mean's 95% interval as an error bar; first, against the swept
    setting itself when it is one number (numeric_setting), joined as a curve. Points are
    numbered as the settings table orders them (best first), and the numbers are spelt out
    under the panels: settings written out beside every point ran into each other. A cost's
    panel rings the settings worth that cost (groups.frontier)."""
    panels = [([g.get(k) for g in groups], label, cost_axis, k) for k, label in COSTS]
    numeric = numeric_setting(groups, keys)
    if numeric:
        panels.insert(0, (numeric[1], numeric[0], setting_axis, None))
    names = [
        f"{number}: " + ", ".join(f"{k}={setting_text(g[k])}" for k in settings_of(keys))
        for number, g in enumerate(groups, 1)
    ]
    width = 6.7 * len(panels)  # inches
    legend, lines = _in_columns(names, width)
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(width, 6 + NAME_LINE * lines), sharey=True, layout="constrained"
    )
    split = test_set_keys(keys)
    test_sets = [", ".join(f"{k}={setting_text(g[k])}" for k in split) for g in groups]
    for ax, (xs_of_groups, label, axis, cost) in zip(axes, panels):
        done = [
            (number, g, x)
            for number, (g, x) in enumerate(zip(groups, xs_of_groups), 1)
            if finite(g["test_accuracy"]) and finite(x)
        ]
        xs = [x for _, _, x in done]
        # a colour per test set: accuracies on other test images do not compare
        for colour, test_set in enumerate(dict.fromkeys(test_sets)):
            mine = [(n, g, x) for n, g, x in done if test_sets[n - 1] == test_set]
            _points(ax, mine, f"C{colour}", test_set or None, curve=axis is setting_axis)
        worth = [(g, x) for _, g, x in done if _worth(g, cost)]
        _frontier(ax, worth)
        axis(ax, xs, label)
        if (split or worth) and done:
            ax.legend(fontsize=8, title="test set" if split else None, title_fontsize=8)
        ax.grid(alpha=0.3)
        if not done and axis is cost_axis:
            not_recorded(ax)
    axes[0].set_ylabel("mean test accuracy (fraction), 95% interval")
    bottom, top = axes[0].get_ylim()  # an interval of few seeds may reach past 0 or 1
    axes[0].set_ylim(max(bottom, -0.01), min(top, 1.01))
    fig.suptitle(f"{title}: a point per setting, numbered as in sweep_summary.md")
    fig.supxlabel(legend, fontsize=8, ha="left", x=0.01, family="monospace")
    save_figure(fig, path)


def _points(
    ax: Any, done: list[tuple[int, dict, float]], colour: str, label: str | None, curve: bool
) -> None:
    """Each (number, setting, x) of ``done`` as its mean test accuracy with its 95% interval,
    numbered; joined as a curve for ``curve``."""
    if not done:
        return
    xs, means = [x for _, _, x in done], [g["test_accuracy"] for _, g, _ in done]
    bars = [
        g["test_high"] - m if finite(g["test_high"]) else 0.0 for (_, g, _), m in zip(done, means)
    ]
    if curve:
        ax.plot(*zip(*sorted(zip(xs, means))), color=colour, alpha=0.4)
    ax.errorbar(xs, means, yerr=bars, fmt="o", color=colour, ecolor=colour, capsize=3, label=label)
    for (number, _, _), x, y in zip(done, xs, means):
        ax.annotate(str(number), (x, y), fontsize=8, xytext=(4, 3), textcoords="offset points")


def _in_columns(names: list[str], width: float) -> tuple[str, int]:
    """(the text, its number of lines) of ``names`` spelt out under a figure ``width`` inches
    wide: beyond NAMES_PER_COLUMN of them, in as many columns as fit side by side (in a
    monospaced font, whose characters are NAME_CHARACTER wide), so that an Optuna search's
    trials do not make a figure of mostly names."""
    size = max(map(len, names), default=0) + 3
    fit = max(1, int(width / (size * NAME_CHARACTER)))
    columns = min(fit, -(-len(names) // NAMES_PER_COLUMN)) or 1
    rows = -(-len(names) // columns)
    lines = ["".join(name.ljust(size) for name in names[row::rows]).rstrip() for row in range(rows)]
    return "\n".join(lines), rows


def _worth(group: dict[str, Any], cost: str | None) -> bool:
    """Whether ``group`` is on the frontier of accuracy and ``cost`` (groups.frontier)."""
    return cost is not None and FRONTIER_COSTS[cost] in group.get("frontier", "").split(", ")


def _frontier(ax: Any, worth: list[tuple[dict, float]]) -> None:
    """Ring each (setting, cost) of ``worth``, the settings on the frontier of a panel's cost."""
    if worth:
        ax.scatter([x for _, x in worth], [g["test_accuracy"] for g, _ in worth], s=220,
                   facecolors="none", edgecolors="black", linewidths=1.2,
                   label="worth its cost: no setting ranks as high for less")  # fmt: skip


def numeric_setting(
    groups: list[dict[str, Any]], keys: list[str]
) -> tuple[str, list[float]] | None:
    """(the key, its value in each group) when the sweep varies one setting (the seed apart)
    and every value of it is a number, two or more different ones: accuracy against it is the
    sweep's curve (a learning curve over data.limit_train, a learning rate's). Else None."""
    settings = settings_of(keys)
    if len(settings) != 1:
        return None
    try:
        values = [float(g[settings[0]]) for g in groups]
    except (TypeError, ValueError):  # a list, a name, a setting a job did not have
        return None
    return (settings[0], values) if len(set(values)) > 1 else None


def title(sweep_dir: Path) -> str:
    """What the sweep's tables and figure are headed with."""
    return f"sweep {sweep_dir.name}"


def tables(sweep_dir: Path) -> tuple[list[dict], list[dict], list[str], dict[str, str]]:
    """(the jobs' rows, the settings' rows, the swept keys, the Markdown tables by file name:
    sweep_runs.md and sweep_summary.md) of the sweep in ``sweep_dir``."""
    rows, keys, common = collect(sweep_dir)
    column = chosen_on(rows)
    groups = group(rows, keys, column)
    texts = {
        "sweep_runs.md": markdown(rows, keys, common, title(sweep_dir), column),
        "sweep_summary.md": grouped_markdown(groups, keys, common, title(sweep_dir), column),
    }
    return rows, groups, keys, texts


def summarize(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Write sweep_summary.csv / .md (one row per setting), sweep_runs.csv / .md (one row per
    job) and sweep.png into ``sweep_dir``; returns the jobs' rows."""
    sweep_dir = Path(sweep_dir)
    rows, groups, keys, texts = tables(sweep_dir)
    write_csv(sweep_dir / "sweep_runs.csv", rows, present(["job", *keys, *FIXED[1:]], rows))
    write_csv(
        sweep_dir / "sweep_summary.csv", groups, [*settings_of(keys), *present(COLUMNS, groups)]
    )
    for name, text in texts.items():
        write_text(sweep_dir / name, text)
    plot(sweep_dir / "sweep.png", groups, keys, title(sweep_dir))
    return rows


class SweepCheck(Callback):
    """Hydra callback: one line and exit code 2, before any job starts, when a sweep cannot do
    what it is asked: give train.repeats its seeds (repeats_conflict), or search for the best
    validation accuracy without validation images (search_conflict)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        why = repeats_conflict(config) or search_conflict(config)
        if why:
            print(f"invalid config: {why}", file=sys.stderr)
            raise SystemExit(exits.INVALID_CONFIG)


def is_optuna(config: DictConfig) -> bool:
    """Whether the multirun's sweeper is Optuna's (experiment=optuna_search)."""
    return "optuna" in str(config.hydra.sweeper.get("_target_", "")).lower()


def search_conflict(config: DictConfig) -> str | None:
    """Why an Optuna search cannot run, or None: it maximises each trial's validation
    accuracy, which data.val_fraction=0 leaves none of (every trial would fail)."""
    if is_optuna(config) and config.data.val_fraction == 0:
        return (
            "an Optuna search maximises each trial's validation accuracy, and "
            "data.val_fraction=0 holds out no validation images: give a fraction above 0 "
            "(0.1 by default), so that no trial is chosen on its test accuracy"
        )
    return None


def repeats_conflict(config: DictConfig) -> str | None:
    """Why a multirun's train.repeats would not repeat anything, or None: the seeds come from
    hydra.sweeper.params (conf/config.yaml), which a sweep of train.seed on the command line
    replaces, and which the Optuna sweeper would search over as one more parameter."""
    repeats = config.train.repeats
    if not isinstance(repeats, int) or repeats <= 1:  # 1, or a value the jobs refuse
        return None
    if is_optuna(config):
        return (
            f"train.repeats={repeats} with the Optuna sweeper would make the seed one more "
            "parameter to search (a trial is one run): leave train.repeats at 1, and repeat "
            f"the best settings afterwards in a basic sweep (-m ... train.repeats={repeats})"
        )
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    for override in overrides:
        if override.key_or_group == "train.seed" and override.is_sweep_override():
            return (
                f"train.repeats={repeats} and the sweep {override.input_line} both choose the "
                "seeds, and the sweep would replace the repeats: list every seed in train.seed "
                "with train.repeats=1, or give one first seed and train.repeats"
            )
    return None


class SweepSummaryCallback(Callback):
    """Hydra callback: summarise the sweep directory when a multirun ends; exit code 8 if not
    every job ended ok."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = summarize(sweep_dir)
        print(f"sweep summary ({counted(len(rows), 'job')}): {sweep_dir / 'sweep_summary.md'}")
        best = best_run(sweep_dir, rows)
        if best:
            print(f"best run: {best}")
        not_ok = Counter(r["status"] for r in rows if r["status"] != "ok")
        if not_ok:
            counts = ", ".join(f"{n} {status}" for status, n in not_ok.items())
            print(f"not every job ended ok ({counts}): see the reasons in that summary")
            raise SystemExit(exits.SOME_JOBS_FAILED)
