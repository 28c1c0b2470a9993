"""Classes of unequal sizes: the balanced accuracy (the mean recall of the classes) of the
validation images, each epoch, and of the test images is recorded beside the accuracy, and it
ranks the runs of a sweep."""

import csv
import functools
import itertools
import json

import numpy as np
import pytest

from gpucnn import CrossEntropy, backend, presets
from gpucnn.data.sources import load_mini
from gpucnn.train import evaluate, evaluate_balanced, unequal_classes

from .helpers import TINY, app, tool

QUICK = ["train.epochs=2", "train.batch_size=32", "backend=numpy", "train.progress=false"]


def test_the_balanced_figures_are_the_means_over_the_classes_of_each_ones(xp_name):
    backend.use(xp_name, "float64" if xp_name == "numpy" else "float32", 0)
    rng = np.random.default_rng(0)
    model, loss = presets.mlp((6, 5, 4), input_shape=(6,)), CrossEntropy()
    x = backend.to_device(rng.normal(size=(9, 6)), backend.dtype())
    y = backend.to_device(np.array([0, 0, 0, 0, 0, 2, 2, 3, 3]))  # no image of class 1
    assert unequal_classes(y) and not unequal_classes(np.array([0, 2, 2, 0]))
    assert unequal_classes(np.array([0, 0, 2]))  # a class of one image counts too
    # Each image alone: its loss, and whether the model takes it for its class
    alone = [evaluate(model, loss, x[i : i + 1], y[i : i + 1]) for i in range(9)]
    losses, hits = (np.array(column) for column in zip(*alone))
    got = evaluate_balanced(model, loss, x, y, batch_size=4)
    close = functools.partial(pytest.approx, rel=1e-5)  # float32 on the GPU
    assert got.loss == close(losses.mean()) and got.accuracy == hits.mean()
    classes = [slice(0, 5), slice(5, 7), slice(7, 9)]
    assert got.balanced_loss == close(np.mean([losses[c].mean() for c in classes]))
    assert got.balanced_accuracy == pytest.approx(np.mean([hits[c].mean() for c in classes]))
    assert got.balanced_accuracy != got.accuracy  # the classes weigh alike, not the images
    equal = evaluate_balanced(model, loss, x[3:], y[3:])
    assert equal.balanced_loss is None and equal.balanced_accuracy is None


def _shirts(folder, tested_shirts):
    """400 T-shirts and 40 shirts to train on (from the embedded set), 100 T-shirts and
    ``tested_shirts`` shirts to test: the file's path."""
    raw = load_mini()
    tshirts, shirts = (raw.x_train[raw.y_train == k] for k in (0, 6))
    x = np.concatenate([tshirts[:400], shirts[:40]])
    y = np.repeat([0, 1], [400, 40])
    x_test = np.concatenate([tshirts[400:500], shirts[40 : 40 + tested_shirts]])
    y_test = np.repeat([0, 1], [100, tested_shirts])
    path = folder / f"shirts_{tested_shirts}.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture(scope="module")
def few_shirts(tmp_path_factory):
    return _shirts(tmp_path_factory.mktemp("data"), 100)


def _figures_of_recalls(balanced, accuracy, sizes):
    """Whether some numbers of images recognised in each of two classes of ``sizes`` give
    both the ``balanced`` accuracy and the ``accuracy``."""
    n0, n1 = sizes
    return any(
        (k / n0 + j / n1) / 2 == pytest.approx(balanced)
        and (k + j) / (n0 + n1) == pytest.approx(accuracy)
        for k, j in itertools.product(range(n0 + 1), range(n1 + 1))
    )


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    "task",
    [["data.task=multiclass"], ["data.task=binary", "data.positive=[1]", "data.negative=[0]"]],
)
def test_a_sweep_on_unequal_classes_is_ranked_on_their_balanced_accuracy(
    tmp_path, few_shirts, task
):
    sweep = tmp_path / "sweep"
    proc = app("-m", "data=arrays", f"data.path={few_shirts}", *task, "data.balanced=false,true",
               *QUICK, f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "its best on balanced validation accuracy" in proc.stdout + proc.stderr
    for job in ("0", "1"):
        summary = json.loads((sweep / job / "summary.json").read_text())
        n_tshirts, n_shirts = summary["balance"]["val"]
        assert n_tshirts > n_shirts > 0
        epochs = _rows(sweep / job / "metrics.csv")
        assert len(epochs) == 2
        for epoch in epochs:
            balanced, accuracy = float(epoch["val_balanced_accuracy"]), float(epoch["val_accuracy"])
            assert _figures_of_recalls(balanced, accuracy, (n_tshirts, n_shirts)), epoch
        assert summary["val_balanced_accuracy"] == float(epochs[-1]["val_balanced_accuracy"])
        assert "test_balanced_accuracy" not in summary  # as many T-shirts as shirts
    runs = _rows(sweep / "sweep_runs.csv")
    ranked = [float(r["val_balanced_accuracy"]) for r in runs]
    assert ranked == sorted(ranked, reverse=True)
    table = (sweep / "sweep_summary.md").read_text()
    assert "best mean balanced validation accuracy first" in table
    header = next(line for line in table.splitlines() if line.startswith("| data.balanced"))
    assert header.index("balanced val accuracy") < header.index("| val accuracy")
    assert header.index("| val accuracy") < header.index("test accuracy")
    report = tool("report", sweep, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Chosen on its balanced validation accuracy" in text
    assert "![Balanced validation loss and accuracy by epoch, each setting]" in text


def test_unequal_test_classes_give_a_balanced_test_accuracy_which_ranks_without_validation(
    tmp_path,
):
    data = _shirts(tmp_path, 20)
    sweep = tmp_path / "sweep"
    proc = app("-m", "data=arrays", f"data.path={data}", "data.task=multiclass",
               "data.val_fraction=0", "data.balanced=false,true", *QUICK,
               f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "its best on balanced test accuracy" in proc.stdout + proc.stderr
    for job in ("0", "1"):
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["balance"]["test"] == [100, 20]
        assert _figures_of_recalls(
            summary["test_balanced_accuracy"], summary["test_accuracy"], (100, 20)
        ), summary
    table = (sweep / "sweep_summary.md").read_text()
    assert (
        "Ranked on balanced test accuracy, as not every finished run held out validation" in table
    )
    runs = _rows(sweep / "sweep_runs.csv")
    ranked = [float(r["test_balanced_accuracy"]) for r in runs]
    assert ranked == sorted(ranked, reverse=True)
    assert "val_balanced" not in (sweep / "sweep_summary.csv").read_text()
    report = tool("report", sweep, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    best = json.loads((sweep / runs[0]["job"] / "summary.json").read_text())
    assert f"and balanced test accuracy {best['test_balanced_accuracy']:.3f} (one run)," in text
    assert "| balanced test accuracy | test accuracy |" in text


def test_equal_classes_have_no_balanced_accuracy_beside_the_accuracy(tmp_path):
    proc = app(*TINY, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["balance"]["val"] == [10, 10]
    assert "val_balanced_accuracy" not in _rows(tmp_path / "metrics.csv")[0]
    assert "balanced_accuracy" not in (tmp_path / "summary.json").read_text()


def test_balanced_draws_of_classes_already_equal_are_warned_about(tmp_path, few_shirts):
    equal = app(*TINY, "data.balanced=true", f"hydra.run.dir={tmp_path / 'equal'}")
    assert equal.returncode == 0, equal.stderr
    warning = "data.balanced=true, but the training classes have equal numbers of images already"
    assert warning in equal.stdout + equal.stderr
    unequal = app("data=arrays", f"data.path={few_shirts}", "data.task=multiclass",
                  "data.balanced=true", *QUICK, f"hydra.run.dir={tmp_path / 'u'}")  # fmt: skip
    assert unequal.returncode == 0, unequal.stderr
    assert warning not in unequal.stdout + unequal.stderr


def test_patience_watches_the_balanced_validation_loss(tmp_path, few_shirts):
    proc = app("data=arrays", f"data.path={few_shirts}", "data.task=multiclass", *QUICK,
               "train.patience=1", "train.epochs=4", f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    epochs = _rows(tmp_path / "metrics.csv")
    balanced = [float(e["val_balanced_loss"]) for e in epochs]
    plain = [float(e["val_loss"]) for e in epochs]
    kept = json.loads((tmp_path / "summary.json").read_text())["kept_epoch"]
    assert kept == 1 + int(np.argmin(balanced)) != 1 + int(np.argmin(plain)), (balanced, plain)
    assert f"keeping the weights of epoch {kept}, whose balanced validation loss" in proc.stdout
