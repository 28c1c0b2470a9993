"""The backend shim: choosing, forcing and refusing backends; dtype; seeding; host transfers."""

import subprocess
import sys

import numpy as np
import pytest

from gpucnn import BackendError, ConfigError, backend

from .conftest import CUPY_OK


def test_numpy_forced():
    b = backend.use("numpy", dtype="float32", seed=1)
    assert b.name == "numpy" and backend.xp() is np and backend.dtype() is np.float32


# What backend=auto picks: CuPy where a GPU is usable, else NumPy.
AUTO_PICKS = [
    pytest.param("cupy", marks=pytest.mark.gpu),
    pytest.param("numpy", marks=pytest.mark.skipif(CUPY_OK, reason="a GPU is usable here")),
]


@pytest.mark.parametrize("name", AUTO_PICKS)
def test_auto_picks_cupy_exactly_when_it_is_usable(name, caplog):
    with caplog.at_level("INFO", logger="gpucnn.backend"):
        b = backend.use("auto")
    assert b.name == name and f"backend: {name}" in caplog.text


@pytest.mark.skipif(CUPY_OK, reason="a GPU is usable here, so backend=cupy does not fail")
def test_cupy_forced_without_a_gpu_fails_loudly():
    with pytest.raises(BackendError, match=r"backend=cupy needs CuPy and a CUDA GPU.*pip install"):
        backend.use("cupy")
    assert backend.active().name == "numpy"


@pytest.mark.parametrize(
    "kwargs,match",
    [({"name": "torch"}, "backend 'torch' is unknown"), ({"dtype": "float16"}, "float16")],
)
def test_bad_choices_are_rejected(kwargs, match):
    with pytest.raises(BackendError, match=match):
        backend.use(**{"name": "numpy", **kwargs})


@pytest.mark.parametrize(
    "kwargs",
    [{"dtype": "float64"}, {"kernels": "reference"}, {"dtype": "float64", "kernels": "fast"}],
)
def test_tf32_is_refused_where_nothing_would_run_in_it(kwargs):
    with pytest.raises(BackendError, match="tf32 rounds the float32 products of the fast GPU"):
        backend.use("numpy", tf32=True, **kwargs)


@pytest.mark.parametrize("name", AUTO_PICKS)
def test_tf32_is_on_for_cupy_and_said_to_change_nothing_on_numpy(name, caplog):
    with caplog.at_level("INFO", logger="gpucnn.backend"):
        b = backend.use("auto", tf32=True)
    assert b.tf32 == (name == "cupy")
    said = "TF32 on tensor cores" if name == "cupy" else "tf32 changes nothing on NumPy"
    assert said in caplog.text
    assert not backend.use("auto").tf32  # off unless asked for


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_a_seed_numpy_cannot_take_is_refused_before_the_backend_changes(seed):
    before = backend.use("numpy", dtype="float64", seed=4)
    for use in (lambda: backend.use("numpy", seed=seed), lambda: backend.set_seed(seed)):
        with pytest.raises(ConfigError, match=f"seed must be an integer >= 0, got {seed!r}"):
            use()
        assert backend.active() is before and before.seed == 4


def test_seeding_repeats_both_generators():
    backend.set_seed(5)
    a = backend.active().host_rng.normal(size=3), backend.active().rng.random(3)
    backend.set_seed(5)
    b = backend.active().host_rng.normal(size=3), backend.active().rng.random(3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])


def test_host_round_trip():
    x = np.arange(6.0).reshape(2, 3)
    d = backend.to_device(x, dtype=np.float32)
    assert d.dtype == np.float32 and np.array_equal(backend.to_host(d), x)
    backend.synchronize()


def test_naming_the_cpu_starts_no_child_process():
    """A child inherits the process's open files, a run directory's lock among them, until it
    starts its program: a run killed meanwhile would look alive to summarize and report."""
    code = (
        "import subprocess\n"
        "def child(*args, **kwargs):\n"
        "    raise SystemExit(f'a child process: {args}')\n"
        "subprocess.Popen = child\n"
        "from gpucnn import backend\n"
        "print(backend._cpu_name())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(f"({backend.available_cores()} cores)")
