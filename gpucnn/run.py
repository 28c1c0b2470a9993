"""``python -m gpucnn.run``: a short demonstration training run of the lab CNN.

Trains ``lab_cnn3`` for two epochs on a synthetic task (is the bright bar vertical or
horizontal?) on the best available backend and prints the model summary and the accuracy.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from . import backend, presets
from .losses import BinaryCrossEntropy
from .optimizers import Adam
from .train import evaluate, train_step


def bars(rng: np.random.Generator, n: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """n noisy images (n, 1, size, size) with one bright bar; label 1 if it is vertical."""
    x = rng.normal(0, 0.5, size=(n, 1, size, size)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    pos = rng.integers(2, size - 2, size=n)
    x[y == 1, 0, :, :] += (np.arange(size) == pos[y == 1, None])[:, None, :]
    x[y == 0, 0, :, :] += (np.arange(size) == pos[y == 0, None])[:, :, None]
    return x, y


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    backend.use("auto", seed=0)
    rng = np.random.default_rng(0)
    x, y = (backend.to_device(a) for a in bars(rng, 2048))
    model, loss, opt = presets.lab_cnn3(), BinaryCrossEntropy(), Adam(1e-3)
    print(model.summary())
    for epoch in range(1, 3):
        start = time.perf_counter()
        for i in range(0, 2048, 64):
            train_step(model, loss, opt, x[i : i + 64], y[i : i + 64])
        value, acc = evaluate(model, loss, x, y)
        print(
            f"epoch {epoch}: loss {value:.4f}  accuracy {acc:.3f}  "
            f"{time.perf_counter() - start:.1f} s"
        )


if __name__ == "__main__":
    main()
