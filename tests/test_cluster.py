"""Sweeps on a real Slurm cluster (hydra/launcher=slurm_cpu): jobs run through Slurm, a requeued
job resumes bit-identically, a cancelled job is a row, and an Optuna search runs trials at once
and continues after an interruption. Skipped where no cluster answers (.ci/run starts one, as
root, with the shared slurm-up.sh)."""

import contextlib
import csv
import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from gpucnn.app import exits

from .helpers import TINY, app
from .test_reliability import RUN, position, weights


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


pytestmark = pytest.mark.skipif(
    not _cluster_answers(), reason="no Slurm cluster answers (sinfo): .ci/run starts one as root"
)
SLURM = ["-m", "hydra/launcher=slurm_cpu", "train.threads=1"]


def jobs(sweep_dir):
    return json.loads((Path(sweep_dir) / "jobs.json").read_text())


def sacct_states(ids):
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(ids)],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return dict(line.split("|")[:2] for line in out.splitlines() if "|" in line)


def rows(sweep_dir):
    with (Path(sweep_dir) / "sweep_summary.csv").open() as f:
        return list(csv.DictReader(f))


def wait_until(condition, seconds, what, proc=None):
    """Poll ``condition`` until it holds. Fail after ``seconds``, or as soon as ``proc`` (the
    command that should make it hold) has ended, with its output and the cluster's queue."""
    deadline = time.monotonic() + seconds
    while not condition():
        ended = proc is not None and proc.poll() is not None
        if ended or time.monotonic() > deadline:
            output = ""
            if proc is not None:
                proc.kill()
                try:
                    output = proc.communicate(timeout=30)[1]
                except subprocess.TimeoutExpired:  # a child of it holds the pipe
                    output = "(held open by a process it started)"
            queue = subprocess.run(
                ["squeue", "-a", "-o", "%i %T %r %M"], capture_output=True, text=True, timeout=30
            ).stdout
            how = f"the command ended ({proc.returncode})" if ended else "timed out"
            pytest.fail(f"{how} waiting for {what}\nqueue:\n{queue}\noutput:\n{output}")
        time.sleep(0.2)


def test_a_sweep_runs_as_slurm_jobs_and_is_summarised(tmp_path):
    proc = app(*SLURM, *TINY, "model.filter_size=3,5,7", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [j["slurm_id"] for j in jobs(tmp_path)]
    assert len(ids) == 3
    assert set(sacct_states(ids).values()) == {"COMPLETED"}, sacct_states(ids)
    assert sorted(r["model.filter_size"] for r in rows(tmp_path)) == ["3", "5", "7"]
    assert {r["status"] for r in rows(tmp_path)} == {"ok"}
    # Said where the sweep was started, as the launcher collects each job's result.
    said = [line for line in proc.stdout.splitlines() if line.startswith("sweep: ")]
    assert said[-1] == "sweep: 3 of 3 jobs done" and len(said) == 3, proc.stdout


def test_a_job_requeued_mid_epoch_resumes_bit_identical(tmp_path):
    # Slurm signals a requeued job a moment after `scontrol requeue` (longer on a busy machine),
    # and an epoch here takes under a second: two more epochs keep the job training until then.
    epochs = 4
    run = [a for a in RUN if not a.startswith("train.epochs=")]
    run += [f"train.epochs={epochs}", "backend=numpy", "train.threads=1"]
    reference = app(*run, f"hydra.run.dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference.stderr
    sweep = app(*SLURM, *run, f"hydra.sweep.dir={tmp_path / 'sweep'}", wait=False)
    job_dir = tmp_path / "sweep" / "0"

    def in_epoch_2():
        return (position(job_dir) or (0, 0)) >= (1, 10)

    wait_until(in_epoch_2, 120, "a checkpoint in epoch 2", sweep)
    (job,) = jobs(tmp_path / "sweep")
    subprocess.run(["scontrol", "requeue", job["slurm_id"]], check=True, timeout=30)
    assert sweep.wait(timeout=240) == 0, sweep.stderr.read()
    summary = json.loads((job_dir / "summary.json").read_text())
    # Resumed from where the signal found it: inside the training, not after its last epoch.
    assert summary["status"] == "ok" and 2 <= summary["resumed_at"]["epoch"] <= epochs, summary
    resumed, whole = weights(job_dir), weights(tmp_path / "reference")
    assert all(np.array_equal(resumed[k], whole[k]) for k in whole)


def test_a_cancelled_job_is_a_row_and_the_sweep_ends(tmp_path):
    slow = ["data.limit_train=1500", "train.batch_size=8", "train.epochs=30"]
    sweep = app(*SLURM, *TINY, *slow, "model.filter_size=3,5", f"hydra.sweep.dir={tmp_path}",
                wait=False)  # fmt: skip
    wait_until(lambda: (tmp_path / "jobs.json").is_file(), 60, "the submission", sweep)
    first = jobs(tmp_path)[0]["slurm_id"]
    wait_until(lambda: (tmp_path / "0" / "summary.json").is_file(), 60, "job 0 to start")
    subprocess.run(["scancel", first], check=True, timeout=30)
    subprocess.run(["scancel", jobs(tmp_path)[1]["slurm_id"]], check=True, timeout=30)
    assert sweep.wait(timeout=120) == exits.SOME_JOBS_FAILED
    assert {r["status"] for r in rows(tmp_path)} == {"cancelled"}
    assert "resume with train.resume=true" in rows(tmp_path)[0]["reason"]


def test_optuna_runs_trials_at_once_on_slurm_and_continues_after_an_interruption(tmp_path):
    import optuna

    search = [
        "experiment=optuna_search",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        *TINY,
    ]
    db = tmp_path / "outputs" / "optuna" / "gpucnn.db"

    def trials():
        return optuna.load_study(study_name="gpucnn", storage=f"sqlite:///{db}").get_trials()

    def asked():
        """The trials asked so far, read without Optuna: opening a new database with it makes
        the tables, which races the search making them (and can fail the search)."""
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
                return con.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        except sqlite3.Error:  # not made yet, or locked for a moment
            return 0

    first = app(*SLURM, *search, wait=False, cwd=tmp_path)
    # 2 done, 2 asked. Generous: four job starts on a loaded 2-core node once took over 120 s.
    wait_until(lambda: asked() >= 3, 300, "the second batch of trials", first)
    first.kill()  # the search stops between batches; Slurm still runs the asked trials
    first.wait()
    (sweep_dir,) = (tmp_path / "outputs" / "multiruns").iterdir()
    assert len({j["slurm_id"].split("_")[0] for j in jobs(sweep_dir)[:2]}) == 1  # one array
    subprocess.run(["scancel", *[j["slurm_id"] for j in jobs(sweep_dir)]], timeout=30)
    done_before = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials())
    again = app(*SLURM, *search, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    finished = [t for t in trials() if not t.user_attrs.get("interrupted")]
    assert len(finished) == 4 and done_before >= 2
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in finished)
