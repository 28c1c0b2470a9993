"""Array kernels behind the layers: im2col / col2im for convolution, and max pooling.

Each function takes arrays of either backend and works out NumPy or CuPy from its input, so the
layers are written once. These are the reference implementations; faster kernels for one backend
slot in behind the same signatures.

Shape names: N batch, C channels, H x W input map, K filter size, S stride, P padding,
OH x OW output map.
"""

from __future__ import annotations

from typing import Any

from .backend import get_array_module


def out_size(size: int, window: int, stride: int, pad: int = 0) -> int:
    """Output length of a sliding window, floored as in PyTorch (may be <= 0 if it does not fit)."""
    return (size + 2 * pad - window) // stride + 1


def _windows(x: Any, window: int, stride: int, OH: int, OW: int) -> Any:
    """A strided view (N, C, OH, OW, window, window) of x: (N, C, H, W); no copy."""
    xp = get_array_module(x)
    sN, sC, sH, sW = x.strides
    return xp.lib.stride_tricks.as_strided(
        x,
        shape=(*x.shape[:2], OH, OW, window, window),
        strides=(sN, sC, sH * stride, sW * stride, sH, sW),
    )


def im2col(x: Any, K: int, S: int, P: int) -> tuple[Any, int, int]:
    """Unfold x: (N, C, H, W) into columns (N*OH*OW, C*K*K), rows ordered (n, oh, ow).

    Returns (cols, OH, OW). The column order (c, kh, kw) matches a weight (O, C, K, K) reshaped
    to (O, C*K*K), so the convolution is one matrix product.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    if P:
        x = xp.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    win = _windows(x, K, S, OH, OW)  # (N, C, OH, OW, K, K)
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(N * OH * OW, C * K * K)
    return cols, OH, OW


def col2im(cols: Any, x_shape: tuple[int, ...], K: int, S: int, P: int) -> Any:
    """The adjoint of im2col: sum columns (N*OH*OW, C*K*K) back into an image (N, C, H, W).

    Loops over the K*K filter offsets only; each step adds a whole strided slice, so the result
    is deterministic (no atomic scatter).
    """
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    d = cols.reshape(N, OH, OW, C, K, K).transpose(0, 3, 4, 5, 1, 2)  # (N, C, K, K, OH, OW)
    dx = xp.zeros((N, C, H + 2 * P, W + 2 * P), dtype=cols.dtype)
    for i in range(K):
        for j in range(K):
            dx[:, :, i : i + S * OH : S, j : j + S * OW : S] += d[:, :, i, j]
    if P:
        dx = dx[:, :, P : P + H, P : P + W]
    return dx


def maxpool_forward(x: Any, K: int, S: int) -> tuple[Any, Any]:
    """Max over K x K windows with stride S of x: (N, C, H, W).

    Returns (y, argmax): y (N, C, OH, OW) and the flat in-window index (kh * K + kw) of each
    maximum as uint8, which the backward pass needs. Ties go to the first index, as in PyTorch.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, K, S), out_size(W, K, S)
    win = _windows(x, K, S, OH, OW).reshape(N, C, OH, OW, K * K)
    argmax = win.argmax(axis=-1).astype(xp.uint8)
    y = xp.take_along_axis(win, argmax[..., None].astype(xp.intp), axis=-1)[..., 0]
    return y, argmax


def maxpool_backward(dy: Any, argmax: Any, x_shape: tuple[int, ...], K: int, S: int) -> Any:
    """Route dy: (N, C, OH, OW) to the positions of the maxima, giving dx: (N, C, H, W).

    Loops over the K*K window offsets; overlapping windows (S < K) add up correctly.
    """
    xp = get_array_module(dy)
    OH, OW = dy.shape[2:]
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    for i in range(K):
        for j in range(K):
            hit = argmax == i * K + j
            dx[:, :, i : i + S * OH : S, j : j + S * OW : S] += dy * hit
    return dx
