"""Validation classes of unequal sizes: each epoch's balanced accuracy (the mean recall of the
classes) is recorded beside the accuracy, and it ranks the runs of a sweep."""

import csv
import itertools
import json

import numpy as np
import pytest

from gpucnn.data.sources import load_mini
from gpucnn.train import balanced_accuracy, unequal_classes

from .helpers import TINY, app

QUICK = ["train.epochs=2", "train.batch_size=32", "backend=numpy", "train.progress=false"]


def test_the_balanced_accuracy_is_the_mean_recall_of_the_classes_present():
    y = np.array([0, 0, 0, 0, 2, 2])  # no image of class 1
    predicted = np.array([0, 0, 0, 1, 2, 0])
    assert balanced_accuracy(predicted, y) == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert balanced_accuracy(y, y) == 1.0
    assert unequal_classes(y) and not unequal_classes(np.array([0, 2, 2, 0]))


@pytest.fixture(scope="module")
def few_shirts(tmp_path_factory):
    """400 T-shirts and 40 shirts to train on (from the embedded set), 100 of each to test."""
    raw = load_mini()
    tshirts, shirts = (raw.x_train[raw.y_train == k] for k in (0, 6))
    x = np.concatenate([tshirts[:400], shirts[:40]])
    y = np.repeat([0, 1], [400, 40])
    x_test = np.concatenate([tshirts[400:500], shirts[40:140]])
    path = tmp_path_factory.mktemp("data") / "few_shirts.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x_test, y_test=np.repeat([0, 1], 100))
    return path


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
            # Some k of the T-shirts and j of the shirts recognised give both figures.
            assert any(
                (k / n_tshirts + j / n_shirts) / 2 == pytest.approx(balanced)
                and (k + j) / (n_tshirts + n_shirts) == pytest.approx(accuracy)
                for k, j in itertools.product(range(n_tshirts + 1), range(n_shirts + 1))
            ), epoch
        assert summary["val_balanced_accuracy"] == float(epochs[-1]["val_balanced_accuracy"])
    runs = _rows(sweep / "sweep_runs.csv")
    ranked = [float(r["val_balanced_accuracy"]) for r in runs]
    assert ranked == sorted(ranked, reverse=True)
    table = (sweep / "sweep_summary.md").read_text()
    assert "best mean balanced validation accuracy first" in table
    header = next(line for line in table.splitlines() if line.startswith("| data.balanced"))
    assert header.index("balanced val accuracy") < header.index("| val accuracy")
    assert header.index("| val accuracy") < header.index("test accuracy")


def test_equal_classes_have_no_balanced_accuracy_beside_the_accuracy(tmp_path):
    proc = app(*TINY, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["balance"]["val"] == [10, 10]
    assert "val_balanced_accuracy" not in _rows(tmp_path / "metrics.csv")[0]
    assert "val_balanced_accuracy" not in (tmp_path / "summary.json").read_text()
