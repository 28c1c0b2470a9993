"""Architectures by description: a general CNN, a general MLP, the lab's four networks and
LeNet-5.

``cnn`` builds conv blocks (Conv -> activation -> MaxPool or AvgPool) then Flatten and dense
layers; every size can be one value for all blocks or a list with one value per block. The
flattened width is inferred, and an architecture that cannot work raises ShapeError naming the
layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

from .errors import ConfigError, check_choice, is_count
from .layers import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    MaxPool,
)
from .model import Model, sample_shape

IntOrList = int | Sequence[int]
POOLS = {"max": MaxPool, "avg": AvgPool}  # a conv block's pooling, by name


def _per_block(value: IntOrList | None, n: int, key: str) -> list:
    if value is None or isinstance(value, (Integral, str)):  # one for every block
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ConfigError(f"{key} has {len(values)} values but there are {n} conv blocks", key)
    return values


def _padding(padding: int | str, k: int) -> int:
    if padding == "valid":
        return 0
    if padding == "same":
        if k % 2 == 0:
            raise ConfigError(
                f"padding=same needs an odd filter_size, got {k}: use an odd size "
                "or an integer padding",
                "padding",
            )
        return (k - 1) // 2
    if is_count(padding, 0):
        return int(padding)
    raise ConfigError(f"padding must be same, valid or an integer >= 0, got {padding!r}", "padding")


def _check_list(value: Any, key: str, what: str, example: str) -> None:
    """ConfigError naming ``key`` unless ``value`` is a list or tuple (of ``what``): one
    number, where a list of them is meant, says how to write the list."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key} takes a list of {what}, got {value!r}: e.g. {key}={example}", key)


def _output(model: Model, width: int, n_outputs: int, init: str) -> None:
    """The output layer as in the lab: Dense, then sigmoid for one output, softmax for more."""
    model.add(Dense(width, n_outputs, init=init))
    model.add(Activation("sigmoid" if n_outputs == 1 else "softmax"))


def conv_blocks(
    channels: Sequence[int],
    filter_size: IntOrList,
    pool_size: IntOrList,
    pool_stride: IntOrList | None,
    padding: int | str | Sequence[int | str],
    stride: IntOrList = 1,
) -> list[tuple]:
    """Each conv block's (channels, filter_size, pool_size, pool_stride, padding in pixels,
    conv stride), from sizes given once for all blocks or as a list with one per block. Needs
    no input shape, so a config is checked with it before any data is loaded: a list of
    another length than ``channels``, or ``same`` padding of an even filter, raises
    ConfigError naming the key."""
    _check_list(channels, "channels", "the output channels of each conv block", "[16, 32]")
    n = len(channels)
    if n == 0:
        raise ConfigError("channels must list at least one conv block", "channels")
    ks = _per_block(filter_size, n, "filter_size")
    pools = _per_block(pool_size, n, "pool_size")
    strides = _per_block(pool_stride, n, "pool_stride")
    pads = [_padding(pad, k) for pad, k in zip(_per_block(padding, n, "padding"), ks, strict=True)]
    conv_strides = _per_block(stride, n, "stride")
    return list(zip(channels, ks, pools, strides, pads, conv_strides, strict=True))


def cnn(
    input_shape: Sequence[int] = (1, 32, 32),
    channels: Sequence[int] = (16, 32, 64),
    filter_size: IntOrList = 3,
    pool_size: IntOrList = 2,
    pool_stride: IntOrList | None = None,
    padding: int | str | Sequence[int | str] = "same",
    activation: str = "relu",
    hidden: Sequence[int] = (64,),
    dropout: float = 0.0,
    n_outputs: int = 1,
    hidden_activation: str | None = None,
    batch_norm: bool = False,
    stride: IntOrList = 1,
    global_pool: bool = False,
    init: str = "auto",
    pool: str = "max",
) -> Model:
    """Conv blocks with ``channels`` outputs each, then ``hidden`` dense layers, then the output.

    ``stride`` is each Conv's step (2 halves the map, as a 2x2 pool does, by computing a
    quarter of the outputs); ``pool_size`` 0 (or 1) means no pooling in that block (an
    all-convolutional network, with ``stride`` 2); ``dropout`` follows each hidden layer;
    the hidden layers use ``hidden_activation`` (default: ``activation``); ``batch_norm`` puts
    a BatchNorm between every Conv or hidden Dense and its activation; ``global_pool`` averages
    each channel of the last map (GlobalAvgPool) where Flatten would keep every position, so
    the first dense layer weighs channels, not pixels; ``init`` draws every Conv's and Dense's
    weights with one scheme (he, glorot), or ``auto``: each its own, He before ReLU, Glorot
    before sigmoid and tanh; ``pool`` is each block's pooling, ``max`` (MaxPool) or ``avg``
    (AvgPool: the window's mean, as LeNet-5 subsampled).
    """
    check_choice(pool, tuple(POOLS), "pool")
    model = Model()
    shape = sample_shape(input_shape)
    _check_list(hidden, "hidden", "the widths of the hidden dense layers", "[64]")
    c_in = shape[0]
    for c_out, k, pool_k, pool_step, pad, step in conv_blocks(
        channels, filter_size, pool_size, pool_stride, padding, stride
    ):
        model.add(Conv(k, c_in, c_out, pad=pad, stride=step, init=init))
        if batch_norm:
            model.add(BatchNorm(c_out))
        model.add(Activation(activation))
        if pool_k and pool_k > 1:
            model.add(POOLS[pool](pool_k, pool_step))
        c_in = c_out
    model.add(GlobalAvgPool() if global_pool else Flatten())
    width = model.build(shape).output_shape[0]
    for h in hidden:
        model.add(Dense(width, h, init=init))
        if batch_norm:
            model.add(BatchNorm(h))
        model.add(Activation(hidden_activation or activation))
        if dropout:
            model.add(Dropout(dropout))
        width = h
    _output(model, width, n_outputs, init)
    return model.build(shape)


def mlp(
    sizes: Sequence[int],
    activation: str = "relu",
    dropout: float = 0.0,
    input_shape: Sequence[int] | None = None,
    batch_norm: bool = False,
    init: str = "auto",
) -> Model:
    """Flatten, then Dense layers through ``sizes`` (input width first, outputs last);
    ``batch_norm`` puts a BatchNorm between every hidden Dense and its activation; ``init`` as
    for ``cnn``."""
    _check_list(sizes, "sizes", "the input width, then each dense layer's", "[784, 128, 10]")
    if len(sizes) < 2:
        raise ConfigError("sizes needs the input width and at least one layer after it", "sizes")
    model = Model([Flatten()])
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=False):
        model.add(Dense(a, b, init=init))
        if batch_norm:
            model.add(BatchNorm(b))
        model.add(Activation(activation))
        if dropout:
            model.add(Dropout(dropout))
    _output(model, sizes[-2], sizes[-1], init)
    return model.build(tuple(input_shape) if input_shape else (sizes[0],))


def lab_cnn3(n_outputs: int = 1, input_shape: Sequence[int] = (1, 32, 32)) -> Model:
    """3 conv blocks 1->16->32->64 (3x3, pad 1, ReLU, 2x2 max pool), Dense(1024, 64), output.
    88,784 weights for one output."""
    return cnn(input_shape, (16, 32, 64), 3, 2, hidden=(64,), n_outputs=n_outputs)


def lab_cnn2(n_outputs: int = 1, input_shape: Sequence[int] = (1, 32, 32)) -> Model:
    """2 conv blocks 1->8->16, Dense(1024, 512), ReLU, Dropout(0.5), output.
    526,024 weights for one output."""
    return cnn(input_shape, (8, 16), 3, 2, hidden=(512,), dropout=0.5, n_outputs=n_outputs)


def lenet5(n_outputs: int = 10, input_shape: Sequence[int] = (1, 32, 32)) -> Model:
    """LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998) on 32x32 images: two blocks of 5x5
    convolutions without padding (6, then 16 channels), tanh and 2x2 average pooling, then
    dense layers of 120 and 84 units. 61,470 weights for ten outputs."""
    return cnn(input_shape, (6, 16), 5, 2, padding="valid", activation="tanh",
               hidden=(120, 84), n_outputs=n_outputs, pool="avg")  # fmt: skip


def lab_mlp4() -> Model:
    """The lab's MLP 784-128-128-64-64-32-4: 131,200 weights."""
    return mlp((784, 128, 128, 64, 64, 32, 4))


def lab_mlp1() -> Model:
    """The lab's binary MLP 784-100-200-200-100-1: 158,500 weights."""
    return mlp((784, 100, 200, 200, 100, 1))


PRESETS = {"lab_cnn3": lab_cnn3, "lab_cnn2": lab_cnn2, "lab_mlp4": lab_mlp4, "lab_mlp1": lab_mlp1,
           "lenet5": lenet5}  # fmt: skip
