"""One training step and evaluation, shared by the app, the benchmark and the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import get_array_module, to_host
from .errors import ConfigError
from .losses import Loss
from .model import NO_HOOKS, Hooks, Model
from .optimizers import Optimizer

if TYPE_CHECKING:  # a type only: the step needs none of the data package at import
    from .data.batches import Batches


def check_head(model: Model, loss: Loss) -> None:
    """Reject a model whose output activation does not match the loss it is trained or
    evaluated with: the loss would fuse its own activation in place of the model's."""
    if model.head and model.head != loss.head:
        other = {"sigmoid": "BinaryCrossEntropy", "softmax": "CrossEntropy"}[model.head]
        raise ConfigError(
            f"the model ends in {model.head} but {type(loss).__name__} expects logits or "
            f"{loss.head}: end the model with Activation({loss.head!r}) (or no activation), or "
            f"use {other}"
        )


def check_batches(model: Model, batches: Batches) -> None:
    """Reject batch sizes the model cannot train on (a BatchNorm after a Dense on a last batch of
    one image) before the first step, rather than at the end of the first epoch."""
    need, layer = model.min_training_batch()
    b, smallest = batches.batch_size, batches.smallest()
    if b < need:
        raise ConfigError(f"batch_size={b} is too small: {layer} needs {need} images", "batch_size")
    if smallest < need:
        raise ConfigError(
            f"batch_size={b} leaves a last batch of {smallest} of the {len(batches.split)} "
            f"training images, and {layer} needs {need} in training: drop it (drop_last=true) or "
            "choose another batch size",
            "batch_size",
        )


def forward_backward(
    model: Model,
    loss: Loss,
    x: Any,
    y: Any,
    scale: float = 1.0,
    hooks: Hooks = NO_HOOKS,
    fuse: bool = True,
) -> tuple[Any, Any]:
    """Forward in training mode, the loss on the logits, and backward: every layer's ``grads``
    then holds the gradient of ``scale`` times the batch-mean loss. No update.

    Returns the batch loss (unscaled) and the number of correct predictions, both as 0-d device
    arrays (reading them forces a GPU sync, so callers accumulate them and read once per epoch).
    """
    logits = model.forward(x, training=True, logits=True, hooks=hooks, fuse=fuse)
    value, dy = hooks.run(
        "   loss forward+backward", lambda: (loss.forward(logits, y), loss.backward())
    )
    model.backward(dy * scale if scale != 1 else dy, True, False, hooks, fuse)
    return value, (loss.predict(logits) == y).sum()


def train_step(
    model: Model,
    loss: Loss,
    optimizer: Optimizer,
    x: Any,
    y: Any,
    hooks: Hooks = NO_HOOKS,
    fuse: bool = True,
) -> tuple[Any, Any]:
    """One training step on x: (N, ...), y: (N,): forward_backward, then the update. The one
    definition of a step on the layers: the CPU's micro-batches, the profiler and the
    diagnostics run it (through ``hooks``) too. Returns (batch loss, correct predictions)."""
    check_head(model, loss)
    optimizer.bind(model)
    value, hits = forward_backward(model, loss, x, y, hooks=hooks, fuse=fuse)
    hooks.before_update(model)
    hooks.run("   optimizer", optimizer.step, model.trainable_parameters())
    hooks.after_update(model)
    return value, hits


def evaluate(
    model: Model, loss: Loss, x: Any, y: Any, batch_size: int = 1024
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on x: (N, ...), y: (N,), in evaluation mode."""
    mean_loss, accuracy, _ = evaluate_and_predict(model, loss, x, y, batch_size, keep=False)
    return mean_loss, accuracy


def evaluate_and_predict(
    model: Model, loss: Loss, x: Any, y: Any, batch_size: int = 1024, keep: bool = True
) -> tuple[float, float, np.ndarray | None]:
    """``evaluate`` and, when ``keep``, ``predict`` from the same forward passes: (mean loss,
    accuracy, class probabilities (N, classes) on the host, or None)."""
    xp = get_array_module(x)
    check_head(model, loss)
    model.check_batch(x, batch_size)
    total_loss, correct = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.int64)
    parts = []
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        logits = model.forward(xb, logits=True)
        total_loss += loss.forward(logits, yb) * xb.shape[0]
        correct += (loss.predict(logits) == yb).sum()
        if keep:
            parts.append(to_host(loss.probabilities(logits)))
    n = x.shape[0]
    return float(total_loss) / n, float(correct) / n, np.concatenate(parts) if keep else None


def unequal_classes(y: Any) -> bool:
    """Whether the classes present in labels y: (N,) have unequal numbers of images."""
    counts = np.bincount(to_host(y).astype(np.int64))
    return len(set(counts[counts > 0].tolist())) > 1


@dataclass(frozen=True)
class Evaluation:
    """A model's mean loss and accuracy on some images and, where their classes have unequal
    numbers of images, the balanced ones: the means over the classes of each class's mean loss
    and accuracy (its recall), the figures were every class as many (None where they are: the
    loss and accuracy themselves)."""

    loss: float
    accuracy: float
    balanced_loss: float | None = None
    balanced_accuracy: float | None = None


def evaluate_balanced(
    model: Model, loss: Loss, x: Any, y: Any, batch_size: int = 1024
) -> Evaluation:
    """``evaluate`` on x: (N, ...), y: (N,), class by class where the classes have unequal
    numbers of images, for the balanced figures too."""
    labels = to_host(y)  # one copy from the device, for both questions
    if not unequal_classes(labels):
        return Evaluation(*evaluate(model, loss, x, y, batch_size))
    parts = []  # (images, mean loss, accuracy) of each class
    for k in np.unique(labels):
        mine = y == k
        parts.append((int(mine.sum()), *evaluate(model, loss, x[mine], y[mine], batch_size)))
    n, losses, accuracies = (np.array(column) for column in zip(*parts))
    correct = np.rint(n * accuracies).sum()  # whole numbers of images, exactly
    return Evaluation(
        float(n @ losses / n.sum()),
        float(correct / n.sum()),
        float(losses.mean()),
        float(accuracies.mean()),
    )


def predict(model: Model, loss: Loss, x: Any, batch_size: int = 1024) -> Any:
    """Class probabilities of x: (N, ...) -> (N, classes) on the host, in evaluation mode
    (two columns for a binary model: the negative and the positive class)."""
    check_head(model, loss)
    model.check_batch(x, batch_size)
    parts = [
        to_host(loss.probabilities(model.forward(x[i : i + batch_size], logits=True)))
        for i in range(0, x.shape[0], batch_size)
    ]
    return np.concatenate(parts)
