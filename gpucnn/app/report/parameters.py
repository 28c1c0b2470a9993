"""The report's third question: how many learnable parameters, the lab CNN against the fully
connected networks? Per-layer counts and multiply-adds computed from the models, and what
weight sharing saves and costs."""

from __future__ import annotations

from ... import presets
from ...layers import Conv, Dense
from ...model import Model
from ..document import Block
from ..results import counted, first_of
from .runs import Run


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


def section(runs: list[Run]) -> list[Block]:
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
    architectures = _cnn_architectures(runs)
    if architectures:
        lines = [
            f"{weights:,} weights, {counted(depth, 'conv layer')}: {_run_names(names)}"
            for (weights, depth), names in sorted(architectures.items())
        ]
        blocks.append(("p", "The CNNs among these runs: " + "; ".join(lines) + "."))
    return blocks


def _cnn_architectures(runs: list[Run]) -> dict[tuple[int, int], list[str]]:
    """The names of the runs that built a CNN, by (weight count, conv layers): runs that differ
    only in what has no weights (activation, dropout) or in the seed count once."""
    grouped: dict[tuple[int, int], list[str]] = {}
    for run in runs:
        if run.conv_layers:
            grouped.setdefault((run.summary.get("weights", 0), run.conv_layers), []).append(
                run.name
            )
    return grouped


def _run_names(names: list[str], shown: int = 6) -> str:
    return ("run " if len(names) == 1 else "runs ") + first_of(names, shown)
