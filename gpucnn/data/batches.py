"""Mini-batches drawn from a device-resident split, shuffled and augmented on the device.

Each epoch's order is a function of (seed, epoch) alone, so a run resumed at epoch e sees the
same order as one never stopped; so are its augmentations (random mirror images and shifts of
the training images), drawn for each place in the epoch. Batches are gathered on the device:
nothing crosses from the host per batch. ``balanced`` draws each epoch's images with every class
as likely (with replacement), for data whose classes have unequal numbers of images.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import backend
from ..errors import ConfigError, check_count
from .prepare import Split

AUGMENT_STREAM = 1 << 40  # added to an epoch's seed: its augmentations' generator, not its order's
BALANCE_STREAM = 1 << 41  # and its balanced draw's


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of an epoch's draws: one number for (seed, epoch), apart for every pair used."""
    return seed * 100_003 + epoch


def epoch_order(n: int, seed: int, epoch: int) -> Any:
    """A permutation of range(n) on the device, seeded by (seed, epoch)."""
    xp = backend.xp()
    rng = xp.random.default_rng(epoch_seed(seed, epoch))
    return xp.argsort(rng.random(n))


def shifted(x: Any, shifts: Any, most: int) -> Any:
    """Images ``x`` (N, C, H, W) moved by ``shifts`` (N, 2) pixels (down, right; each in
    -most .. most), the pixels moved in copies of the nearest edge pixel."""
    xp = backend.xp()
    n, c, h, w = x.shape
    padded = xp.pad(x, ((0, 0), (0, 0), (most, most), (most, most)), mode="edge")
    rows = (most - shifts[:, 0])[:, None] + xp.arange(h)  # (N, H): where each output row is
    cols = (most - shifts[:, 1])[:, None] + xp.arange(w)  # (N, W)
    images, channels = xp.arange(n)[:, None, None, None], xp.arange(c)[None, :, None, None]
    return padded[images, channels, rows[:, None, :, None], cols[:, None, None, :]]


class Batches:
    """Iterate ``(x, y)`` batches of ``split`` for one epoch.

    ``drop_last`` drops a final batch smaller than ``batch_size``; ``shuffle=False`` keeps the
    stored order (evaluation). ``flip``: each image mirrored left to right with probability
    1/2; ``shift``: each moved by up to that many pixels down or up and left or right (the
    edge pixels fill in), both drawn anew each epoch. ``balanced``: each place of an epoch
    holds an image of a class drawn with every class of the split as likely, and one of that
    class's images drawn alike (so an epoch repeats some images of small classes and leaves out
    some of large ones), in place of a permutation.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        flip: bool = False,
        shift: int = 0,
        balanced: bool = False,
    ) -> None:
        check_count(batch_size, "batch_size", "a positive integer", least=1)
        check_count(shift, "shift", "a number of pixels >= 0", least=0)
        if shift and shift >= min(split.x.shape[2:]):
            raise ConfigError(
                f"shift={shift} would move the {split.x.shape[2]}x{split.x.shape[3]} images "
                "out of themselves: give fewer pixels",
                "shift",
            )
        if drop_last and batch_size > len(split):
            raise ConfigError(
                f"batch_size={batch_size} is larger than the {len(split)} training images "
                "and drop_last would leave no batch: lower the batch size",
                "batch_size",
            )
        self.split, self.batch_size = split, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.flip, self.shift = bool(flip), int(shift)
        self.balanced = bool(balanced)
        if self.balanced:  # the split's images by class, once: (order, first of each, counts)
            y = backend.to_host(split.y)
            counts = np.bincount(y)
            self._by_class = (np.argsort(y, kind="stable"), np.cumsum(counts) - counts, counts)

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
        order = self._order(epoch) if self.shuffle else None
        flips, shifts = self._augmentations(epoch)
        for i in range(start, len(self)):
            lo, hi = i * self.batch_size, (i + 1) * self.batch_size
            if order is None:
                x, y = self.split.x[lo:hi], self.split.y[lo:hi]
            else:
                idx = order[lo:hi]
                x, y = self.split.x[idx], self.split.y[idx]
            if flips is not None:
                x = backend.xp().where(flips[lo:hi, None, None, None], x[..., ::-1], x)
            if shifts is not None:
                x = shifted(x, shifts[lo:hi], self.shift)
            yield x, y

    def _order(self, epoch: int) -> Any:
        """The images of each place of ``epoch``, (N,) on the device: a permutation, or the
        balanced draw."""
        n = len(self.split)
        if not self.balanced:
            return epoch_order(n, self.seed, epoch)
        by_class, first, counts = self._by_class
        rng = np.random.default_rng(epoch_seed(self.seed, epoch) + BALANCE_STREAM)
        present = np.flatnonzero(counts)
        classes = present[rng.integers(0, len(present), n)]
        within = (rng.random(n) * counts[classes]).astype(np.int64)
        return backend.to_device(by_class[first[classes] + within])

    def _augmentations(self, epoch: int) -> tuple[Any, Any]:
        """(whether to mirror, (N,) bool; pixels to move, (N, 2) int) for each place of
        ``epoch``, on the device; None for an augmentation not asked for."""
        if not (self.flip or self.shift):
            return None, None
        xp, n = backend.xp(), len(self.split)
        rng = xp.random.default_rng(epoch_seed(self.seed, epoch) + AUGMENT_STREAM)
        flips = rng.random(n) < 0.5 if self.flip else None
        span = 2 * self.shift + 1
        shifts = (rng.random((n, 2)) * span).astype(xp.int64) - self.shift if self.shift else None
        return flips, shifts
