"""The learning-rate range test: one short training run whose rate grows by the same factor at
every step, from far too small to far too large, recording each step's loss (L. N. Smith,
"Cyclical Learning Rates for Training Neural Networks", WACV 2017). The loss stays flat while the
rate is too small to move the weights, falls once it is large enough, and rises when it is too
large. The rate where the smoothed loss was lowest moved the weights furthest in a few steps but
lies next to those that make it rise, too large to hold for a whole run: a third of it is the
suggestion, and a tenth of it and itself the rates to compare it with in a sweep, found in one
short run instead of a sweep over every scale.

    result = range_test(model, CrossEntropy(), Adam(), data.Batches(splits.train, 128))
    result.suggested         # the rate to train with (None: the loss never fell)
    result.sweep             # it, with a rate about 3x lower and 3x higher

The test trains ``model``: build a new one (same seed, same initial weights) to train for real.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import Batches
from .errors import ConfigError, is_count, is_number
from .losses import Loss
from .model import Model
from .optimizers import Optimizer
from .steps import make_step


def rates(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """(steps,) rates from ``min_lr`` to ``max_lr``, each the one before times the same factor."""
    return np.geomspace(min_lr, max_lr, steps)


def window(steps: int) -> int:
    """How many consecutive losses the smoothed curve averages: an odd number, about a tenth of
    the steps (at least 3), so that it is centred on a step."""
    return max(3, steps // 20 * 2 + 1)


def window_means(losses: np.ndarray, width: int) -> np.ndarray:
    """(len(losses) - width + 1,) the mean of every ``width`` consecutive losses."""
    sums = np.cumsum(np.concatenate([[0.0], losses]))
    return (sums[width:] - sums[:-width]) / width


@dataclass
class RangeTest:
    """What a range test recorded: ``lrs`` and ``losses`` (steps_taken,), each step's rate and
    loss; ``smoothed``, the mean of the ``width`` losses centred on each step from the
    ``width // 2``-th on (shorter by ``width - 1``); and why it ``stopped``: "max_lr" (it
    reached max_lr), "rose" (the smoothed loss rose above stop_factor times its lowest) or
    "not_finite" (a loss was NaN or infinite)."""

    lrs: np.ndarray
    losses: np.ndarray
    width: int
    stopped: str

    @property
    def smoothed(self) -> np.ndarray:
        finite = self.losses[np.isfinite(self.losses)]
        return window_means(finite, self.width) if len(finite) >= self.width else finite[:0]

    @property
    def smoothed_lrs(self) -> np.ndarray:
        """The rate at the centre of each window of ``smoothed``."""
        half = self.width // 2
        return self.lrs[half : half + len(self.smoothed)]

    @property
    def lowest(self) -> float | None:
        """The rate where the smoothed loss was lowest (None: too few steps to smooth)."""
        smoothed = self.smoothed
        return float(self.smoothed_lrs[np.argmin(smoothed)]) if len(smoothed) else None

    @property
    def fell(self) -> bool:
        """Whether the smoothed loss fell below its first value."""
        smoothed = self.smoothed
        return len(smoothed) >= 2 and int(np.argmin(smoothed)) > 0

    @property
    def still_falling(self) -> bool:
        """Whether the smoothed loss was lowest at its last value: the rates never grew too
        large."""
        smoothed = self.smoothed
        return len(smoothed) > 0 and int(np.argmin(smoothed)) == len(smoothed) - 1

    @property
    def sweep(self) -> list[float] | None:
        """A tenth of the lowest loss's rate, a third of it (1 / sqrt(10)) and the rate itself,
        to two significant digits; None where the loss never fell."""
        if not self.fell:
            return None
        return [float(f"{self.lowest * 10**power:.2g}") for power in (-1, -0.5, 0)]

    @property
    def suggested(self) -> float | None:
        """The rate to train with: the middle of ``sweep``, about a third of the lowest loss's
        rate; None where the loss never fell."""
        return self.sweep[1] if self.fell else None

    def record(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        smoothed = self.smoothed
        return {
            "first_loss": float(smoothed[0]) if len(smoothed) else None,  # smoothed
            "lowest_loss": float(smoothed.min()) if len(smoothed) else None,
            "steps_taken": len(self.lrs),
            "stopped": self.stopped,
            "width": self.width,
            "lowest": self.lowest,
            "fell": self.fell,
            "still_falling": self.still_falling,
            "suggested": self.suggested,
            "sweep": self.sweep,
        }


def check_settings(min_lr: float, max_lr: float, steps: int, stop_factor: float) -> None:
    """ConfigError naming the argument for settings that cannot make a test."""
    if not (is_number(min_lr) and 0 < min_lr < math.inf):
        raise ConfigError(f"min_lr must be a finite number > 0, got {min_lr!r}", "min_lr")
    if not (is_number(max_lr) and min_lr < max_lr < math.inf):
        raise ConfigError(
            f"max_lr must be a finite number above min_lr={min_lr}, got {max_lr!r}", "max_lr"
        )
    if not is_count(steps, 10):
        raise ConfigError(
            f"steps must be an integer >= 10, got {steps!r}: the loss is smoothed over "
            "neighbouring steps (100 is usual)",
            "steps",
        )
    if not (is_number(stop_factor) and stop_factor > 1):
        raise ConfigError(
            f"stop_factor must be a number > 1, got {stop_factor!r}: the test stops once the "
            "smoothed loss is this many times its lowest (4 is usual)",
            "stop_factor",
        )


def _endless(batches: Batches) -> Iterator[tuple[Any, Any]]:
    """The batches of epoch 0, then of epoch 1, ...: a test may take more steps than an epoch."""
    epoch = 0
    while True:
        yield from batches.epoch(epoch)
        epoch += 1


def range_test(
    model: Model,
    loss: Loss,
    optimizer: Optimizer,
    batches: Batches,
    min_lr: float = 1e-6,
    max_lr: float = 10.0,
    steps: int = 100,
    stop_factor: float = 4.0,
    threads: int | None = None,
    chunk: int = 32,
) -> RangeTest:
    """Train ``model`` for ``steps`` steps of ``batches`` (into the next epochs where one has
    fewer), setting ``optimizer.lr`` to ``rates(min_lr, max_lr, steps)`` in turn, and stop early
    once the mean of the last ``window(steps)`` losses is ``stop_factor`` times the lowest such
    mean, or a loss is NaN or infinite. The step is make_step's (``threads``, ``chunk``: its
    arguments), the app's training step."""
    check_settings(min_lr, max_lr, steps, stop_factor)
    width, lrs, losses = window(steps), rates(min_lr, max_lr, steps), []
    stopped, lowest = "max_lr", math.inf
    # The rate changes at every step, and a CUDA graph holds the rate it was captured with:
    # the GPU's step launches its kernels one by one instead of capturing each step anew.
    with make_step(model, loss, optimizer, threads, chunk, graphs=False) as step:
        for lr, (x, y) in zip(lrs, _endless(batches)):
            optimizer.lr = float(lr)
            losses.append(float(step(x, y)[0]))
            if not math.isfinite(losses[-1]):
                stopped = "not_finite"
                break
            if len(losses) >= width:
                recent = sum(losses[-width:]) / width
                lowest = min(lowest, recent)
                if recent > stop_factor * lowest:
                    stopped = "rose"
                    break
    return RangeTest(lrs[: len(losses)], np.array(losses), width, stopped)
