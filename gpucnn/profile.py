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
from .model import Model
from .optimizers import Optimizer


def timed_step(
    model: Model, loss: Loss, optimizer: Optimizer, x: Any, y: Any, times: dict[str, float]
) -> Any:
    """One training step (as train.train_step) adding seconds per piece to ``times``, keyed
    "<index> <layer> forward|backward", "loss" and "optimizer". Returns the loss."""

    def clock(key: str, fn, *args):
        backend.synchronize()
        start = time.perf_counter()
        out = fn(*args)
        backend.synchronize()
        times[key] += time.perf_counter() - start
        return out

    layers = model.run_order(logits=True)
    for i, layer in enumerate(layers):
        x = clock(f"{i:>2} {type(layer).__name__} forward", layer.forward, x, True)
    value = clock("   loss forward+backward", lambda: (loss.forward(x, y), loss.backward()))
    dy = value[1]
    first = next((i for i, layer in enumerate(layers) if layer.params), 0)
    for i in reversed(range(first, len(layers))):
        step = layers[i].param_grads if i == first and layers[i].params else layers[i].backward
        dy = clock(f"{i:>2} {type(layers[i]).__name__} backward", step, dy)
    clock("   optimizer", optimizer.step, list(model.parameters()))
    return value[0]


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
