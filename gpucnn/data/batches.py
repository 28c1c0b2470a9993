"""Mini-batches drawn from a device-resident split, shuffled on the device.

Each epoch's order is a function of (seed, epoch) alone, so a run resumed at epoch e sees the
same order as one never stopped. Batches are gathered on the device: nothing crosses from the
host per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import backend
from ..errors import ConfigError, check_count
from .prepare import Split


def epoch_order(n: int, seed: int, epoch: int) -> Any:
    """A permutation of range(n) on the device, seeded by (seed, epoch)."""
    xp = backend.xp()
    rng = xp.random.default_rng(seed * 100_003 + epoch)
    return xp.argsort(rng.random(n))


class Batches:
    """Iterate ``(x, y)`` batches of ``split`` for one epoch.

    ``drop_last`` drops a final batch smaller than ``batch_size``; ``shuffle=False`` keeps the
    stored order (evaluation).
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        check_count(batch_size, "batch_size", "a positive integer", least=1)
        if drop_last and batch_size > len(split):
            raise ConfigError(
                f"batch_size={batch_size} is larger than the {len(split)} training images "
                "and drop_last would leave no batch: lower the batch size",
                "batch_size",
            )
        self.split, self.batch_size = split, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed

    def __len__(self) -> int:
        n, b = len(self.split), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        """Not iterable itself: each epoch has its own order, so name the epoch."""
        raise TypeError(
            "iterate the batches of one epoch, batches.epoch(n) for epoch n = 0, 1, ...: each "
            "epoch is shuffled in its own order, drawn from the seed and n"
        )

    def smallest(self) -> int:
        """The size of an epoch's smallest batch: the last one, unless it is dropped."""
        n, b = len(self.split), self.batch_size
        return b if self.drop_last or n % b == 0 else n % b

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Any, Any]]:
        """The batches of ``epoch``, from batch number ``start`` on."""
        if epoch < 0 or start < 0:
            raise ConfigError(f"epoch={epoch} and start={start} must be >= 0: they count from 0")
        order = epoch_order(len(self.split), self.seed, epoch) if self.shuffle else None
        for i in range(start, len(self)):
            lo, hi = i * self.batch_size, (i + 1) * self.batch_size
            if order is None:
                yield self.split.x[lo:hi], self.split.y[lo:hi]
            else:
                idx = order[lo:hi]
                yield self.split.x[idx], self.split.y[idx]
