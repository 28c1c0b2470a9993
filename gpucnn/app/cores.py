"""How many CPU threads a job may use, and holding it to them for the whole job.

``train.threads`` when set; otherwise the cores the job was given: Slurm's allocation inside a
Slurm job, else this machine's cores shared by the jobs a launcher runs on it at once (the
joblib launcher's ``n_jobs``). run_job holds the BLAS and OpenMP thread pools to it (through
threadpoolctl) as well as the training step's own threads, from the job's start to its end, so
that parallel jobs do not each start a thread per core and fight over them.
"""

from __future__ import annotations

import logging
import os

from .. import backend

log = logging.getLogger(__name__)

SLURM_CPUS = ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE")  # the first one set wins


def job_threads(asked: int | None, sharing: int = 1) -> int:
    """``asked`` if given; else the Slurm allocation, or this machine's cores divided among the
    ``sharing`` jobs running on it at once (at least one each). Warns when ``asked`` threads
    for each of the ``sharing`` jobs are more than the cores there are."""
    if asked is not None:
        cores = backend.available_cores()
        if asked * sharing > cores:
            each = f" for each of {sharing} jobs at once" if sharing > 1 else ""
            log.warning(
                "train.threads=%d%s is more than the %d cores this process may use: threads "
                "will take turns on them, which is slower; leave train.threads unset to use "
                "the cores there are",
                asked,
                each,
                cores,
            )
        return asked
    if os.environ.get("SLURM_JOB_ID"):
        for name in SLURM_CPUS:
            value = os.environ.get(name, "")
            if value.isdigit() and int(value) > 0:
                return int(value)
    return max(1, backend.available_cores() // max(1, sharing))
