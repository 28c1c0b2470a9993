"""Memory checks made before allocating: work that cannot fit is refused up front, naming the
setting that makes it big, instead of failing after minutes or being killed by the kernel.

The estimates are lower bounds of what the arrays themselves take, so a refusal is never wrong;
what passes may still run out (other processes, fragmentation), which the app reports too.
"""

from __future__ import annotations

import os

from . import cgroup
from .errors import NotEnoughMemory


def _machine_available() -> int:
    """Bytes of the machine's memory available to a new allocation (Linux's MemAvailable, else
    all physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def available_host() -> tuple[int, str]:
    """(bytes, where) of host memory available to a new allocation: the machine's, or less
    where this process's cgroup limit (a Slurm job's --mem, a container's) leaves less."""
    machine, left = _machine_available(), cgroup.memory_left()
    if left is not None and left < machine:
        return left, "host memory under this process's cgroup limit (Slurm's --mem, a container's)"
    return machine, "host memory"


def available() -> tuple[int, str]:
    """(bytes available, where) for the active backend's arrays: the GPU's free memory plus
    what CuPy's pool holds unused, or the host's."""
    from . import backend

    active = backend.active()
    if not active.is_gpu:
        return available_host()
    cp = backend.xp()
    free, _ = cp.cuda.runtime.memGetInfo()
    pool = cp.get_default_memory_pool()
    return free + pool.free_bytes(), f"GPU ({active.device}) memory"


def size(nbytes: float) -> str:
    """``nbytes`` for people: 512 B, 3.4 MB, 2.3 TB."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:,.0f} {unit}" if unit == "B" else f"{nbytes:,.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def require(
    nbytes: float, what: str, fix: str, host: bool = False, argument: str | None = None
) -> None:
    """NotEnoughMemory ("<what>: X needed, but Y of host memory is available: <fix>") if
    ``nbytes`` exceed what is available on the active backend (or the host). ``argument``:
    the setting at fault, which ``what`` starts with."""
    have, where = available_host() if host else available()
    if nbytes > have:
        raise NotEnoughMemory(
            f"{what}: {size(nbytes)} needed, but {size(have)} of {where} is available: {fix}",
            argument,
        )
