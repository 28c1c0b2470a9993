"""train.init_from: a run that starts from another run's trained weights, all of them for the
same classes and all but the output layer's for others; weights that do not fit the model are
refused, naming what differs, and a folder with no trained run before any data is loaded."""

import csv
import json
import shutil

import numpy as np
import pytest

from gpucnn import backend
from gpucnn.app.config import build_model
from gpucnn.app.experiment import init_source, load_splits
from gpucnn.app.pretrained import start_from
from gpucnn.errors import ConfigError

from .helpers import TINY, app, tool
from .test_app import composed

OUTPUT = ["12.W", "12.b"]  # the lab CNN's output layer (Dense 64 -> classes)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run of the lab CNN on the embedded set's 10 classes, 3 epochs."""
    run_dir = tmp_path_factory.mktemp("trained")
    proc = app(*TINY, "data.task=multiclass", "train.epochs=3", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    return run_dir


def started(*overrides):
    """(the model the run of ``overrides`` builds, its weights before and after start_from,
    start_from's record)."""
    cfg = composed(*TINY, *overrides)
    backend.use("numpy", "float32", cfg.train.seed)
    splits = load_splits(cfg, logged=False)
    model = build_model(cfg.model, splits.input_shape, splits.n_outputs)
    before = model.state_dict()
    record = start_from(model, init_source(cfg), cfg, splits)
    return model, before, model.state_dict(), record


def test_the_same_classes_start_from_every_weight_and_others_from_all_but_the_output(trained):
    with np.load(trained / "model.npz") as f:
        theirs = dict(f)
    _, before, after, record = started("data.task=multiclass", f"train.init_from={trained}")
    assert record == {"run": str(trained), "weights": "model.npz", "fresh": []}
    assert after.keys() == theirs.keys()
    assert all(np.array_equal(after[k], theirs[k]) for k in theirs)
    assert not np.array_equal(before["0.W"], theirs["0.W"])  # the fresh start was another

    _, before, after, record = started("data.task=binary", f"train.init_from={trained}")
    assert record["fresh"] == OUTPUT
    assert after["12.W"].shape == (64, 1) and theirs["12.W"].shape == (64, 10)
    assert all(np.array_equal(after[k], before[k]) for k in OUTPUT)
    assert all(np.array_equal(after[k], theirs[k]) for k in theirs if k not in OUTPUT)


def test_the_output_layer_starts_afresh_where_the_classes_differ_in_name_only(trained):
    """Ten classes of other names: one column of weights per class of that run would be given to
    a class of this one that has nothing to do with it."""
    summary = json.loads((trained / "summary.json").read_text())
    other = trained.parent / "renamed"
    shutil.copytree(trained, other, dirs_exist_ok=True)
    summary["classes"] = [f"class {i}" for i in range(10)]
    (other / "summary.json").write_text(json.dumps(summary))
    _, before, after, record = started("data.task=multiclass", f"train.init_from={other}")
    assert record["fresh"] == OUTPUT
    assert all(np.array_equal(after[k], before[k]) for k in OUTPUT)


@pytest.mark.parametrize(
    "overrides, says",
    [
        (["model.channels=[8,16]"],
         "that run's weights do not fit this model (0.W is (16, 1, 3, 3) there, (8, 1, 3, 3) "
         "here): model.channels=[16, 32, 64] there, [8, 16] here; give the model settings and "
         "image size of that run"),
        (["data.pad_to=null"],
         "(10.W is (1024, 64) there, (576, 64) here): input (1, 32, 32) there, (1, 28, 28) here"),
    ],
)  # fmt: skip
def test_weights_that_do_not_fit_the_model_are_refused_naming_what_differs(
    trained, overrides, says
):
    with pytest.raises(ConfigError) as caught:
        started("data.task=multiclass", f"train.init_from={trained}", *overrides)
    assert says in str(caught.value)


def test_a_run_started_from_another_trains_on_from_its_weights(trained, tmp_path):
    run = [*TINY, "data.task=multiclass", f"train.init_from={trained}"]
    proc = app(*run, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert f"starting from the weights of {trained} (the same classes)" in proc.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["init_from"]["run"] == str(trained)
    with open(trained / "metrics.csv") as f, open(tmp_path / "metrics.csv") as g:
        theirs, ours = list(csv.DictReader(f)), list(csv.DictReader(g))
    # its first epoch starts where that run left off, not where its first began
    assert float(ours[0]["train_loss"]) < float(theirs[1]["train_loss"])


def test_no_trained_run_in_the_folder_is_refused_before_the_data_is_loaded(trained, tmp_path):
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        shutil.copytree(trained, sweep / job)
    for folder, says in [
        (tmp_path / "none", f"train.init_from={tmp_path / 'none'}: no such folder"),
        (trained / "model.npz", f"a file, not a folder: give a trained run's folder "
                                f"(outputs/runs/<time>), such as the one it is in, {trained}"),
        (sweep, f"holds the folders of 2 runs (a sweep's, say), not a run's results: give one "
                f"run's folder, e.g. {sweep / '0'}"),
    ]:  # fmt: skip
        proc = app(*TINY, f"train.init_from={folder}", "data.root=/nonexistent", "data=mnist")
        assert proc.returncode == 2, proc.stderr
        assert says in proc.stdout + proc.stderr


def test_the_range_test_of_a_run_started_from_another_starts_from_its_weights(trained, tmp_path):
    common = ["backend=numpy", "data.limit_train=256", "data.task=multiclass", "lr_find.steps=20"]
    losses = []
    for n, start in enumerate([[], [f"train.init_from={trained}"]]):
        proc = tool("lr_find", *common, *start, f"hydra.run.dir={tmp_path / str(n)}")
        assert proc.returncode == 0, proc.stderr
        losses.append(json.loads((tmp_path / str(n) / "lr_find.json").read_text())["first_loss"])
    fresh, pretrained = losses
    assert pretrained < fresh


def test_frozen_layers_keep_that_runs_weights_and_a_run_trains_on_as_one(trained, tmp_path):
    """train.freeze=3 keeps the lab CNN's convolutions as trained there and trains its dense
    layers; its checkpoints hold no optimiser state for the frozen layers, and a run trained on
    from a shorter one ends as one never stopped."""
    frozen = [*TINY, "data.task=binary", f"train.init_from={trained}", "train.freeze=3"]
    assert app(*frozen, cwd=tmp_path).returncode == 0
    on = app(*frozen, "train.epochs=2", "train.resume=true", cwd=tmp_path)
    assert on.returncode == 0 and "training on to train.epochs=2" in on.stdout + on.stderr
    fresh = tmp_path / "fresh"
    done = app(*frozen, "train.epochs=2", f"hydra.run.dir={fresh}")
    assert done.returncode == 0, done.stderr
    assert "keeping the weights of the first 3 layers as they start (train.freeze=3): Conv(" in (
        done.stdout
    )
    with np.load(trained / "model.npz") as f, np.load(fresh / "model.npz") as g:
        theirs, ours = dict(f), dict(g)
    convs = [f"{i}.{k}" for i in (0, 3, 6) for k in "Wb"]
    assert all(np.array_equal(ours[k], theirs[k]) for k in convs)
    assert not np.array_equal(ours["10.W"], theirs["10.W"])  # the first dense layer learned
    summary = json.loads((fresh / "summary.json").read_text())
    dense = sum(layer["weights"] for layer in summary["layers"] if layer["index"] >= 10)
    assert summary["learning_weights"] == dense == 1024 * 64 + 64 < summary["weights"]
    with np.load(fresh / "checkpoint.npz") as c:
        assert not any(k.startswith("opt/0.") for k in c.files) and "opt/10.W/m" in c.files
    longer = max((tmp_path / "outputs/runs").iterdir())
    with np.load(longer / "model.npz") as h:
        assert all(np.array_equal(h[k], ours[k]) for k in ours)


def test_a_run_trains_on_from_its_checkpoint_after_the_run_it_started_from_is_gone(
    trained, tmp_path
):
    """The weights train.init_from names are read when a run starts: once it has a checkpoint,
    that run's folder may be moved or deleted, and the run still trains on (to the weights of a
    run never stopped), its summary still naming the run it started from."""
    source = tmp_path / "source"
    shutil.copytree(trained, source)
    tuned = [*TINY, "data.task=binary", f"train.init_from={source}"]
    assert app(*tuned, cwd=tmp_path).returncode == 0
    whole = app(*tuned, "train.epochs=2", f"hydra.run.dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr
    shutil.rmtree(source)
    on = app(*tuned, "train.epochs=2", "train.resume=true", cwd=tmp_path)
    assert on.returncode == 0, on.stderr
    assert "no such folder" in on.stdout and "not needed: this run resumes from its checkpoint" in (
        on.stdout
    )
    longer = max((tmp_path / "outputs/runs").iterdir())
    with np.load(longer / "model.npz") as f, np.load(tmp_path / "whole/model.npz") as g:
        assert f.files == g.files and all(np.array_equal(f[k], g[k]) for k in f.files)
    summary = json.loads((longer / "summary.json").read_text())
    assert summary["init_from"] == {"run": str(source), "weights": "model.npz", "fresh": OUTPUT}
    again = app(*tuned, "train.epochs=3", f"hydra.run.dir={tmp_path / 'new'}")
    assert again.returncode == 2 and "no such folder" in again.stdout + again.stderr


def test_one_frozen_layer_is_named_the_first_layer(tmp_path, caplog):
    from gpucnn.app.pretrained import freeze

    model = build_model(composed(*TINY).model, (1, 32, 32), 1)
    with caplog.at_level("INFO", logger="gpucnn.app.pretrained"):
        freeze(model, composed(*TINY, "train.freeze=1"))
    assert "keeping the weights of the first layer as they start (train.freeze=1): Conv(" in (
        caplog.text
    )
    assert [layer.trainable for layer in model.layers if layer.params] == [False] + [True] * 4


@pytest.mark.parametrize(
    "freeze, says",
    [
        (5, "train.freeze takes a count of layers with parameters from 0 to 4 (this model has 5: "
            "Conv("),
        (-1, "train.freeze=-1 must be >= 0 (0: every layer learns)"),
    ],
)  # fmt: skip
def test_a_freeze_that_leaves_no_layer_to_learn_is_refused_naming_the_layers(
    tmp_path, freeze, says
):
    proc = app(*TINY, f"train.freeze={freeze}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert says in proc.stdout + proc.stderr
