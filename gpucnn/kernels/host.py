"""The kernel set in NumPy: the reference for the CUDA kernels, one function per kernel.

Each function writes into the arrays it is given (``out``-style, like the GPU set) and works in
any floating dtype. Shapes follow gpucnn.kernels: x: (N, H, W, C), columns (N*OH*OW, C*K*K)
ordered (c, kh, kw).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers import sigmoid
from . import out_size


def _act(z: Any, act: str) -> Any:
    if act == "relu":
        return np.maximum(z, 0)
    if act == "sigmoid":
        return sigmoid(z)
    if act == "tanh":
        return np.tanh(z)
    return z


def _act_grad(y: Any, act: str) -> Any:
    """The activation's derivative from its output y."""
    if act == "relu":
        return (y > 0).astype(y.dtype)
    if act == "sigmoid":
        return y * (1 - y)
    if act == "tanh":
        return 1 - y * y
    return 1


def _masked(g: Any, aux: Any, aux_act: str) -> Any:
    """g times act'(aux): the gradient through the activation that produced aux."""
    return g if aux_act == "none" else g * _act_grad(aux, aux_act)


def workspace(m: int, n: int, k: int) -> int:
    """Scratch elements gemm needs for an (m, k) x (k, n) product (none on the CPU)."""
    return 0


def colsum_workspace(rows: int, cols: int) -> int:
    """Scratch elements colsum needs (none on the CPU)."""
    return 0


def gemm(a, b, out, bias=None, act="none", aux=None, aux_act="none", work=None) -> None:
    """out: (M, N) = act(a @ b + bias), times act'(aux) for aux_act. a: (M, K), b: (K, N)."""
    z = a @ b
    if bias is not None:
        z = z + bias
    out[...] = _masked(_act(z, act), aux, aux_act)


def colsum(a, out, work=None) -> None:
    """out: (cols,) = the column sums of a: (rows, cols) (a bias gradient)."""
    out[...] = a.sum(axis=0)


def implicit_conv(rows: int, ckk: int, out_channels: int) -> bool:
    """Whether a convolution skips writing its columns out: never on the CPU."""
    return False


def _columns_of(x, K: int, S: int, P: int, cols=None) -> Any:
    """cols as given (im2col(x) already), or im2col(x) in a new array."""
    if cols is None:
        N, H, W, C = x.shape
        rows = N * out_size(H, K, S, P) * out_size(W, K, S, P)
        cols = np.empty((rows, C * K * K), dtype=x.dtype)
        im2col(x, cols, K, S, P)
    return cols


def conv_forward(x, w, y, K: int, S: int, P: int, bias=None, act="none", cols=None, work=None):
    """y: (N*OH*OW, O) = act(im2col(x) @ w + bias); x: (N, H, W, C), w: (C*K*K, O). The
    columns are written into ``cols`` when it is given (for conv_weight_grad to reuse)."""
    if cols is not None:
        im2col(x, cols, K, S, P)
    gemm(_columns_of(x, K, S, P, cols), w, y, bias, act)


def conv_weight_grad(dy, x, dw, K: int, S: int, P: int, cols=None, work=None) -> None:
    """dw: (O, C*K*K) = dy^T @ im2col(x); dy: (N*OH*OW, O). ``cols``: im2col(x), if kept."""
    gemm(dy.T, _columns_of(x, K, S, P, cols), dw)


def conv_input_grad(
    dy, w, dx, K: int, S: int, P: int, aux=None, aux_act="none", dcols=None, work=None
) -> None:
    """dx: (N, H, W, C) = col2im(dy @ w), times act'(aux); dy: (N*OH*OW, O), w: (O, C*K*K).
    ``dcols``: a buffer for dy @ w, or None for a new one."""
    if dcols is None:
        dcols = np.empty((dy.shape[0], w.shape[1]), dtype=dx.dtype)
    gemm(dy, w, dcols)
    col2im(dcols, dx, K, S, P, aux, aux_act)


def im2col(x, cols, K: int, S: int, P: int) -> None:
    """Unfold x: (N, H, W, C) (any strides) into cols: (N*OH*OW, C*K*K)."""
    N, H, W, C = x.shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    xp = np.pad(x, ((0, 0), (P, P), (P, P), (0, 0)))
    view = cols.reshape(N, OH, OW, C, K, K)
    for kh in range(K):
        for kw in range(K):
            view[..., kh, kw] = xp[
                :, kh : kh + S * (OH - 1) + 1 : S, kw : kw + S * (OW - 1) + 1 : S
            ]


def col2im(dcols, dx, K: int, S: int, P: int, aux=None, aux_act="none") -> None:
    """Fold dcols: (N*OH*OW, C*K*K) back onto dx: (N, H, W, C), adding overlaps."""
    N, H, W, C = dx.shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    view = dcols.reshape(N, OH, OW, C, K, K)
    acc = np.zeros((N, H + 2 * P, W + 2 * P, C), dtype=dx.dtype)
    for kh in range(K):
        for kw in range(K):
            acc[:, kh : kh + S * (OH - 1) + 1 : S, kw : kw + S * (OW - 1) + 1 : S] += view[
                ..., kh, kw
            ]
    dx[...] = _masked(acc[:, P : P + H, P : P + W], aux, aux_act)


def _windows(x, K: int, S: int, OH: int, OW: int):
    """(offset kh*K + kw, the strided slice of x: (N, H, W, C) that offset sees) per offset."""
    for kh in range(K):
        for kw in range(K):
            yield (
                kh * K + kw,
                (
                    slice(None),
                    slice(kh, kh + S * (OH - 1) + 1, S),
                    slice(kw, kw + S * (OW - 1) + 1, S),
                ),
            )


def maxpool_forward(x, y, arg, K: int, S: int, bias=None, act="none") -> None:
    """y: (N, OH, OW, C) = act(window maxima of x + bias); arg: the offset of each maximum
    (the first on ties). bias: (C,)."""
    OH, OW = y.shape[1:3]
    best = np.full(y.shape, -np.inf, dtype=x.dtype)
    at = np.zeros(y.shape, dtype=np.int32)
    for k, window in _windows(x, K, S, OH, OW):
        v = x[window]
        greater = v > best
        best = np.where(greater, v, best)
        at = np.where(greater, k, at)
    y[...], arg[...] = _act(best if bias is None else best + bias, act), at


def maxpool_backward(dy, arg, dx, K: int, S: int, aux=None, aux_act="none", y=None, act="none"):
    """dx: (N, H, W, C): each dy, times act'(y) for the pool's own activation (y: its output),
    sent back to the position of its window's maximum."""
    OH, OW = dy.shape[1:3]
    g = dy if y is None else dy * _act_grad(y, act)
    acc = np.zeros(dx.shape, dtype=dx.dtype)
    for k, window in _windows(acc, K, S, OH, OW):
        acc[window] += g * (arg == k)
    dx[...] = _masked(acc, aux, aux_act)


def avgpool_forward(x, y, K: int, S: int) -> None:
    """y: (N, OH, OW, C) = the mean of each K x K window of x: (N, H, W, C), stride S."""
    OH, OW = y.shape[1:3]
    y[...] = sum(x[window] for _, window in _windows(x, K, S, OH, OW)) / (K * K)


def avgpool_backward(dy, dx, K: int, S: int, aux=None, aux_act="none") -> None:
    """dx: (N, H, W, C): each window's dy shared equally by its K*K inputs, times act'(aux)."""
    OH, OW = dy.shape[1:3]
    acc = np.zeros(dx.shape, dtype=dx.dtype)
    for _, window in _windows(acc, K, S, OH, OW):
        acc[window] += dy / (K * K)
    dx[...] = _masked(acc, aux, aux_act)


def global_avgpool_forward(x, y) -> None:
    """y: (N, C) = the mean of each channel of x: (N, H, W, C)."""
    y[...] = x.mean(axis=(1, 2))


def global_avgpool_backward(dy, dx, aux=None, aux_act="none") -> None:
    """dx: (N, H, W, C): each position an equal share of its channel's dy: (N, C), times
    act'(aux)."""
    N, H, W, C = dx.shape
    dx[...] = _masked(np.broadcast_to(dy[:, None, None, :] / (H * W), dx.shape), aux, aux_act)


def batch_norm_forward(
    x, y, xhat, stats, gamma, beta, running_mean, running_var, momentum, eps, act="none", work=None
) -> None:
    """Batch normalisation in training over the columns of x: (R, C) (a channels-last map's
    N*H*W positions, or a Dense's N rows): y = act(gamma * xhat + beta), xhat = (x - mean) /
    sqrt(var + eps) with each column's mean and biased variance, kept for the backward pass
    with stats: (2, C) = (mean, 1 / sqrt(var + eps)). The running statistics move towards the
    mean and the unbiased variance by ``momentum``."""
    R = x.shape[0]
    mean = x.mean(axis=0)
    centered = x - mean
    var = (centered * centered).mean(axis=0)
    stats[0], stats[1] = mean, 1 / np.sqrt(var + eps)
    xhat[...] = centered * stats[1]
    y[...] = _act(gamma * xhat + beta, act)
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * var * (R / (R - 1))


def batch_norm_backward(
    dy, xhat, stats, gamma, dx, dgamma, dbeta, aux=None, aux_act="none", work=None
) -> None:
    """dx: (R, C), times act'(aux), and the gradients of gamma and beta: (C,), from dy: (R, C)
    and what batch_norm_forward kept. The batch's mean and variance depend on every input,
    which adds two column sums to dx."""
    R = dy.shape[0]
    dbeta[...] = dy.sum(axis=0)
    dgamma[...] = (dy * xhat).sum(axis=0)
    dx[...] = _masked(gamma * stats[1] * (dy - xhat * (dgamma / R) - dbeta / R), aux, aux_act)


def activation_forward(x, y, act: str) -> None:
    y[...] = _act(x, act)


def activation_backward(dy, y, dx, act: str, aux=None, aux_act="none") -> None:
    dx[...] = _masked(dy * _act_grad(y, act), aux, aux_act)


# ----- dropout's counter-based random numbers (the same bits as common.cuh) ---------------
def _mix32(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.uint32)
    with np.errstate(over="ignore"):  # arithmetic mod 2**32 is the point
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        return x ^ (x >> np.uint32(16))


def dropout_key(seed: int, step: int, stream: int) -> np.ndarray:
    """The key of one step's mask: a hash of (seed, step, stream), all taken mod 2**32."""
    mixed = _mix32(np.uint32(seed % 2**32) ^ _mix32(stream % 2**32))
    with np.errstate(over="ignore"):
        return _mix32(mixed + np.uint32(step % 2**32))


def uniform(key: Any, n: int) -> np.ndarray:
    """n numbers in [0, 1) with 24 random bits, element i from the hash of (key, i)."""
    i = np.arange(n, dtype=np.uint64).astype(np.uint32)
    with np.errstate(over="ignore"):
        bits = _mix32(np.asarray(key, dtype=np.uint32) + _mix32(i)) >> np.uint32(8)
    return bits.astype(np.float32) * np.float32(2.0**-24)


def dropout(x, y, rate: float, seed: int, step, stream: int, aux=None, aux_act="none") -> None:
    """y = x * keep / (1 - rate), keep = uniform >= rate; ``step``: a (1,) int64 array. Called
    on a gradient with the same (seed, step, stream) it applies the same mask."""
    u = uniform(dropout_key(seed, int(step[0]), stream), x.size).reshape(x.shape)
    rate32 = np.float32(rate)
    keep = np.where(u >= rate32, np.float32(1) / (np.float32(1) - rate32), np.float32(0))
    y[...] = _masked(x * keep.astype(x.dtype), aux, aux_act)


def nhwc_to_flat(x, y) -> None:
    """y: (N, C*H*W) in (c, h, w) order, from x: (N, H, W, C)."""
    y[...] = x.transpose(0, 3, 1, 2).reshape(y.shape)


def flat_to_nhwc(dy, dx, aux=None, aux_act="none") -> None:
    """dx: (N, H, W, C) from dy: (N, C*H*W) in (c, h, w) order."""
    N, H, W, C = dx.shape
    dx[...] = _masked(dy.reshape(N, C, H, W).transpose(0, 2, 3, 1), aux, aux_act)


# ----- losses --------------------------------------------------------------------------------
def softmax_xent(z, y, dz, row_loss, row_hit, smoothing: float = 0.0) -> None:
    """Softmax + cross-entropy per row of z: (rows, k), with dz = dloss/dz of the batch mean;
    ``smoothing`` e: towards 1 - e on the label plus e / k on every class."""
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1)
    rows = np.arange(z.shape[0])
    picked = (1 - smoothing) * shifted[rows, y] + smoothing * shifted.mean(axis=1)
    row_loss[...] = np.log(total) - picked
    row_hit[...] = z.argmax(axis=1) == y
    d = e / total[:, None] - smoothing / z.shape[1]
    d[rows, y] -= 1 - smoothing
    dz[...] = d / z.shape[0]


def sigmoid_bce(z, y, dz, row_loss, row_hit, smoothing: float = 0.0) -> None:
    """Sigmoid + binary cross-entropy per row of z: (rows, 1); ``smoothing`` e: towards
    1 - e/2 and e/2."""
    v, t = z[:, 0], y.astype(z.dtype) * (1 - smoothing) + smoothing / 2
    row_loss[...] = np.maximum(v, 0) - v * t + np.log1p(np.exp(-np.abs(v)))
    row_hit[...] = (v > 0) == (y != 0)
    dz[:, 0] = (_act(v, "sigmoid") - t) / z.shape[0]


def batch_result(row_loss, row_hit, out_loss, out_hits) -> None:
    """out_loss[0] = mean row loss, out_hits[0] = number of right predictions."""
    out_loss[0] = row_loss.mean()
    out_hits[0] = row_hit.sum()


# ----- optimisers over flat buffers ---------------------------------------------------------
def sgd(p, g, lr: float, wd: float) -> None:
    p -= lr * (g + wd * p)


def momentum(p, g, v, lr: float, mu: float, nesterov: bool, wd: float) -> None:
    grad = g + wd * p
    v *= mu
    v += grad
    p -= lr * (grad + mu * v if nesterov else v)


def adam(
    p, g, m, v, step, lr: float, beta1: float, beta2: float, eps: float, wd: float, decoupled=False
) -> None:
    """One Adam update; ``step``: (1,) int64, the steps taken before this one. ``decoupled``
    (AdamW): weight decay shrinks p by lr * wd * p instead of adding wd * p to the gradient."""
    t = int(step[0]) + 1
    grad = g if decoupled else g + wd * p
    if decoupled:
        p *= 1 - lr * wd
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    p -= (lr / (1 - beta1**t)) * m / (np.sqrt(v * (1 / (1 - beta2**t))) + eps)


def advance(counters) -> None:
    """counters: (2,) int64, steps taken (dropout's key) and optimiser updates (Adam's t)."""
    counters += 1
