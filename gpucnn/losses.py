"""Losses computed on logits, so large logits never overflow or give log(0).

A model that ends in ``Activation("sigmoid")`` or ``Activation("softmax")`` (as in the lab) is
trained through its logits: the Model skips that output activation, and the loss fuses it.
Both losses are the mean over the batch.
"""

from __future__ import annotations

from typing import Any

from .backend import get_array_module
from .layers import sigmoid, softmax


class Loss:
    """``forward(logits, y) -> scalar`` (a 0-d device array), then ``backward() -> dlogits``."""

    #: The output activation this loss fuses (what the model's last layer may be).
    head = ""

    def forward(self, logits: Any, y: Any) -> Any:
        raise NotImplementedError

    def backward(self) -> Any:
        raise NotImplementedError

    def predict(self, logits: Any) -> Any:
        """Class indices from logits."""
        raise NotImplementedError

    def probabilities(self, logits: Any) -> Any:
        """(N, classes) probabilities from logits (two columns for a binary output)."""
        raise NotImplementedError


class BinaryCrossEntropy(Loss):
    """Sigmoid + binary cross-entropy. logits: (N, 1) or (N,), y: (N,) of 0 / 1."""

    head = "sigmoid"

    def forward(self, logits: Any, y: Any) -> Any:
        xp = get_array_module(logits)
        z = logits.reshape(-1)
        t = y.astype(z.dtype)
        # log(1 + exp(-|z|)) + max(z, 0) - z*t equals -t log p - (1-t) log(1-p), without overflow.
        loss = xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))
        self._cache = (z, t, logits.shape)
        return loss.mean()

    def backward(self) -> Any:
        z, t, shape = self._cache
        return ((sigmoid(z) - t) / z.shape[0]).reshape(shape)

    def predict(self, logits: Any) -> Any:
        return (logits.reshape(-1) > 0).astype(get_array_module(logits).int64)

    def probabilities(self, logits: Any) -> Any:
        p = sigmoid(logits.reshape(-1, 1))
        return get_array_module(logits).concatenate([1 - p, p], axis=1)


class CrossEntropy(Loss):
    """Softmax + cross-entropy. logits: (N, K), y: (N,) class indices in [0, K)."""

    head = "softmax"

    def forward(self, logits: Any, y: Any) -> Any:
        xp = get_array_module(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_z = xp.log(xp.exp(shifted).sum(axis=1))
        picked = xp.take_along_axis(shifted, y.reshape(-1, 1).astype(xp.intp), axis=1)[:, 0]
        self._cache = (logits, y)
        return (log_z - picked).mean()

    def backward(self) -> Any:
        logits, y = self._cache
        xp = get_array_module(logits)
        d = softmax(logits)
        d[xp.arange(d.shape[0]), y] -= 1
        return d / d.shape[0]

    def predict(self, logits: Any) -> Any:
        return logits.argmax(axis=1)

    def probabilities(self, logits: Any) -> Any:
        return softmax(logits)


def for_outputs(n_outputs: int) -> Loss:
    """The loss matching a model's output width: binary for 1 output, softmax otherwise."""
    return BinaryCrossEntropy() if n_outputs == 1 else CrossEntropy()
