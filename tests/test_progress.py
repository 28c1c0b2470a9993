"""A sweep's progress line: the jobs it plans, those done, and the time the rest will take."""

import json
import os
import time

import pytest
from omegaconf import OmegaConf

from gpucnn.app import progress
from gpucnn.app.progress import BASIC_SWEEPER, _duration, planned_jobs, progress_line


def multirun(task, params=None, target=BASIC_SWEEPER, **sweeper):
    """A multirun config as the callback sees it: its sweeper and the command line's overrides."""
    sweeper = {"_target_": target, "params": params or {}, **sweeper}
    return OmegaConf.create({"hydra": {"sweeper": sweeper, "overrides": {"task": task}}})


SWEEPS = [
    # every combination, the seeds of train.repeats (the sweeper's params) included
    (["model.filter_size=3,5,7", "model.pool_size=2,3"], {"train.seed": "0,1,2"}, 18),
    (["model.channels=[8,16],[16,32]", "optimizer.lr=range(1,4)"], {}, 6),
    (["train.seed=0,1"], {"train.seed": "0"}, 2),  # the command line's sweep replaces the param
    (["train.epochs=1"], {"train.seed": "0"}, 1),
    (["model=glob(*)"], {}, None),  # only the config loader knows what the glob matches
]  # fmt: skip


@pytest.mark.parametrize("task, params, planned", SWEEPS)
def test_the_basic_sweeper_plans_every_combination(task, params, planned):
    assert planned_jobs(multirun(task, params)) == planned


def test_an_optuna_search_plans_its_trials_and_another_sweeper_nothing_known():
    optuna = "hydra_plugins.gpucnn_plugins._optuna_sweeper.OptunaSweeper"
    assert planned_jobs(multirun(["train.epochs=1"], target=optuna, n_trials=20)) == 20
    assert planned_jobs(multirun(["model.filter_size=3,5"], target="my.Sweeper")) is None


def job(sweep_dir, num, mtime, **summary):
    folder = sweep_dir / str(num)
    (folder / ".hydra").mkdir(parents=True)
    if summary:
        (folder / "summary.json").write_text(json.dumps(summary))
        os.utime(folder / "summary.json", (mtime, mtime))


def test_the_line_counts_the_jobs_ended_since_the_sweep_started_at_their_pace(tmp_path):
    started = time.time() - 1000
    job(tmp_path, 0, started + 40, status="ok")
    job(tmp_path, 1, started + 90, status="failed", reason="a bug")
    job(tmp_path, 2, started + 91, status="ok", skipped=True)  # finished in an earlier attempt
    job(tmp_path, 3, started)  # not started: no summary yet
    job(tmp_path, 4, started - 50, status="interrupted")  # an earlier attempt's, not reached yet
    # 3 of 6 done; 2 trained in 100 s: 3 more at 50 s each.
    line = progress_line(tmp_path, 6, started, started + 100)
    assert line == "sweep: 3 of 6 jobs done (1 failed), about 2 min left"
    assert progress_line(tmp_path, None, started, started + 100) == "sweep: 3 jobs done (1 failed)"
    assert (
        progress_line(tmp_path, 3, started, started + 100) == "sweep: 3 of 3 jobs done (1 failed)"
    )


def test_a_sweep_of_only_skipped_jobs_says_no_time_left_it_cannot_know(tmp_path):
    started = time.time() - 10
    job(tmp_path, 0, started + 1, status="ok", skipped=True)
    assert progress_line(tmp_path, 4, started, started + 2) == "sweep: 1 of 4 jobs done"


@pytest.mark.parametrize(
    "seconds, said", [(0.2, "1 s"), (40, "40 s"), (89.6, "90 s"), (360, "6 min"), (5400, "1.5 h")]
)
def test_time_left_is_as_precise_as_an_estimate_deserves(seconds, said):
    assert _duration(seconds) == said


def test_the_callback_says_nothing_in_a_single_run_or_where_the_sweep_cannot_be_read(
    tmp_path, monkeypatch, capsys
):
    callback = progress.SweepProgress()
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    job(tmp_path, 0, time.time() + 1, status="ok")
    callback.on_job_end(config, None)  # no multirun started: a single run
    callback.on_multirun_start(multirun(["model.filter_size=3,5"]))
    callback.on_job_end(config, None)
    assert capsys.readouterr().out == "sweep: 1 of 2 jobs done, about 1 s left\n"

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(progress, "run_dirs", unreadable)
    callback.on_job_end(config, None)
    assert capsys.readouterr().out == ""


def test_a_sweep_folder_without_its_plan_says_the_jobs_that_ended(tmp_path):
    job(tmp_path, 0, time.time(), status="ok")
    job(tmp_path, 1, time.time(), status="diverged")
    assert progress.of_sweep(tmp_path) == "sweep: 2 jobs done (1 diverged)"
    plan = tmp_path / "multirun.yaml"
    plan.write_text("hydra: [not, a, config")  # damaged
    os.utime(plan, (time.time() - 60, time.time() - 60))  # written as the sweep started
    assert progress.of_sweep(tmp_path) == "sweep: 2 jobs done (1 diverged)"
