"""Results that cannot be mixed up: resume adopts only the same run from the configured outputs
tree, run directories are unique and locked, finished results are never overwritten or
relabelled, and a signal during start-up still leaves a summary."""

import csv
import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from gpucnn.app import experiment, rundir
from gpucnn.app.config import Config
from gpucnn.app.results import read_summary
from gpucnn.app.resume import attempts, closest, root, shorter
from gpucnn.app.signals import Interrupted

from .helpers import TINY, app


def summary(run_dir):
    return json.loads((Path(run_dir) / "summary.json").read_text())


def csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fake_run(run_dir, config, status="ok"):
    """A run directory as a finished run leaves it (Hydra's files, a summary, weights)."""
    run_dir = Path(run_dir)
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(config))
    (run_dir / "summary.json").write_text(json.dumps({"status": status, "config": config}))
    (run_dir / "model.npz").write_bytes(b"weights")
    return run_dir


def test_the_search_root_is_the_fixed_part_of_the_directory_pattern(tmp_path):
    assert root("outputs/runs/${now:%Y-%m-%d_%H-%M-%S}", tmp_path) == tmp_path / "outputs/runs"
    assert root("out/${now:%Y}/${now:%H}", tmp_path) == tmp_path / "out"
    assert root("/tmp/run_${now:%H}", tmp_path) == Path("/tmp")
    assert root("/tmp/mine", tmp_path) == Path("/tmp/mine")  # fixed: itself, nothing beside it
    assert root("${oc.env:HOME}/runs", tmp_path) is None


def test_only_a_run_with_the_same_resolved_config_is_adopted(tmp_path):
    config = {"model": {"channels": [4]}, "train": {"seed": 0, "resume": False}}
    runs = tmp_path / "runs"
    same = fake_run(runs / "same", config)
    other = {**config, "model": {"channels": [8]}}  # same overrides, another config file
    fake_run(runs / "other", other)
    os.utime(runs / "other", (time.time() + 10,) * 2)  # newer: would win on overrides alone
    asked = {**config, "train": {"seed": 0, "resume": True}}  # train.resume does not count
    assert closest(attempts(runs / "new", [runs]), asked, most=0) == (same, [])
    shown = {"progress": False, "eval_batch_size": 100, "checkpoint_every_steps": 5}
    asked["train"].update(shown)  # nor how it is shown, evaluated and checkpointed
    assert closest(attempts(runs / "new", [runs]), asked, most=0) == (same, [])
    asked["train"].update(threads=1)  # but threads fix the order gradients are summed in
    assert closest(attempts(runs / "new", [runs]), asked, most=0) is None
    assert closest(attempts(runs / "new", []), asked) is None  # no root: nothing searched


def test_a_start_that_left_nothing_to_resume_from_is_not_an_attempt(tmp_path):
    config = {"model": {"channels": [4]}, "train": {"seed": 0}}
    runs = tmp_path / "runs"
    for status in ("invalid_config", "running"):  # refused, or killed before a checkpoint
        failed = runs / status
        (failed / ".hydra").mkdir(parents=True)
        (failed / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(config))
        (failed / "summary.json").write_text(json.dumps({"status": status, "config": config}))
        (failed / "metrics.csv").write_text("epoch,train_loss\n")
    assert attempts(runs / "new", [runs]) == []  # neither adopted nor named as the closest
    (runs / "running" / "checkpoint.npz").write_bytes(b"a checkpoint")
    fake_run(runs / "done", config)
    assert sorted(a.path.name for a in attempts(runs / "new", [runs])) == ["done", "running"]


def test_with_nothing_to_resume_the_closest_earlier_run_is_named(tmp_path):
    config = {"model": {"channels": [4]}, "train": {"seed": 0, "epochs": 2}}
    runs = tmp_path / "runs"
    fake_run(runs / "two_keys", {"model": {"channels": [8]}, "train": {"seed": 1, "epochs": 2}})
    fake_run(runs / "epochs", {**config, "train": {"seed": 0, "epochs": 1}})
    assert closest(attempts(runs / "new", [runs]), config) == (
        runs / "epochs",
        ["train.epochs: 1 -> 2"],
    )
    assert closest(attempts(runs / "new", [runs]), config, most=0) is None
    done = app(*TINY, "train.seed=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    again = app(*TINY, "train.seed=2", "train.resume=true", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    said = (again.stdout + again.stderr).splitlines()
    warning = next(line for line in said if "no earlier attempt" in line)
    assert f"under {tmp_path / 'outputs/runs'}, {tmp_path / 'outputs/multiruns'}" in warning
    assert warning.endswith("differs in train.seed: 1 -> 2: training from the start")


def test_a_run_for_more_epochs_trains_on_from_the_same_run_for_fewer(tmp_path):
    """Its batches, masks and updates do not depend on the epochs to come: the result is the
    longer run's, bit for bit, trained only for the epochs the shorter one lacks."""
    settings = [*TINY, "model.dropout=0.3"]
    for epochs in (1, 2):
        assert app(*settings, f"train.epochs={epochs}", cwd=tmp_path).returncode == 0
    one, two = sorted((tmp_path / "outputs/runs").glob("2*"))
    diverged = tmp_path / "outputs/runs/diverged"  # as long, newer, but not to be trained on
    shutil.copytree(two, diverged)
    (diverged / "summary.json").write_text(json.dumps({**summary(two), "status": "diverged"}))
    os.utime(diverged, (time.time() + 10,) * 2)
    longer = app(*settings, "train.epochs=3", "train.resume=true", cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr
    said = longer.stdout + longer.stderr
    assert f"training on to train.epochs=3 from {two}" in said and "from the start" not in said
    assert "epoch 1/3" not in said and "epoch 2/3" not in said and "epoch 3/3" in said
    fresh_dir = tmp_path / "fresh"
    fresh = app(*settings, "train.epochs=3", f"hydra.run.dir={fresh_dir}", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    three = sorted((tmp_path / "outputs/runs").glob("2*"))[2]
    assert summary(three)["resumed_from"] == str(two)
    ours, theirs = np.load(three / "model.npz"), np.load(fresh_dir / "model.npz")
    assert ours.files == theirs.files
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours.files)
    assert summary(three)["test_loss"] == summary(fresh_dir)["test_loss"]
    earlier = attempts(tmp_path / "new", [one.parent])
    assert shorter(earlier, summary(one)["config"]) is None  # none with fewer epochs


def test_a_run_in_a_fixed_directory_is_trained_on_with_resume_from(tmp_path):
    mine, more, fresh = tmp_path / "mine", tmp_path / "more", tmp_path / "fresh"
    assert app(*TINY, f"hydra.run.dir={mine}").returncode == 0
    again = app(*TINY, "train.epochs=2", f"hydra.run.dir={mine}")
    assert again.returncode == 6 and f"train.resume_from={mine}" in again.stdout + again.stderr
    on = app(*TINY, "train.epochs=2", f"hydra.run.dir={more}", f"train.resume_from={mine}")
    assert on.returncode == 0, on.stderr
    said = on.stdout + on.stderr
    assert "epoch 1/2" not in said and "epoch 2/2" in said
    assert summary(more)["resumed_from"] == str(mine)
    assert app(*TINY, "train.epochs=2", f"hydra.run.dir={fresh}").returncode == 0
    ours, theirs = np.load(more / "model.npz"), np.load(fresh / "model.npz")
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs.files)
    assert summary(mine)["config"]["train"]["epochs"] == 1  # the run trained on is as it was


def test_resume_from_finds_each_job_of_a_sweep_and_refuses_what_is_not_this_run(tmp_path):
    sweep = tmp_path / "sweep"
    grid = ["-m", "model.hidden=[4],[6]", *TINY]
    assert app(*grid, f"hydra.sweep.dir={sweep}").returncode == 0
    on = app(*grid, "train.epochs=2", f"hydra.sweep.dir={tmp_path / 'on'}",
             f"train.resume_from={sweep}")  # fmt: skip
    assert on.returncode == 0, on.stderr
    for job in ("0", "1"):
        hidden = summary(tmp_path / "on" / job)["config"]["model"]["hidden"]
        came = Path(summary(tmp_path / "on" / job)["resumed_from"])
        assert came.parent == sweep and summary(came)["config"]["model"]["hidden"] == hidden
    other = app(*TINY, "train.seed=3", f"hydra.run.dir={tmp_path / 'x'}",
                f"train.resume_from={sweep / '0'}")  # fmt: skip
    assert other.returncode == 2 and "train.seed: 0 -> 3" in other.stdout + other.stderr
    assert summary(tmp_path / "x")["status"] == "invalid_config"
    mended = app(*TINY, "model.hidden=[4]", f"hydra.run.dir={tmp_path / 'x'}",
                 f"train.resume_from={sweep / '0'}")  # fmt: skip
    assert mended.returncode == 0, mended.stderr  # the failed start's summary is no progress
    assert summary(tmp_path / "x")["resumed_from"] == str(sweep / "0")
    missing = app(*TINY, f"hydra.run.dir={tmp_path / 'y'}", "train.resume_from=nowhere")
    assert missing.returncode == 2 and "train.resume_from=nowhere: no such folder" in (
        missing.stdout + missing.stderr
    )
    with rundir.claimed(sweep / "1", summary(sweep / "1")["config"]):  # a run going on in it
        busy = app("model.hidden=[6]", *TINY, f"hydra.run.dir={tmp_path / 'z'}",
                   f"train.resume_from={sweep / '1'}")  # fmt: skip
    assert busy.returncode == 2 and "a process is still training in it" in busy.stdout + busy.stderr


def test_resume_never_looks_beside_a_fixed_run_directory(tmp_path):
    shared = tmp_path / "shared"  # like /tmp: other people's runs of the same settings
    decoy = app(*TINY, f"hydra.run.dir={shared / 'theirs'}", cwd=tmp_path)
    assert decoy.returncode == 0, decoy.stderr
    mine = app(*TINY, f"hydra.run.dir={shared / 'mine'}", "train.resume=true", cwd=tmp_path)
    assert mine.returncode == 0, mine.stderr
    assert "resumed_from" not in summary(shared / "mine") and not summary(shared / "mine").get(
        "skipped"
    )


def test_a_run_directly_under_the_root_folder_resumes_without_scanning_it(tmp_path):
    run_dir = Path("/tmp") / f"gpucnn-test-{os.getpid()}-{time.time_ns()}"
    try:
        proc = app(*TINY, f"hydra.run.dir={run_dir}", "train.resume=true", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert summary(run_dir)["status"] == "ok"
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    procs = [app(*TINY, wait=False, cwd=tmp_path) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    dirs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(dirs) == 2 and all(summary(d)["status"] == "ok" for d in dirs)


def test_a_second_process_in_a_directory_in_use_is_refused(tmp_path):
    slow = ["data.limit_train=1500", "train.batch_size=8", "train.epochs=20", "backend=numpy"]
    first = app(*slow, "train.progress=false", f"hydra.run.dir={tmp_path}", wait=False)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "summary.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = app(*TINY, f"hydra.run.dir={tmp_path}")
        assert second.returncode == 6, second.stderr
        output = second.stdout + second.stderr
        lines = [line for line in output.splitlines() if "in use" in line]
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0], output
        assert "Traceback" not in output
        assert first.poll() is None  # the first run goes on
        assert summary(tmp_path)["config"]["train"]["epochs"] == 20
        restored = OmegaConf.create((tmp_path / ".hydra" / "config.yaml").read_text())
        assert restored.train.epochs == 20  # Hydra's copy, overwritten by the second, put back
    finally:
        first.kill()
        first.wait()


def test_a_finished_directory_is_not_overwritten_by_other_settings(tmp_path):
    done = app(*TINY, f"hydra.run.dir={tmp_path}")
    assert done.returncode == 0, done.stderr

    def results():  # everything but the lock and the log (which records the refusal)
        skip = (rundir.LOCK, "run.log")
        return {
            p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name not in skip
        }

    before = results()
    assert {"summary.json", "model.npz", "checkpoint.npz", "metrics.csv"} <= before.keys()
    for resume in ("false", "true"):
        again = app(*TINY, "train.seed=7", f"train.resume={resume}", f"hydra.run.dir={tmp_path}")
        assert again.returncode == 6, again.stderr
        output = again.stdout + again.stderr
        assert "train.seed: 0 -> 7" in output and "Traceback" not in output
        assert results() == before  # summary, metrics, weights and checkpoints untouched
        hydra_config = OmegaConf.load(tmp_path / ".hydra" / "config.yaml")
        assert hydra_config.train.seed == 0  # Hydra's copy put back


def test_a_sweep_job_refused_its_directory_is_shown_as_refused_not_as_what_is_there(tmp_path):
    """Another sweep's finished job 0 stays as it was; this sweep's summary and exit code say
    that its job 0 did not run, with its own settings, until a rerun runs it."""
    sweep = tmp_path / "sweep"
    fake_run(sweep / "0", {"train": {"seed": 99}})
    args = ("-m", *TINY, "model.filter_size=3,5", f"hydra.sweep.dir={sweep}")
    proc = app(*args)
    assert proc.returncode == 8, proc.stderr
    assert "1 refused" in proc.stdout + proc.stderr
    assert summary(sweep / "0") == {"status": "ok", "config": {"train": {"seed": 99}}}
    rows = {r["job"]: r for r in csv_rows(sweep / "sweep_runs.csv")}
    assert rows["0"]["status"] == "refused" and rows["0"]["model.filter_size"] == "3"
    assert "of other settings" in rows["0"]["reason"] and rows["1"]["status"] == "ok"
    shutil.rmtree(sweep / "0")
    again = app(*args)
    assert again.returncode == 0, again.stderr
    rows = {r["job"]: r for r in csv_rows(sweep / "sweep_runs.csv")}
    assert [rows[j]["status"] for j in ("0", "1")] == ["ok", "ok"]
    assert not list((sweep / rundir.REFUSED).iterdir())  # the record went with the refusal


def test_a_diverged_run_rerun_with_resume_keeps_exit_code_3(tmp_path):
    run = [*TINY, "optimizer=sgd", "optimizer.lr=1e6", f"hydra.run.dir={tmp_path}"]
    first = app(*run)
    assert first.returncode == 3, first.stderr
    again = app(*run, "train.resume=true")
    assert again.returncode == 3, again.stderr
    assert "already finished (diverged)" in again.stdout + again.stderr
    assert summary(tmp_path)["status"] == "diverged"


@pytest.mark.parametrize("change", [[], ["logger=tensorboard"]])  # where it logs: the same run
def test_a_finished_run_rerun_in_its_directory_is_skipped(tmp_path, change):
    first = app(*TINY, f"hydra.run.dir={tmp_path}")
    assert first.returncode == 0, first.stderr
    weights = (tmp_path / "model.npz").read_bytes()
    again = app(*TINY, *change, f"hydra.run.dir={tmp_path}")
    assert again.returncode == 0, again.stderr
    assert summary(tmp_path)["skipped"] and (tmp_path / "model.npz").read_bytes() == weights


def test_a_run_made_before_settings_were_added_is_still_the_same_run(tmp_path):
    """Its config lacks the settings added since (train.patience and label_smoothing, the
    learning-rate schedule, the conv stride, global pooling, the initialisation): it ran as
    their defaults do, so a rerun skips it rather than refusing its directory."""
    assert app(*TINY, f"hydra.run.dir={tmp_path}").returncode == 0
    made = summary(tmp_path)
    del made["config"]["train"]["patience"]
    del made["config"]["train"]["label_smoothing"]
    for key in ("schedule", "decay", "decay_every", "min_lr"):
        del made["config"]["optimizer"][key]
    for key in ("stride", "global_pool", "init"):
        del made["config"]["model"][key]
    (tmp_path / "summary.json").write_text(json.dumps(made))
    again = app(*TINY, f"hydra.run.dir={tmp_path}")
    assert again.returncode == 0, again.stderr
    assert summary(tmp_path)["skipped"]
    other = app(*TINY, "train.patience=2", f"hydra.run.dir={tmp_path}")
    assert other.returncode == 6 and "train.patience: None -> 2" in other.stdout + other.stderr


def _tiny_cfg():
    cfg = OmegaConf.structured(Config)
    cfg.data.limit_train, cfg.data.limit_test = 200, 50
    cfg.backend.name = "numpy"
    cfg.train.progress = False
    return cfg


def _signal_inside_omegaconf(sig):
    """Send ``sig`` while OmegaConf runs a resolver. OmegaConf catches the Exceptions raised
    inside it and raises others in their place: here its own, and when a signal met the
    validation of a config value, a new one of the same type made from a message."""
    OmegaConf.register_new_resolver("signalled", lambda: os.kill(os.getpid(), sig))
    try:
        OmegaConf.create({"value": "${signalled:}"}).value  # noqa: B018 (resolves it)
    finally:
        OmegaConf.clear_resolver("signalled")


@pytest.mark.parametrize("inside", ["gpucnn", "omegaconf"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_start_up_leaves_a_summary_that_says_interrupted(
    tmp_path, monkeypatch, sig, inside
):
    load = experiment.load_splits

    def load_then_signalled(cfg):
        splits = load(cfg)  # the signal arrives before the first training step
        if inside == "omegaconf":
            _signal_inside_omegaconf(sig)
        else:
            os.kill(os.getpid(), sig)
        return splits

    monkeypatch.setattr(experiment, "load_splits", load_then_signalled)
    with pytest.raises(Interrupted, match="before training started") as e:
        experiment.run_job(_tiny_cfg(), tmp_path, [])
    assert e.value.next_step == "nothing to resume yet"  # not "resume with train.resume=true"
    assert summary(tmp_path)["status"] == "interrupted"
    assert not (tmp_path / "checkpoint.npz").exists()


def test_a_signal_after_training_says_the_checkpoint_was_written(tmp_path, monkeypatch):
    evaluate = experiment.evaluate_balanced

    def signalled_then_evaluate(*args):
        os.kill(os.getpid(), signal.SIGTERM)  # training is over: the final test evaluation
        return evaluate(*args)

    monkeypatch.setattr(experiment, "evaluate_balanced", signalled_then_evaluate)
    with pytest.raises(Interrupted, match="a checkpoint was written"):
        experiment.run_job(_tiny_cfg(), tmp_path, [])
    assert summary(tmp_path)["status"] == "interrupted"
    monkeypatch.setattr(experiment, "evaluate_balanced", evaluate)
    experiment.run_job(_tiny_cfg(), tmp_path, [])  # continues from the last checkpoint
    done = summary(tmp_path)
    assert done["status"] == "ok" and done["resumed_at"]["epoch"] == done["epochs_completed"] + 1


def test_the_lock_is_free_once_the_job_ends(tmp_path):
    experiment.run_job(_tiny_cfg(), tmp_path, [])
    assert (tmp_path / rundir.LOCK).is_file() and not rundir.in_use(tmp_path)


def test_a_killed_run_is_shown_as_stopped_not_running(tmp_path):
    slow = ["data.limit_train=1500", "train.batch_size=8", "train.epochs=20", "backend=numpy"]
    proc = app(*slow, "train.progress=false", f"hydra.run.dir={tmp_path}", wait=False)
    deadline = time.monotonic() + 120
    while not (tmp_path / "summary.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_summary(tmp_path)["status"] == "running"  # its process holds the lock
    proc.kill()
    proc.wait()
    assert summary(tmp_path)["status"] == "running"  # what the file says
    stopped = read_summary(tmp_path)  # what the tools show
    assert stopped["status"] == "stopped" and "train.resume=true" in stopped["reason"]


def test_results_whose_summary_cannot_be_read_are_not_overwritten(tmp_path):
    done = app(*TINY, f"hydra.run.dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    (tmp_path / "summary.json").write_text('{"status": "ok", "test_acc')  # truncated
    weights = (tmp_path / "model.npz").read_bytes()
    again = app(*TINY, "train.seed=5", f"hydra.run.dir={tmp_path}")
    assert again.returncode == 6, again.stdout + again.stderr
    assert "results of settings that cannot be read" in again.stdout
    assert (tmp_path / "model.npz").read_bytes() == weights
