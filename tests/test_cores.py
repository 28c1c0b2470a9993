"""A job's CPU threads: train.threads, else Slurm's allocation, else the machine's cores shared
by the jobs a launcher runs at once; and the BLAS pools held to it for the whole job."""

import json

import pytest
from threadpoolctl import threadpool_info

from gpucnn import backend
from gpucnn.app.cores import job_threads
from gpucnn.app.experiment import load_splits, run_job

from .test_run_dirs import _tiny_cfg


@pytest.fixture
def no_slurm(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(backend, "available_cores", lambda: 8)
    return monkeypatch


def test_threads_asked_for_win(no_slurm):
    no_slurm.setenv("SLURM_JOB_ID", "7")
    no_slurm.setenv("SLURM_CPUS_PER_TASK", "4")
    assert job_threads(3, sharing=2) == 3


def test_more_threads_than_cores_are_warned_about(no_slurm, caplog):
    with caplog.at_level("WARNING"):
        assert job_threads(8) == 8 and job_threads(4, sharing=2) == 4
    assert caplog.text == ""
    with caplog.at_level("WARNING"):
        assert job_threads(3, sharing=3) == 3
    assert "train.threads=3 for each of 3 jobs at once is more than the 8 cores" in caplog.text


def test_a_slurm_job_uses_its_allocation(no_slurm):
    no_slurm.setenv("SLURM_JOB_ID", "7")
    no_slurm.setenv("SLURM_CPUS_ON_NODE", "2")
    assert job_threads(None) == 2
    no_slurm.setenv("SLURM_CPUS_PER_TASK", "4")
    assert job_threads(None) == 4


def test_parallel_jobs_share_the_cores(no_slurm):
    assert job_threads(None) == 8
    assert job_threads(None, sharing=2) == 4
    assert job_threads(None, sharing=3) == 2
    assert job_threads(None, sharing=16) == 1


def test_the_blas_pools_are_held_to_the_job_threads_for_the_whole_job(tmp_path, monkeypatch):
    seen = []

    def load_and_look(cfg):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return load_splits(cfg)

    monkeypatch.setattr("gpucnn.app.experiment.load_splits", load_and_look)
    cfg = _tiny_cfg()
    cfg.train.threads = 1
    run_job(cfg, tmp_path, [])
    assert seen and set(seen) == {1}  # outside the step, before any training
    assert json.loads((tmp_path / "summary.json").read_text())["threads"] == 1
