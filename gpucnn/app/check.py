"""``python -m gpucnn.check [--kernels fast|reference|both]``: each layer's gradient, checked.

    python -m gpucnn.check                       # every layer, both kernel sets, then a model
    python -m gpucnn.check --kernels reference   # after changing gpucnn/kernels/reference.py

Each layer of the library (and both losses, and a small CNN trained through its loss) is run in
float64 on NumPy at parameters and inputs drawn at random, where a mistake would show: its
``backward`` against central differences of its ``forward`` (gpucnn.gradcheck), for its input
and each parameter. The layers that call the kernel sets (Conv, MaxPool, AvgPool, BatchNorm)
are checked on each set asked for. Prints a line per check: the worst relative error, the array
it is in, and whether it agrees (below 1e-6); exit code 1 where one does not, naming where its
code is. A layer of your own is checked the same way with gpucnn.gradcheck.errors (README).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import backend, gradcheck, kernels, presets
from ..layers import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    MaxPool,
)
from ..losses import BinaryCrossEntropy, CrossEntropy
from . import command_parser, exits

TOLERANCE = 1e-6  # a relative error below this agrees (float64 differences reach ~1e-9)
KERNEL_LAYERS = (Conv, MaxPool, AvgPool, BatchNorm)  # the layers whose arithmetic is a kernel set
WHERE = {  # where the code of what a check covers is
    "kernels": "gpucnn/kernels/{set}.py (and the layer in gpucnn/layers.py)",
    "layer": "gpucnn/layers.py",
    "loss": "gpucnn/losses.py",
    "model": "gpucnn/model.py (how the layers are chained and the loss fused)",
}


@dataclass
class Check:
    """One gradient check: what it is called, what it covers (a key of WHERE), the kernel set
    it runs on ("" where none is used), and how to compute its errors (array -> relative
    error)."""

    label: str
    covers: str
    kernel_set: str
    errors: Callable[[], dict[str, float]] = field(repr=False)

    @property
    def where(self) -> str:
        """Where the code it covers is."""
        return WHERE[self.covers].format(set=self.kernel_set)


def layer_checks(rng: np.random.Generator) -> Iterator[tuple[Any, np.ndarray, bool]]:
    """(layer, input, training) for each layer check: a few shapes of each layer."""
    for k, stride, pad in ((3, 1, 1), (2, 2, 0), (5, 2, 2)):
        conv = gradcheck.varied(Conv(k, 2, 3, pad=pad, stride=stride), rng)
        yield conv, rng.normal(size=(2, 2, 7, 8)), False
    for layer in (MaxPool(2), MaxPool(3, stride=2)):
        yield layer, gradcheck.distinct(rng, (2, 3, 7, 6)), False
    yield AvgPool(3, stride=2), rng.normal(size=(2, 3, 7, 6)), False
    for shape in ((4, 3, 5, 6), (7, 5)):
        for training in (True, False):
            yield (
                gradcheck.varied(BatchNorm(shape[1]), rng),
                rng.normal(1.5, 2, size=shape),
                training,
            )
    yield GlobalAvgPool(), rng.normal(size=(3, 4, 5, 6)), False
    yield gradcheck.varied(Dense(7, 4), rng), rng.normal(size=(5, 7)), False
    for name in Activation.NAMES:
        yield Activation(name), gradcheck.distinct(rng, (4, 6), scale=3.0), False
    yield Flatten(), rng.normal(size=(2, 3, 4, 5)), False


def checks(kernel_sets: tuple[str, ...], seed: int = 0) -> Iterator[Check]:
    """Every check, each kernel layer (and the model) once per set in ``kernel_sets``, the
    others once, parameters and inputs drawn from ``seed``. A check's ``errors`` makes its
    kernel set the active one while it runs. Make float64 layers: call after
    ``backend.use("numpy", dtype="float64")``."""
    for s in kernel_sets:
        for layer, x, training in layer_checks(np.random.default_rng(seed)):
            if isinstance(layer, KERNEL_LAYERS) or s == kernel_sets[0]:
                covers = "kernels" if isinstance(layer, KERNEL_LAYERS) else "layer"
                mode = ", training" if training and isinstance(layer, BatchNorm) else ""
                label = f"{layer!r} on {tuple(x.shape)}{mode}"
                yield _layer_check(layer, x, training, label, covers, s)
    rng = np.random.default_rng(seed)
    dropout = Dropout(0.3)
    x = rng.normal(size=(6, 20))
    yield Check(
        f"{dropout!r} on {x.shape}, training (one mask)",
        "layer",
        "",
        lambda: gradcheck.errors(dropout, x, training=True, before=lambda: backend.set_seed(9)),
    )
    for loss, outputs in ((CrossEntropy(label_smoothing=0.1), 5), (BinaryCrossEntropy(), 1)):
        yield _loss_check(loss, rng.normal(scale=3, size=(8, outputs)), rng)
    for s in kernel_sets:
        yield _model_check(np.random.default_rng(seed), s)


def _layer_check(layer, x, training, label, covers, kernel_set) -> Check:
    return Check(
        label,
        covers,
        kernel_set if covers == "kernels" else "",
        lambda: _on(kernel_set, lambda: gradcheck.errors(layer, x, training=training)),
    )


def _loss_check(loss: Any, logits: np.ndarray, rng: np.random.Generator) -> Check:
    y = rng.integers(0, max(logits.shape[1], 2), size=len(logits))

    def errors() -> dict[str, float]:
        loss.forward(logits, y)
        analytic = loss.backward()
        numeric = gradcheck.numerical_grad(lambda: float(loss.forward(logits, y)), logits)
        return {"logits": gradcheck.relative_error(analytic, numeric)}

    label = f"{type(loss).__name__}(label_smoothing={loss.label_smoothing})"
    return Check(label, "loss", "", errors)


def _model_check(rng: np.random.Generator, kernel_set: str) -> Check:
    """A small CNN (two conv blocks, a hidden layer, softmax) through CrossEntropy."""
    model = presets.cnn(
        (2, 9, 9), channels=(3, 4), filter_size=[3, 2], pool_size=[2, 3], pool_stride=[1, None],
        padding=[1, 0], hidden=(5,), n_outputs=3,
    )  # fmt: skip
    for _, p, _ in model.parameters():
        p[...] = rng.normal(scale=0.5, size=p.shape)
    x, y = rng.normal(size=(3, 2, 9, 9)), np.array([0, 2, 1])
    return Check(
        "a small CNN (2 conv blocks, a hidden layer) through CrossEntropy",
        "model",
        kernel_set,
        lambda: _on(kernel_set, lambda: gradcheck.model_errors(model, CrossEntropy(), x, y)),
    )


def _on(kernel_set: str, work: Callable[[], Any]) -> Any:
    """``work()`` with ``kernel_set`` the active layer kernel set."""
    before = kernels.name()
    kernels.use(kernel_set)
    try:
        return work()
    finally:
        kernels.use(before)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("check", __doc__)
    parser.add_argument(
        "--kernels", choices=("fast", "reference", "both"), default="both",
        help="the kernel sets to check the kernel layers on (default: both)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sets = kernels.SETS if args.kernels == "both" else (args.kernels,)
    backend.use("numpy", dtype="float64", seed=0)  # before the layers: float64 parameters
    todo = list(checks(sets))
    width = max(len(c.label) for c in todo)
    print(
        "backward against numerical gradients of forward, float64 on NumPy: the worst relative "
        f"error, and the array it is in (below {TOLERANCE:g} agrees)"
    )
    print(f"{'check':<{width}}  {'kernels':<9} {'error':>7}  in")
    wrong = []
    for check in todo:
        found = check.errors()
        name = max(found, key=found.get)
        agrees = found[name] < TOLERANCE
        verdict = "agrees" if agrees else "DISAGREES"
        print(f"{check.label:<{width}}  {check.kernel_set or '-':<9} {found[name]:7.1e}  "
              f"{name:<6} {verdict}")  # fmt: skip
        if not agrees:
            wrong.append(check)
    if not wrong:
        print(f"all {len(todo)} agree")
        return exits.OK
    places = "; ".join(dict.fromkeys(c.where for c in wrong))
    print(f"{len(wrong)} of {len(todo)} disagree: see {places}", file=sys.stderr)
    return exits.BUG
