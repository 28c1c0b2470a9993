"""Stopping early (train.patience): when training stops, which weights are kept, and that a
run trained on from its checkpoint stops and keeps as one never interrupted."""

import csv
import json

import numpy as np
import pytest

from gpucnn.app import exits

from .helpers import TINY, app, tool

# Settings whose validation loss is lowest after epoch 3, then higher for two epochs
PATIENT = [*TINY, "model=lab_mlp1", "optimizer.lr=0.003", "train.patience=2"]


def summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def weights(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def test_training_stops_after_patience_epochs_and_keeps_the_best_epochs_weights(tmp_path):
    run = tmp_path / "run"
    proc = app(*PATIENT, "train.epochs=10", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    with open(run / "metrics.csv") as f:
        losses = [float(row["val_loss"]) for row in csv.DictReader(f)]
    best = int(np.argmin(losses)) + 1
    assert len(losses) == best + 2 < 10  # stopped two epochs after the lowest loss
    said = proc.stdout + proc.stderr
    assert f"2 epochs without a validation loss below epoch {best}'s (train.patience=2)" in said
    s = summary(run)
    assert (s["kept_epoch"], s["epochs_completed"]) == (best, best + 2)
    with open(run / "metrics.csv") as f:
        assert s["val_accuracy"] == float(list(csv.DictReader(f))[best - 1]["val_accuracy"])
    last = {k[len("param/") :]: v for k, v in weights(run / "checkpoint.npz").items() if "/" in k}
    kept = weights(run / "model.npz")
    assert not all(np.array_equal(kept[k], last[k]) for k in kept)  # not the last epoch's
    evaluated = tool("evaluate", run)
    assert evaluated.returncode == 0, evaluated.stderr
    record = json.loads((run / "evaluation.json").read_text())
    assert record["test_accuracy"] == s["test_accuracy"]  # the kept weights were tested


@pytest.mark.parametrize("device", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_a_run_trained_on_from_its_checkpoint_stops_and_keeps_as_an_uninterrupted_one(
    tmp_path, device
):
    """The best epoch's weights travel in the checkpoint: a run of 4 epochs (on NumPy the best,
    3, not yet followed by two worse) trained on to 10 ends as a run of 10 from the start."""
    patient = [a if a != "backend=numpy" else f"backend={device}" for a in PATIENT]
    short, fresh = tmp_path / "short", tmp_path / "fresh"
    assert app(*patient, "train.epochs=4", f"hydra.run.dir={short}").returncode == 0
    longer = tmp_path / "longer"
    on = app(*patient, "train.epochs=10", f"hydra.run.dir={longer}", f"train.resume_from={short}")
    assert on.returncode == 0, on.stderr
    said = on.stdout + on.stderr
    assert "epoch 4/10" not in said and "epoch 5/10" in said
    if device == "numpy":  # where these settings are known to stop early
        assert summary(short)["kept_epoch"] == 3 and summary(longer)["epochs_completed"] == 5
    assert app(*patient, "train.epochs=10", f"hydra.run.dir={fresh}").returncode == 0
    ours, theirs = weights(longer / "model.npz"), weights(fresh / "model.npz")
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    for key in ("kept_epoch", "epochs_completed", "test_loss", "val_accuracy"):
        assert summary(longer)[key] == summary(fresh)[key], key


def test_a_run_without_model_npz_is_evaluated_with_the_weights_it_kept(tmp_path):
    """train.save_model=false leaves the checkpoint: its best epoch's weights, not its last,
    are the run's."""
    run = tmp_path / "run"
    proc = app(*PATIENT, "train.epochs=10", "train.save_model=false", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    assert not (run / "model.npz").exists() and summary(run)["kept_epoch"] == 3
    evaluated = tool("evaluate", run)
    assert evaluated.returncode == 0, evaluated.stderr
    record = json.loads((run / "evaluation.json").read_text())
    assert record["test_loss"] == summary(run)["test_loss"]


def test_patience_without_validation_images_is_refused_before_training(tmp_path):
    for n, (args, says) in enumerate((
        (["train.patience=2", "data.val_fraction=0"], "data.val_fraction=0 holds out no valid"),
        (["train.patience=0"], "train.patience=0 must be null or >= 1 epochs"),
        (["train.patience=2", "data.limit_train=4", "data.val_fraction=0.1", "train.batch_size=2"],
         "data.val_fraction=0.1 of the 4 training images is no image"),
    )):  # fmt: skip
        proc = app(*TINY, *args, f"hydra.run.dir={tmp_path / str(n)}")
        assert proc.returncode == exits.INVALID_CONFIG, proc.stderr
        assert says in proc.stdout + proc.stderr


def test_the_kept_epoch_is_marked_on_the_curves_where_it_is_not_the_last(tmp_path, monkeypatch):
    from gpucnn.app import results

    figures = []
    monkeypatch.setattr(results, "save_figure", lambda fig, path: figures.append(fig))
    rows = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": abs(e - 2) + 0.5, "train_accuracy": e / 5}
        for e in (1, 2, 3, 4)
    ]
    results.plot_curves(tmp_path / "a.png", rows, "kept", kept=2)
    results.plot_curves(tmp_path / "b.png", rows, "last", kept=4)
    marked, last = ([line.get_label() for line in fig.axes[0].get_lines()] for fig in figures)
    assert "weights kept (epoch 2)" in marked
    assert not any("weights kept" in label for label in last)


def test_a_sweeps_tables_say_how_many_epochs_each_run_and_setting_trained(tmp_path):
    proc = app("-m", *PATIENT, "train.epochs=10", "train.seed=0,1", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    trained = [summary(tmp_path / job)["epochs_completed"] for job in ("0", "1")]
    with open(tmp_path / "sweep_runs.csv") as f:
        runs = {row["job"]: float(row["epochs_completed"]) for row in csv.DictReader(f)}
    assert [runs["0"], runs["1"]] == trained and trained[0] < 10  # the seed-0 run stops early
    with open(tmp_path / "sweep_summary.csv") as f:
        (setting,) = csv.DictReader(f)
    assert float(setting["epochs_completed"]) == sum(trained) / 2
    table = (tmp_path / "sweep_summary.md").read_text()
    assert f"| {sum(trained) / 2:.3g} |" in table


def test_the_reports_best_setting_counts_the_epochs_among_its_costs(tmp_path):
    rates = [a for a in PATIENT if not a.startswith("optimizer.lr")]
    sweep = tmp_path / "sweep"
    proc = app(
        "-m", *rates, "train.epochs=10", "optimizer.lr=0.003,0.002", f"hydra.sweep.dir={sweep}"
    )
    assert proc.returncode == 0, proc.stderr
    report = tool("report", sweep, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    said = (tmp_path / "report" / "report.md").read_text()
    (best,) = [line for line in said.splitlines() if line.startswith("Best on average")]
    lr = best.split("lr=")[1].split()[0]
    job = next(
        j for j in ("0", "1") if summary(sweep / j)["config"]["optimizer"]["lr"] == float(lr)
    )
    epochs = summary(sweep / job)["epochs_completed"]
    assert f"s per epoch, over {epochs} epochs on average (train.patience=2)." in best
