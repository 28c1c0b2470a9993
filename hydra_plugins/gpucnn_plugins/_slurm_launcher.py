"""Slurm sweeps that survive the cluster (the launcher of ``hydra/launcher=slurm_cpu`` and
``slurm_gpu``; needs the sweep extra, which brings Hydra's submitit launcher).

Hydra's submitit launcher runs each job as a Slurm array task, and this one keeps its job
runner (which also requeues a job that times out, resuming in its own directory), with two
differences in ``launch``:
- the sweep directory gets ``jobs.json`` (each job's number, Slurm id and overrides) as soon as
  the jobs are submitted, so that ``summarize`` can show jobs that have not started yet;
- a job that ends without a result (cancelled with ``scancel``, killed by a node failure) is
  recorded in its directory's summary.json as ``cancelled`` or ``failed`` with Slurm's state,
  and the sweep goes on to its summary instead of stopping at the first such job;
- the jobs' results are collected as they end, each followed by the sweep's progress line
  (gpucnn.app.progress) in the console the sweep was started from.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as SubmititSlurmLauncher,
)
from omegaconf import OmegaConf, open_dict

from gpucnn.app.progress import among as progress_among
from gpucnn.app.results import JOBS, read_summary
from gpucnn.fileio import write_json

log = logging.getLogger(__name__)
POLL_SECONDS = 2  # how often the jobs not yet ended are asked after (Slurm's answers are cached)


class SlurmLauncher(SubmititSlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        import submitit

        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        executor = submitit.AutoExecutor(
            folder=self.params["submitit_folder"],
            cluster=self._EXECUTOR,
            slurm_max_num_timeout=self.params["max_num_timeout"],
        )
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        own = {"submitit_folder", "max_num_timeout"}
        executor.update_parameters(
            **{
                k if k in shared else f"slurm_{k}": v
                for k, v in self.params.items()
                if k not in own
            }
        )
        numbers = range(initial_job_idx, initial_job_idx + len(job_overrides))
        for num, overrides in zip(numbers, job_overrides):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
        state = Singleton.get_state()
        jobs = executor.map_array(
            self,
            [list(o) for o in job_overrides],
            ["hydra.sweep.dir"] * len(numbers),
            list(numbers),
            [f"job_id_for_{n}" for n in numbers],
            [state] * len(numbers),
        )
        _record_submission(sweep_dir, numbers, job_overrides, [j.job_id for j in jobs])
        progress = progress_among(self.hydra_context.callbacks)
        outcomes = {}
        for job in submitit.helpers.as_completed(jobs, poll_frequency=POLL_SECONDS):
            i = jobs.index(job)
            outcomes[i] = self._outcome(job, numbers[i], job_overrides[i])
            if progress is not None:  # here, where the sweep was started, not in the job's log
                progress.say(sweep_dir)
        return [outcomes[i] for i in range(len(jobs))]

    def _outcome(self, job: Any, num: int, overrides: Sequence[str]) -> JobReturn:
        """The job's own result, or (when Slurm ended it without one) a NaN result after
        recording why in the job's directory."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            return job.results()[0]
        except (UncompletedJobError, FailedJobError) as exc:
            slurm_state, error = str(job.state), type(exc).__name__
        status = "cancelled" if slurm_state.startswith("CANCELLED") else "failed"
        run_dir = self._job_dir(num, overrides)
        summary = read_summary(run_dir) or {"overrides": list(overrides)}
        summary.update(
            status=status,
            reason=f"Slurm ended job {job.job_id} ({slurm_state}) without a result: "
            f"resume with train.resume=true ({error})",
        )
        write_json(run_dir / "summary.json", summary)
        log.warning("job #%d %s by Slurm (%s)", num, status, slurm_state)
        ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
        ret.return_value = math.nan
        return ret

    def _job_dir(self, num: int, overrides: Sequence[str]) -> Path:
        """The directory job ``num`` runs (or would have run) in: the configured sub-directory
        of the sweep's, or the job's number when its config cannot be composed again (the
        config files changed since the sweep started, say)."""
        assert self.hydra_context is not None and self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        try:
            config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
        except Exception:  # whatever composing raises, the summary must still be written
            return sweep_dir / str(num)
        with open_dict(config.hydra.job):
            config.hydra.job.num = num
        return sweep_dir / str(config.hydra.sweep.subdir)


def _record_submission(
    sweep_dir: Path, numbers: range, overrides: Sequence[Sequence[str]], ids: list[str]
) -> None:
    """Add the submitted jobs to the sweep's jobs.json (a sweeper may launch several batches)."""
    path = sweep_dir / JOBS
    try:
        jobs = json.loads(path.read_text()) if path.is_file() else []
    except ValueError:
        jobs = []
    jobs += [
        {"job": n, "slurm_id": i, "overrides": list(o)} for n, i, o in zip(numbers, ids, overrides)
    ]
    write_json(path, jobs)
