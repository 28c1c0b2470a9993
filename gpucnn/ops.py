"""Array kernels behind the layers: im2col and its adjoint for convolution, and max pooling.

The layers' arrays are NCHW in shape, but Conv and MaxPool store their outputs channels-last
(NHWC) in memory and hand out NCHW-shaped views of them. Every kernel here works on the NHWC
view, where a pixel's channels are contiguous: unfolding windows, folding them back and pooling
then move contiguous runs, and a convolution's matrix product lands directly in its output
layout, with no transposing copies. Elementwise layers in between keep the layout as they are.

Each function takes arrays of either backend and works out NumPy or CuPy from its input, so the
layers are written once; faster kernels for one backend can slot in behind these signatures.

Shape names: N batch, H x W input map, C channels, K window size, S stride, P padding,
OH x OW output map.
"""

from __future__ import annotations

from typing import Any

from .backend import get_array_module


def out_size(size: int, window: int, stride: int, pad: int = 0) -> int:
    """Output length of a sliding window, floored as in PyTorch (may be <= 0 if it does not fit)."""
    return (size + 2 * pad - window) // stride + 1


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
            yield i * K + j, slice(i, i + S * (OH - 1) + 1, S), slice(j, j + S * (OW - 1) + 1, S)


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


def _along(axis: int, index: slice) -> tuple:
    """An index selecting ``index`` on ``axis`` (1: rows, 2: columns) of an (N, H, W, C) array."""
    return (slice(None),) * axis + (index,)


def _max_1d(x: Any, axis: int, K: int, S: int, n_out: int) -> tuple[Any, Any]:
    """Max over windows of K along one axis, stride S: (max, offset of the first maximum)."""
    xp = get_array_module(x)
    y = x[_along(axis, slice(0, S * (n_out - 1) + 1, S))]
    arg = None
    for i in range(1, K):
        xi = x[_along(axis, slice(i, i + S * (n_out - 1) + 1, S))]
        greater = xi > y  # strictly: on ties the earlier offset keeps it, as in PyTorch
        y = xp.maximum(y, xi)
        arg = greater.view(xp.uint8) if arg is None else xp.where(greater, xp.uint8(i), arg)
    return y, arg


def _route_1d(dy: Any, arg: Any, axis: int, K: int, S: int, n_in: int) -> Any:
    """Adjoint of _max_1d: send each gradient to the offset that held the maximum."""
    xp = get_array_module(dy)
    n_out = dy.shape[axis]
    shape = list(dy.shape)
    shape[axis] = n_in
    covered = S == K and n_in == n_out * K  # every input in exactly one window
    dx = xp.empty(shape, dtype=dy.dtype) if covered else xp.zeros(shape, dtype=dy.dtype)
    slices = [dx[_along(axis, slice(i, i + S * (n_out - 1) + 1, S))] for i in range(K)]
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
