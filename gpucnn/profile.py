"""Where a training step spends its time: each layer's forward and backward, the loss, the update.

Every piece is bracketed by a device synchronisation, so GPU times are real (and the step is a
little slower than an unprofiled one).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from . import backend
from .losses import Loss
from .model import Model, backward_calls
from .optimizers import Optimizer


class Probe:
    """Hooks of timed_step, for diagnostics: each is called with what it names."""

    def forward(self, index: int, layer: Any, y: Any) -> None:
        """After layer ``index`` of the model computed y in the forward pass."""

    def before_update(self, model: Model) -> None:
        """Gradients are ready; parameters not yet updated."""

    def after_update(self, model: Model) -> None:
        """Parameters updated."""


def timed_step(
    model: Model,
    loss: Loss,
    optimizer: Optimizer,
    x: Any,
    y: Any,
    times: dict[str, float],
    declared_order: bool = False,
    probe: Probe | None = None,
) -> tuple[Any, Any]:
    """One training step (as train.train_step) adding seconds per piece to ``times``, keyed
    "<index> <layer type> forward|backward", "loss forward+backward" and "optimizer".

    Runs the layers as the model does (Model.runs: a ReLU may be fused into the max pool after
    it), or one by one (``declared_order``: every layer's output is the map the user defined).
    Returns the batch loss and the number of correct predictions.
    """
    probe = probe or Probe()

    def clock(key: str, fn, *args):
        backend.synchronize()
        start = time.perf_counter()
        out = fn(*args)
        backend.synchronize()
        times[key] += time.perf_counter() - start
        return out

    if declared_order:
        layers = model.layers[:-1] if model.head else model.layers
        runs = [(i, layer, False) for i, layer in enumerate(layers)]
    else:
        runs = model.runs(logits=True)
    names = [f"{i:>2} {type(layer).__name__}{'+relu' if fused else ''}" for i, layer, fused in runs]
    logits = x
    for name, (i, layer, fused) in zip(names, runs):
        args = (logits, True, True) if fused else (logits, True)  # (x, training[, relu])
        logits = clock(f"{name} forward", layer.forward, *args)
        probe.forward(i, layer, logits)
    value, dy = clock(
        "   loss forward+backward", lambda: (loss.forward(logits, y), loss.backward())
    )
    for k, call in backward_calls([layer for _, layer, _ in runs], input_grad=False):
        dy = clock(f"{names[k]} backward", call, dy)
    probe.before_update(model)
    clock("   optimizer", optimizer.step, list(model.parameters()))
    probe.after_update(model)
    return value, (loss.predict(logits) == y).sum()


def profile(
    model: Model, loss: Loss, optimizer: Optimizer, batches, steps: int
) -> dict[str, float]:
    """Mean milliseconds per step of each piece over ``steps`` steps (after one warm-up step)."""
    times: dict[str, float] = defaultdict(float)
    done = 0
    for x, y in batches:
        if done == 0:
            timed_step(model, loss, optimizer, x, y, defaultdict(float))  # warm-up, not counted
        else:
            timed_step(model, loss, optimizer, x, y, times)
        done += 1
        if done > steps:
            break
    counted = max(done - 1, 1)
    return {key: 1000 * t / counted for key, t in times.items()}


def table(ms: dict[str, float]) -> str:
    """The profile as text, slowest first, with each piece's share of the step."""
    total = sum(ms.values())
    width = max(len(k) for k in ms)
    lines = [f"{'piece':<{width}}  {'ms/step':>8}  {'share':>6}"]
    for key, value in sorted(ms.items(), key=lambda kv: -kv[1]):
        lines.append(f"{key:<{width}}  {value:8.3f}  {value / total:6.1%}")
    lines.append(f"{'total':<{width}}  {total:8.3f}")
    return "\n".join(lines)
