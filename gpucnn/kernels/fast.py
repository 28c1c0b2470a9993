"""The fast layer kernels: the reference set's operations, rearranged for speed on NumPy.

The layers' arrays are NCHW in shape, but here convolution and pooling store their outputs
channels-last (NHWC) in memory and hand out NCHW-shaped views of them. Every helper works on the
NHWC view, where a pixel's channels are contiguous: unfolding windows, folding them back and
pooling then move contiguous runs, and a convolution's matrix product lands directly in its
output layout, with no transposing copies. Elementwise layers in between keep the layout as
they are. Further tricks: columns built transposed for few channels, the input gradient folded
offset by offset, max (average) pooling as a max (sum) along rows of a max (sum) along columns,
a ReLU before a max pool computed after it, on the smaller map (``maxpool2d(relu=True)``; the
Model asks for it), and a convolution's bias added along rows of many pixels (channel_columns).

Array-generic: NumPy or CuPy arrays (the CuPy layers run it too).

Shape names: N batch, H x W input map, C channels, K window size, S stride, P padding,
OH x OW output map.
"""

from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from . import out_size

# Where this set has nothing faster, it is the reference set. (Its batch norm works on each
# channel's values as columns, which needs no copy for this set's channels-last maps.)
from .reference import (  # noqa: F401
    batch_norm,
    batch_norm_backward,
    channel_columns,
    channel_sums,
    per_column,
    window,
)

#: The Model may hand this set a ReLU that comes right before a max pool (see maxpool2d).
FUSES_RELU_INTO_POOL = True


def nhwc(x: Any) -> Any:
    """The channels-last view (N, H, W, C) of x: (N, C, H, W), contiguous (copied only if the
    memory is not already channels-last)."""
    xp = get_array_module(x)
    return xp.ascontiguousarray(x.transpose(0, 2, 3, 1))


def nchw(x: Any) -> Any:
    """The NCHW-shaped view of a channels-last x: (N, H, W, C) (no copy)."""
    return x.transpose(0, 3, 1, 2)


def _offsets(K: int, S: int, OH: int, OW: int):
    """(index, rows, cols) of each of the K*K window offsets: the strided slices of the input
    that offset (i, j) touches across all OH x OW windows."""
    for i in range(K):
        for j in range(K):
            yield i * K + j, window(i, S, OH), window(j, S, OW)


def im2col(x: Any, K: int, S: int, P: int) -> tuple[Any, int, int]:
    """Unfold x: (N, H, W, C) into columns (N*OH*OW, K*K*C), rows ordered (n, oh, ow) and
    columns (kh, kw, c). Returns (cols, OH, OW).

    With few channels the columns are built transposed, one long row per (kh, kw, c), and
    returned as a transposed view: copying whole image rows is much faster than copying runs
    of C values. Matrix products take either layout as it is.
    """
    xp = get_array_module(x)
    N, H, W, C = x.shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    if P:
        x = xp.pad(x, ((0, 0), (P, P), (P, P), (0, 0)))
    if C < 4:
        cols_t = xp.empty((K * K, C, N, OH, OW), dtype=x.dtype)
        for k, rows, cols in _offsets(K, S, OH, OW):
            cols_t[k] = x[:, rows, cols].transpose(3, 0, 1, 2)
        return cols_t.reshape(K * K * C, N * OH * OW).T, OH, OW
    sN, sH, sW, sC = x.strides
    win = xp.lib.stride_tricks.as_strided(
        x, shape=(N, OH, OW, K, K, C), strides=(sN, sH * S, sW * S, sH, sW, sC)
    )
    return win.reshape(N * OH * OW, K * K * C), OH, OW


def conv_input_grad(dy: Any, w: Any, x_shape: tuple[int, ...], K: int, S: int, P: int) -> Any:
    """dx: (N, H, W, C) of a convolution from dy: (N, OH, OW, O) and its weight w: (O, C, K, K).

    One (batched) matrix product gives each filter offset's contribution, offset-major
    (K*K, N, OH, OW, C); folding those back then adds whole contiguous image rows, which is far
    faster than folding (kh, kw, c)-ordered columns.
    """
    xp = get_array_module(dy)
    O, C = w.shape[:2]
    N, OH, OW, _ = dy.shape
    w_k = w.transpose(2, 3, 0, 1).reshape(K * K, O, C)
    d = xp.matmul(dy.reshape(-1, O), w_k).reshape(K * K, N, OH, OW, C)
    dx = xp.zeros((N, x_shape[1] + 2 * P, x_shape[2] + 2 * P, C), dtype=dy.dtype)
    for k, rows, cols in _offsets(K, S, OH, OW):
        dx[:, rows, cols] += d[k]
    return dx[:, P : P + x_shape[1], P : P + x_shape[2]] if P else dx


def _along(axis: int, k: int, S: int, n_out: int) -> tuple:
    """An index selecting, on ``axis`` (1: rows, 2: columns) of an (N, H, W, C) array, the
    positions that offset k of n_out windows of stride S takes."""
    return (slice(None),) * axis + (window(k, S, n_out),)


def _max_1d(x: Any, axis: int, K: int, S: int, n_out: int) -> tuple[Any, Any]:
    """Max over windows of K along one axis, stride S: (max, offset of the first maximum)."""
    xp = get_array_module(x)
    kind = xp.uint8 if K <= 256 else xp.int32  # an offset along one axis: a byte mostly does
    y = x[_along(axis, 0, S, n_out)]
    arg = None
    for i in range(1, K):
        xi = x[_along(axis, i, S, n_out)]
        greater = xi > y  # strictly: on ties the earlier offset keeps it, as in PyTorch
        y = xp.maximum(y, xi)
        if arg is None:
            arg = greater.view(xp.uint8) if kind is xp.uint8 else greater.astype(kind)
        else:
            arg = xp.where(greater, kind(i), arg)
    if arg is None:  # K = 1: every window is its one value
        arg = xp.zeros(y.shape, dtype=kind)
    return y, arg


def _input_grad(dy: Any, axis: int, K: int, S: int, n_in: int) -> Any:
    """The buffer for the gradient of the n_in inputs along ``axis`` of windows whose gradient
    is dy: left unset where every input is in exactly one window (each is written), else zeros."""
    xp = get_array_module(dy)
    shape = list(dy.shape)
    shape[axis] = n_in
    covered = S == K and n_in == dy.shape[axis] * K
    return xp.empty(shape, dtype=dy.dtype) if covered else xp.zeros(shape, dtype=dy.dtype)


def _route_1d(dy: Any, arg: Any, axis: int, K: int, S: int, n_in: int) -> Any:
    """Adjoint of _max_1d: send each gradient to the offset that held the maximum."""
    xp = get_array_module(dy)
    n_out = dy.shape[axis]
    dx = _input_grad(dy, axis, K, S, n_in)
    slices = [dx[_along(axis, i, S, n_out)] for i in range(K)]
    if K == 2 and S >= K:  # the common 2x2 pool: two operations per axis
        xp.multiply(dy, arg, out=slices[1])
        xp.subtract(dy, slices[1], out=slices[0])  # dy - dy*arg: exact, and 0 where arg is 1
        return dx
    for i, part in enumerate(slices):
        if S >= K:
            xp.multiply(dy, arg == i, out=part)
        else:  # overlapping windows add up
            part += dy * (arg == i)
    return dx


def _sum_1d(x: Any, axis: int, K: int, S: int, n_out: int) -> Any:
    """Sum over windows of K along one axis, stride S."""
    parts = [x[_along(axis, i, S, n_out)] for i in range(K)]
    y = parts[0] + parts[1] if K > 1 else parts[0].copy()
    for part in parts[2:]:
        y += part
    return y


def _spread_1d(dy: Any, axis: int, K: int, S: int, n_in: int) -> Any:
    """Adjoint of _sum_1d: each window's dy to every input of the window."""
    n_out = dy.shape[axis]
    dx = _input_grad(dy, axis, K, S, n_in)
    for i in range(K):
        part = dx[_along(axis, i, S, n_out)]
        if S >= K:  # windows apart: each input in one at most
            part[...] = dy
        else:
            part += dy
    return dx


def maxpool_forward(x: Any, K: int, S: int) -> tuple[Any, tuple[Any, Any]]:
    """Max over K x K windows with stride S of x: (N, H, W, C) -> y: (N, OH, OW, C).

    Taken as a max along rows of the max along columns (the same value, and the same first
    maximum in row-major window order as PyTorch on ties), which needs fewer and larger array
    operations than visiting the K*K offsets. Returns (y, argmax), where argmax holds each
    stage's winning offsets (uint8) for the backward pass.
    """
    N, H, W, C = x.shape
    OH, OW = out_size(H, K, S), out_size(W, K, S)
    cols_max, arg_w = _max_1d(x, 2, K, S, OW)  # (N, H, OW, C)
    y, arg_h = _max_1d(cols_max, 1, K, S, OH)  # (N, OH, OW, C)
    return y, (arg_h, arg_w)


def maxpool_backward(
    dy: Any, argmax: tuple[Any, Any], x_shape: tuple[int, ...], K: int, S: int
) -> Any:
    """Route dy: (N, OH, OW, C) to the positions of the maxima, giving dx: (N, H, W, C)."""
    arg_h, arg_w = argmax
    d_cols_max = _route_1d(dy, arg_h, 1, K, S, x_shape[1])
    return _route_1d(d_cols_max, arg_w, 2, K, S, x_shape[2])


# ----- the layer kernels (signatures: gpucnn.kernels.reference) -----------------------------
def conv2d(x: Any, w: Any, b: Any, S: int, P: int) -> tuple[Any, Any]:
    N, O, K = x.shape[0], w.shape[0], w.shape[2]
    x = nhwc(x)
    cols, OH, OW = im2col(x, K, S, P)  # (N*OH*OW, K*K*C)
    # W: (O, C, K, K) -> (K*K*C, O), matching the columns' (kh, kw, c) order.
    y = cols @ w.transpose(2, 3, 1, 0).reshape(-1, O)  # (N*OH*OW, O): already channels-last
    rows = channel_columns(y)  # the same memory in longer rows, where adding b is faster
    rows += per_column(b, rows)
    return nchw(y.reshape(N, OH, OW, O)), (cols, x.shape)


def conv2d_backward(
    dy: Any, w: Any, cache: Any, S: int, P: int, input_grad: bool = True
) -> tuple[Any, Any, Any]:
    cols, x_shape = cache
    O, C, K = w.shape[:3]
    dy = nhwc(dy)
    dy2 = dy.reshape(-1, O)  # (N*OH*OW, O)
    dw = (cols.T @ dy2).reshape(K, K, C, O).transpose(3, 2, 0, 1)
    db = channel_sums(channel_columns(dy2), O)
    dx = nchw(conv_input_grad(dy, w, x_shape, K, S, P)) if input_grad else None
    return dx, dw, db


def maxpool2d(x: Any, K: int, S: int, relu: bool = False) -> tuple[Any, Any]:
    """As reference.maxpool2d; ``relu=True`` returns relu(maxpool(x)), which equals
    maxpool(relu(x)) (ReLU is monotone) at a K*K times smaller cost, with the same gradient (a
    window whose maximum is not positive passes none either way)."""
    x = nhwc(x)
    y, argmax = maxpool_forward(x, K, S)
    if relu:
        get_array_module(y).maximum(y, 0, out=y)
    return nchw(y), (argmax, x.shape, y if relu else None)


def avgpool2d(x: Any, K: int, S: int) -> Any:
    """As reference.avgpool2d: a sum along rows of the sums along columns, on channels-last
    memory, over fewer and larger array operations than the K*K offsets."""
    H, W = x.shape[2:]
    x = nhwc(x)
    cols_sum = _sum_1d(x, 2, K, S, out_size(W, K, S))  # (N, H, OW, C)
    y = _sum_1d(cols_sum, 1, K, S, out_size(H, K, S))  # (N, OH, OW, C)
    y /= K * K
    return nchw(y)


def avgpool2d_backward(dy: Any, x_shape: tuple[int, ...], K: int, S: int) -> Any:
    share = nhwc(dy) / (K * K)
    rows = _spread_1d(share, 1, K, S, x_shape[2])  # (N, H, OW, C)
    return nchw(_spread_1d(rows, 2, K, S, x_shape[3]))


def maxpool2d_backward(dy: Any, cache: Any, K: int, S: int) -> Any:
    argmax, x_shape, relu_y = cache
    dy = nhwc(dy)
    if relu_y is not None:
        dy = dy * (relu_y > 0)
    return nchw(maxpool_backward(dy, argmax, x_shape, K, S))
