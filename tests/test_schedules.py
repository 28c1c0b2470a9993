"""Learning-rate schedules (optimizer.schedule): the rate of each epoch, refusals, and runs that
resume or train on with one as if never interrupted."""

import csv
import math
import signal

import numpy as np
import pytest

from gpucnn.errors import ConfigError
from gpucnn.schedules import Schedule

from .helpers import TINY, app
from .test_reliability import RUN, stop_mid_epoch, weights


def test_each_schedule_gives_each_epoch_its_rate():
    assert [Schedule("constant", 0.01, 5)(e) for e in range(5)] == [0.01] * 5
    step = Schedule("step", 0.01, 9, decay=0.5, decay_every=3)
    assert [step(e) for e in range(9)] == pytest.approx([0.01] * 3 + [0.005] * 3 + [0.0025] * 3)
    cosine = Schedule("cosine", 0.01, 4, min_lr=0.002)
    rates = [cosine(e) for e in range(4)]
    assert rates[0] == 0.01 and rates[2] == pytest.approx(0.006)  # halfway: the middle
    assert rates[1] == pytest.approx(0.002 + 0.008 * (1 + math.cos(math.pi / 4)) / 2)
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] > 0.002


def test_plateau_lowers_the_rate_after_each_run_of_epochs_without_a_lower_validation_loss():
    plateau = Schedule("plateau", 0.01, 9, decay=0.5, decay_every=2, min_lr=0.002)
    losses = [1.0, 0.8, 0.9, 0.8, 0.7, 0.75, 0.7, 0.71, 0.72]  # 0.8 again is no lower
    got = [plateau(e, losses) for e in range(10)]
    assert got == pytest.approx([0.01] * 4 + [0.005] * 3 + [0.0025] * 2 + [0.002])  # the floor
    assert plateau(3, losses[:3]) == 0.01  # the losses after this epoch do not count


def test_plateau_without_the_losses_before_the_epoch_says_what_it_needs():
    with pytest.raises(ValueError, match="in epoch 2 depends on the validation losses of the 2 "):
        Schedule("plateau", 0.01, 5)(2, [0.5])


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"name": "linear"}, "schedule='linear' is unknown: choose constant, step, cosine or "),
        ({"name": "cosine", "epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"name": "step", "decay": 0}, "decay must be a number in (0, 1], got 0"),
        ({"name": "step", "decay": 1.5}, "decay must be a number in (0, 1], got 1.5"),
        ({"name": "step", "decay_every": 0}, "decay_every must be a positive number of epochs"),
        ({"name": "cosine", "min_lr": 0.01}, "min_lr must be >= 0 and below lr=0.01, got 0.01"),
        ({"name": "cosine", "min_lr": -1e-4}, "min_lr must be >= 0 and below lr=0.01"),
        ({"name": "plateau", "decay": 0}, "decay must be a number in (0, 1], got 0"),
        ({"name": "plateau", "decay_every": 0}, "decay_every must be a positive number"),
        ({"name": "plateau", "min_lr": 0.02}, "min_lr must be >= 0 and below lr=0.01, got 0.02"),
    ],
)
def test_a_schedule_that_cannot_work_is_refused_naming_the_argument(kwargs, says):
    with pytest.raises(ConfigError) as caught:
        Schedule(**{"lr": 0.01, "epochs": 5, **kwargs})
    assert str(caught.value).startswith(says)


def rates(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [row.get("lr") for row in csv.DictReader(f)]


def test_the_epochs_train_with_the_schedules_rates_and_metrics_csv_says_them(tmp_path):
    quick = [*TINY, "train.epochs=3", "optimizer.lr=0.004"]
    for name in ("constant", "cosine"):
        proc = app(*quick, f"optimizer.schedule={name}", f"hydra.run.dir={tmp_path / name}")
        assert proc.returncode == 0, proc.stderr
    assert rates(tmp_path / "constant") == [None] * 3  # no lr column
    cosine = Schedule("cosine", 0.004, 3)
    assert [float(r) for r in rates(tmp_path / "cosine")] == [cosine(e) for e in range(3)]
    with (
        open(tmp_path / "constant" / "metrics.csv") as f,
        open(tmp_path / "cosine/metrics.csv") as g,
    ):
        constant, scheduled = list(csv.DictReader(f)), list(csv.DictReader(g))
    assert constant[0]["train_loss"] == scheduled[0]["train_loss"]  # the same first rate
    assert constant[1]["train_loss"] != scheduled[1]["train_loss"]  # a lower second one


@pytest.mark.parametrize("device", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_a_run_with_a_schedule_killed_mid_epoch_resumes_bit_identical(tmp_path, device):
    run = [f"backend={device}", *RUN, "optimizer.schedule=cosine"]  # cupy: captured again
    assert app(*run, f"hydra.run.dir={tmp_path / 'whole'}").returncode == 0
    proc, pos = stop_mid_epoch(run, tmp_path / "cut", signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL and pos[0] == 1  # in the second epoch, lower rate
    done = app(*run, f"hydra.run.dir={tmp_path / 'cut'}", "train.resume=true")
    assert done.returncode == 0, done.stderr
    whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert all(np.array_equal(resumed[k], whole[k]) for k in whole)
    assert rates(tmp_path / "cut") == rates(tmp_path / "whole")


def test_only_a_schedule_that_ignores_the_run_length_trains_on_from_a_shorter_run(tmp_path):
    """step's rate in an epoch is the same in a run of 1 epoch as in one of 2; cosine's is not,
    so a run of fewer epochs is no start for it."""
    step = [*TINY, "optimizer.schedule=step", "optimizer.decay_every=1", "optimizer.decay=0.5"]
    assert app(*step, "train.epochs=1", cwd=tmp_path).returncode == 0
    on = app(*step, "train.epochs=2", "train.resume=true", cwd=tmp_path)
    assert on.returncode == 0 and "training on to train.epochs=2" in on.stdout + on.stderr
    fresh = tmp_path / "fresh"
    assert app(*step, "train.epochs=2", f"hydra.run.dir={fresh}").returncode == 0
    longer = max((tmp_path / "outputs/runs").iterdir())
    ours, theirs = weights(longer), weights(fresh)
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)

    cosine = [*TINY, "optimizer.schedule=cosine"]
    (tmp_path / "c").mkdir()
    assert app(*cosine, "train.epochs=1", cwd=tmp_path / "c").returncode == 0
    again = app(*cosine, "train.epochs=2", "train.resume=true", cwd=tmp_path / "c")
    said = again.stdout + again.stderr
    assert again.returncode == 0 and "training on to" not in said
    assert "optimizer.schedule=cosine spreads the learning rate's fall over train.epochs" in said


def test_a_plateau_run_lowers_its_rate_on_the_validation_loss_and_trains_on_as_one(tmp_path):
    """The rates follow the validation losses in metrics.csv, and a run trained on from a
    shorter one (whose losses it carries on from) ends as one never stopped."""
    plateau = [*TINY, "optimizer.lr=0.1", "optimizer.schedule=plateau", "optimizer.decay=0.5"]
    plateau.append("optimizer.decay_every=1")
    assert app(*plateau, "train.epochs=2", cwd=tmp_path).returncode == 0
    on = app(*plateau, "train.epochs=5", "train.resume=true", cwd=tmp_path)
    assert on.returncode == 0 and "training on to train.epochs=5" in on.stdout + on.stderr
    fresh = tmp_path / "fresh"
    done = app(*plateau, "train.epochs=5", f"hydra.run.dir={fresh}")
    assert done.returncode == 0, done.stderr
    with open(fresh / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(row["val_loss"]) for row in rows]
    expected = [Schedule("plateau", 0.1, 5, 0.5, 1)(e, losses) for e in range(5)]
    assert [float(row["lr"]) for row in rows] == expected and expected[-1] < 0.1
    assert "learning rate 0.05 from epoch" in done.stdout + done.stderr
    longer = max((tmp_path / "outputs/runs").iterdir())
    assert rates(longer) == rates(fresh)
    ours, theirs = weights(longer), weights(fresh)
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)


def test_schedule_settings_are_checked_by_key_before_the_run(tmp_path):
    for n, (args, says) in enumerate(
        [
            (["optimizer.min_lr=0.0001"], "optimizer.min_lr does nothing with "
             "optimizer.schedule=constant: only optimizer.schedule=cosine or "
             "optimizer.schedule=plateau read it"),
            (["optimizer.schedule=cosine", "optimizer.min_lr=0.01"],
             "optimizer.min_lr must be >= 0 and below lr=0.001, got 0.01"),
            (["optimizer.schedule=steps"], "optimizer.schedule='steps' is unknown (did you mean"),
            (["optimizer.schedule=step", "optimizer.decay_every=0"], "optimizer.decay_every must"),
            (["optimizer.schedule=plateau", "data.val_fraction=0"],
             "optimizer.schedule=plateau lowers the rate on the validation loss, and "
             "data.val_fraction=0 holds out no validation images: give data.val_fraction > 0, "
             "or choose another optimizer.schedule"),
            (["optimizer.schedule=plateau", "optimizer.min_lr=0.01"],
             "optimizer.min_lr must be >= 0 and below lr=0.001, got 0.01"),
            (["optimizer.schedule=plateau", "train.patience=3"],  # decay_every: 10
             "optimizer.schedule=plateau lowers the rate after optimizer.decay_every=10 epochs "
             "without a lower validation loss, but train.patience=3 stops the run after 3: the "
             "rate would never fall. Give optimizer.decay_every below train.patience"),
        ]
    ):  # fmt: skip
        proc = app(*TINY, *args, f"hydra.run.dir={tmp_path / str(n)}")
        assert proc.returncode == 2, proc.stderr
        assert says in proc.stdout + proc.stderr


def test_curves_show_the_rate_where_it_was_scheduled(tmp_path, monkeypatch):
    from gpucnn.app import results

    figures = []
    monkeypatch.setattr(results, "save_figure", lambda fig, path: figures.append(fig))
    rows = [{"epoch": e, "train_loss": 1 / e, "train_accuracy": e / 5} for e in (1, 2, 3)]
    results.plot_curves(tmp_path / "constant.png", rows, "constant")
    scheduled = [{**row, "lr": 0.01 / row["epoch"]} for row in rows]
    results.plot_curves(tmp_path / "cosine.png", scheduled, "scheduled")
    constant, cosine = figures
    assert len(constant.axes) == 2 and len(cosine.axes) == 3
    (line,) = cosine.axes[2].get_lines()
    assert list(line.get_ydata()) == [0.01, 0.005, 0.01 / 3]
