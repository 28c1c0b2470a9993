"""Losses computed on logits, so large logits never overflow or give log(0).

A model that ends in ``Activation("sigmoid")`` or ``Activation("softmax")`` (as in the lab) is
trained through its logits: the Model skips that output activation, and the loss fuses it.
Both losses are the mean over the batch. ``label_smoothing`` = e trains towards targets moved
e of the way from one-hot to uniform over the classes, as torch.nn.CrossEntropyLoss's does
(for two classes, 1 - e/2 and e/2): the model is not pushed to ever larger logits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .backend import get_array_module
from .errors import ConfigError, InputError, LabelError, is_number
from .layers import sigmoid, softmax


class Loss:
    """``forward(logits, y) -> scalar`` (a 0-d device array), then ``backward() -> dlogits``."""

    #: The output activation this loss fuses (what the model's last layer may be).
    head = ""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not (is_number(label_smoothing) and 0 <= label_smoothing < 1):
            raise ConfigError(
                f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}",
                "label_smoothing",
            )
        self.label_smoothing = float(label_smoothing)

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

    def classes(self, outputs: tuple[int, ...]) -> int:
        """How many classes logits of shape ``outputs`` stand for; LabelError if they cannot."""
        raise NotImplementedError

    def check(self, outputs: tuple[int, ...], y: Any) -> None:
        """LabelError unless y: (N,) holds one integer class index for each row of logits of
        shape ``outputs``. Their values are checked on host arrays only: on the GPU reading them
        back would stall every step (the app checks its labels once, when it prepares them)."""
        name, k = type(self).__name__, self.classes(outputs)
        if not (hasattr(y, "shape") and hasattr(y, "dtype")):
            raise LabelError(
                f"{name} needs labels as an array (N,), got a {type(y).__name__}: "
                "pass np.asarray(y)"
            )
        if len(outputs) == 2 and outputs[1] > 1 and tuple(y.shape) == tuple(outputs):
            raise LabelError(
                f"{name} needs class indices (N,), but got labels {tuple(y.shape)}, one row per "
                f"image (one-hot?): pass y.argmax(axis=1)"
            )
        if tuple(y.shape) != tuple(outputs[:1]):
            raise LabelError(
                f"{name} needs one label per image, {tuple(outputs[:1])}, but got labels "
                f"{tuple(y.shape)}" + (": pass y.reshape(-1)" if y.size == outputs[0] else "")
            )
        if y.dtype.kind not in "iub":
            raise LabelError(
                f"{name} needs integer class indices, but got labels of {y.dtype}: pass "
                f"y.astype(int) if they are whole numbers"
            )
        if isinstance(y, np.ndarray) and y.size and (y.min() < 0 or y.max() >= k):
            raise LabelError(
                f"{name} needs labels 0 to {k - 1} ({self._meaning(k)}), but they range from "
                f"{y.min()} to {y.max()}"
            )

    def _meaning(self, classes: int) -> str:
        """What the label values stand for, in the message about labels out of range."""
        raise NotImplementedError


class BinaryCrossEntropy(Loss):
    """Sigmoid + binary cross-entropy. logits: (N, 1) or (N,), y: (N,) of 0 / 1."""

    head = "sigmoid"

    def forward(self, logits: Any, y: Any) -> Any:
        xp = get_array_module(logits)
        self.check(logits.shape, y)
        z = logits.reshape(-1)
        e = self.label_smoothing
        t = y.astype(z.dtype) * (1 - e) + e / 2
        # log(1 + exp(-|z|)) + max(z, 0) - z*t equals -t log p - (1-t) log(1-p), without overflow.
        loss = xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))
        self._cache = (z, t, logits.shape)
        return loss.mean()

    def backward(self) -> Any:
        z, t, shape = self._cache
        return ((sigmoid(z) - t) / z.shape[0]).reshape(shape)

    def classes(self, outputs: tuple[int, ...]) -> int:
        if math.prod(outputs[1:]) != 1:
            raise LabelError(
                f"BinaryCrossEntropy needs one output per image, (N, 1), but got logits "
                f"{tuple(outputs)}: for {math.prod(outputs[1:])} classes use CrossEntropy"
            )
        return 2

    def _meaning(self, classes: int) -> str:
        return "negative and positive"

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
        self.check(logits.shape, y)
        _not_probabilities(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_z = xp.log(xp.exp(shifted).sum(axis=1))
        picked = xp.take_along_axis(shifted, y.reshape(-1, 1).astype(xp.intp), axis=1)[:, 0]
        e = self.label_smoothing
        if e:  # the target: 1 - e on the label, plus e / K on every class
            picked = (1 - e) * picked + e * shifted.mean(axis=1)
        self._cache = (logits, y)
        return (log_z - picked).mean()

    def backward(self) -> Any:
        logits, y = self._cache
        xp = get_array_module(logits)
        e = self.label_smoothing
        d = softmax(logits)
        d[xp.arange(d.shape[0]), y] -= 1 - e
        if e:
            d -= e / d.shape[1]
        return d / d.shape[0]

    def classes(self, outputs: tuple[int, ...]) -> int:
        if len(outputs) != 2 or outputs[1] < 2:
            raise LabelError(
                f"CrossEntropy needs logits (N, classes) with 2 or more classes, but got "
                f"{tuple(outputs)}: a model with one output trains with BinaryCrossEntropy"
            )
        return outputs[1]

    def _meaning(self, classes: int) -> str:
        return f"one for each of the model's {classes} outputs"

    def predict(self, logits: Any) -> Any:
        return logits.argmax(axis=1)

    def probabilities(self, logits: Any) -> Any:
        return softmax(logits)


def _not_probabilities(logits: Any) -> None:
    """InputError for rows that are each a probability distribution, as the model's softmax
    gives them (logits practically never sum to 1): a loop of one's own that called
    ``model.forward(x, training=True)`` without ``logits=True`` would otherwise train a softmax
    of the softmax without a word. Checked on host arrays only, as labels are, and on two
    rows or more (one row of real logits might, by a fluke, look so)."""
    if not isinstance(logits, np.ndarray) or len(logits) < 2:
        return
    in_range = logits.min() >= 0 and logits.max() <= 1
    if in_range and np.allclose(logits.sum(axis=1), 1, rtol=0, atol=1e-5):
        raise InputError(
            "CrossEntropy takes logits, but each row of these is in [0, 1] and sums to 1: "
            "probabilities from the model's softmax. Pass model.forward(x, training=True, "
            "logits=True) (and backward its gradient), or train with train_step or make_step"
        )


def for_outputs(n_outputs: int, label_smoothing: float = 0.0) -> Loss:
    """The loss matching a model's output width: binary for 1 output, softmax otherwise."""
    kind = BinaryCrossEntropy if n_outputs == 1 else CrossEntropy
    return kind(label_smoothing)
