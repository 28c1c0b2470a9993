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
from .model import NO_HOOKS, Hooks, Model
from .optimizers import Optimizer
from .train import train_step


class Timer(Hooks):
    """Hooks that add the seconds of each piece to ``times`` (a device synchronisation on each
    side) and pass what they see on to ``probe``."""

    def __init__(self, times: dict[str, float], probe: Hooks = NO_HOOKS) -> None:
        self.times, self.probe = times, probe

    def run(self, name: str, fn: Any, *args: Any) -> Any:
        backend.synchronize()
        start = time.perf_counter()
        out = fn(*args)
        backend.synchronize()
        self.times[name] += time.perf_counter() - start
        return out

    def forward(self, index: int, layer: Any, y: Any) -> None:
        self.probe.forward(index, layer, y)

    def before_update(self, model: Model) -> None:
        self.probe.before_update(model)

    def after_update(self, model: Model) -> None:
        self.probe.after_update(model)


def timed_step(
    model: Model,
    loss: Loss,
    optimizer: Optimizer,
    x: Any,
    y: Any,
    times: dict[str, float],
    declared_order: bool = False,
    probe: Hooks = NO_HOOKS,
) -> tuple[Any, Any]:
    """train.train_step adding seconds per piece to ``times``, keyed "<index> <layer type>
    forward|backward", "loss forward+backward" and "optimizer".

    Runs the layers as the model does (a ReLU may be fused into the max pool after it), or one
    by one (``declared_order``: every layer's output is the map the user defined). Returns the
    batch loss and the number of correct predictions.
    """
    return train_step(model, loss, optimizer, x, y, Timer(times, probe), not declared_order)


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
