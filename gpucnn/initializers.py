"""Weight initialisation schemes, drawn on the host from the backend's seeded generator.

Drawing on the host means NumPy and CuPy models built with the same seed start identical.
"""

from __future__ import annotations

import numpy as np

from . import backend

SCHEMES = ("he", "glorot")


def draw(scheme: str, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """Weights of ``shape`` for a layer with the given fans.

    he: normal, std sqrt(2 / fan_in), which keeps the variance through ReLU layers.
    glorot: uniform in +-sqrt(6 / (fan_in + fan_out)), for sigmoid and tanh layers.
    """
    rng = backend.active().host_rng
    if scheme == "he":
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    if scheme == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)
    raise ValueError(f"unknown initialisation scheme {scheme!r}: choose one of {SCHEMES}")
