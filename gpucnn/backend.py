"""The one place that knows whether arrays live on the CPU (NumPy) or the GPU (CuPy).

Every other module asks this one for its array module (``xp()``), its default dtype, its random
generators, and for moving arrays between host and device. CuPy is imported here and nowhere
else, so the package imports and runs without it.

    from gpucnn import backend
    backend.use("auto")            # CuPy if it imports and a GPU is usable, else NumPy
    backend.use("numpy", dtype="float64", seed=0)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BackendError, ConfigError, is_count

log = logging.getLogger(__name__)

NAMES = ("auto", "numpy", "cupy")
DTYPES = ("float32", "float64")

_INSTALL_HINT = (
    'install CuPy for your CUDA version: pip install -e ".[gpu]" (CUDA 13, cupy-cuda13x) '
    "or pip install cupy-cuda12x (CUDA 12); or choose backend=numpy"
)


def _import_cupy() -> tuple[Any | None, str]:
    """Return (cupy, "") when CuPy imports and a CUDA device answers, else (None, reason)."""
    try:
        import cupy
    except ImportError as exc:  # not installed, or installed for the wrong CUDA
        return None, f"CuPy does not import ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device, or a driver/toolkit mismatch
        return None, f"CuPy imports but no CUDA device is usable ({exc})"
    if count < 1:
        return None, "CuPy imports but no CUDA device is visible"
    return cupy, ""


@dataclass
class Backend:
    """The active array library and its settings."""

    name: str = "numpy"
    xp: Any = np
    dtype: Any = np.float32
    seed: int = 0
    device: str = "cpu"
    # The GPU kernel set's cuBLAS products on tensor cores in TF32 (inputs rounded to a 10-bit
    # mantissa, sums in float32), as PyTorch's cuDNN convolutions by default; False: float32.
    tf32: bool = False
    # Host generator: parameter initialisation, so both backends start from the same weights.
    host_rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    # Device generator: dropout masks and shuffling, drawn where the data lives.
    rng: Any = field(default_factory=lambda: np.random.default_rng(0))

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"


_active = Backend()


def use(
    name: str = "auto",
    dtype: str = "float32",
    seed: int | None = None,
    job: int | None = None,
    kernels: str = "fast",
    tf32: bool = False,
) -> Backend:
    """Select the array library; ``name`` is ``auto``, ``numpy`` or ``cupy``.

    ``cupy`` raises BackendError when CuPy or a GPU is missing; ``auto`` falls back to NumPy and
    logs why. Re-seeds both generators when ``seed`` is given. ``job`` (a sweep's job number)
    spreads parallel jobs over the visible GPUs: job j uses GPU j mod (number of GPUs).
    ``kernels`` picks the kernel set (gpucnn.kernels): ``fast``, or ``reference`` to run the
    readable one (on CuPy it also turns the GPU's static training step off). ``tf32`` lets
    the GPU kernel set's cuBLAS products (the larger ones) run on tensor cores in TF32, as
    PyTorch runs its cuDNN convolutions by default: faster on Ampere and later GPUs, each
    product's inputs rounded to a 10-bit mantissa. It needs float32 and the fast kernels (the
    only ones it changes), and does nothing on NumPy (backend ``auto`` on a machine without a
    GPU: said in the log).
    """
    global _active
    from . import kernels as kernel_sets

    if seed is not None:
        _check_seed(seed)
    kernel_sets.use(kernels)
    if name not in NAMES:
        raise BackendError(f"backend {name!r} is unknown: choose one of {', '.join(NAMES)}")
    if dtype not in DTYPES:
        raise BackendError(f"dtype {dtype!r} is not supported: choose float32 or float64")
    if tf32 and (dtype != "float32" or kernels != "fast"):
        raise BackendError(
            f"tf32 rounds the float32 products of the fast GPU kernels, which dtype={dtype} "
            f"kernels={kernels} does not run: choose dtype=float32 and kernels=fast, or leave "
            "tf32 off"
        )
    if name == "numpy":
        cp, reason = None, "backend=numpy was asked for"
    else:
        cp, reason = _import_cupy()
        if cp is None and name == "cupy":
            raise BackendError(f"backend=cupy needs CuPy and a CUDA GPU: {reason}; {_INSTALL_HINT}")
    if cp is not None:
        if job is not None:
            cp.cuda.Device(job % cp.cuda.runtime.getDeviceCount()).use()
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        _active = Backend(name="cupy", xp=cp, device=props["name"].decode())
        log.info("backend: cupy on %s", _active.device)
    else:
        _active = Backend(name="numpy", xp=np, device=_cpu_name())
        log.info("backend: numpy on the CPU (%s)", reason)
    _active.dtype = np.dtype(dtype).type
    _active.tf32 = bool(tf32) and _active.is_gpu
    if tf32:
        log.info(
            "tf32: the larger matrix products in TF32 on tensor cores"
            if _active.is_gpu
            else "tf32 changes nothing on NumPy, which multiplies in full float32"
        )
    set_seed(_active.seed if seed is None else seed)
    return _active


def available_cores() -> int:
    """The number of CPU cores this process may use: those it may run on, or fewer where its
    cgroup's CPU quota (a container's --cpus) pays for fewer."""
    import os

    from . import cgroup

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup.cpu_limit()
    return min(cores or 1, quota) if quota else cores or 1


def _cpu_name() -> str:
    """The CPU model and the number of cores this process may use."""
    import platform

    # Not platform.processor(): it runs `uname -p` in a child process, which inherits this
    # process's open files (a run directory's lock among them) until it starts the program.
    name = platform.machine() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            name = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return f"{name} ({available_cores()} cores)"


def active() -> Backend:
    """The backend in use now."""
    return _active


def xp() -> Any:
    """The array module in use: ``numpy`` or ``cupy``."""
    return _active.xp


def dtype() -> Any:
    """The default floating dtype (float32 unless float64 was asked for)."""
    return _active.dtype


def set_seed(seed: int) -> None:
    """Re-seed the host generator (initialisation) and the device generator (dropout, shuffles)."""
    _check_seed(seed)
    _active.seed = int(seed)
    _active.host_rng = np.random.default_rng(seed)
    # A separate stream for the device, so adding dropout does not change the initial weights.
    _active.rng = _active.xp.random.default_rng(seed + 1)


def _check_seed(seed: Any) -> None:
    """ConfigError unless ``seed`` is an integer >= 0 (what NumPy's generators take)."""
    if not is_count(seed, 0):
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}", "seed")


def step_rng(step: int, stream: int = 0) -> Any:
    """A generator on the device seeded by (seed, step, stream) alone, so that a training step's
    random numbers (dropout masks) are the same whether or not the run was interrupted before."""
    return _active.xp.random.default_rng((_active.seed * 1_000_003 + step) * 64 + stream)


def get_array_module(x: Any) -> Any:
    """NumPy or CuPy, whichever owns ``x``."""
    if _active.name == "cupy":
        return _active.xp.get_array_module(x)
    return np


def to_device(x: Any, dtype: Any = None) -> Any:
    """Copy a host array (or anything array-like) to the active backend's device."""
    return _active.xp.asarray(x, dtype=dtype)


def to_host(x: Any) -> np.ndarray:
    """A NumPy array holding ``x``, copying from the GPU when needed."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


def synchronize() -> None:
    """Wait for queued GPU work (a no-op on NumPy); call it before reading a timer."""
    if _active.name == "cupy":
        _active.xp.cuda.get_current_stream().synchronize()


def release() -> None:
    """Give cached GPU memory back to the driver (end of a sweep job); a no-op on NumPy."""
    if _active.name == "cupy":
        import gc

        gc.collect()  # arrays held only by reference cycles (a step's program) go first
        _active.xp.get_default_memory_pool().free_all_blocks()
        _active.xp.get_default_pinned_memory_pool().free_all_blocks()


def versions() -> dict[str, str]:
    """Versions of the array libraries in use, for run summaries."""
    out = {"numpy": np.__version__}
    if _active.name == "cupy":
        out["cupy"] = _active.xp.__version__
        out["cuda_runtime"] = str(_active.xp.cuda.runtime.runtimeGetVersion())
    return out


def cupy_available() -> tuple[bool, str]:
    """(True, "") when backend=cupy would work here, else (False, the reason)."""
    cp, reason = _import_cupy()
    return cp is not None, reason


def recycle_host_memory() -> None:
    """Ask glibc's malloc to serve large arrays from its heap and keep freed memory there, for
    the whole process: the app calls it when it trains on NumPy (a library user may too).

    By default every allocation over 32 MB (and, until the first free, over 128 kB) is a fresh
    mmap: the kernel zero-fills its pages on first touch, which costs as much as the arithmetic
    for the big temporaries of a training step. Recycling them is what PyTorch's CPU allocator
    does too. The cost: memory freed by NumPy is kept for reuse, not returned to the system.
    No effect off glibc.
    """
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 1 << 30)
    mallopt(m_trim_threshold, (1 << 31) - 1)


def return_host_memory() -> bool:
    """Hand the freed memory glibc keeps for reuse (see recycle_host_memory) back to the system
    now, as release() does for the GPU's pool; False off glibc."""
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


def _glibc(function: str) -> Any | None:
    """The C library's ``function`` through ctypes, or None where it has none (off glibc)."""
    import ctypes
    import ctypes.util

    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), function)
    except (OSError, AttributeError, TypeError):
        return None
