"""``python -m gpucnn.run``: a short training run of the lab CNN on the embedded images.

Trains ``lab_cnn3`` for two epochs on the default binary task (Shirt vs T-shirt/top) of the
embedded Fashion-MNIST subset, on the best available backend.
"""

from __future__ import annotations

import logging
import time

from . import backend, data, presets
from .losses import BinaryCrossEntropy
from .optimizers import Adam
from .train import evaluate, train_step


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    backend.use("auto", seed=0)
    splits = data.prepare(data.load("fashion_mnist_mini"))
    print(data.describe(splits))
    model, loss, opt = presets.lab_cnn3(), BinaryCrossEntropy(), Adam(1e-3)
    print(model.summary())
    batches = data.Batches(splits.train, 64)
    for epoch in range(2):
        start = time.perf_counter()
        for x, y in batches.epoch(epoch):
            train_step(model, loss, opt, x, y)
        val_loss, val_acc = evaluate(model, loss, splits.val.x, splits.val.y)
        seconds = time.perf_counter() - start
        print(
            f"epoch {epoch + 1}: val loss {val_loss:.4f}  val accuracy {val_acc:.3f}  "
            f"{seconds:.1f} s"
        )
    test_loss, test_acc = evaluate(model, loss, splits.test.x, splits.test.y)
    print(f"test loss {test_loss:.4f}  test accuracy {test_acc:.3f}")


if __name__ == "__main__":
    main()
