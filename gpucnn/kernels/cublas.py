"""cuBLAS's float32 matrix product, called so that a CUDA graph can capture it.

CuPy points its cuBLAS handle at the current stream before every call and refuses to while the
stream is being captured (NotImplementedError, CuPy issue #6290), although cuBLAS's products
capture fine. So the GPU kernel set calls ``cublasSgemm_v2`` through ctypes on a handle of its
own: ``bind(stream)`` points the handle at a stream before a capture begins on it, and
``gemm`` issues the product on the bound stream whether or not a capture is under way. Launched
and captured steps thus run the same cuBLAS kernels and get the same bits.

The library is the one CuPy loaded (found in /proc/self/maps), so that one copy of cuBLAS serves
both. The handle's workspace is set from memory allocated once (cuBLAS must not allocate one
inside a capture), after every ``bind``: cuBLAS resets it when the stream changes. It is taken
outside CuPy's memory pool: held for the process, like the handle, it is not a job's cached
memory, which the pool gives back when a job ends (gpucnn.backend.release). A small
product is checked against CuPy's when the library is loaded; if it differs, or the library
cannot be loaded, a warning says so and the GPU kernel set does every product itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OP_N, OP_T = 0, 1  # cublasOperation_t: as stored, transposed
DEFAULT_MATH, TF32_MATH = 0, 3  # cublasMath_t: CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH
WORKSPACE_BYTES = 32 * 2**20  # the workspace cuBLAS recommends for Hopper (4 MiB before it)
ALPHA, BETA = ctypes.c_float(1.0), ctypes.c_float(0.0)  # out = ALPHA a @ b + BETA out
_ptr, _int, _float_p = ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)
SIGNATURES = {
    "cublasCreate_v2": [ctypes.POINTER(_ptr)],
    "cublasSetStream_v2": [_ptr, _ptr],
    "cublasSetWorkspace_v2": [_ptr, _ptr, ctypes.c_size_t],
    "cublasSetMathMode": [_ptr, _int],
    # handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc
    "cublasSgemm_v2": [_ptr, _int, _int, _int, _int, _int, _float_p, _ptr, _int, _ptr, _int]
    + [_float_p, _ptr, _int],
}


def transposed(x: Any) -> tuple[int, int] | None:
    """(op, ld) under which cuBLAS, reading x's memory column-major, sees x^T, for a row-major
    matrix x: (r, c); None when x has no unit stride, which cuBLAS cannot read."""
    (r, c), (s0, s1) = x.shape, (s // x.itemsize for s in x.strides)
    if s1 == 1 and s0 >= max(1, c):
        return OP_N, s0  # x's rows, ld apart, are the columns of x^T
    if s0 == 1 and s1 >= max(1, r):
        return OP_T, s1  # x is stored column-major: cuBLAS transposes it to get x^T
    return None


def gemm_args(a: Any, b: Any, out: Any) -> tuple[int, ...] | None:
    """cublasSgemm's (transa, transb, m, n, k, lda, ldb, ldc) for out = a @ b, with a: (m, k),
    b: (k, n) and out: (m, n) row-major, computed column-major as out^T = b^T a^T (cuBLAS's A is
    our b); None when an operand's layout does not fit."""
    (m, k), n = a.shape, b.shape[1]
    la, lb, lc = transposed(a), transposed(b), transposed(out)
    if la is None or lb is None or lc is None or lc[0] != OP_N:
        return None
    return lb[0], la[0], n, m, k, lb[1], la[1], lc[1]


class Cublas:
    """A cuBLAS handle of our own, bound to one stream at a time, with its workspace."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        import cupy

        self.lib = lib
        for name, argtypes in SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, ctypes.c_int
        self.handle = _ptr()
        self._call("cublasCreate_v2", ctypes.byref(self.handle))
        self.workspace = cupy.cuda.Memory(WORKSPACE_BYTES)  # cudaMalloc, not the pool
        self.stream: int | None = None
        self.math = DEFAULT_MATH  # a new handle's

    def _call(self, name: str, *args: Any) -> None:
        status = getattr(self.lib, name)(*args)
        if status != 0:
            raise RuntimeError(f"{name} failed with cuBLAS status {status}")

    def bind(self, stream: int) -> None:
        """Issue later products on ``stream`` (a pointer; 0 is the default stream). Call it
        before a capture begins on that stream: while the stream captures it raises."""
        if stream == self.stream:
            return
        import cupy

        if cupy.cuda.get_current_stream().is_capturing():
            raise RuntimeError(
                "cuBLAS was not bound to the capturing stream before the capture began:"
                " capture with gpucnn.kernels.gpu.capture, which binds it"
            )
        self._call("cublasSetStream_v2", self.handle, _ptr(stream))
        ws = self.workspace
        self._call("cublasSetWorkspace_v2", self.handle, _ptr(ws.ptr), ws.size)
        self.stream = stream

    def gemm(self, a: Any, b: Any, out: Any, tf32: bool = False) -> bool:
        """out = a @ b for float32 CuPy matrices, on CuPy's current stream (``tf32``: on tensor
        cores, the inputs rounded to TF32); False (and nothing done) when a layout does not fit
        cuBLAS."""
        args = gemm_args(a, b, out)
        if args is None:
            return False
        import cupy

        self.bind(cupy.cuda.get_current_stream().ptr)
        math = TF32_MATH if tf32 else DEFAULT_MATH
        if math != self.math:  # a setting of the handle, not work on a stream: capturable
            self._call("cublasSetMathMode", self.handle, math)
            self.math = math
        ta, tb, m, n, k, lda, ldb, ldc = args
        self._call(
            "cublasSgemm_v2",
            self.handle,
            ta,
            tb,
            m,
            n,
            k,
            ctypes.byref(ALPHA),
            _ptr(b.data.ptr),  # cuBLAS's A: see gemm_args
            lda,
            _ptr(a.data.ptr),
            ldb,
            ctypes.byref(BETA),
            _ptr(out.data.ptr),
            ldc,
        )
        return True

    def check(self) -> None:
        """RuntimeError unless a small product, one operand transposed, equals CuPy's: a
        cuBLAS whose calls do not behave as this module expects is caught before any use."""
        import cupy

        a = (cupy.arange(15, dtype=cupy.float32).reshape(3, 5) - 7) / 4
        b = (cupy.arange(20, dtype=cupy.float32).reshape(4, 5) % 7 - 3).T  # column-major
        out = cupy.full((3, 4), cupy.nan, dtype=cupy.float32)
        if not (self.gemm(a, b, out) and bool(cupy.allclose(out, a @ b))):
            raise RuntimeError("a test product came out wrong")


def loaded_path(maps: str) -> str | None:
    """The path of cuBLAS (not cuBLASLt) in ``maps``, the text of /proc/self/maps."""
    found = re.search(r"(/\S*/libcublas\.so[.\d]*)$", maps, re.MULTILINE)
    return found.group(1) if found else None


@functools.cache
def library() -> Cublas | None:
    """The process's cuBLAS, or None (with a warning) where it cannot be called this way; the
    GPU kernel set then does every product with its own kernels."""
    try:
        import cupy

        cupy.cuda.device.get_cublas_handle()  # makes CuPy load its cuBLAS
        maps = Path("/proc/self/maps")
        path = loaded_path(maps.read_text()) if maps.exists() else None
        path = path or ctypes.util.find_library("cublas")
        if path is None:
            raise OSError("the cuBLAS library was not found")
        blas = Cublas(ctypes.CDLL(path))
        blas.check()
        return blas
    except (ImportError, OSError, AttributeError, RuntimeError) as exc:
        log.warning("cuBLAS cannot be called directly (%s): the own kernels do every product", exc)
        return None
