"""The report's second question: which filter size, channels and pool size? The runs side by
side, accuracy against weights, multiply-adds per image and seconds per epoch, the effect of
each setting across the rest with its 95% interval (gpucnn.app.effects: a difference is
claimed only when the interval excludes zero), and the best setting on average with its cost:
chosen on validation accuracy where every run has one, so that its test accuracy is honest."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..document import Block
from ..effects import Effect, effects, ordered
from ..groups import FRONTIER_COSTS, frontier
from ..results import (
    ACCURACIES,
    COSTS,
    chosen_on,
    chosen_on_test,
    cost_axis,
    finite,
    not_recorded,
    pyplot,
    save_figure,
    setting_axis,
    setting_text,
)
from ..rundir import MISSING, as_now
from ..stats import estimate
from .curves import caption, plot_curves
from .runs import Run, accuracy_text, per_test_set

CURVES = 8  # settings drawn in the curves figure, the best first
# Beyond this many varying settings, a point in the cost figure is labelled with its run's name.
LABELLED_SETTINGS = 4
PANELS_PER_ROW = 4  # of the effects figure, one panel per setting
BARS = 6  # a numeric setting with more values than this is drawn as points, not bars
UNREAD = "-"  # a setting's value, shown for a run whose choices do not read it (an MLP's filter)


def _short(key: str) -> str:
    """A setting's name in sentences and labels: ``filter_size`` for model.filter_size."""
    return key.removeprefix("model.")


def _default(key: str) -> str | None:
    """The value the schema gives the setting ``key`` (model.activation: relu), as tables write
    it; None for a key it does not have."""
    try:
        return setting_text(as_now(key, MISSING))
    except (KeyError, TypeError):
        return None


def _point_labels(runs: list[Run], keys: list[str]) -> tuple[str, dict[str, str]]:
    """(what the cost figure's legend says a point is labelled with, each run's label by its
    name): its values of the varying ``keys``, or its name, as in the table, where more than
    LABELLED_SETTINGS vary and the values would not fit beside a point."""
    if len(keys) > LABELLED_SETTINGS:
        return "by its name in the table", {r.name: r.name for r in runs}
    values = {r.name: " / ".join(_value(r, k).replace(" ", "") for k in keys) for r in runs}
    return " / ".join(map(_short, keys)), values


def _value(run: Run, key: str) -> str:
    """How tables and labels show ``run``'s value of the setting ``key``."""
    return setting_text(run.settings[key]) if key in run.settings else UNREAD


def _varying(runs: list[Run]) -> list[str]:
    """The settings whose values differ between the ``runs`` that read them: the model's
    first, then the rest."""
    keys = sorted({k for run in runs for k in run.settings}, key=lambda k: (_short(k) == k, k))
    return [k for k in keys if len({_value(r, k) for r in runs if k in r.settings}) > 1]


def section(runs: list[Run], out: Path) -> list[Block]:
    blocks: list[Block] = [("h2", "2. Which filter size, channels and pool size?")]
    done = [
        r
        for r in runs
        if r.summary.get("status") == "ok" and finite(r.summary.get("test_accuracy"))
    ]
    return blocks + per_test_set(done, lambda group, suffix: _compare(group, out, suffix))


def _compare(done: list[Run], out: Path, suffix: str) -> list[Block]:
    """The comparison of the finished runs ``done``, all tested on the same images; its
    figures are written into ``out``, their names ending in ``suffix``."""
    blocks: list[Block] = []
    keys = _varying(done)
    advice = "run a sweep, e.g. `python -m gpucnn.run -m experiment=filter_pool_sweep`."
    if len(done) < 2:
        return blocks + [("p", f"Fewer than two finished runs: {advice}")]
    if not keys:  # seeds only
        return blocks + [("p", f"The {len(done)} finished runs share one setting: {advice}")]
    column = chosen_on([r.summary for r in done])
    done.sort(key=lambda r: -r.summary[column])
    accuracies = [c for c in ACCURACIES if any(finite(r.summary.get(c)) for r in done)]
    header = ["run", *keys, *(ACCURACIES[c].replace("validation", "val") for c in accuracies)]
    frozen = any(_learning(r) != r.summary["weights"] for r in done)  # a train.freeze sweep
    header += ["weights", *(["learning"] if frozen else []), "multiply-adds", "s / epoch"]
    rows = [
        [
            r.name,
            *[_value(r, k) for k in keys],
            *(f"{r.summary[c]:.4f}" if finite(r.summary.get(c)) else "" for c in accuracies),
            f"{r.summary['weights']:,}",
            *([f"{_learning(r):,}"] if frozen else []),
            _count(r.summary.get("multiply_adds")),
            f"{r.summary['seconds_per_epoch']:.2f}",
        ]
        for r in done
    ]
    blocks.append(("table", header, rows))

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(20, 5.5))
    legend, tags = _point_labels(done, keys)
    for ax, (x_key, x_label) in zip(axes, COSTS):
        shown = [r for r in done if finite(r.summary.get(x_key))]  # older runs lack some
        xs = [r.summary[x_key] for r in shown]
        accuracies = [r.summary["test_accuracy"] for r in shown]
        ax.scatter(xs, accuracies, label=f"a run, labelled {legend}")
        for r in shown:
            ax.annotate(
                tags[r.name],
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
    save_figure(fig, out / f"accuracy_vs_cost{suffix}.png")

    records = [
        {
            "settings": {_short(k): r.settings[k] for k in keys if k in r.settings},
            "seed": r.seed,
            "accuracy": r.summary["test_accuracy"],
        }
        for r in done
    ]
    down, across = -(-len(keys) // PANELS_PER_ROW), min(len(keys), PANELS_PER_ROW)
    fig, axes = plt.subplots(down, across, figsize=(5 * across, 4 * down), squeeze=False)
    for ax in axes.flat[len(keys) :]:  # the last row's unused places
        ax.set_visible(False)
    sentences = []
    for ax, full in zip(axes.flat, keys):
        key = _short(full)
        reading = [rec for rec in records if key in rec["settings"]]
        levels: dict[str, list[float]] = defaultdict(list)
        for rec in reading:
            levels[setting_text(rec["settings"][key])].append(rec["accuracy"])
        default = _default(full)
        values = ordered(set(levels), default)
        if _numbers(values) and len(values) > BARS:
            _scatter_effect(ax, levels, full)
        else:
            fits = [estimate(levels[v]) for v in values]
            bars = [f.half_width if finite(f.half_width) else 0.0 for f in fits]
            ax.bar(values, [f.mean for f in fits], yerr=bars, capsize=4,
                   label="mean over the other settings and seeds, 95% interval")  # fmt: skip
            ax.set_ylim(min(f.mean for f in fits) - 0.05, 1.0)
            ax.set_xlabel(full)
            ax.set_title(f"Effect of {key}")
        ax.set_ylabel("test accuracy (fraction)")
        ax.legend(fontsize=8)
        sentences += [e.sentence() for e in effects(reading, key, default)]
    fig.tight_layout()
    save_figure(fig, out / f"effects{suffix}.png")

    by_setting = _by_setting(done, keys)
    shown = sorted(by_setting.values(), key=_mean_of(column), reverse=True)[:CURVES]
    plot_curves(out / f"setting_curves{suffix}.png", {_setting(g, keys): g for g in shown})
    best, cheapest = _best_setting(by_setting, column)
    macs = best[0].summary.get("multiply_adds")
    costs = [f"{best[0].summary['weights']:,} weights"]
    costs += [f"{macs:,} multiply-adds per image"] if finite(macs) else []  # older runs: none
    seconds = statistics.mean(r.summary["seconds_per_epoch"] for r in best)
    text = (
        f"Best on average: {_setting(best, keys)} with test accuracy {accuracy_text(best)}"
        f"{_balanced_test(best)}, {', '.join(costs)} and {seconds:.2f} s per epoch"
        f"{_epochs_taken(best)}."
    )
    if not chosen_on_test(column):
        text += (
            f" Chosen on its {ACCURACIES[column]}, {accuracy_text(best, column)}, so that the "
            "test accuracy is not flattered by the choice."
        )
    else:
        text += f" {chosen_on_test(column)}"
    lead = _lead(best, by_setting, keys, column)
    text += f" {lead.sentence()}." if lead else ""
    if cheapest is not best:
        text += (
            f" Within one point of it in {ACCURACIES[column]}, {_setting(cheapest, keys)}, at "
            f"{accuracy_text(cheapest, column)}, needs only "
            f"{cheapest[0].summary['weights']:,} weights."
        )
    text += _worth_their_arithmetic(by_setting, keys, column)
    blocks += [
        ("p", text),
        (
            "p",
            "Each setting against its first value, on runs that agree in everything else "
            "(the other settings and the seed), in accuracy points:",
        ),  # fmt: skip
        ("list", sentences or ["No pairs of runs that differ in one setting only."]),
        (
            "img",
            f"accuracy_vs_cost{suffix}.png",
            "Test accuracy against weights, arithmetic and time",
        ),
        (
            "img",
            f"effects{suffix}.png",
            "Effect of each setting, over the others, with 95% intervals",
        ),
        (
            "img",
            f"setting_curves{suffix}.png",
            caption(sum(shown, []))
            + (f", the {CURVES} best settings" if len(by_setting) > CURVES else ", each setting"),
        ),
    ]
    return blocks


def _numbers(values: list[str]) -> bool:
    """Whether every one of a setting's ``values`` is a number."""
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def _scatter_effect(ax: Any, levels: dict[str, list[float]], key: str) -> None:
    """A setting of many numeric values (an Optuna search's learning rates), each run's
    accuracy against its value: a bar per value would be a bar per run, their labels on top
    of each other."""
    xs = [float(v) for v, accuracies in levels.items() for _ in accuracies]
    ys = [a for accuracies in levels.values() for a in accuracies]
    ax.scatter(xs, ys, label="a run")
    setting_axis(ax, xs, key, at_values=False)  # values of a search: no round numbers
    ax.set_title(f"Accuracy against {_short(key)}")


def _learning(run: Run) -> int:
    """How many of a run's weights learn (all but train.freeze's; older runs: all)."""
    return run.summary.get("learning_weights", run.summary["weights"])


def _by_setting(done: list[Run], keys: list[str]) -> dict[tuple, list[Run]]:
    """The runs of each setting (their values of ``keys``), its seeds together."""
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for r in done:
        groups[tuple(_value(r, k) for k in keys)].append(r)
    return groups


def _mean_of(column: str) -> Callable[[list[Run]], float]:
    """The mean of ``column`` over a setting's runs, as a function of the runs."""
    return lambda runs: statistics.mean(r.summary[column] for r in runs)


def _best_setting(groups: dict[tuple, list[Run]], column: str) -> tuple[list[Run], list[Run]]:
    """The runs of the setting with the best mean ``column`` accuracy, and the runs of the
    cheapest setting (fewest weights) whose mean is within one point of it."""
    mean = _mean_of(column)
    best = max(groups.values(), key=mean)
    close = [g for g in groups.values() if mean(g) >= mean(best) - 0.01]
    return best, min(close, key=lambda g: g[0].summary["weights"])


def _worth_their_arithmetic(groups: dict[tuple, list[Run]], keys: list[str], column: str) -> str:
    """`` Worth their multiply-adds ...: A at 434,240 (0.835), B at ...``: the settings that no
    other ranks as high for fewer multiply-adds, cheapest first (groups.frontier); "" where
    the settings do not differ in cost, or older runs did not count their multiply-adds."""
    costs = [
        {
            column: _mean_of(column)(runs),
            "weights": runs[0].summary["weights"],
            "multiply_adds": runs[0].summary.get("multiply_adds"),
            "seconds_per_epoch": statistics.mean(r.summary["seconds_per_epoch"] for r in runs),
            "runs": runs,
        }
        for runs in groups.values()
    ]
    frontier(costs, [], column)
    worth = [c for c in costs if FRONTIER_COSTS["multiply_adds"] in c.get("frontier", "")]
    if len(worth) < 2:  # no choice of cost to make
        return ""
    listed = "; ".join(
        f"{_setting(c['runs'], keys)} at {c['multiply_adds']:,} ({c[column]:.3f})"
        for c in sorted(worth, key=lambda c: c["multiply_adds"])
    )
    return (
        f" Worth their multiply-adds per image, as no other setting ranks as high for fewer (on "
        f"the means of {ACCURACIES[column]}): {listed}."
    )


def _balanced_test(runs: list[Run]) -> str:
    """`` and balanced test accuracy 0.802 ...``, the runs' where their test classes are of
    unequal sizes; else ""."""
    if not all(finite(r.summary.get("test_balanced_accuracy")) for r in runs):
        return ""
    return f" and balanced test accuracy {accuracy_text(runs, 'test_balanced_accuracy')}"


def _lead(
    best: list[Run], groups: dict[tuple, list[Run]], keys: list[str], column: str
) -> Effect | None:
    """How far ``best`` leads the next best setting in ``column``, in points, on runs paired by
    seed: whether the best is told apart from the rest at all. None where there is no other
    setting, or no seed that both ran."""
    others = [g for g in groups.values() if g is not best]
    if not others:
        return None
    runner_up = max(others, key=_mean_of(column))
    mine = {r.seed: r.summary[column] for r in best if r.seed is not None}
    diffs = [100 * (mine[r.seed] - r.summary[column]) for r in runner_up if r.seed in mine]
    if not diffs:
        return None
    ours, theirs = _setting(best, keys), _setting(runner_up, keys)
    subject = f"Against the next best, {theirs}, in {ACCURACIES[column]} by seed"
    return Effect("", ours, theirs, estimate(diffs), subject)


def _count(value: Any) -> str:
    """A count with thousands separators; blank where a run did not record it."""
    return f"{value:,}" if finite(value) else ""


def _epochs_taken(runs: list[Run]) -> str:
    """ ", over 7.5 epochs on average (train.patience=2)" for runs that stop early: the
    epochs they take are then part of a setting's cost; else ""."""
    patience = runs[0].summary.get("config", {}).get("train", {}).get("patience")
    epochs = [r.summary.get("epochs_completed") for r in runs]
    if patience is None or not all(isinstance(n, int) for n in epochs):
        return ""
    return f", over {statistics.mean(epochs):.3g} epochs on average (train.patience={patience})"


def _setting(runs: list[Run], keys: list[str]) -> str:
    """``filter_size=5, pool_size=2``: the setting that ``runs`` share (of ``keys``, those
    they read)."""
    return ", ".join(f"{_short(k)}={_value(runs[0], k)}" for k in keys if k in runs[0].settings)
