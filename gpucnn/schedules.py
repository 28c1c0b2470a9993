"""Learning-rate schedules: the rate each epoch trains with, from the optimiser's base rate.

    schedule = Schedule("cosine", lr=1e-3, epochs=20)
    for epoch in range(20):
        optimizer.lr = schedule(epoch)     # then the epoch's steps
        ...

``constant`` keeps ``lr``; ``step`` multiplies it by ``decay`` every ``decay_every`` epochs;
``cosine`` lowers it along half a cosine from ``lr`` in the first epoch towards ``min_lr``,
which the epoch after the last would reach; ``plateau`` multiplies it by ``decay`` whenever
``decay_every`` epochs in a row have not lowered the validation loss below its lowest, down to
``min_lr``, and so needs the losses so far:

    schedule = Schedule("plateau", lr=1e-3, decay_every=3)
    optimizer.lr = schedule(epoch, val_losses)   # val_losses: one per epoch before this one

The rate changes between epochs only, so a step captured as a CUDA graph is captured again
once per epoch at most.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import ConfigError, check_choice, is_count, is_number

SCHEDULES = ("constant", "step", "cosine", "plateau")
# The schedules whose rate in an epoch depends on the validation losses of the epochs before
ON_VALIDATION = ("plateau",)
# The schedules whose rate in an epoch depends on the run's number of epochs: a run for more
# epochs is then not a run for fewer trained on
ALONG_THE_RUN = ("cosine",)


class Schedule:
    def __init__(
        self,
        name: str = "constant",
        lr: float = 1e-3,
        epochs: int = 1,
        decay: float = 0.1,
        decay_every: int = 10,
        min_lr: float = 0.0,
    ) -> None:
        """``epochs``: the epochs of the run (``cosine`` spreads its fall over them).
        ConfigError naming the argument for a value that cannot work."""
        check_choice(name, SCHEDULES, "schedule")
        if not is_count(epochs, 1):
            raise ConfigError(f"epochs must be a positive integer, got {epochs!r}", "epochs")
        if name in ("step", "plateau"):
            if not (is_number(decay) and 0 < decay <= 1):
                raise ConfigError(f"decay must be a number in (0, 1], got {decay!r}", "decay")
            if not is_count(decay_every, 1):
                raise ConfigError(
                    f"decay_every must be a positive number of epochs, got {decay_every!r}",
                    "decay_every",
                )
        if name in ("cosine", "plateau") and not (is_number(min_lr) and 0 <= min_lr < lr):
            raise ConfigError(
                f"min_lr must be >= 0 and below lr={lr}, got {min_lr!r}: the rate falls from lr "
                "towards it",
                "min_lr",
            )
        self.name, self.lr, self.epochs = name, float(lr), int(epochs)
        self.decay, self.decay_every, self.min_lr = float(decay), int(decay_every), float(min_lr)

    def __call__(self, epoch: int, val_losses: Sequence[float] = ()) -> float:
        """The learning rate of ``epoch`` (counted from 0); ``plateau`` reads ``val_losses``, the
        validation loss after each epoch before it."""
        if self.name == "plateau":
            if len(val_losses) < epoch:
                raise ValueError(
                    f"the plateau schedule's rate in epoch {epoch} depends on the validation "
                    f"losses of the {epoch} epochs before it: got {len(val_losses)}"
                )
            cuts = plateaus(val_losses[:epoch], self.decay_every)
            return max(self.lr * self.decay**cuts, self.min_lr)
        if self.name == "step":
            return self.lr * self.decay ** (epoch // self.decay_every)
        if self.name == "cosine":
            fall = (1 - math.cos(math.pi * epoch / self.epochs)) / 2  # 0 at the start, 1 at the end
            return self.lr - (self.lr - self.min_lr) * fall
        return self.lr


def plateaus(losses: Sequence[float], length: int) -> int:
    """How many times ``length`` epochs in a row did not lower ``losses`` below the lowest
    before them (each plateau counted anew from its end, the lowest kept)."""
    lowest, flat, count = math.inf, 0, 0
    for loss in losses:
        if loss < lowest:
            lowest, flat = loss, 0
        else:
            flat += 1
            if flat == length:
                count, flat = count + 1, 0
    return count
