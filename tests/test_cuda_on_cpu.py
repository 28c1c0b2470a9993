"""The CPU runner of the CUDA kernels (tests/cuda_on_cpu), which the GPU kernel tests rely on
where no GPU is: barriers hold, launch arguments are checked as a GPU would need them."""

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
