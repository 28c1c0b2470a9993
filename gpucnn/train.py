"""One training step and evaluation, shared by the app, the benchmark and the tests."""

from __future__ import annotations

from typing import Any

from .backend import get_array_module
from .errors import ConfigError
from .losses import Loss
from .model import Model
from .optimizers import Optimizer


def check_head(model: Model, loss: Loss) -> None:
    """Reject a model whose output activation does not match the loss it is trained with."""
    if model.head and model.head != loss.head:
        raise ConfigError(
            f"the model ends in {model.head} but {type(loss).__name__} expects logits or "
            f"{loss.head}: use a matching loss or output activation"
        )


def train_step(model: Model, loss: Loss, optimizer: Optimizer, x: Any, y: Any) -> Any:
    """Forward, loss, backward and update on one batch x: (N, ...), y: (N,).

    Returns the batch loss and the number of correct predictions, both as 0-d device arrays
    (reading them forces a GPU sync, so callers accumulate them and read once per epoch).
    """
    logits = model.forward(x, training=True, logits=True)
    value = loss.forward(logits, y)
    model.backward(loss.backward(), logits=True, input_grad=False)
    optimizer.step(model.parameters())
    return value, (loss.predict(logits) == y).sum()


def evaluate(
    model: Model, loss: Loss, x: Any, y: Any, batch_size: int = 1024
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on x: (N, ...), y: (N,), in evaluation mode."""
    xp = get_array_module(x)
    total_loss, correct = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.int64)
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        logits = model.forward(xb, logits=True)
        total_loss += loss.forward(logits, yb) * xb.shape[0]
        correct += (loss.predict(logits) == yb).sum()
    n = x.shape[0]
    return float(total_loss) / n, float(correct) / n
