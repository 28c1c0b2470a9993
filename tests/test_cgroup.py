"""The limits a control group sets (Slurm's --mem and --cpus-per-task, a container's --memory
and --cpus), read from cgroup trees laid out as Linux lays them out, v2 and v1."""

import os

import pytest

from gpucnn import backend, cgroup, memory
from gpucnn.errors import NotEnoughMemory

GB = 10**9


def _tree(tmp_path, files, proc):
    """A cgroup file system under tmp_path/cgroup holding ``files`` (path: text), and the
    /proc/self/cgroup text ``proc``; returns (root, proc file)."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "proc").write_text(proc)
    return root, tmp_path / "proc"


def test_v2_the_tightest_limit_above_the_process_counts_and_page_cache_is_free(tmp_path):
    # Slurm's job group has the limit, its step's group (the process's) has none.
    root, proc = _tree(
        tmp_path,
        {
            "memory.max": "max",
            "job/memory.max": str(8 * GB),
            "job/memory.current": str(3 * GB),
            "job/memory.stat": f"anon {2 * GB}\nfile {1 * GB}\n",
            "job/step/memory.max": "max",
            "job/step/memory.current": str(2 * GB),
            "job/cpu.max": "250000 100000",
            "job/step/cpu.max": "max 100000",
        },
        "0::/job/step\n",
    )
    assert cgroup.memory_left(root, proc) == 8 * GB - 2 * GB  # the cache is reclaimed first
    assert cgroup.cpu_limit(root, proc) == 3  # 2.5 CPUs of quota: 3 threads


def test_v1_reads_the_hierarchical_limit_and_each_controllers_own_group(tmp_path):
    root, proc = _tree(
        tmp_path,
        {
            "memory/slurm/job/memory.stat": (
                f"cache 5\nhierarchical_memory_limit {4 * GB}\ntotal_cache {GB}\n"
            ),
            "memory/slurm/job/memory.usage_in_bytes": str(2 * GB),
            "cpu,cpuacct/slurm/cpu.cfs_quota_us": "200000",  # mounted together, no link
            "cpu,cpuacct/slurm/cpu.cfs_period_us": "100000",
            "cpu,cpuacct/slurm/job/cpu.cfs_quota_us": "-1",  # the limit is on the parent
            "cpu,cpuacct/slurm/job/cpu.cfs_period_us": "100000",
            "cpu,cpuacct/cpu.cfs_quota_us": "-1",
            "cpu,cpuacct/cpu.cfs_period_us": "100000",
        },
        "5:memory:/slurm/job\n4:cpu,cpuacct:/slurm/job\n1:name=systemd:/x\n",
    )
    assert cgroup.memory_left(root, proc) == 4 * GB - GB
    assert cgroup.cpu_limit(root, proc) == 2


@pytest.mark.parametrize(
    "files,proc",
    [
        ({"memory.max": "max", "cpu.max": "max 100000"}, "0::/\n"),  # a group without limits
        (
            {
                "memory/memory.stat": "hierarchical_memory_limit 9223372036854771712\n",
                "memory/memory.usage_in_bytes": "1000",
                "cpu/cpu.cfs_quota_us": "-1",
                "cpu/cpu.cfs_period_us": "100000",
            },
            "3:memory:/\n2:cpu:/\n",
        ),
        ({"memory.max": "lots", "memory.current": "1", "cpu.max": "x y"}, "0::/\n"),  # unreadable
        ({}, ""),  # no cgroup file system
    ],
)
def test_no_limit_where_none_is_set_or_none_can_be_read(tmp_path, files, proc):
    root, proc = _tree(tmp_path, files, proc)
    assert cgroup.memory_left(root, proc) is None
    assert cgroup.cpu_limit(root, proc) is None


def test_a_group_named_by_the_host_but_not_mounted_here_is_the_root(tmp_path):
    """A container sees its own group as the root, while /proc/self/cgroup may name the
    host's path for it."""
    root, proc = _tree(tmp_path, {"memory.max": str(GB), "memory.current": "0"}, "0::/docker/abc\n")
    assert cgroup.memory_left(root, proc) == GB


def test_work_beyond_the_cgroup_limit_is_refused_naming_it(monkeypatch):
    """The machine has room; the job's limit has not: refused before allocating, not killed."""
    monkeypatch.setattr(memory, "_machine_available", lambda: 100 * GB)
    monkeypatch.setattr(cgroup, "memory_left", lambda: 2 * GB)
    with pytest.raises(NotEnoughMemory, match="of host memory under this process's cgroup limit"):
        memory.require(3 * GB, "pad_to=64: the images", "lower pad_to", host=True)
    memory.require(GB, "pad_to=64: the images", "lower pad_to", host=True)


def test_threads_are_no_more_than_the_cpu_quota_pays_for(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(cgroup, "cpu_limit", lambda: 10_000)  # more than there are: the cores
    assert backend.available_cores() == cores
    monkeypatch.setattr(cgroup, "cpu_limit", lambda: 1)
    assert backend.available_cores() == 1
