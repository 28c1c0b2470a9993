"""The lab's layers: Conv, MaxPool, Dense, Activation, Flatten, Dropout; and BatchNorm, AvgPool,
GlobalAvgPool.

Every layer has ``forward(x, training=False) -> y`` and ``backward(dy) -> dx``; backward fills
``grads`` (same keys as ``params``) with the gradient of the loss for the batch last seen.
``params`` may have any names (``bias_names`` says which are biases, for the lab's weight
counts); ``buffers`` holds state that is saved but not learned (BatchNorm's running
statistics); a layer whose training pass needs the whole batch at once says ``whole_batch``.
``output_shape(shape)`` maps a per-sample input shape to the output shape, or raises ShapeError,
so a Model can check an architecture before any data flows. Layout is NCHW.

Conv and MaxPool hold their settings and parameters and call the active kernel set
(gpucnn.kernels: ``reference`` to read, ``fast`` by default) for the arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import backend, initializers, kernels, memory
from .errors import ConfigError, ShapeError, as_float, did_you_mean, is_count, is_number
from .kernels import out_size

Shape = tuple[int, ...]


def _positive_int(value: Any, what: str, layer: str) -> int:
    if not is_count(value, 1):
        raise ConfigError(f"{layer}: {what} must be a positive integer, got {value!r}")
    return int(value)


class Layer:
    """Base class. Layers without parameters keep empty ``params`` and ``grads`` dicts."""

    #: Which ``params`` are biases (the lab counts weights without them).
    bias_names: tuple[str, ...] = ()
    #: True when training statistics span the batch (so it cannot be split in micro-batches).
    whole_batch = False
    #: True for a whole_batch layer that sums its statistics over shards of the batch trained
    #: at once when a step gives it ``shards`` (BatchNorm); other whole_batch layers train on
    #: whole batches on one thread.
    sums_shards = False
    #: False for a layer whose ``params`` keep their values while the rest learns (frozen:
    #: Model.freeze); its gradients are then neither computed nor used.
    trainable = True

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.buffers: dict[str, Any] = {}

    def forward(self, x: Any, training: bool = False) -> Any:
        raise NotImplementedError

    def backward(self, dy: Any) -> Any:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        """Called only for an attribute that is not set: one of those that forward keeps for
        backward (``_cache``, ``_x``) is named as such, for a backward called before forward,
        or as a misspelling of one that is set (in a layer of one's own)."""
        if name.startswith("_") and not name.startswith("__"):
            kept = did_you_mean(name, [k for k in vars(self) if k.startswith("_")])
            why = kept or " yet: forward sets it, so call forward(x, training=True) before backward"
            raise AttributeError(f"{type(self).__name__} has no {name}{why}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def min_training_batch(self, shape: Shape) -> int:
        """The fewest samples a training pass over per-sample ``shape`` inputs needs."""
        return 1

    def multiply_adds(self, out_shape: Shape) -> int:
        """Multiply-adds of one image's forward pass, given the output shape: counted for the
        weighted layers (Conv, Dense), whose dot products are nearly all of a CNN's arithmetic;
        0 for the rest (biases, activations, pooling, normalisation)."""
        return 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ParamLayer(Layer):
    """A layer with a weight W and a bias b, created (and initialised) at construction.

    (Only layers with a weight W are ParamLayers: the ones initialisation schemes apply to.)

    ``init`` is ``he`` (for ReLU), ``glorot`` (for sigmoid / tanh) or ``auto``: He now, switched to
    Glorot by ``Model.add`` when a sigmoid or tanh activation is added right after this layer.
    """

    bias_names = ("b",)

    def __init__(self, w_shape: Shape, b_size: int, fans: tuple[int, int], init: str) -> None:
        super().__init__()
        if init not in initializers.SCHEMES + ("auto",):
            raise ConfigError(f"{self!r}: init must be auto, he or glorot, got {init!r}")
        self.init = init
        self._fans = fans
        xp, dtype = backend.xp(), backend.dtype()
        values = math.prod(w_shape) + b_size
        memory.require(  # parameters and gradients: refused before allocating
            2 * values * np.dtype(dtype).itemsize,
            f"{self!r}: {values:,} parameters and their gradients",
            "make the layer smaller (fewer channels or units, a smaller filter) or its input "
            "smaller (more pooling before it, a smaller image)",
        )
        self.params = {"W": xp.empty(w_shape, dtype=dtype), "b": xp.zeros(b_size, dtype=dtype)}
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}
        self.reset_parameters("he" if init == "auto" else init)

    def param_grads(self, dy: Any) -> Any:
        """Fill ``grads`` from dy without computing the input gradient (the first layer of a
        model needs no dx)."""
        raise NotImplementedError

    def reset_parameters(self, scheme: str) -> None:
        """Draw W afresh with ``scheme`` (he or glorot) from the seeded host generator; zero b."""
        w = initializers.draw(scheme, self.params["W"].shape, *self._fans)
        self.params["W"][...] = backend.to_device(w, dtype=self.params["W"].dtype)
        self.params["b"][...] = 0


class Conv(ParamLayer):
    """2-D convolution, as one matrix product over im2col columns.

    x: (N, C, H, W) -> y: (N, O, OH, OW) with OH = floor((H + 2*pad - k) / stride) + 1.
    W: (output_channel, input_channel, k, k), b: (output_channel,).
    """

    def __init__(
        self,
        filter_size: int,
        input_channel: int,
        output_channel: int,
        pad: int = 0,
        stride: int = 1,
        init: str = "auto",
    ) -> None:
        name = (
            f"Conv(filter_size={filter_size!r}, input_channel={input_channel!r}, "
            f"output_channel={output_channel!r}, pad={pad!r}, stride={stride!r})"
        )
        self.k = _positive_int(filter_size, "filter_size", name)
        self.c_in = _positive_int(input_channel, "input_channel", name)
        self.c_out = _positive_int(output_channel, "output_channel", name)
        self.stride = _positive_int(stride, "stride", name)
        if not is_count(pad, 0):
            fix, word = "", pad if isinstance(pad, str) else None  # as other libraries name it
            if word == "same":
                fix = f": for outputs the size of the inputs give pad={(self.k - 1) // 2} "
                fix += "((filter_size - 1) // 2, with an odd filter_size and stride 1)"
            elif word == "valid":
                fix = ": for no padding give pad=0"
            raise ConfigError(f"{name}: pad must be an integer >= 0, got {pad!r}{fix}")
        self.pad = int(pad)
        k2 = self.k * self.k
        w_shape = (self.c_out, self.c_in, self.k, self.k)
        super().__init__(w_shape, self.c_out, (self.c_in * k2, self.c_out * k2), init)

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 3:
            raise ShapeError(f"expects a (channels, height, width) input, got {shape}")
        C, H, W = shape
        if C != self.c_in:
            raise ShapeError(
                f"input_channel={self.c_in} but the input has {C} channel{'s' * (C != 1)} "
                f"{shape}: "
                f"set input_channel={C}"
            )
        OH = out_size(H, self.k, self.stride, self.pad)
        OW = out_size(W, self.k, self.stride, self.pad)
        if OH < 1 or OW < 1:
            raise ShapeError(
                f"a {self.k}x{self.k} filter with pad={self.pad} does not fit the {H}x{W} input "
                f"{shape} (output would be {OH}x{OW}): use a smaller filter, more padding, "
                "or fewer pooling layers or strided convolutions before it"
            )
        return (self.c_out, OH, OW)

    def multiply_adds(self, out_shape: Shape) -> int:
        """Each output value is a dot product over a window of input_channel x k x k."""
        return math.prod(out_shape) * self.c_in * self.k * self.k

    def forward(self, x: Any, training: bool = False) -> Any:
        p = self.params
        y, self._cache = kernels.active().conv2d(x, p["W"], p["b"], self.stride, self.pad)
        return y

    def _backward(self, dy: Any, input_grad: bool) -> Any:
        w = self.params["W"]
        dx, dw, db = kernels.active().conv2d_backward(
            dy, w, self._cache, self.stride, self.pad, input_grad
        )
        self.grads["W"][...] = dw
        self.grads["b"][...] = db
        return dx

    def param_grads(self, dy: Any) -> Any:
        """Fill grads from dy: (N, O, OH, OW)."""
        return self._backward(dy, input_grad=False)

    def backward(self, dy: Any) -> Any:
        return self._backward(dy, input_grad=True)

    def __repr__(self) -> str:
        return (
            f"Conv(filter_size={self.k}, input_channel={self.c_in}, "
            f"output_channel={self.c_out}, pad={self.pad}, stride={self.stride})"
        )


class Dense(ParamLayer):
    """Fully connected: x: (N, input_size) -> y = x @ W + b: (N, output_size).

    W: (input_size, output_size), b: (output_size,).
    """

    def __init__(self, input_size: int, output_size: int, init: str = "auto") -> None:
        name = f"Dense({input_size!r}, {output_size!r})"
        self.n_in = _positive_int(input_size, "input_size", name)
        self.n_out = _positive_int(output_size, "output_size", name)
        super().__init__((self.n_in, self.n_out), self.n_out, (self.n_in, self.n_out), init)

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ShapeError(
                f"expects a flat (features,) input, got {shape}: add Flatten() before it"
            )
        if shape[0] != self.n_in:
            raise ShapeError(
                f"input_size={self.n_in} but the input has {shape[0]} features: "
                f"use Dense({shape[0]}, {self.n_out})"
            )
        return (self.n_out,)

    def multiply_adds(self, out_shape: Shape) -> int:
        """One per weight: each output is a dot product over every input."""
        return self.n_in * self.n_out

    def forward(self, x: Any, training: bool = False) -> Any:
        self._x = x
        return x @ self.params["W"] + self.params["b"]

    def param_grads(self, dy: Any) -> Any:
        """Fill grads from dy: (N, output_size)."""
        self.grads["W"][...] = self._x.T @ dy
        self.grads["b"][...] = dy.sum(axis=0)
        return dy

    def backward(self, dy: Any) -> Any:
        return self.param_grads(dy) @ self.params["W"].T

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out})"


class _Pool(Layer):
    """A pool over pool_size x pool_size windows; stride defaults to pool_size.

    x: (N, C, H, W) -> y: (N, C, OH, OW) with OH = floor((H - pool_size) / stride) + 1, so
    overlapping windows (stride < pool_size) and sizes that do not divide evenly work.
    """

    def __init__(self, pool_size: int, stride: int | None = None) -> None:
        super().__init__()
        name = f"{type(self).__name__}({pool_size!r}, stride={stride!r})"
        self.k = _positive_int(pool_size, "pool_size", name)
        self.stride = self.k if stride is None else _positive_int(stride, "stride", name)

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 3:
            raise ShapeError(f"expects a (channels, height, width) input, got {shape}")
        C, H, W = shape
        OH, OW = out_size(H, self.k, self.stride), out_size(W, self.k, self.stride)
        if OH < 1 or OW < 1:
            raise ShapeError(
                f"a {self.k}x{self.k} pool does not fit the {H}x{W} input {shape}: "
                "use a smaller pool_size, or fewer pooling layers or strided convolutions "
                "before it"
            )
        return (C, OH, OW)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pool_size={self.k}, stride={self.stride})"


class MaxPool(_Pool):
    """Max pooling: each output is its window's maximum (the first one on ties)."""

    def forward(self, x: Any, training: bool = False, relu: bool = False) -> Any:
        """``relu=True``: relu(maxpool(x)), for a Model that fuses the ReLU before this layer
        into it (the fast kernel set: the same values on a K*K times smaller map)."""
        y, self._cache = kernels.active().maxpool2d(x, self.k, self.stride, relu)
        return y

    def backward(self, dy: Any) -> Any:
        return kernels.active().maxpool2d_backward(dy, self._cache, self.k, self.stride)


class AvgPool(_Pool):
    """Average pooling: each output is its window's mean."""

    def forward(self, x: Any, training: bool = False) -> Any:
        self._x_shape = x.shape
        return kernels.active().avgpool2d(x, self.k, self.stride)

    def backward(self, dy: Any) -> Any:
        return kernels.active().avgpool2d_backward(dy, self._x_shape, self.k, self.stride)


class GlobalAvgPool(Layer):
    """The mean of each channel over the whole map: x: (N, C, H, W) -> y: (N, C)."""

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 3:
            raise ShapeError(f"expects a (channels, height, width) input, got {shape}")
        return (shape[0],)

    def forward(self, x: Any, training: bool = False) -> Any:
        self._x_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dy: Any) -> Any:
        H, W = self._x_shape[2:]
        dx = backend.get_array_module(dy).empty(self._x_shape, dtype=dy.dtype)
        dx[...] = (dy / (H * W))[:, :, None, None]  # each position's equal share
        return dx


class BatchNorm(Layer):
    """Batch normalisation, as PyTorch's BatchNorm1d / BatchNorm2d.

    x: (N, C, H, W) after a Conv (statistics per channel over N, H, W) or (N, C) after a Dense
    (per feature over N). Training: y = gamma * (x - mean) / sqrt(var + eps) + beta with the
    batch's mean and (biased) variance, and running_mean / running_var (buffers) move towards
    the batch's mean and unbiased variance by ``momentum``. Evaluation: the running statistics.
    params gamma (ones) and beta (zeros): (C,).
    """

    bias_names = ("beta",)
    whole_batch = True
    sums_shards = True
    #: Set by a step that trains shards of the batch at once (gpucnn.steps): the function that
    #: sums a list of per-channel arrays over the shards, and whether this shard updates the
    #: running statistics. None: the layer sees the whole batch.
    shards: tuple[Callable[[list], list], bool] | None = None

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        name = f"BatchNorm({num_features!r}, momentum={momentum!r}, eps={eps!r})"
        self.c = _positive_int(num_features, "num_features", name)
        if not (is_number(momentum) and 0 <= momentum <= 1):
            raise ConfigError(f"{name}: momentum must be a number in [0, 1]")
        if not (is_number(eps) and 0 < eps < math.inf):
            raise ConfigError(f"{name}: eps must be a finite positive number")
        self.momentum, self.eps = as_float(momentum), as_float(eps)
        xp, dtype = backend.xp(), backend.dtype()
        self.params = {"gamma": xp.ones(self.c, dtype=dtype), "beta": xp.zeros(self.c, dtype=dtype)}
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}
        self.buffers = {
            "running_mean": xp.zeros(self.c, dtype=dtype),
            "running_var": xp.ones(self.c, dtype=dtype),
        }

    def min_training_batch(self, shape: Shape) -> int:
        # Two values per channel at least: the variance of one is 0, and its gradient is 0/0.
        return 1 if math.prod(shape[1:]) > 1 else 2

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) not in (1, 3) or shape[0] != self.c:
            raise ShapeError(
                f"expects {self.c} channels, (C, H, W) after a Conv or (C,) after a Dense, "
                f"got {shape}: use BatchNorm({shape[0]})"
            )
        return shape

    def forward(self, x: Any, training: bool = False) -> Any:
        if training and len(x) < self.min_training_batch(x.shape[1:]):
            raise ShapeError(
                f"{self!r} needs more than one value per channel in training, got a batch "
                f"{tuple(x.shape)}: train on batches of at least 2 (a last batch of one image? "
                f"data.Batches(..., drop_last=True) leaves it out)"
            )
        p, buf = self.params, self.buffers
        total, updates = self.shards or (None, True)
        updated = updates or not training  # evaluation reads them in every shard
        running = (buf["running_mean"], buf["running_var"]) if updated else (None, None)
        y, self._cache = kernels.active().batch_norm(
            x,
            p["gamma"],
            p["beta"],
            *running,
            self.momentum,
            self.eps,
            training,
            total,
        )
        return y

    def backward(self, dy: Any) -> Any:
        dx, dgamma, dbeta = kernels.active().batch_norm_backward(
            dy, self.params["gamma"], self._cache
        )
        self.grads["gamma"][...] = dgamma
        self.grads["beta"][...] = dbeta
        return dx

    def __repr__(self) -> str:
        return f"BatchNorm({self.c}, momentum={self.momentum}, eps={self.eps})"


class Activation(Layer):
    """Elementwise relu, sigmoid or tanh, or softmax over the last axis (an output layer).

    The lab passed a second argument (the loss name); it is accepted and ignored.
    """

    NAMES = ("relu", "sigmoid", "tanh", "softmax")

    def __init__(self, name: str, _loss: str | None = None) -> None:
        super().__init__()
        if name not in self.NAMES:
            hint = did_you_mean(name, self.NAMES) if isinstance(name, str) else ""
            raise ConfigError(f"Activation({name!r}): choose one of {', '.join(self.NAMES)}{hint}")
        self.name = name

    def forward(self, x: Any, training: bool = False) -> Any:
        xp = backend.get_array_module(x)
        if self.name == "relu":
            y = xp.maximum(x, 0)
        elif self.name == "sigmoid":
            y = sigmoid(x)
        elif self.name == "tanh":
            y = xp.tanh(x)
        else:
            y = softmax(x)
        self._y = y
        return y

    def backward(self, dy: Any) -> Any:
        y = self._y
        if self.name == "relu":
            return dy * (y > 0)
        if self.name == "sigmoid":
            return dy * y * (1 - y)
        if self.name == "tanh":
            return dy * (1 - y * y)
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


class Flatten(Layer):
    """x: (N, C, H, W) -> (N, C*H*W)."""

    def output_shape(self, shape: Shape) -> Shape:
        size = 1
        for d in shape:
            size *= d
        return (size,)

    def forward(self, x: Any, training: bool = False) -> Any:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: Any) -> Any:
        return dy.reshape(self._shape)


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale the rest
    by 1 / (1 - rate); the identity in evaluation. Masks come from the backend's seeded generator.
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not (is_number(rate) and 0 <= rate < 1):
            raise ConfigError(f"Dropout({rate!r}): rate must be a number in [0, 1)")
        self.rate = as_float(rate)
        self._scale = None
        self.rng = None  # a generator of its own (a thread's replica), else the backend's

    def forward(self, x: Any, training: bool = False) -> Any:
        if not training or self.rate == 0:
            self._scale = None
            return x
        rng = self.rng if self.rng is not None else backend.active().rng
        keep = rng.random(x.shape, dtype=x.dtype) >= self.rate
        self._scale = keep * x.dtype.type(1 / (1 - self.rate))
        return x * self._scale

    def backward(self, dy: Any) -> Any:
        return dy if self._scale is None else dy * self._scale

    def __repr__(self) -> str:
        return f"Dropout({self.rate})"


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), written with tanh so no exp overflows for large |x|."""
    xp = backend.get_array_module(x)
    return 0.5 * (1 + xp.tanh(0.5 * x))


def softmax(x: Any) -> Any:
    """Softmax over the last axis, shifted by the row maximum for stability."""
    xp = backend.get_array_module(x)
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
