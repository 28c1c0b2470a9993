"""The CPU runner of the CUDA kernels (tests/cuda_on_cpu), which the GPU kernel tests rely on
where no GPU is: barriers hold, launch arguments are checked as a GPU would need them."""

import re

import numpy as np
import pytest

from . import cuda_on_cpu

pytestmark = pytest.mark.skipif(
    bool(cuda_on_cpu.unavailable()), reason=f"no C++ compiler: {cuda_on_cpu.unavailable()}"
)

SOURCE = r"""
// Reverses x through shared memory: right only if every thread waits at the barrier.
extern "C" __global__ void reverse(const float* x, float* y, int n) {
  __shared__ float s[256];
  const int t = threadIdx.x;
  s[t] = t < n ? x[blockIdx.x * n + t] : 0.f;
  __syncthreads();
  if (t < n) y[blockIdx.x * n + t] = s[n - 1 - t];
}

// Copies x[i + shift] to y[i] for i < n: outside x when shift moves past either end.
extern "C" __global__ void shifted(const float* x, float* y, int n, int shift) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i + shift];
}

// Named like a C library function: must run this body, not the library's.
extern "C" __global__ void advance(long long* counters, long long by) { counters[0] += by; }
"""


@pytest.fixture(scope="module")
def module():
    return cuda_on_cpu.RawModule(SOURCE)


def test_threads_of_a_block_wait_for_each_other_at_a_barrier(module):
    x = np.random.default_rng(0).normal(size=(3, 200)).astype(np.float32)
    y = np.full_like(x, np.nan)
    module.get_function("reverse")((3,), (256,), (x, y, np.int32(200)))
    assert np.array_equal(y, x[:, ::-1])


def test_a_kernel_named_like_a_c_library_function_runs_its_own_body(module):
    counters = np.array([5, 0], dtype=np.int64)
    module.get_function("advance")((1,), (1,), (counters, np.int64(3)))
    assert counters.tolist() == [8, 0]


@pytest.mark.parametrize("shift,side", [(1, "after"), (-1, "before")])
def test_a_thread_outside_its_array_fails_the_launch_naming_it(module, shift, side):
    x, y = np.arange(300, dtype=np.float32), np.zeros(300, np.float32)
    shifted = module.get_function("shifted")
    shifted((2,), (256,), (x, y, np.int32(300), np.int32(0)))
    assert np.array_equal(y, x)
    where = "block (1, 0, 0) thread (43, 0, 0)" if shift > 0 else "block (0, 0, 0) thread (0, 0, 0)"
    with pytest.raises(IndexError, match=rf"shifted: {re.escape(where)} went {side} argument 0"):
        shifted((2,), (256,), (x, y, np.int32(300), np.int32(shift)))
    # Views are checked against what they span, not against the array they belong to.
    with pytest.raises(IndexError, match="went after argument 0"):
        shifted((1,), (256,), (x[:100], y, np.int32(100), np.int32(1)))


@pytest.mark.parametrize(
    "grid,block,says",
    [
        ((1, 65536), (256,), "grid of (1, 65536, 1) blocks"),  # y holds 65535 at most
        ((0,), (256,), "grid of (0, 1, 1) blocks"),
        ((1,), (2048,), "block of (2048, 1, 1) threads"),
        ((1,), (64, 32), "block of (64, 32, 1) threads"),  # 2048 threads in all
    ],
)
def test_a_launch_no_gpu_would_make_is_refused(module, grid, block, says):
    x, y = np.ones(4, np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=rf"reverse: no GPU launches a {re.escape(says)}"):
        module.get_function("reverse")(grid, block, (x, y, np.int32(4)))


def test_launch_arguments_are_checked_against_the_kernel(module):
    x, y = np.ones(4, np.float32), np.zeros(4, np.float32)
    reverse = module.get_function("reverse")
    with pytest.raises(TypeError, match=r"reverse: argument 2 has the wrong size"):
        reverse((1,), (4,), (x, y, np.int64(4)))
    with pytest.raises(TypeError, match="2 arguments"):
        reverse((1,), (4,), (x, y))
    with pytest.raises(TypeError, match="NumPy scalars"):
        reverse((1,), (4,), (x, y, 4))
    with pytest.raises(AttributeError, match="no kernel named 'sort'"):
        module.get_function("sort")


def test_source_that_is_not_valid_cuda_fails_with_the_compiler_message():
    with pytest.raises(RuntimeError, match="do not compile"):
        cuda_on_cpu.RawModule('extern "C" __global__ void broken(float* x) { x[0] = ; }')
