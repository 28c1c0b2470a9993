"""The kernel set on the GPU: CuPy wrappers of the CUDA C kernels in ``cuda/``.

The sources are compiled once per process with NVRTC (through CuPy's RawModule, which caches
the binary on disk). Every wrapper launches on CuPy's current stream, allocates nothing and
synchronises nothing, so a sequence of them can be captured as a CUDA graph. Float32 only.
Signatures and meaning: gpucnn.kernels.host, which each kernel is tested against.

Matrix products of at least BLAS_MIN_MACS multiply-adds go to cuBLAS instead (called so that
a graph can capture it: gpucnn.kernels.cublas), where the arithmetic outweighs the launch and
cuBLAS does it two to three times faster than the tiled kernel (and on tensor cores in TF32
where the backend allows it: gpucnn.backend.use's ``tf32``). A convolution with narrow
columns gathers them inside the tiled kernel instead of writing them out (``implicit_conv``).
``capture(run)`` records a sequence of these calls as a CUDA graph.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend
from . import ACTIVATIONS, cublas, out_size

SOURCES = Path(__file__).parent / "cuda"
HEADERS = ("common.cuh", "tile.cuh")  # in the order they include each other
FILES = ("gemm.cu", "conv.cu", "pool.cu", "norm.cu", "pointwise.cu", "loss.cu", "optim.cu")
_LOCAL_INCLUDE = re.compile(r'^(#pragma once|#include "\w+\.cuh")\n', re.MULTILINE)
BLOCK = 256  # threads per block of every kernel
BK = 16  # the matrix kernels' tile depth (GEMM_BK)
BLAS_MIN_MACS = 2**24  # products at least this large go to cuBLAS
THIN_COLUMNS = 32  # convolutions with at most this many columns (C*K*K) never write them out


def source() -> str:
    """The headers, then every .cu file, as one translation unit (each header once)."""
    texts = [(SOURCES / name).read_text() for name in (*HEADERS, *FILES)]
    return "\n".join(_LOCAL_INCLUDE.sub("", text) for text in texts)


@functools.cache
def _module() -> Any:
    import cupy

    return cupy.RawModule(code=source(), options=("--std=c++17",))


@functools.cache
def _kernel(name: str) -> Any:
    return _module().get_function(name)


@functools.cache
def _multiprocessors() -> int:
    import cupy

    return cupy.cuda.Device().attributes["MultiProcessorCount"]


def _launch(name: str, n: int, *args: Any) -> None:
    """Run kernel ``name`` with one thread per element of a flat loop over n."""
    if n >= 2**31:  # the kernels index with 32-bit integers
        raise ValueError(f"{name}: {n:,} elements is more than the GPU kernels index")
    if n > 0:
        _kernel(name)(((n + BLOCK - 1) // BLOCK,), (BLOCK,), args)


@functools.cache
def _capture_stream() -> Any:
    import cupy

    return cupy.cuda.Stream(non_blocking=True)


def capture(run: Callable[[], None]) -> Any:
    """The launches ``run()`` makes, recorded as a CUDA graph (replay it with ``.launch()``)
    on a stream of its own, to which cuBLAS is bound before the capture begins."""
    stream = _capture_stream()
    with stream:
        blas = cublas.library()
        if blas is not None:
            blas.bind(stream.ptr)
        stream.begin_capture()
        try:
            run()
        finally:
            graph = stream.end_capture()
    return graph


def _i(v: int) -> np.int32:
    return np.int32(v)


def _f(v: float) -> np.float32:
    return np.float32(v)


def _mask(aux: Any, aux_act: str, out: Any) -> tuple[Any, np.int32]:
    """The (aux, code) kernel arguments; ``out`` stands in for an aux that is never read."""
    return (out if aux is None else aux), _i(ACTIVATIONS[aux_act])


def _strides(a: Any) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


# ----- matrix products ----------------------------------------------------------------------
#: The tile height of the convolution kernels (conv.cu compiles only these): their M counts
#: pixels (tall) or, for the weight gradient, output channels (short).
CONV_ROWS = {"conv_forward": 128, "conv_input_grad": 128, "conv_weight_grad": 32}


def _tile(m: int, n: int, kind: str = "gemm") -> tuple[int, int]:
    """(BM, BN) of the ``kind`` kernel for an (m, n) output: narrow outputs get narrow tiles."""
    bm = CONV_ROWS.get(kind) or (128 if m > 64 else 32)
    bn = 16 if n <= 16 else 32 if n <= 32 else 64
    return bm, bn


def _splits(m: int, n: int, k: int, bm: int, bn: int) -> tuple[int, int]:
    """(splits, k per split) of a product on BM x BN tiles: enough blocks for two waves over the
    multiprocessors, but never fewer than 128 values of k per split."""
    tiles = -(-m // bm) * -(-n // bn)
    want = 2 * _multiprocessors()
    if tiles >= want // 2 or k <= 2 * 128:
        return 1, k
    splits = min(-(-want // tiles), k // 128)
    chunk = -(-k // splits)
    chunk = -(-chunk // BK) * BK
    return -(-k // chunk), chunk


def workspace(m: int, n: int, k: int) -> int:
    """Scratch elements an (m, k) x (k, n) product needs, whichever kernel runs it: the split-K
    partial sums. Counted for the tallest tile, which makes the fewest tiles and so the most
    splits."""
    splits, _ = _splits(m, n, k, 128, _tile(m, n)[1])
    return splits * m * n if splits > 1 else 0


def _matrix(a) -> tuple:
    """A matrix operand's kernel arguments: the array and its two element strides."""
    return (a, *(np.int64(s) for s in _strides(a)))


def _columns(x, K: int, S: int, P: int) -> tuple:
    """The kernel arguments of the im2col columns of x: (N, H, W, C), gathered, not written."""
    _, H, W, _ = x.shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    return (x, *(np.int64(s) for s in _strides(x)), *map(_i, (H, W, OH, OW, K, S, P)))


def _epilogue(out, bias=None, act="none", aux=None, aux_act="none") -> tuple:
    """The epilogue's kernel arguments; ``out`` stands in for arrays that are never read."""
    return (
        out if bias is None else bias,
        _i(bias is not None),
        _i(ACTIVATIONS[act]),
        *_mask(aux, aux_act, out),
    )


def _tiled(kind: str, a: tuple, b: tuple, out, m: int, n: int, k: int, tail: tuple, work) -> None:
    """out: (m, n) = the product of a: (m, k) and b: (k, n) by kernel ``kind`` (gemm,
    conv_forward, conv_weight_grad or conv_input_grad: ``a`` and ``b`` are the arguments of
    its operands), split over k where that fills the GPU."""
    bm, bn = _tile(m, n, kind)
    splits, chunk = _splits(m, n, k, bm, bn)
    if splits > 1 and (work is None or work.size < splits * m * n):
        have = 0 if work is None else work.size
        raise ValueError(
            f"{kind}: split {splits} ways, it needs a workspace of {splits * m * n:,} elements"
            f" and was given {have:,}: size it with workspace(m, n, k)"
        )
    grid = (-(-n // bn) * -(-m // bm), 1, splits)  # tiles numbered along x: see tile.cuh
    target = out if splits == 1 else work
    sizes = (_i(m), _i(n), _i(k), _i(chunk))
    _kernel(f"{kind}_{bm}x{bn}")(grid, (BLOCK,), (*a, *b, target, *sizes, *tail))
    if splits > 1:
        _launch("splitk_reduce", m * n, work, _i(splits), out, _i(m), _i(n), *tail)


def gemm(a, b, out, bias=None, act="none", aux=None, aux_act="none", work=None) -> None:
    m, k = a.shape
    n = b.shape[1]
    tail = _epilogue(out, bias, act, aux, aux_act)
    blas = cublas.library() if m * n * k >= BLAS_MIN_MACS else None
    if blas is not None and blas.gemm(a, b, out, tf32=backend.active().tf32):
        if bias is not None or act != "none" or aux_act != "none":  # the epilogue, in place
            _launch("splitk_reduce", m * n, out, _i(1), out, _i(m), _i(n), *tail)
        return
    _tiled("gemm", _matrix(a), _matrix(b), out, m, n, k, tail, work)


def implicit_conv(rows: int, ckk: int, out_channels: int) -> bool:
    """Whether a convolution gathers its columns inside its three products (conv_forward,
    conv_weight_grad, conv_input_grad) instead of writing them out (rows: N*OH*OW, ckk:
    C*K*K): when they are narrow, as a first layer's (9 for a 3x3 filter on gray images, a
    product cuBLAS took 0.18 ms over for the weight gradient at batch 1024 on an H100), or when
    the product is too small for cuBLAS anyway. Otherwise the columns are written out and the
    products can go to cuBLAS. scripts/conv_variants.py times both ways, layer by layer."""
    return ckk <= THIN_COLUMNS or rows * ckk * out_channels < BLAS_MIN_MACS


def conv_forward(x, w, y, K: int, S: int, P: int, bias=None, act="none", cols=None, work=None):
    if cols is not None:
        im2col(x, cols, K, S, P)
        gemm(cols, w, y, bias, act, work=work)
        return
    (rows, o), ckk = y.shape, w.shape[0]
    _tiled(
        "conv_forward",
        _columns(x, K, S, P),
        _matrix(w),
        y,
        rows,
        o,
        ckk,
        _epilogue(y, bias, act),
        work,
    )


def conv_input_grad(
    dy, w, dx, K: int, S: int, P: int, aux=None, aux_act="none", dcols=None, work=None
) -> None:
    if dcols is not None:
        gemm(dy, w, dcols, work=work)
        col2im(dcols, dx, K, S, P, aux, aux_act)
        return
    N, H, W, C = dx.shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    o = w.shape[0]
    grads = (*_matrix(dy), *map(_i, (H, W, OH, OW, o, K, S, P)))
    tail = _epilogue(dx, aux=aux, aux_act=aux_act)
    _tiled("conv_input_grad", grads, _matrix(w), dx, N * H * W, C, K * K * o, tail, work)


def conv_weight_grad(dy, x, dw, K: int, S: int, P: int, cols=None, work=None) -> None:
    if cols is not None:
        gemm(dy.T, cols, dw, work=work)
        return
    rows, (o, ckk) = dy.shape[0], dw.shape
    _tiled(
        "conv_weight_grad",
        _matrix(dy.T),
        _columns(x, K, S, P),
        dw,
        o,
        ckk,
        rows,
        _epilogue(dw),
        work,
    )


def _colsum_split(rows: int, cols: int) -> tuple[int, int]:
    """(blocks, rows per block) of colsum's first stage."""
    blocks = max(1, min(2 * _multiprocessors(), rows // 256))
    return blocks, -(-rows // blocks)


def colsum_workspace(rows: int, cols: int) -> int:
    return _colsum_split(rows, cols)[0] * cols


def colsum(a, out, work=None) -> None:
    rows, cols = a.shape
    blocks, chunk = _colsum_split(rows, cols)
    _kernel("colsum_partial")((blocks,), (BLOCK,), (a, _i(rows), _i(cols), _i(chunk), work))
    _launch("splitk_reduce", cols, work, _i(blocks), out, _i(1), _i(cols), *_epilogue(out))


# ----- convolution and pooling ----------------------------------------------------------------
def im2col(x, cols, K: int, S: int, P: int) -> None:
    N, H, W, C = x.shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    if cols.size >= 2**31:
        raise ValueError(f"im2col: {cols.size:,} columns is more than the GPU kernels index")
    sn, sh, sw, sc = (np.int64(s) for s in _strides(x))
    rows, width = N * OH * OW, C * K * K
    tx = 32 if width >= 32 else 16 if width >= 16 else 8  # threads along a row of columns
    ty = BLOCK // tx
    args = (x, sn, sh, sw, sc, cols, *map(_i, (N, H, W, C, OH, OW, K, S, P)))
    _kernel("im2col")((-(-rows // ty),), (tx, ty), args)


def col2im(dcols, dx, K: int, S: int, P: int, aux=None, aux_act="none") -> None:
    N, H, W, C = dx.shape
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    _launch(
        "col2im",
        dx.size,
        dcols,
        dx,
        *map(_i, (N, H, W, C, OH, OW, K, S, P)),
        *_mask(aux, aux_act, dx),
    )


def maxpool_forward(x, y, arg, K: int, S: int, bias=None, act="none") -> None:
    N, H, W, C = x.shape
    OH, OW = y.shape[1:3]
    b = y if bias is None else bias
    geometry = map(_i, (N, H, W, C, OH, OW, K, S))
    tail = (b, _i(bias is not None), _i(ACTIVATIONS[act]))
    _launch("maxpool_forward", y.size, x, y, arg, *geometry, *tail)


def maxpool_backward(dy, arg, dx, K: int, S: int, aux=None, aux_act="none", y=None, act="none"):
    N, H, W, C = dx.shape
    OH, OW = dy.shape[1:3]
    tail = (dy if y is None else y, _i(ACTIVATIONS[act]), *_mask(aux, aux_act, dx))
    if S == K and H == OH * K and W == OW * K:  # every input in exactly one window
        geometry = map(_i, (N, H, W, C, OH, OW, K))
        _launch("maxpool_backward_tiled", dy.size, dy, arg, dx, *geometry, *tail)
        return
    geometry = map(_i, (N, H, W, C, OH, OW, K, S))
    _launch("maxpool_backward", dx.size, dy, arg, dx, *geometry, *tail)


def avgpool_forward(x, y, K: int, S: int) -> None:
    N, H, W, C = x.shape
    OH, OW = y.shape[1:3]
    _launch("avgpool_forward", y.size, x, y, *map(_i, (N, H, W, C, OH, OW, K, S)))


def avgpool_backward(dy, dx, K: int, S: int, aux=None, aux_act="none") -> None:
    N, H, W, C = dx.shape
    OH, OW = dy.shape[1:3]
    geometry = map(_i, (N, H, W, C, OH, OW, K, S))
    _launch("avgpool_backward", dx.size, dy, dx, *geometry, *_mask(aux, aux_act, dx))


def global_avgpool_forward(x, y) -> None:
    N, H, W, C = x.shape
    _launch("global_avgpool_forward", y.size, x, y, _i(N), _i(H * W), _i(C))


def global_avgpool_backward(dy, dx, aux=None, aux_act="none") -> None:
    N, H, W, C = dx.shape
    tail = _mask(aux, aux_act, dx)
    _launch("global_avgpool_backward", dx.size, dy, dx, _i(N), _i(H * W), _i(C), *tail)


def batch_norm_forward(
    x, y, xhat, stats, gamma, beta, running_mean, running_var, momentum, eps, act="none", work=None
) -> None:
    R, C = x.shape
    size = (_i(R), _i(C))
    colsum(x, stats[0], work)
    _launch("batch_norm_center", x.size, x, stats[0], xhat, y, *size)  # y: the squares, for now
    colsum(y, stats[1], work)
    _launch("batch_norm_stats", C, stats, running_mean, running_var, *size, _f(momentum), _f(eps))
    _launch("batch_norm_scale", x.size, xhat, stats, gamma, beta, y, *size, _i(ACTIVATIONS[act]))


def batch_norm_backward(
    dy, xhat, stats, gamma, dx, dgamma, dbeta, aux=None, aux_act="none", work=None
) -> None:
    R, C = dy.shape
    colsum(dy, dbeta, work)
    _launch("multiply", dx.size, dy, xhat, dx, np.int64(dx.size))  # dx: dy * xhat, for now
    colsum(dx, dgamma, work)
    tail = (_i(R), _i(C), *_mask(aux, aux_act, dx))
    _launch("batch_norm_backward", dx.size, dy, xhat, stats, gamma, dgamma, dbeta, dx, *tail)


# ----- elementwise ----------------------------------------------------------------------------
def activation_forward(x, y, act: str) -> None:
    _launch("activation_forward", y.size, x, y, np.int64(y.size), _i(ACTIVATIONS[act]))


def activation_backward(dy, y, dx, act: str, aux=None, aux_act="none") -> None:
    _launch(
        "activation_backward",
        dx.size,
        dy,
        y,
        dx,
        np.int64(dx.size),
        _i(ACTIVATIONS[act]),
        *_mask(aux, aux_act, dx),
    )


def dropout(x, y, rate: float, seed: int, step, stream: int, aux=None, aux_act="none") -> None:
    _launch(
        "dropout",
        y.size,
        x,
        y,
        np.int64(y.size),
        _f(rate),
        np.uint32(seed % 2**32),
        step,
        np.uint32(stream % 2**32),
        *_mask(aux, aux_act, y),
    )


def nhwc_to_flat(x, y) -> None:
    _launch("nhwc_to_flat", x.size, x, y, *map(_i, x.shape))


def flat_to_nhwc(dy, dx, aux=None, aux_act="none") -> None:
    _launch("flat_to_nhwc", dx.size, dy, dx, *map(_i, dx.shape), *_mask(aux, aux_act, dx))


# ----- losses ---------------------------------------------------------------------------------
def softmax_xent(z, y, dz, row_loss, row_hit, smoothing: float = 0.0) -> None:
    rows, k = z.shape
    _launch("softmax_xent", rows, z, y, _i(rows), _i(k), dz, row_loss, row_hit, _f(smoothing))


def sigmoid_bce(z, y, dz, row_loss, row_hit, smoothing: float = 0.0) -> None:
    rows = z.shape[0]
    _launch("sigmoid_bce", rows, z, y, _i(rows), dz, row_loss, row_hit, _f(smoothing))


def batch_result(row_loss, row_hit, out_loss, out_hits) -> None:
    _kernel("batch_result")(
        (1,), (BLOCK,), (row_loss, row_hit, _i(row_loss.size), out_loss, out_hits)
    )


# ----- optimisers -----------------------------------------------------------------------------
def sgd(p, g, lr: float, wd: float) -> None:
    _launch("sgd", p.size, p, g, np.int64(p.size), _f(lr), _f(wd))


def momentum(p, g, v, lr: float, mu: float, nesterov: bool, wd: float) -> None:
    _launch("momentum", p.size, p, g, v, np.int64(p.size), _f(lr), _f(mu), _i(nesterov), _f(wd))


def adam(
    p, g, m, v, step, lr: float, beta1: float, beta2: float, eps: float, wd: float, decoupled=False
) -> None:
    _launch(
        "adam",
        p.size,
        p,
        g,
        m,
        v,
        np.int64(p.size),
        step,
        _f(lr),
        _f(beta1),
        _f(beta2),
        _f(eps),
        _f(wd),
        _i(decoupled),
    )


def advance(counters) -> None:
    _kernel("advance")((1,), (1,), (counters,))
