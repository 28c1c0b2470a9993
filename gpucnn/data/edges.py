"""Whether images are dark or light at their edges, where the background usually is.

A model trained on light objects on black (MNIST, Fashion-MNIST) takes a photo of a dark
object on white paper for noise, and still names a class with a high probability: new images
whose edges are the other way round from those of training images of one background are worth
a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A training set whose edge pixels are this dark (or this light), or more, has one background.
ONE_BACKGROUND = 0.9


def dark_shares(images: np.ndarray, value_range: Sequence[float]) -> np.ndarray:
    """images: (N, C, H, W) scaled as in training -> (N,): the share of each image's edge
    pixels (its outermost rows and columns, each pixel the mean of its channels) in the darker
    half of ``value_range`` (min, max), the training images' range."""
    x = images  # the edges alone are copied: (N, C, 2H + 2W - 4)
    ring = np.concatenate([x[:, :, 0], x[:, :, -1], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], axis=2)
    middle = (value_range[0] + value_range[1]) / 2
    return (ring.mean(axis=1, dtype=np.float64) < middle).mean(axis=1)


def background(dark_share: float | None) -> str | None:
    """``dark`` or ``light`` for a training set whose edge pixels are that, with
    ``dark_share`` of them dark; None for one with backgrounds of both kinds (photos, say)."""
    if dark_share is None:
        return None
    if dark_share >= ONE_BACKGROUND:
        return "dark"
    if dark_share <= 1 - ONE_BACKGROUND:
        return "light"
    return None


def unlike_training(shares: np.ndarray, training_dark_share: float | None) -> np.ndarray:
    """(N,) bool: which images, with ``shares`` (N,) of their edge pixels dark, have mostly
    light edges where the training images had dark ones, or the other way round."""
    kind = background(training_dark_share)
    if kind is None:
        return np.zeros(len(shares), dtype=bool)
    return shares < 0.5 if kind == "dark" else shares > 0.5


def warning(which: str, count: int, total: int, training_dark_share: float) -> str:
    """The warning for ``count`` of ``total`` images, ``which`` names, whose edges are unlike
    the training images' (``training_dark_share`` of their edge pixels dark)."""
    kind = background(training_dark_share)
    other = "light" if kind == "dark" else "dark"
    share = training_dark_share if kind == "dark" else 1 - training_dark_share
    return (
        f"{other} at the edges: {which} ({count} of {total} images), where the run's "
        f"training images were {kind} ({share:.0%} of their edge pixels): the model has seen "
        f"{other} objects on {kind} only, and is likely to take {kind} objects on {other} for "
        f"something else, as confidently: if these are such, invert them first (255 - value "
        "for 8-bit images)"
    )
