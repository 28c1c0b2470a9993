"""cuBLAS called through ctypes (gpucnn.kernels.cublas): the arguments it is given, checked on
every machine by a column-major product written in NumPy that reads and writes memory as cuBLAS
does, and the calls it makes, on a stand-in library; on a GPU, the products themselves,
launched and captured in a CUDA graph."""

import ctypes
import itertools
import sys
import types

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from gpucnn.gradcheck import relative_error
from gpucnn.kernels import cublas


def column_major(x, rows, cols, ld):
    """The (rows, cols) matrix that BLAS reads from x's memory with leading dimension ld."""
    return as_strided(x, shape=(rows, cols), strides=(x.itemsize, ld * x.itemsize))


def blas_sgemm(transa, transb, m, n, k, A, lda, B, ldb, C, ldc):
    """C = op(A) op(B) as BLAS does it: A, B and C are memory, read and written column-major."""
    op_a = column_major(A, k, m, lda).T if transa == cublas.OP_T else column_major(A, m, k, lda)
    op_b = column_major(B, n, k, ldb).T if transb == cublas.OP_T else column_major(B, k, n, ldb)
    column_major(C, m, n, ldc)[...] = op_a @ op_b


LAYOUTS = {  # an (r, c) matrix stored in each way
    "rows": lambda r, c: np.empty((r, c)),
    "columns": lambda r, c: np.empty((c, r)).T,
    "padded rows": lambda r, c: np.empty((r, c + 3))[:, :c],
    "padded columns": lambda r, c: np.empty((c, r + 5))[:, :r].T,
    "every other": lambda r, c: np.empty((r, 2 * c))[:, ::2],
}
FITS = ("rows", "columns", "padded rows", "padded columns")  # cuBLAS can read these


@pytest.mark.parametrize("m,n,k", [(5, 3, 4), (1, 3, 4), (5, 1, 4), (5, 3, 1), (7, 7, 7)])
def test_the_arguments_give_the_product_for_every_layout(m, n, k):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    want_a, want_b = rng.normal(size=(m, k)), rng.normal(size=(k, n))
    for la, lb, lc in itertools.product(LAYOUTS, LAYOUTS, LAYOUTS):
        a, b, out = LAYOUTS[la](m, k), LAYOUTS[lb](k, n), LAYOUTS[lc](m, n)
        a[...], b[...], out[...] = want_a, want_b, np.nan
        args = cublas.gemm_args(a, b, out)
        fits = la in FITS and lb in FITS and lc in ("rows", "padded rows")
        if fits or 1 not in (m, n, k):  # a single row or column may fit in more ways
            assert (args is not None) == fits, (la, lb, lc)
        if args is None:
            continue
        ta, tb, mm, nn, kk, lda, ldb, ldc = args
        blas_sgemm(ta, tb, mm, nn, kk, b, lda, a, ldb, out, ldc)  # cuBLAS's A is our b
        assert relative_error(out, want_a @ want_b) < 1e-12, (la, lb, lc)


@pytest.fixture
def gpu_product():
    """A product large enough for cuBLAS: (a.T, b) as CuPy arrays, and a @ b in float64."""
    import cupy

    from gpucnn.kernels import gpu

    m, n, k = 3000, 96, 200
    assert m * n * k >= gpu.BLAS_MIN_MACS
    rng = np.random.default_rng(0)
    a_t, b_t = rng.normal(size=(k, m)), rng.normal(size=(n, k))  # handed over as views: .T
    return cupy.asarray(a_t, np.float32).T, cupy.asarray(b_t, np.float32).T, a_t.T @ b_t.T


@pytest.mark.gpu
def test_a_large_product_is_the_same_bits_launched_and_replayed(gpu_product, monkeypatch):
    import cupy

    from gpucnn.kernels import gpu

    blas = cublas.library()
    assert blas is not None, "CuPy's cuBLAS was not found"
    calls = []
    products = blas.gemm
    monkeypatch.setattr(blas, "gemm", lambda *a, **kw: calls.append(1) or products(*a, **kw))
    a, b, want = gpu_product
    launched, replayed = (cupy.full(want.shape, np.nan, np.float32) for _ in range(2))
    gpu.gemm(a, b, launched)
    graph = gpu.capture(lambda: gpu.gemm(a, b, replayed))
    assert bool(cupy.isnan(replayed).all()), "a capture records; it does not run"
    graph.launch()
    assert calls == [1, 1], "both products went to cuBLAS"
    assert relative_error(launched.get(), want) < 1e-5
    assert np.array_equal(launched.get(), replayed.get())


@pytest.mark.gpu
def test_a_capture_on_a_stream_cublas_was_not_bound_to_names_the_fix(gpu_product):
    import cupy

    a, b, want = gpu_product
    out = cupy.empty(want.shape, np.float32)
    blas = cublas.library()  # loaded (and checked) before the capture
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            with pytest.raises(RuntimeError, match="capture with gpucnn.kernels.gpu.capture"):
                blas.gemm(a, b, out)
        finally:
            stream.end_capture()


@pytest.mark.gpu
def test_a_cublas_that_computes_a_wrong_product_is_not_used(monkeypatch, caplog):
    # A scale read wrong, as under another pointer mode: in bounds, but not the product.
    monkeypatch.setattr(cublas, "ALPHA", ctypes.c_float(2.0))
    cublas.library.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=cublas.__name__):
            assert cublas.library() is None
        assert "a test product came out wrong" in caplog.text
    finally:
        cublas.library.cache_clear()


@pytest.mark.parametrize(
    "x",
    [
        np.broadcast_to(np.ones(4), (3, 4)),  # strides (0, 1): rows overlap
        np.broadcast_to(np.ones((3, 1)), (3, 4)),  # strides (1, 0)
        np.ones((3, 4))[::-1],  # a negative stride
        np.ones((3, 8))[:, ::2],  # no unit stride
    ],
)
def test_a_layout_cublas_cannot_read_is_refused(x):
    assert cublas.transposed(x) is None
    assert cublas.gemm_args(x, np.ones((4, 2)), np.empty((3, 2))) is None


class StandIn:
    """In place of the cuBLAS library: every function records its call and returns ``status``."""

    def __init__(self):
        self.calls, self.status, self._functions = [], 0, {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._functions:

            def function(*args):
                self.calls.append((name, args))
                return self.status

            self._functions[name] = function
        return self._functions[name]

    def names(self):
        return [name for name, _ in self.calls]


def on_device(x, ptr):
    """x's layout, as a CuPy array at address ptr would have it."""
    ns = types.SimpleNamespace
    return ns(shape=x.shape, strides=x.strides, itemsize=x.itemsize, data=ns(ptr=ptr))


@pytest.fixture
def stand_in(monkeypatch):
    """(a Cublas on a StandIn library, the library, CuPy's current stream as the stand-in CuPy
    gives it: its ptr and is_capturing are the test's to set)."""
    ns = types.SimpleNamespace
    stream = ns(ptr=0, is_capturing=lambda: False)
    fake = ns(cuda=ns(get_current_stream=lambda: stream, Memory=lambda n: ns(ptr=4096, size=n)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    lib = StandIn()
    return cublas.Cublas(lib), lib, stream


def test_the_calls_bind_once_per_stream_and_pass_our_b_as_cublas_a(stand_in):
    blas, lib, stream = stand_in
    assert lib.names() == ["cublasCreate_v2"]
    a = on_device(np.empty((5, 4), np.float32), 100)  # rows
    b = on_device(np.empty((3, 4), np.float32).T, 200)  # columns
    out = on_device(np.empty((5, 3), np.float32), 300)
    assert blas.gemm(a, b, out)
    assert lib.names()[1:] == ["cublasSetStream_v2", "cublasSetWorkspace_v2", "cublasSgemm_v2"]
    (_, (_, to_stream)), (_, (_, ws, size)), (_, args) = lib.calls[1:]
    assert (to_stream.value, ws.value, size) == (None, 4096, cublas.WORKSPACE_BYTES)
    # handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc
    assert args[1:6] == (cublas.OP_T, cublas.OP_N, 3, 5, 4)
    assert [args[i].value for i in (7, 9, 12)] == [200, 100, 300]
    assert [args[i] for i in (8, 10, 13)] == [4, 4, 3]

    blas.gemm(a, b, out)  # the same stream: no binding again
    stream.ptr = 7
    blas.gemm(a, b, out)
    rebound = ["cublasSetStream_v2", "cublasSetWorkspace_v2", "cublasSgemm_v2"]
    assert lib.names()[4:] == ["cublasSgemm_v2", *rebound]

    assert not blas.gemm(a, on_device(np.empty((4, 6), np.float32)[:, ::2], 200), out)
    stream.ptr, stream.is_capturing = 9, lambda: True
    calls = len(lib.calls)
    with pytest.raises(RuntimeError, match="capture with gpucnn.kernels.gpu.capture"):
        blas.gemm(a, b, out)
    stream.ptr, lib.status = 7, 13
    with pytest.raises(RuntimeError, match="cublasSgemm_v2 failed with cuBLAS status 13"):
        blas.gemm(a, b, out)
    assert lib.names()[calls:] == ["cublasSgemm_v2"]


def test_without_cupy_there_is_no_cublas_and_a_warning(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "cupy", None)
    cublas.library.cache_clear()
    try:
        assert cublas.library() is None
    finally:
        cublas.library.cache_clear()
    assert "cuBLAS cannot be called directly" in caplog.text


def test_the_library_is_found_among_the_loaded_ones_and_cublaslt_is_not_it():
    maps = "\n".join(
        [
            "7f01-7f02 r-xp 00000000 08:01 11 /usr/lib/libc.so.6",
            "7f03-7f04 r-xp 00000000 08:01 12 /site/nvidia/cu13/lib/libcublasLt.so.13",
            "7f05-7f06 r-xp 00000000 08:01 13 /site/nvidia/cu13/lib/libcublas.so.13",
            "7f07-7f08 rw-p 00000000 00:00 0 ",
        ]
    )
    assert cublas.loaded_path(maps) == "/site/nvidia/cu13/lib/libcublas.so.13"
    assert cublas.loaded_path(maps.replace("libcublas.so", "libfoo.so")) is None


def test_tf32_sets_the_handles_math_mode_only_when_it_changes(stand_in):
    blas, lib, _ = stand_in
    a, b = (
        on_device(np.empty((5, 4), np.float32), 100),
        on_device(np.empty((4, 3), np.float32), 200),
    )
    out = on_device(np.empty((5, 3), np.float32), 300)
    blas.gemm(a, b, out)  # a new handle multiplies in float32 already
    assert "cublasSetMathMode" not in lib.names()
    for tf32 in (True, True, False, False):
        blas.gemm(a, b, out, tf32=tf32)
    modes = [args[1] for name, args in lib.calls if name == "cublasSetMathMode"]
    assert modes == [cublas.TF32_MATH, cublas.DEFAULT_MATH]
    assert lib.names()[-1] == "cublasSgemm_v2"


@pytest.mark.gpu
def test_a_tf32_product_is_close_to_the_float32_one_and_repeats(gpu_product, monkeypatch):
    import cupy

    from gpucnn import backend
    from gpucnn.kernels import gpu

    a, b, want = gpu_product
    full, tf32, again = (cupy.full(want.shape, np.nan, np.float32) for _ in range(3))
    gpu.gemm(a, b, full)
    monkeypatch.setattr(backend.active(), "tf32", True)
    gpu.gemm(a, b, tf32)
    gpu.gemm(a, b, again)
    assert cublas.library().math == cublas.TF32_MATH
    assert relative_error(tf32.get(), want) < 1e-2  # a 10-bit mantissa: about 1e-3 a product
    assert np.array_equal(tf32.get(), again.get())
    monkeypatch.setattr(backend.active(), "tf32", False)
    gpu.gemm(a, b, again)
    assert np.array_equal(full.get(), again.get())  # back to float32, bit for bit
