"""The reference layer kernels: convolution, pooling and batch normalisation, written to be read.

NCHW throughout, no layout tricks. A convolution unfolds every K x K window of the padded input
into one row of a matrix (im2col), so that the whole convolution is one matrix product with the
weights; its gradients are matrix products too, and the input gradient folds the rows back onto
the image (col2im, the adjoint of im2col). Max pooling keeps the argmax of every window, and its
gradient goes back to that position only. Batch normalisation takes each channel's values as
columns of a matrix, so that its statistics are sums of columns.

Every set (this one, ``fast``) has these functions with these signatures; the layers call
whichever set is active (gpucnn.kernels.use). Array-generic: NumPy or CuPy arrays.

Shape names: N batch, C input channels, O output channels, H x W input, K window, S stride,
P padding, OH x OW output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import get_array_module
from . import out_size

#: Each layer runs on its own here (the fast set may fuse a ReLU into the max pool after it).
FUSES_RELU_INTO_POOL = False


def window(k: int, S: int, n_out: int) -> slice:
    """The input positions that window offset k touches, across all n_out windows."""
    return slice(k, k + S * (n_out - 1) + 1, S)


def im2col(x: Any, K: int, S: int, P: int) -> Any:
    """x: (N, C, H, W) -> cols: (N*OH*OW, C*K*K): row (n, oh, ow) holds the window of output
    pixel (oh, ow) of image n, ordered (c, kh, kw) like a (O, C, K, K) weight."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    padded = xp.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    cols = xp.empty((N, C, K, K, OH, OW), dtype=x.dtype)
    for kh in range(K):
        for kw in range(K):
            cols[:, :, kh, kw] = padded[:, :, window(kh, S, OH), window(kw, S, OW)]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, C * K * K)


def col2im(cols: Any, x_shape: tuple[int, ...], K: int, S: int, P: int) -> Any:
    """The adjoint of im2col: cols: (N*OH*OW, C*K*K) -> dx: (N, C, H, W), each value added
    back where it was read from (windows that overlap add up)."""
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    cols = cols.reshape(N, OH, OW, C, K, K).transpose(0, 3, 4, 5, 1, 2)  # (N, C, K, K, OH, OW)
    padded = xp.zeros((N, C, H + 2 * P, W + 2 * P), dtype=cols.dtype)
    for kh in range(K):
        for kw in range(K):
            padded[:, :, window(kh, S, OH), window(kw, S, OW)] += cols[:, :, kh, kw]
    return padded[:, :, P : P + H, P : P + W]


def conv2d(x: Any, w: Any, b: Any, S: int, P: int) -> tuple[Any, Any]:
    """y: (N, O, OH, OW), the convolution of x: (N, C, H, W) with w: (O, C, K, K), plus b: (O,).
    Returns (y, cache) for conv2d_backward."""
    N, O, K = x.shape[0], w.shape[0], w.shape[2]
    OH, OW = out_size(x.shape[2], K, S, P), out_size(x.shape[3], K, S, P)
    cols = im2col(x, K, S, P)  # (N*OH*OW, C*K*K)
    y = cols @ w.reshape(O, -1).T + b  # (N*OH*OW, O)
    y = y.reshape(N, OH, OW, O).transpose(0, 3, 1, 2)
    return get_array_module(y).ascontiguousarray(y), (cols, x.shape)


def conv2d_backward(
    dy: Any, w: Any, cache: Any, S: int, P: int, input_grad: bool = True
) -> tuple[Any, Any, Any]:
    """(dx, dw, db) from dy: (N, O, OH, OW); dx is None without ``input_grad`` (a first layer
    needs no input gradient)."""
    cols, x_shape = cache
    O, K = w.shape[0], w.shape[2]
    dy = dy.transpose(0, 2, 3, 1).reshape(-1, O)  # (N*OH*OW, O), rows as in cols
    dw = (dy.T @ cols).reshape(w.shape)
    db = dy.sum(axis=0)
    dx = col2im(dy @ w.reshape(O, -1), x_shape, K, S, P) if input_grad else None
    return dx, dw, db


def maxpool2d(x: Any, K: int, S: int, relu: bool = False) -> tuple[Any, Any]:
    """y: (N, C, OH, OW), the maximum of every K x K window of x: (N, C, H, W) with stride S;
    relu(y) with ``relu``. Returns (y, cache); the first maximum in row-major window order wins
    a tie, as in PyTorch."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, K, S), out_size(W, K, S)
    windows = xp.stack(
        [x[:, :, window(kh, S, OH), window(kw, S, OW)] for kh in range(K) for kw in range(K)]
    )  # (K*K, N, C, OH, OW)
    argmax = windows.argmax(axis=0)  # window offset kh*K + kw of each maximum
    y = xp.take_along_axis(windows, argmax[None], axis=0)[0]
    if relu:
        y = xp.maximum(y, 0)
    return y, (argmax, x.shape, y if relu else None)


def maxpool2d_backward(dy: Any, cache: Any, K: int, S: int) -> Any:
    """dx: (N, C, H, W): each dy goes back to the position of its window's maximum."""
    argmax, x_shape, relu_y = cache
    xp = get_array_module(dy)
    if relu_y is not None:
        dy = dy * (relu_y > 0)
    OH, OW = dy.shape[2:]
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    for kh in range(K):
        for kw in range(K):
            dx[:, :, window(kh, S, OH), window(kw, S, OW)] += dy * (argmax == kh * K + kw)
    return dx


def avgpool2d(x: Any, K: int, S: int) -> Any:
    """y: (N, C, OH, OW), the mean of every K x K window of x: (N, C, H, W) with stride S."""
    OH, OW = out_size(x.shape[2], K, S), out_size(x.shape[3], K, S)
    total = sum(x[:, :, window(kh, S, OH), window(kw, S, OW)] for kh in range(K) for kw in range(K))
    return total / (K * K)


def avgpool2d_backward(dy: Any, x_shape: tuple[int, ...], K: int, S: int) -> Any:
    """dx: (N, C, H, W): each window's dy shared equally by its K*K inputs."""
    xp = get_array_module(dy)
    OH, OW = dy.shape[2:]
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    share = dy / (K * K)
    for kh in range(K):
        for kw in range(K):
            dx[:, :, window(kh, S, OH), window(kw, S, OW)] += share
    return dx


def batch_norm(
    x: Any,
    gamma: Any,
    beta: Any,
    running_mean: Any,
    running_var: Any,
    momentum: float,
    eps: float,
    training: bool,
    total: Callable[[list], list] | None = None,
) -> tuple[Any, Any]:
    """y = gamma * (x - mean) / sqrt(var + eps) + beta per channel of x: (N, C, H, W) or
    (N, C). Training: the batch's mean and biased variance, and the running statistics (updated
    in place; None: left to another shard) move towards the batch's mean and unbiased variance
    by ``momentum``; evaluation: the running statistics. When x is one shard of a batch trained
    in parallel, ``total`` sums a list of per-channel arrays over the shards (gpucnn.steps).
    Returns (y, cache).

    Each channel's values are columns of a matrix (channel_columns), so every statistic is a
    sum of columns: a matrix-vector product, much faster than sum(axis=0)."""
    xp = get_array_module(x)
    C = x.shape[1]
    rows = channel_columns(x)
    n = batch_count(rows.size // C, total)
    if training:
        (mean,) = summed([channel_sums(rows, C) / n], total)
        xhat = rows - per_column(mean, rows)
        (var,) = summed([channel_sums(xhat * xhat, C) / n], total)
        update_running(running_mean, running_var, mean, var, n, momentum)
    else:
        xhat, var = rows - per_column(running_mean, rows), running_var
    inv_std = 1 / xp.sqrt(var + eps)
    xhat *= per_column(inv_std, rows)
    y = xhat * per_column(gamma, rows)
    y += per_column(beta, rows)
    return from_channel_columns(y, x.shape), (xhat, inv_std, training, x.shape, total, n)


def batch_norm_backward(dy: Any, gamma: Any, cache: Any) -> tuple[Any, Any, Any]:
    """(dx, dgamma, dbeta) from dy, shaped as x; dgamma and dbeta are this shard's share of the
    batch's (all of it unless batch_norm was given ``total``). In training the batch's mean and
    variance depend on every input, which adds the two sums over the batch in dx."""
    xhat, inv_std, training, shape, total, n = cache
    xp = get_array_module(dy)
    C = len(gamma)
    d = channel_columns(dy)
    dbeta = channel_sums(d, C)
    dgamma = channel_sums(d * xhat, C)
    scale = per_column(gamma * inv_std, d)
    if not training:
        return from_channel_columns(d * scale, shape), dgamma, dbeta
    batch_dbeta, batch_dgamma = summed([dbeta, dgamma], total)
    dx = xhat * per_column(batch_dgamma / n, d)
    xp.subtract(d, dx, out=dx)
    dx -= per_column(batch_dbeta / n, d)
    dx *= scale
    return from_channel_columns(dx, shape), dgamma, dbeta


#: The values a row of channel_columns' matrix holds at most (where the pixels divide evenly):
#: NumPy's arithmetic between a matrix and a vector along its rows is about three times
#: faster on rows of hundreds of values than on rows of a few channels.
ROW_VALUES = 512


def channel_columns(x: Any) -> Any:
    """x: (N, C) or (N, C, H, W) as a matrix of m pixels a row, (N*H*W / m, m*C), column j
    holding values of channel j % C: m is the largest divisor of N*H*W with m*C at most
    ROW_VALUES (or 1). No copy when x is channels-last in memory, as the fast set's
    convolutions leave it."""
    xp = get_array_module(x)
    C = x.shape[1]
    if x.ndim == 4:
        x = xp.ascontiguousarray(x.transpose(0, 2, 3, 1))
    pixels = x.size // C
    m = next(m for m in range(max(ROW_VALUES // C, 1), 0, -1) if pixels % m == 0)
    return x.reshape(pixels // m, m * C)


def channel_sums(rows: Any, C: int) -> Any:
    """The sum of each channel's values in rows, a matrix of channel_columns: (C,)."""
    xp = get_array_module(rows)
    return (xp.ones(rows.shape[0], dtype=rows.dtype) @ rows).reshape(-1, C).sum(axis=0)


def per_column(v: Any, rows: Any) -> Any:
    """v: (C,), one value per channel, repeated for each pixel of a row of rows: (m*C,)."""
    return get_array_module(v).tile(v, rows.shape[1] // len(v))


def from_channel_columns(rows: Any, shape: tuple[int, ...]) -> Any:
    """The inverse of channel_columns: rows as an array of ``shape`` (an NCHW-shaped view)."""
    if len(shape) == 2:
        return rows.reshape(shape)
    N, C, H, W = shape
    return rows.reshape(N, H, W, C).transpose(0, 3, 1, 2)


def batch_count(n: int, total: Callable[[list], list] | None) -> int:
    """Values per channel in the batch, from this shard's ``n``."""
    return n if total is None else int(total([np.array([n])])[0][0])


def summed(arrays: list, total: Callable[[list], list] | None) -> list:
    """``arrays`` summed over the shards of the batch (as they are when it is not sharded)."""
    return arrays if total is None else total(arrays)


def update_running(
    running_mean: Any, running_var: Any, mean: Any, var: Any, n: int, momentum: float
) -> None:
    """Move the running statistics towards the batch's mean and unbiased variance (one shard
    of a batch does it: the others pass None)."""
    if running_mean is None:
        return
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * var * (n / (n - 1))
