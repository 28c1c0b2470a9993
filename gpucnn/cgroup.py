"""What this process's Linux control group allows it: the memory left under its limit and the
CPUs its quota pays for. Slurm (``--mem``, ``--cpus-per-task`` with its cgroup plugin), Docker
(``--memory``, ``--cpus``) and Kubernetes limits set them, while /proc/meminfo and the CPU
affinity still show the whole machine: a job that goes past its memory limit is killed
without a word, and one thread per core of a machine it may use a quarter of is throttled.

Both versions of cgroups are read: v2 (one hierarchy, ``memory.max``, ``cpu.max``) and v1 (a
hierarchy per controller, ``memory.limit_in_bytes``, ``cpu.cfs_quota_us``). A limit can be
set on any ancestor of the process's group, so the tightest on the way up counts. Where
nothing is readable (not Linux, no cgroup file system), there is no limit.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
UNLIMITED_V1 = 2**62  # v1 writes "no limit" as the largest page-aligned 64-bit number


def _groups(root: Path, proc: Path) -> dict[str, tuple[Path, Path]]:
    """(the hierarchy's root, the process's group directory in it) for each v1 controller
    (``memory``, ``cpu``), and for v2 under the key ``""``: from /proc/self/cgroup lines
    ``ID:CONTROLLERS:PATH``. A path that is not there (a container sees its own group as the
    root) is the hierarchy's root."""
    groups = {}
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return groups
    for line in lines:
        _, controllers, path = line.split(":", 2)
        mount = root / controllers  # v1 mounts cpu,cpuacct together (with a link named cpu)
        for controller in controllers.split(",") if controllers else [""]:
            base = mount if mount.is_dir() and controller else root / controller
            group = base / path.lstrip("/")
            groups[controller] = base, group if group.is_dir() else base
    return groups


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _stat(path: Path, key: str) -> int:
    """The value of ``key`` in a memory.stat file (0 where it is missing)."""
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _ancestors(root: Path, group: Path) -> list[Path]:
    """``group`` and each folder above it up to the hierarchy's ``root``."""
    chain = [group]
    while chain[-1] != root and root in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _or_none(read):
    """``read``, answering None where a cgroup file holds something unexpected: a limit that
    cannot be read is no reason to stop a run."""

    @functools.wraps(read)
    def guarded(root: Path = ROOT, proc: Path = Path("/proc/self/cgroup")) -> int | None:
        try:
            return read(root, proc)
        except (OSError, ValueError):
            return None

    return guarded


@_or_none
def memory_left(root: Path, proc: Path) -> int | None:
    """Bytes the process's group may still take under its memory limit, the tightest over the
    group and those above it; None where none is set. Page cache counts as free: the kernel
    reclaims it before it kills, so what this refuses can never fit."""
    groups = _groups(root, proc)
    lefts = []
    if "memory" in groups:  # v1: memory.stat's hierarchical limit covers the ancestors
        _, group = groups["memory"]
        limit = _stat(group / "memory.stat", "hierarchical_memory_limit")
        usage = _read(group / "memory.usage_in_bytes")
        if 0 < limit < UNLIMITED_V1 and usage is not None:
            used = int(usage) - _stat(group / "memory.stat", "total_cache")
            lefts.append(limit - used)
    elif "" in groups:
        for group in _ancestors(*groups[""]):
            limit, usage = _read(group / "memory.max"), _read(group / "memory.current")
            if limit not in (None, "max") and usage is not None:
                used = int(usage) - _stat(group / "memory.stat", "file")
                lefts.append(int(limit) - used)
    return max(0, min(lefts)) if lefts else None


@_or_none
def cpu_limit(root: Path, proc: Path) -> int | None:
    """The CPUs the group's quota pays for (quota / period, rounded up), the tightest over the
    group and those above it; None where no quota is set."""
    groups = _groups(root, proc)
    limits = []
    if "cpu" in groups:  # v1
        for group in _ancestors(*groups["cpu"]):
            quota, period = _read(group / "cpu.cfs_quota_us"), _read(group / "cpu.cfs_period_us")
            if quota and period and int(quota) > 0:
                limits.append(math.ceil(int(quota) / int(period)))
    elif "" in groups:
        for group in _ancestors(*groups[""]):
            quota, _, period = (_read(group / "cpu.max") or "max").partition(" ")
            if quota != "max" and period:
                limits.append(math.ceil(int(quota) / int(period)))
    return max(1, min(limits)) if limits else None
