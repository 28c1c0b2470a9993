"""Shared fixtures: every test starts on NumPy in float64 with a fixed seed; ``xp_name`` runs a
test once per backend, skipping CuPy with the reason where no GPU is usable."""

import pytest

from gpucnn import backend

CUPY_OK, CUPY_WHY = backend.cupy_available()
requires_gpu = pytest.mark.skipif(not CUPY_OK, reason=f"no usable GPU: {CUPY_WHY}")


@pytest.fixture(autouse=True)
def numpy_float64():
    backend.use("numpy", dtype="float64", seed=0)
    yield
    backend.use("numpy", dtype="float32", seed=0)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=requires_gpu)])
def xp_name(request):
    """The backend name; the test runs on each."""
    return request.param


@pytest.fixture(params=["fast", "reference"])
def kernel_set(request):
    """The layer kernel set (gpucnn.kernels); the test runs with each."""
    from gpucnn import kernels

    kernels.use(request.param)
    yield request.param
    kernels.use("fast")
