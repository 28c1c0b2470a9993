"""The learning-rate range test: the library's analysis on made-up curves, its steps on a real
model, and ``python -m gpucnn.lr_find`` end to end."""

import json
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gpucnn import backend, data, lr_range, presets
from gpucnn.app.lr_find import _sweep_command, summary_text
from gpucnn.errors import ConfigError
from gpucnn.losses import CrossEntropy
from gpucnn.optimizers import SGD, Adam

from .helpers import tool

TINY = ["backend=numpy", "data.limit_train=256", "data.limit_test=100", "train.progress=false"]


def made_up(noise=0.0, seed=0):
    """A range test's curve as the analysis expects one: flat at 2.3 while the rate is too
    small, falling around 1e-3 (a logistic in log rate), lowest at 1e-2, then rising."""
    lrs = lr_range.rates(1e-6, 10, 100)
    t = np.log10(lrs)
    losses = 0.3 + 2.0 / (1 + np.exp(3 * (t + 3))) + 4.0 * np.maximum(t + 2, 0) ** 2
    losses += noise * np.random.default_rng(seed).normal(size=len(lrs))
    return lr_range.RangeTest(lrs, losses, lr_range.window(100), "rose")


def test_rates_grow_by_one_factor_from_min_to_max():
    lrs = lr_range.rates(1e-5, 1.0, 11)
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1.0)
    assert np.allclose(lrs[1:] / lrs[:-1], 10**0.5)


def test_window_means_are_the_means_of_each_run_of_losses():
    losses = np.random.default_rng(1).uniform(0.5, 3.0, size=40)
    means = lr_range.window_means(losses, 7)
    assert len(means) == 34
    assert np.allclose(means, [losses[i : i + 7].mean() for i in range(34)])
    assert lr_range.window(100) == 11 and lr_range.window(10) == 3  # odd: centred on a step


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_the_lowest_loss_is_found_and_a_third_of_its_rate_suggested_on_a_made_up_curve(noise):
    result = made_up(noise)
    step = 10 ** (7 / 99)  # one step's factor of rate
    assert 1e-2 / step**3 <= result.lowest <= 1e-2 * step**3
    assert result.fell and not result.still_falling
    low, suggested, high = result.sweep
    assert suggested == result.suggested == pytest.approx(result.lowest / 10**0.5, rel=0.05)
    assert low == pytest.approx(result.lowest / 10, rel=0.05)
    assert high == pytest.approx(result.lowest, rel=0.05)
    assert all(rate == float(f"{rate:.2g}") for rate in result.sweep)  # for a command line
    # the smoothed curve is each step's window mean, centred on its rate
    assert len(result.smoothed) == len(result.smoothed_lrs) == 100 - 10
    assert result.smoothed_lrs[0] == result.lrs[5]
    assert result.smoothed[0] == pytest.approx(result.losses[:11].mean())


def test_a_loss_that_never_falls_suggests_nothing_and_one_still_falling_says_so():
    lrs = lr_range.rates(1e-3, 10, 40)
    rising = lr_range.RangeTest(lrs, np.linspace(1.0, 3.0, 40), 5, "rose")
    assert not rising.fell and rising.suggested is None and rising.sweep is None
    assert rising.lowest == lrs[2]
    falling = lr_range.RangeTest(lrs, np.linspace(3.0, 1.0, 40), 5, "max_lr")
    assert falling.still_falling and falling.lowest == lrs[-3]
    few = lr_range.RangeTest(lrs[:2], np.array([2.0, np.inf]), 5, "not_finite")
    assert few.lowest is None and not few.fell and few.suggested is None


@pytest.mark.parametrize(
    "settings, named",
    [
        (dict(min_lr=0.0), "min_lr must be a finite number > 0"),
        (dict(max_lr=1e-7), "max_lr must be a finite number above min_lr=1e-06"),
        (dict(steps=5), "steps must be an integer >= 10"),
        (dict(stop_factor=1.0), "stop_factor must be a number > 1"),
    ],
)
def test_settings_that_make_no_test_are_refused_by_name(settings, named):
    kwargs = dict(min_lr=1e-6, max_lr=10.0, steps=100, stop_factor=4.0) | settings
    with pytest.raises(ConfigError, match=named) as raised:
        lr_range.check_settings(**kwargs)
    assert raised.value.argument == next(iter(settings))


class RecordingSGD(SGD):
    """SGD that records the rate of every update."""

    def __init__(self, lr):
        super().__init__(lr)
        self.seen = []

    def step(self, parameters):
        self.seen.append(self.lr)
        super().step(parameters)


def prepared(backend_name="numpy"):
    """224 training images of the embedded set's 10 classes, on ``backend_name`` in float32."""
    backend.use(backend_name, dtype="float32", seed=0)
    raw = data.load("fashion_mnist_mini")
    return data.prepare(raw, "multiclass", limit_train=224, limit_test=20)


def small_model():
    return presets.cnn((1, 32, 32), channels=[4, 8], hidden=[16], n_outputs=10)


def test_each_step_trains_at_its_rate_into_the_next_epochs():
    splits = prepared()
    opt = RecordingSGD(lr=0.5)
    batches = data.Batches(splits.train, 32, seed=0)  # 6 batches an epoch, 3 epochs and some
    result = lr_range.range_test(small_model(), CrossEntropy(), opt, batches, 1e-5, 1e-3, 20)
    assert result.stopped == "max_lr" and len(result.losses) == 20
    assert np.allclose(opt.seen, lr_range.rates(1e-5, 1e-3, 20))
    assert np.array_equal(result.lrs, lr_range.rates(1e-5, 1e-3, 20))
    assert np.all(np.isfinite(result.losses)) and np.all(result.losses > 0)


def test_a_test_stops_once_the_loss_rises_or_is_no_longer_finite():
    splits = prepared()
    batches = data.Batches(splits.train, 32, seed=0)
    result = lr_range.range_test(small_model(), CrossEntropy(), SGD(1.0), batches, 1e-4, 1e6, 60)
    assert result.stopped in ("rose", "not_finite") and 5 <= len(result.losses) < 60
    if result.stopped == "rose":
        means = lr_range.window_means(result.losses, result.width)
        assert means[-1] > 4 * means.min() and not np.any(means[:-1] > 4 * means.min())
    else:
        assert not np.isfinite(result.losses[-1]) and np.all(np.isfinite(result.losses[:-1]))


def test_an_adam_test_on_real_images_finds_a_rate_that_trains():
    splits = prepared()
    batches = data.Batches(splits.train, 32, seed=0)
    result = lr_range.range_test(small_model(), CrossEntropy(), Adam(), batches, 1e-6, 10.0, 60)
    assert result.stopped == "rose" and result.fell
    assert result.smoothed.min() < 0.8 * result.smoothed[0]  # the loss fell, then rose
    assert 1e-6 < result.suggested < result.lowest < 10.0


@pytest.mark.gpu
def test_on_the_gpu_the_test_matches_numpy_and_captures_no_graph(monkeypatch):
    from gpucnn.static_step import StaticStep

    def refuse(*args):
        raise AssertionError("a graph holds the rate it was captured with: none may be captured")

    monkeypatch.setattr(StaticStep, "_capture", refuse)
    losses = {}
    for name in ("numpy", "cupy"):
        batches = data.Batches(prepared(name).train, 32, seed=0)
        model, adam = small_model(), Adam()
        losses[name] = lr_range.range_test(model, CrossEntropy(), adam, batches, 1e-5, 1e-3, 12)
        losses[name] = losses[name].losses
    assert np.allclose(losses["numpy"], losses["cupy"], rtol=1e-3, atol=1e-4)


def test_the_sweep_to_run_next_keeps_the_tests_overrides_but_its_own():
    overrides = ["data.task=multiclass", "model.channels=[8,16]", "lr_find.steps=50",
                 "hydra.run.dir=x", "optimizer=sgd"]  # fmt: skip
    command = _sweep_command([1e-4, 0.00032, 0.001], overrides)
    assert shlex.split(command) == [
        "python", "-m", "gpucnn.run", "-m", "data.task=multiclass", "model.channels=[8,16]",
        "optimizer=sgd", "optimizer.lr=0.0001,0.00032,0.001", "train.repeats=3",
    ]  # fmt: skip
    assert _sweep_command(None, overrides) is None


def record_of(result, **settings):
    config = {"lr_find": dict(min_lr=1e-6, max_lr=10.0, steps=100, stop_factor=4.0) | settings}
    return {**result.record(), "command": "python -m gpucnn.run -m ...", "config": config}


def test_what_is_printed_says_what_to_change_when_the_test_found_nothing():
    result = made_up()
    text = "\n".join(summary_text(record_of(result)))
    assert "range test: 100 of 100 steps (the smoothed loss rose above 4 times its lowest)" in text
    fell = f"fell from {result.smoothed[0]:.3g} to {result.smoothed.min():.3g}"
    said = f"{fell}, lowest at lr {result.lowest:.2g}: train at about a third of it, optimizer.lr="
    assert f"{said}{result.suggested:g}\n" in text and "  python -m gpucnn.run -m ..." in text
    lrs = lr_range.rates(1e-3, 10, 40)
    rising = lr_range.RangeTest(lrs, np.linspace(1.0, 3.0, 40), 5, "rose")
    assert "never fell below its first value: lower lr_find.min_lr=0.001" in "\n".join(
        summary_text(record_of(rising, min_lr=1e-3))
    )
    falling = lr_range.RangeTest(lrs, np.linspace(3.0, 1.0, 40), 5, "max_lr")
    assert "still falling at lr_find.max_lr=10: raise it" in "\n".join(
        summary_text(record_of(falling))
    )
    few = lr_range.RangeTest(lrs[:2], np.array([2.0, np.inf]), 5, "not_finite")
    assert "too few steps to smooth the loss over 5: lower lr_find.min_lr" in "\n".join(
        summary_text(record_of(few))
    )


def test_lr_find_writes_each_steps_rate_and_loss_and_prints_the_sweep_to_run(tmp_path):
    proc = tool("lr_find", *TINY, "data.task=multiclass", "lr_find.steps=30",
                f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "lr_find.json").read_text())
    rows = (tmp_path / "lr_find.csv").read_text().splitlines()
    assert rows[0] == "step,lr,loss,smoothed" and len(rows) == 1 + record["steps_taken"]
    first, middle = rows[1].split(","), rows[1 + record["width"] // 2].split(",")
    assert first[0] == "1" and float(first[1]) == pytest.approx(1e-6) and first[3] == ""
    assert middle[3] != ""
    assert (tmp_path / "lr_find.png").stat().st_size > 10_000
    assert record["model"] == "lab_cnn3" and record["optimizer"] == "adam"
    assert f"range test: {record['steps_taken']} of 30 steps" in proc.stdout
    if record["fell"]:
        command = record["command"]
        assert command in proc.stdout and "data.limit_train=256" in command
        assert "lr_find" not in command and "hydra.run.dir" not in command
        assert f"optimizer.lr={','.join(f'{r:g}' for r in record['sweep'])}" in command
    assert "written:" in proc.stdout


@pytest.mark.parametrize(
    "override, said",
    [
        ("optimizer.lr=0.1", "optimizer.lr does nothing in lr_find: lr_find.min_lr and"),
        ("train.epochs=3", "train.epochs does nothing in lr_find: lr_find.steps sets"),
        ("lr_find.min_lr=0", "lr_find.min_lr must be a finite number > 0"),
        # the training batches are checked as a run's are
        ("data.shift=32", "data.shift=32 would move the 32x32 training images out of themselves"),
        ("train.batch_size=5000", "train.batch_size=5000 is larger than the 230 training images"),
        (
            "lr_find.stepz=3",
            "lr_find.stepz is not a setting: nothing reads it (did you mean "
            "lr_find.steps?); python -m gpucnn.lr_find --help",
        ),  # fmt: skip
    ],
)
def test_lr_find_refuses_what_it_cannot_do_in_one_line(tmp_path, override, said):
    proc = tool("lr_find", *TINY, override, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr
    said_all = proc.stdout + proc.stderr  # Hydra logs to stdout, the check prints to stderr
    assert said in said_all and "Traceback" not in said_all
    assert not (tmp_path / "lr_find.json").exists()


def test_ctrl_c_stops_lr_find_at_once_with_nothing_written(tmp_path):
    cmd = [sys.executable, "-m", "gpucnn.lr_find", *TINY, "lr_find.steps=100000",
           "lr_find.max_lr=1e-4", f"hydra.run.dir={tmp_path}"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # Hydra logs to stdout
        if "range test: 100000 steps" in line:
            break
    time.sleep(0.5)  # into the steps
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, rest
    assert "interrupted: nothing written" in rest and "Traceback" not in rest
    assert not list(tmp_path.glob("lr_find.[cjp]*"))


def test_the_folders_of_lr_find_and_bench_are_not_taken_for_runs(tmp_path):
    from gpucnn.app.results import no_runs, run_dirs

    for name, command in (("lr_find", "lr_find"), ("bench", "bench")):
        folder = tmp_path / name
        (folder / ".hydra").mkdir(parents=True)
        (folder / f"{name}.json").write_text("{}")
        assert run_dirs(folder) == [] and run_dirs(tmp_path) == []
        assert no_runs(folder, "a sweep directory") == (
            f"{folder}: it holds the results of python -m gpucnn.{command} ({name}.json), not a "
            "run's: give a sweep directory (outputs/multiruns/<time>)"
        )
    proc = tool("evaluate", tmp_path / "lr_find")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {tmp_path / 'lr_find'}: it holds the results of python")
