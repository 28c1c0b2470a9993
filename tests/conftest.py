"""Shared fixtures: every test starts on NumPy in float64 with a fixed seed; ``xp_name`` runs a
test once per backend. Tests marked ``gpu`` (``@pytest.mark.gpu``, or a parameter with that mark)
skip with the reason where no GPU is usable; ``pytest -m gpu`` runs just those."""

import pytest

from gpucnn import backend

CUPY_OK, CUPY_WHY = backend.cupy_available()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") and not CUPY_OK:
        pytest.skip(f"no usable GPU: {CUPY_WHY}")


@pytest.fixture(autouse=True)
def numpy_float64():
    backend.use("numpy", dtype="float64", seed=0)
    yield
    backend.use("numpy", dtype="float32", seed=0)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
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
