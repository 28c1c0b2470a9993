"""The report's first question: ReLU or sigmoid in the conv blocks? Gradient norm by layer
depth, loss and accuracy curves, sparsity and saturation, time per step, and a conclusion in
words made from the numbers (from runs with diagnostics.enabled=true)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from ..document import Block
from ..results import pyplot, save_figure, setting_text
from .curves import caption, plot_curves
from .runs import Run, accuracy_text, per_test_set

ACTIVATIONS = ("relu", "sigmoid", "tanh")
COMPARED = ("model.activation", "model.hidden_activation")  # the settings this question compares


def _first_epoch(run: Run, column: str, kinds: tuple[str, ...]) -> list[float]:
    """``column`` of the layers of ``kinds`` in epoch 1, in depth order."""
    return [
        r[column]
        for r in run.diagnostics
        if r["epoch"] == 1 and r["kind"] in kinds and r[column] is not None
    ]


def _first_gradient(run: Run, kind: str) -> float | None:
    """The weight gradient norm of the run's first ``kind`` layer in epoch 1 (None if epoch 1
    has no sample of it)."""
    norms = _first_epoch(run, "grad_norm_W", (kind,))
    return norms[0] if norms else None


def _last_epoch(run: Run) -> list[dict[str, Any]]:
    last = max(r["epoch"] for r in run.diagnostics)
    return [r for r in run.diagnostics if r["epoch"] == last]


def _block_activations(run: Run) -> list[dict[str, Any]]:
    """Last-epoch rows of each block's activation (the first ReLU, sigmoid or tanh after each
    layer of the run's ``block_kind``), in depth order."""
    found, in_block = [], False
    for row in sorted(_last_epoch(run), key=lambda r: int(r["layer_index"])):
        if row["kind"] == run.block_kind:
            in_block = True
        elif in_block and row["kind"] in ACTIVATIONS:
            found.append(row)
            in_block = False
    return found


def section(runs: list[Run], out: Path) -> list[Block]:
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
    diag.sort(key=lambda r: (r.block_kind, r.depth, r.model_cfg.get("activation", "")))
    return blocks + per_test_set(diag, lambda group, suffix: _answer(group, out, suffix))


def _answer(diag: list[Run], out: Path, suffix: str) -> list[Block]:
    """The comparison of the runs with diagnostics ``diag``, all tested on the same images; its
    figures are written into ``out``, their names ending in ``suffix``."""
    blocks: list[Block] = []
    plt = pyplot()

    contexts = _contexts(diag)
    fig, ax = plt.subplots(figsize=(8, 5))
    groups = _by_label(diag, contexts)
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
    save_figure(fig, out / f"gradient_norms{suffix}.png")

    plot_curves(out / f"curves{suffix}.png", groups)

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
                [[a[column] or 0 for a in _block_activations(r)] for r in group]
            )
            xs = [i + 1 + (k - (len(shown) - 1) / 2) * width for i in range(len(values))]
            ax.bar(xs, values, width, label=label)
            top = max([top, *values])
        ax.set_ylim(0, min(1.0, max(0.05, 1.25 * top)))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("block (a conv layer, or an MLP's dense layer), from the input")
        ax.set_ylabel(ylabel + " (last epoch)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if shown:
            ax.legend(fontsize=8)
        if shown and top == 0:  # bars of height 0 draw nothing: say why the panel is empty
            ax.text(0.5, 0.5, "0 in every block", transform=ax.transAxes, ha="center",
                    color="0.4")  # fmt: skip
    save_figure(fig, out / f"sparsity_saturation{suffix}.png")

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
    save_figure(fig, out / f"step_time{suffix}.png")

    blocks += [("p", line) for line in _activation_findings(diag, contexts)]
    blocks += [
        ("img", f"gradient_norms{suffix}.png", "Gradient norm of each layer's weights, by depth"),
        ("img", f"curves{suffix}.png", caption(sum(groups.values(), []))),
        ("img", f"sparsity_saturation{suffix}.png", "Sparsity and saturation after each block"),
        ("img", f"step_time{suffix}.png", "Time per step by layer type"),
    ]
    return blocks


def _contexts(runs: list[Run]) -> dict[str, str]:
    """Each run's values (``lr=0.01``) of the settings that vary beside its activation and
    depth (a learning rate swept with them; not the channels that make the depth), by run
    name; "" where none do. Runs of another context are another setting, not more seeds."""
    by_depth: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        by_depth[run.block_kind, run.depth].append(run)

    def varies(key: str, group: list[Run]) -> bool:
        return len({setting_text(r.settings.get(key)) for r in group}) > 1

    keys = sorted({k for r in runs for k in r.settings} - set(COMPARED))
    beside = [k for k in keys if any(varies(k, group) for group in by_depth.values())]
    return {
        r.name: ", ".join(
            f"{k.removeprefix('model.')}={setting_text(r.settings[k])}"
            for k in beside
            if k in r.settings
        )
        for r in runs
    }


def _by_label(runs: list[Run], contexts: dict[str, str]) -> dict[str, list[Run]]:
    """The runs of each setting (activation, depth and context), its seeds together, in
    order."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        context = contexts[run.name]
        groups[f"{run.label}, {context}" if context else run.label].append(run)
    return groups


def _mean_by_position(lists: list[list[float]]) -> list[float]:
    """The element-wise mean of equally long lists (one per seed of a setting)."""
    return [statistics.mean(values) for values in zip(*lists)]


def _activation_findings(runs: list[Run], contexts: dict[str, str]) -> list[str]:
    """Sentences comparing ReLU runs with sigmoid (and tanh) runs of the same depth and
    context, from their numbers (means over the seeds of each)."""
    by_depth: dict[tuple, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        setting = run.block_kind, run.depth, contexts[run.name]
        by_depth[setting][run.model_cfg.get("activation")].append(run)
    lines = []
    for (kind, depth, context), of in sorted(by_depth.items()):
        for other in (name for name in ("sigmoid", "tanh") if "relu" in of and name in of):
            line = _compared(kind, depth, context, of["relu"], other, of[other])
            if line:
                lines.append(line)
    return lines or ["No ReLU and sigmoid (or tanh) runs of the same depth to compare."]


def _compared(
    kind: str, depth: int, context: str, relu: list[Run], other: str, them: list[Run]
) -> str | None:
    """The sentences comparing ``relu`` runs with runs of ``other`` (sigmoid or tanh), blocks
    of ``kind``, ``depth`` deep, in ``context``; None if a run's diagnostics missed epoch 1."""
    mean = statistics.mean
    norms = [[_first_gradient(r, kind) for r in runs] for runs in (relu, them)]
    if None in norms[0] + norms[1]:
        return None
    g_relu, g_other = mean(norms[0]), mean(norms[1])
    ratio = g_relu / g_other if g_other else math.inf
    relation = (
        f"{ratio:.0f}x smaller"
        if ratio >= 1.5
        else f"{1 / ratio:.1f}x larger"
        if ratio < 1 / 1.5
        else "about the same"
    )
    zeros = mean(a["zero_fraction"] for r in relu for a in _block_activations(r))
    saturation = mean(a["saturated_fraction"] for r in them for a in _block_activations(r))
    t_relu = mean(r.summary.get("seconds_per_epoch", math.nan) for r in relu)
    t_other = mean(r.summary.get("seconds_per_epoch", math.nan) for r in them)
    if saturation >= 0.01:
        why = (
            f"{other} keeps {saturation:.1%} of them saturated, where its gradient all but vanishes"
        )
    elif ratio >= 1.5 and other == "sigmoid":
        why = (
            f"sigmoid's units are rarely saturated ({saturation:.1%}), so the shrinking comes "
            "from its derivative's ceiling of 0.25, compounding block after block"
        )
    else:
        why = f"{other}'s units are rarely saturated ({saturation:.1%})"
    layers = "conv" if kind == "Conv" else "dense"
    where = f" ({context})" if context else ""
    return (
        f"**{depth} {layers} layers{'' if kind == 'Conv' else ' (no convolutions)'}, ReLU "
        f"against {other}{where}.** The first {layers} layer's weight gradient is {relation} with "
        f"{other} than with ReLU ({g_other:.2e} against {g_relu:.2e}, epoch 1). Test accuracy: "
        f"ReLU {accuracy_text(relu)}, {other} {accuracy_text(them)}. ReLU leaves {zeros:.0%} of "
        f"the {layers} activations at exactly 0 (sparse); {why}. An epoch took {t_relu:.2f} s "
        f"with ReLU and {t_other:.2f} s with {other}."
    )
