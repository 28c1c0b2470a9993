"""Repeated seeds: train.repeats, sweep tables grouped by setting with means, spreads and 95%
intervals (checked against SciPy), error bars in sweep.png, and resume per seed."""

import csv
import json
import math
import re
import statistics
from pathlib import Path

import matplotlib.axes
import numpy as np
import pytest
from PIL import Image

from gpucnn.app import report, sweep
from gpucnn.app.effects import effects, pairs_needed
from gpucnn.app.stats import estimate, t975

from .helpers import TINY, app

scipy_stats = pytest.importorskip("scipy.stats", reason="SciPy checks the intervals")


def test_t_quantiles_match_scipy():
    for df in range(1, 31):
        assert t975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=5e-4), df
    for df in (31, 45, 59, 100, 500, 5000):  # between anchors: never narrower than the truth
        assert (
            scipy_stats.t.ppf(0.975, df) - 1e-3 <= t975(df) <= scipy_stats.t.ppf(0.975, df) + 0.03
        )
    # each anchor from its own df on, the normal quantile from 1,000 on
    anchors = {31: 2.042, 40: 2.021, 59: 2.021, 60: 2.000, 120: 1.980, 999: 1.980, 1000: 1.960}
    assert {df: t975(df) for df in anchors} == anchors


def test_an_estimate_matches_scipy_and_statistics():
    rng = np.random.default_rng(3)
    for n in (2, 3, 5, 12):
        values = list(rng.normal(0.83, 0.02, size=n))
        e = estimate(values)
        low, high = scipy_stats.t.interval(
            0.95, n - 1, loc=statistics.fmean(values), scale=scipy_stats.sem(values)
        )
        assert e.n == n and e.mean == pytest.approx(statistics.fmean(values))
        assert e.sd == pytest.approx(statistics.stdev(values))
        table_rounding = 6e-4 * e.sd / math.sqrt(n)  # t to 3 decimals
        assert (e.low, e.high) == pytest.approx((low, high), abs=table_rounding)
        assert e.half_width == pytest.approx((high - low) / 2, abs=table_rounding)
    single = estimate([0.8, math.nan])  # NaN is not a value
    assert single.n == 1 and single.mean == 0.8 and math.isnan(single.low)
    none = estimate([math.nan, math.inf])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.half_width)


def _fake_sweep(sweep_dir, accuracies):
    """Job directories of a finished sweep: {(filter_size, seed): test accuracy}."""
    for job, ((k, seed), acc) in enumerate(sorted(accuracies.items())):
        job_dir = Path(sweep_dir) / str(job)
        job_dir.mkdir(parents=True)
        summary = {
            "status": "ok",
            "overrides": [f"model.filter_size={k}", f"train.seed={seed}"],
            "test_accuracy": acc,
            "val_accuracy": acc - 0.01,
            "weights": 1000 * k,
            "multiply_adds": 20_000 * k,
            "seconds_per_epoch": 0.5 * k,
        }
        (job_dir / "summary.json").write_text(json.dumps(summary))


def test_the_sweep_table_groups_seeds_with_known_means_and_intervals(tmp_path, monkeypatch):
    accuracies = {(3, 0): 0.81, (3, 1): 0.83, (3, 2): 0.85, (5, 0): 0.86, (5, 1): 0.87}
    _fake_sweep(tmp_path, accuracies)
    bars = []
    errorbar = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "errorbar",
        lambda self, x, y, yerr=None, **kw: (
            bars.append(list(yerr)) or errorbar(self, x, y, yerr, **kw)
        ),
    )
    sweep.summarize(tmp_path)
    rows = {r["model.filter_size"]: r for r in csv.DictReader(open(tmp_path / "sweep_summary.csv"))}
    assert list(rows) == ["5", "3"]  # best mean first
    for k in (3, 5):
        values = [a for (kk, _), a in accuracies.items() if kk == k]
        low, high = scipy_stats.t.interval(
            0.95, len(values) - 1, loc=statistics.fmean(values), scale=scipy_stats.sem(values)
        )
        row = rows[str(k)]
        assert int(row["runs"]) == len(values) and row["status"] == "ok"
        assert int(row["multiply_adds"]) == 20_000 * k
        assert float(row["test_accuracy"]) == pytest.approx(statistics.fmean(values))
        assert float(row["test_sd"]) == pytest.approx(statistics.stdev(values))
        assert (float(row["test_low"]), float(row["test_high"])) == pytest.approx(
            (low, high), abs=1e-3
        )
    assert rows["3"]["seeds"] == "0,1,2"
    # One error bar per setting in each panel: the filter size, weights, multiply-adds, time.
    assert len(bars) == 4 and all(len(b) == 2 and min(b) > 0 for b in bars)
    width, height = Image.open(tmp_path / "sweep.png").size
    assert width > 3.6 * height  # four panels side by side
    per_run = list(csv.DictReader(open(tmp_path / "sweep_runs.csv")))
    assert len(per_run) == 5 and "± " in (tmp_path / "sweep_summary.md").read_text()


def test_a_sweep_of_the_test_images_ranks_each_test_sets_rows_apart(tmp_path, monkeypatch):
    """Binary accuracies are higher than ten classes' whatever the filter: ranked together,
    every binary row would come first. The figure draws each test set in its own colour."""
    accuracies = {("binary", 3): 0.90, ("binary", 5): 0.85, ("multiclass", 3): 0.80,
                  ("multiclass", 5): 0.88}  # fmt: skip
    for job, ((task, k), acc) in enumerate(accuracies.items()):
        (tmp_path / str(job)).mkdir()
        summary = {"status": "ok", "test_accuracy": acc, "val_accuracy": acc, "weights": 9 * k,
                   "multiply_adds": 90 * k, "seconds_per_epoch": 0.1 * k,
                   "overrides": [f"data.task={task}", f"model.filter_size={k}"]}  # fmt: skip
        (tmp_path / str(job) / "summary.json").write_text(json.dumps(summary))
    figures = []
    monkeypatch.setattr(sweep, "save_figure", lambda fig, path: figures.append(fig))
    sweep.summarize(tmp_path)
    for ax in figures[0].axes:  # by weights, multiply-adds and time
        legend = ax.get_legend()
        assert [t.get_text() for t in legend.get_texts()] == [
            "worth its cost: no setting ranks as high for less",
            "data.task=binary",
            "data.task=multiclass",
        ]
    ranked = [("binary", "3"), ("binary", "5"), ("multiclass", "5"), ("multiclass", "3")]
    for table in ("sweep_summary.csv", "sweep_runs.csv"):
        rows = csv.DictReader(open(tmp_path / table))
        assert [(r["data.task"], r["model.filter_size"]) for r in rows] == ranked, table
    # Binary 5 is beaten by binary 3, cheaper; multiclass 3, cheaper still, is on its own images.
    worth = ["weights, multiply-adds, time", "", *["weights, multiply-adds, time"] * 2]
    assert [r["frontier"] for r in csv.DictReader(open(tmp_path / "sweep_summary.csv"))] == worth
    said = "best mean validation accuracy first within each test set (data.task differs: accuracies"
    assert said in (tmp_path / "sweep_summary.md").read_text()


def test_the_frontier_counts_ties_and_leaves_out_costs_not_recorded():
    from gpucnn.app.groups import frontier, shown

    def setting(accuracy, weights, seconds):
        macs = None if weights is None else 20 * weights
        return {"test_accuracy": accuracy, "weights": weights, "multiply_adds": macs,
                "seconds_per_epoch": seconds}  # fmt: skip

    groups = [
        setting(0.90, 100, 1.0),
        setting(0.90, 50, 1.0),  # as accurate for fewer weights: the first is not worth them
        setting(0.95, 150, 1.0),
        setting(0.96, 150, 1.0),  # more accurate for as many: the third is not worth them
        setting(0.99, None, 2.0),  # costs not recorded: worth its time only, beating none
    ]
    frontier(groups, [], "test_accuracy")
    worth = ["", "weights, multiply-adds", "", "weights, multiply-adds, time", "time"]
    assert [g["frontier"] for g in groups] == worth
    assert shown(0.8, 0.7, 0.9) == "0.8000 ± 0.1000" and shown(0.8, 0.7, math.nan) == "0.8000"
    assert shown(math.nan, 0.7, 0.9) == ""


def test_the_settings_worth_their_cost_are_those_no_other_ranks_as_high_for_less(
    tmp_path, monkeypatch
):
    """The Pareto frontier of the ranking accuracy and each cost, on the settings' means."""
    val = {3: 0.80, 5: 0.85, 7: 0.83, 9: 0.86}  # 7 is beaten by 5: more accurate, fewer weights
    seconds = {3: 1.0, 5: 2.0, 7: 1.5, 9: 3.0}  # but 7 is quicker than 5
    for job, k in enumerate(val):
        (tmp_path / str(job)).mkdir()
        summary = {"status": "ok", "test_accuracy": val[k] - 0.02, "val_accuracy": val[k],
                   "weights": 1000 * k, "multiply_adds": 20_000 * k, "seconds_per_epoch":
                   seconds[k], "overrides": [f"model.filter_size={k}"]}  # fmt: skip
        (tmp_path / str(job) / "summary.json").write_text(json.dumps(summary))
    figures = []
    monkeypatch.setattr(sweep, "save_figure", lambda fig, path: figures.append(fig))
    sweep.summarize(tmp_path)
    rows = {r["model.filter_size"]: r for r in csv.DictReader(open(tmp_path / "sweep_summary.csv"))}
    every = "weights, multiply-adds, time"
    assert {k: r["frontier"] for k, r in rows.items()} == {
        "9": every, "5": every, "7": "time", "3": every
    }  # fmt: skip
    table = (tmp_path / "sweep_summary.md").read_text()
    assert "| frontier |" in table
    assert "frontier: the costs at which no other setting ranks as high for less" in table
    # Ringed in each cost's panel: the first panel is against the filter size itself.
    rings = [[len(c.get_offsets()) for c in ax.collections if c.get_label().startswith("worth")]
             for ax in figures[0].axes]  # fmt: skip
    assert rings == [[], [3], [3], [4]]

    # Settings of one cost (learning rates): the best is the only one worth it, as ranked.
    for job, lr in enumerate((0.1, 0.01)):
        summary = {"status": "ok", "test_accuracy": 0.8 + lr, "val_accuracy": 0.8 + lr,
                   "weights": 90, "multiply_adds": 900, "seconds_per_epoch": 1.0 + lr,
                   "overrides": [f"optimizer.lr={lr}"]}  # fmt: skip
        (tmp_path / "lr" / str(job)).mkdir(parents=True)
        (tmp_path / "lr" / str(job) / "summary.json").write_text(json.dumps(summary))
    sweep.summarize(tmp_path / "lr")
    assert "frontier" not in (tmp_path / "lr" / "sweep_summary.csv").read_text()
    assert "frontier" not in (tmp_path / "lr" / "sweep_summary.md").read_text()


@pytest.mark.parametrize("without_val", [False, True])
def test_sweep_tables_rank_on_validation_accuracy_where_every_run_has_it(tmp_path, without_val):
    """Ranked on test accuracy, the table's first row would be the luckiest on the test images:
    the settings are ranked on the validation images, and on the test images (with a warning)
    only where a finished run held none out."""
    val = {3: 0.90, 5: 0.85, 7: 0.80}  # test accuracies in the opposite order
    for job, k in enumerate(val):
        (tmp_path / str(job)).mkdir()
        summary = {"status": "ok", "test_accuracy": 1.6 - val[k], "val_accuracy": val[k],
                   "weights": 9 * k, "overrides": [f"model.filter_size={k}"]}  # fmt: skip
        if without_val and k == 7:
            summary["val_accuracy"] = math.nan  # data.val_fraction=0
        (tmp_path / str(job) / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "3").mkdir()  # a run that failed has no accuracy, and ranks last either way
    failed = {"status": "failed", "reason": "boom", "overrides": ["model.filter_size=9"]}
    (tmp_path / "3" / "summary.json").write_text(json.dumps(failed))
    sweep.summarize(tmp_path)
    ranked = ["7", "5", "3", "9"] if without_val else ["3", "5", "7", "9"]
    assert sweep.best_run(tmp_path) == (
        f"{tmp_path / '2'} (its best on test accuracy 0.8000)"
        if without_val
        else f"{tmp_path / '0'} (its best on validation accuracy 0.9000; test accuracy 0.7000)"
    )
    for table in ("sweep_summary.csv", "sweep_runs.csv"):
        rows = csv.DictReader(open(tmp_path / table))
        assert [r["model.filter_size"] for r in rows] == ranked, table
    for table in ("sweep_summary.md", "sweep_runs.md"):
        text = (tmp_path / table).read_text()
        mean = "mean " * (table == "sweep_summary.md")
        header = next(line for line in text.splitlines() if line.startswith("| "))
        assert (header.index("val") < header.index("test")) != without_val  # what ranks first
        if without_val:
            assert f"best {mean}test accuracy first" in text
            assert "Ranked on test accuracy, as not every finished run held out validation" in text
        else:
            assert f"best {mean}validation accuracy first" in text and "Ranked on" not in text


@pytest.mark.parametrize(
    "values,other,curve",
    [
        (["500", "1000", "2000"], None, ("data.limit_train", [500.0, 1000.0, 2000.0])),
        (["0.001", "1e-4"], None, ("data.limit_train", [0.001, 0.0001])),
        (["500", "1000"], ["3", "5"], None),  # two settings: no one curve
        (["[8,16]", "[16,32]"], None, None),  # channel lists are no number
        (["500", "500.0"], None, None),  # one value
    ],
)
def test_a_sweep_of_one_number_is_plotted_against_it(values, other, curve):
    """A learning curve (data.limit_train), a learning rate or a filter size swept alone gets
    a panel of accuracy against the setting; the seed of repeats does not count as one."""
    keys = ["data.limit_train", "train.seed"] + (["model.filter_size"] if other else [])
    groups = [
        {"data.limit_train": v, "model.filter_size": (other or [None] * 9)[i]}
        for i, v in enumerate(values)
    ]
    assert sweep.numeric_setting(groups, keys) == curve


@pytest.mark.parametrize(
    "values,scale,ticks",
    [
        ([0.0003, 0.001, 0.01, 0.03], "log", ["0.0003", "0.001", "0.01", "0.03"]),
        ([3, 5, 7], "linear", ["3", "5", "7"]),
        ([0, 0.5, 1], "linear", ["0", "0.5", "1"]),  # a dropout: zero has no logarithm
    ],
)
def test_a_swept_numbers_axis_is_logarithmic_where_they_span_ten_times(values, scale, ticks):
    from gpucnn.app.results import pyplot, setting_axis

    figure, ax = pyplot().subplots()
    setting_axis(ax, values, "optimizer.lr")
    assert ax.get_xscale() == scale
    assert [t.get_text() for t in ax.get_xticklabels()] == ticks
    assert ax.get_xlabel() == "optimizer.lr" + (" (log scale)" if scale == "log" else "")
    pyplot().close(figure)


def test_a_setting_whose_first_seed_did_not_run_shows_the_cost_of_the_one_that_did(tmp_path):
    _fake_sweep(tmp_path, {(3, 0): 0.81, (3, 1): 0.83})
    failed = {"status": "failed", "reason": "out of memory", "overrides": ["model.filter_size=3"]}
    (tmp_path / "0" / "summary.json").write_text(json.dumps(failed))
    sweep.summarize(tmp_path)
    (row,) = csv.DictReader(open(tmp_path / "sweep_summary.csv"))
    assert row["status"] == "1 failed, 1 ok" and row["reason"] == "out of memory"
    assert (row["weights"], row["multiply_adds"]) == ("3000", "60000")


def test_sampled_fractions_are_shown_to_6_digits_and_kept_whole_in_the_csv(tmp_path):
    """Optuna samples learning rates like 0.0012520653814999472: the tables, sentences and
    figures show 0.00125207; the CSV keeps every digit; integers and lists stay as they are."""
    from gpucnn.app.effects import Effect
    from gpucnn.app.results import setting_text

    assert [setting_text(v) for v in ("0.0012520653814999472", "0.001", "123456789", "[8,16]")] == [
        "0.00125207",
        "0.001",
        "123456789",
        "[8,16]",
    ]
    assert setting_text(["Shirt", 0.0012520653814999472, 16]) == "[Shirt, 0.00125207, 16]"
    assert setting_text(None) == "null"  # as an override writes it: train.patience=null
    rates = ("0.0012520653814999472", "0.0003701573165914633")
    for job, rate in enumerate(rates):
        (tmp_path / str(job)).mkdir()
        summary = {"status": "ok", "overrides": [f"optimizer.lr={rate}"], "test_accuracy": 0.8}
        (tmp_path / str(job) / "summary.json").write_text(json.dumps(summary))
    sweep.summarize(tmp_path)
    table = (tmp_path / "sweep_summary.md").read_text()
    assert "| 0.00125207 |" in table and "| 0.000370157 |" in table and rates[0] not in table
    rows = list(csv.DictReader(open(tmp_path / "sweep_summary.csv")))
    assert sorted(r["optimizer.lr"] for r in rows) == sorted(rates)
    said = Effect("optimizer.lr", rates[0], rates[1], estimate([1.0, 2.0])).sentence()
    assert said.startswith("optimizer.lr 0.00125207 vs 0.000370157: +1.5 points")


def test_the_sweep_figure_numbers_its_points_as_the_table_orders_the_settings(
    tmp_path, monkeypatch
):
    _fake_sweep(tmp_path, {(3, 0): 0.81, (3, 1): 0.83, (5, 0): 0.86, (5, 1): 0.88, (7, 0): 0.7})
    figures = []
    monkeypatch.setattr(sweep, "save_figure", lambda fig, path: figures.append(fig))
    sweep.summarize(tmp_path)
    (fig,) = figures
    for ax in fig.axes:  # by weights, multiply-adds and time: filter size 5 first (the best)
        numbers = {t.get_text(): t.xy[0] for t in ax.texts}
        assert sorted(numbers) == ["1", "2", "3"]
        assert numbers["1"] > numbers["2"] < numbers["3"]  # 5 costs more than 3, less than 7
    assert fig._supxlabel.get_text().splitlines() == [
        "1: model.filter_size=5",
        "2: model.filter_size=3",
        "3: model.filter_size=7",
    ]
    table = (tmp_path / "sweep_summary.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in table if line.startswith("| ")][1:] == [
        "| 5",
        "| 3",
        "| 7",
    ]


@pytest.mark.parametrize("settings, lines", [(3, 3), (45, 15)])
def test_the_names_of_many_settings_go_under_the_panels_in_columns(
    tmp_path, monkeypatch, settings, lines
):
    """An Optuna search of 45 trials spelt out one name a line made a figure of mostly names,
    which ran into the panels: beyond 20 they go side by side, and the figure grows to hold
    them."""
    for job in range(settings):
        (tmp_path / str(job)).mkdir()
        summary = {"status": "ok", "test_accuracy": 0.5 + job / 100, "weights": 10 + job,
                   "overrides": [f"model.hidden={job}", f"model.filter_size={job}"]}  # fmt: skip
        (tmp_path / str(job) / "summary.json").write_text(json.dumps(summary))
    figures = []
    monkeypatch.setattr(sweep, "save_figure", lambda fig, path: figures.append(fig))
    sweep.summarize(tmp_path)
    (fig,) = figures
    shown = fig._supxlabel.get_text().splitlines()
    assert len(shown) == lines
    names = re.findall(r"\d+: model.hidden=\d+, model.filter_size=\d+", " ".join(shown))
    assert sorted(names) == sorted(
        f"{n}: model.hidden={settings - n}, model.filter_size={settings - n}"
        for n in range(1, settings + 1)
    )  # each once, numbered best first
    assert fig.get_size_inches()[1] > 6 + 0.1 * lines  # the panels keep their height


def test_a_repeated_sweep_groups_its_seeds_and_resumes_per_seed(tmp_path):
    sweep_args = ["-m", *TINY, "model=cnn", "model.channels=[4]", "model.filter_size=3,5"]
    first = app(*sweep_args, "train.repeats=2", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    (first_dir,) = (tmp_path / "outputs" / "multiruns").iterdir()
    rows = list(csv.DictReader(open(first_dir / "sweep_summary.csv")))
    assert [r["runs"] for r in rows] == ["2", "2"] and {r["seeds"] for r in rows} == {"0,1"}
    # One seed as if preempted: no final weights, its summary says so.
    job = next(d for d in first_dir.iterdir() if d.is_dir() and d.name == "3")
    (job / "model.npz").unlink()
    summary = json.loads((job / "summary.json").read_text())
    (job / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    again = app(*sweep_args, "train.repeats=3", "train.resume=true", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    (second_dir,) = [d for d in first_dir.parent.iterdir() if d != first_dir]
    jobs = [json.loads(p.read_text()) for p in sorted(second_dir.glob("*/summary.json"))]
    skipped = sorted(j["config"]["train"]["seed"] for j in jobs if j.get("skipped"))
    resumed = [j for j in jobs if j.get("resumed_at")]
    fresh = [j for j in jobs if not j.get("skipped") and not j.get("resumed_from")]
    assert len(jobs) == 6 and skipped == [0, 0, 1]  # the finished seeds were not run again
    assert len(resumed) == 1 and resumed[0]["config"]["train"]["seed"] == 1
    assert sorted(j["config"]["train"]["seed"] for j in fresh) == [2, 2]
    rows = list(csv.DictReader(open(second_dir / "sweep_summary.csv")))
    assert [r["runs"] for r in rows] == ["3", "3"]


def test_repeats_outside_a_sweep_are_refused_naming_the_fix(tmp_path):
    proc = app(*TINY, "train.repeats=3", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "train.repeats=3 runs each setting with several seeds" in proc.stdout
    assert "--multirun" in proc.stdout


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ("train.seed=0,10", "train.repeats=2"),
            "train.repeats=2 and the sweep train.seed=0,10 both choose the seeds",
        ),
        (
            ("experiment=filter_pool_sweep", "train.seed=range(2)"),  # the preset's repeats
            "train.repeats=3 and the sweep train.seed=range(2) both choose the seeds",
        ),
        (
            ("experiment=optuna_search", "train.repeats=3"),
            "train.repeats=3 with the Optuna sweeper would make the seed one more parameter",
        ),
        (  # every trial would return NaN, which Hydra's Optuna sweeper fails on with a traceback
            ("experiment=optuna_search", "data.val_fraction=0"),
            "an Optuna search maximises each trial's validation accuracy, and "
            "data.val_fraction=0 holds out no validation images",
        ),
    ],
)
def test_a_sweep_that_cannot_do_what_it_is_asked_is_refused_before_it_starts(tmp_path, args, says):
    if "experiment=optuna_search" in args:
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the sweep extra")
    proc = app("-m", *TINY, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "sweep").exists()  # not a job started, not a folder made


def _records(effect_of_filter, seeds=3):
    """Runs of filter_size 3 / 5 x pool_size 2 / 3 x seeds, with known effects and noise."""
    noise = np.random.default_rng(0).normal(0, 0.004, size=(2, 2, seeds))
    return [
        {
            "settings": {"filter_size": k, "pool_size": p},
            "seed": s,
            "accuracy": 0.8 + effect_of_filter * (k == 5) + noise[i, j, s],
        }
        for i, k in enumerate((3, 5))
        for j, p in enumerate((2, 3))
        for s in range(seeds)
    ]


def test_an_effect_is_claimed_only_when_its_interval_excludes_zero():
    runs = _records(effect_of_filter=0.05)
    (filter_effect,) = effects(runs, "filter_size")
    diffs = [
        100 * (b["accuracy"] - a["accuracy"])
        for a in runs
        for b in runs
        if a["settings"]["filter_size"] == 3
        and b["settings"]["filter_size"] == 5
        and a["settings"]["pool_size"] == b["settings"]["pool_size"]
        and a["seed"] == b["seed"]
    ]
    low, high = scipy_stats.t.interval(
        0.95, len(diffs) - 1, loc=statistics.fmean(diffs), scale=scipy_stats.sem(diffs)
    )
    e = filter_effect.points
    assert e.n == 6 and (e.low, e.high) == pytest.approx((low, high), abs=1e-3)
    assert e.mean == pytest.approx(5.0, abs=0.5)  # the effect put in, in points
    assert filter_effect.sentence().startswith(f"filter_size 5 vs 3: {e.mean:+.1f} points")
    assert filter_effect.sentence().endswith("5 is better")
    (pool_effect,) = effects(runs, "pool_size")  # no effect: only noise
    sentence = pool_effect.sentence()
    assert pool_effect.points.low < 0 < pool_effect.points.high
    needed = pairs_needed(pool_effect.points.mean, pool_effect.points.sd)
    assert f"not distinguishable with 6 pairs (about {needed} would be needed" in sentence
    # Differences of +-1 point that all but cancel out: no number of pairs would do.
    runs = [
        {"settings": {"filter_size": k}, "seed": seed, "accuracy": 0.8 + k * bonus / 100}
        for seed, bonus in enumerate([0.5, -0.5, 0.51, -0.5])
        for k in (3, 5)
    ]
    (noise,) = effects(runs, "filter_size")
    assert noise.sentence().endswith(
        "not distinguishable with 4 pairs (more than 1,000 would be needed at this spread)"
    )
    # Worse by half a point on average, but an interval reaching +0.5: no claim either way.
    runs = [
        {"settings": {"filter_size": k}, "seed": seed, "accuracy": 0.8 + (k - 3) * diff / 200}
        for seed, diff in enumerate([-1, -0.5, 0.4, -1.2])
        for k in (3, 5)
    ]
    (unsure,) = effects(runs, "filter_size")
    assert unsure.points.low < -1 and 0 < unsure.points.high < 1
    assert "not distinguishable with 4 pairs" in unsure.sentence()
    for run, more in zip(runs, [0, 2, 0, 1.5, 0, 1.6, 0, 2.6]):  # now +1 to +2 points
        run["accuracy"] += more / 100
    (sure,) = effects(runs, "filter_size")
    assert 0 < sure.points.low < 1 and sure.sentence().endswith(": 5 is better")
    # A run that did not finish leaves its seed's pair out, not the effect.
    (fewer,) = effects([r for r in runs if r != runs[0]], "filter_size")
    assert fewer.points.n == 3


def test_the_pairs_needed_are_the_fewest_whose_interval_excludes_zero():
    for mean, sd in ((0.6, 1.0), (0.1, 0.4), (2.0, 0.5)):
        n = pairs_needed(mean, sd)
        assert t975(n - 1) * sd / math.sqrt(n) < mean
        assert n == 2 or t975(n - 2) * sd / math.sqrt(n - 1) >= mean
    assert pairs_needed(0.0, 1.0) is None
    assert pairs_needed(0.0, 0.0) is None and pairs_needed(0.5, 0.0) == 2
    assert pairs_needed(10.0, 1.0) == 2 and pairs_needed(2.0, 0.5) == 3  # 4.49 > 2 > 1.24


def test_a_list_setting_is_named_as_the_overrides_write_it():
    runs = [
        {"settings": {"positive": classes}, "seed": seed, "accuracy": 0.8 + seed / 100 + bonus}
        for seed in range(3)
        for classes, bonus in ((["Shirt"], 0), (["Shirt", "Coat"], 0.02))
    ]
    (effect,) = effects(runs, "positive")
    assert effect.sentence().startswith("positive [Shirt, Coat] vs [Shirt]: +2.0 points")


def test_a_switch_is_compared_with_it_off():
    """True, the shorter word, came first: batch_norm False was the effect, True its base."""
    runs = [
        {"settings": {"batch_norm": on}, "seed": seed, "accuracy": 0.8 + seed / 100 + 0.03 * on}
        for seed in range(3)
        for on in (True, False)
    ]
    (effect,) = effects(runs, "batch_norm")
    assert effect.sentence().startswith("batch_norm True vs False: +3.0 points")


def test_words_are_compared_with_the_settings_default():
    """Shortest first made "step" the base of a schedule and "sgd" that of an optimiser."""
    runs = [
        {"settings": {"schedule": name}, "seed": seed, "accuracy": 0.8 + seed / 100 + bonus}
        for seed in range(3)
        for name, bonus in (("step", 0.01), ("constant", 0.0), ("cosine", 0.02))
    ]
    first, second = effects(runs, "schedule", default="constant")
    assert first.sentence().startswith("schedule step vs constant: +1.0 points")
    assert second.sentence().startswith("schedule cosine vs constant: +2.0 points")
    assert [e.reference for e in effects(runs, "schedule")] == ["step", "step"]  # no default
    assert report.architecture._default("optimizer.schedule") == "constant"
    assert report.architecture._default("model.init") == "auto"
    assert report.architecture._default("model.no_such_key") is None


def test_settings_with_the_same_accuracy_in_every_pair_are_not_said_to_need_more_pairs():
    runs = [
        {"settings": {"filter_size": k}, "seed": seed, "accuracy": acc}
        for seed, acc in enumerate([0.8, 0.85, 0.9])
        for k in (3, 5)
    ]
    (effect,) = effects(runs, "filter_size")
    assert (
        effect.sentence()
        == "filter_size 5 vs 3: +0.0 points in each of the 3 pairs: the same accuracy"
    )


def test_pairs_that_all_differ_alike_are_not_given_an_interval_of_no_width():
    """ReLU at 0.8025 and sigmoid stuck at chance, 0.5, in both depths: -30.2 points in each
    pair, no spread, so a "95% interval -30.2 to -30.2" would claim a certainty two pairs lack."""
    runs = [
        {"settings": {"activation": act}, "seed": seed, "accuracy": acc}
        for seed in range(2)
        for act, acc in (("relu", 0.8025), ("sigmoid", 0.5))
    ]
    (effect,) = effects(runs, "activation")
    assert effect.sentence() == (
        "activation sigmoid vs relu: -30.2 points in each of the 2 pairs: sigmoid is worse in "
        "every pair (no spread to set an interval by)"
    )
    runs = [  # +0.5 points in each pair, up to the rounding of 0.815 - 0.81 and the like
        {"settings": {"filter_size": k}, "seed": seed, "accuracy": 0.80 + seed / 100 + bonus}
        for seed in range(3)
        for k, bonus in ((3, 0), (5, 0.005))
    ]
    (effect,) = effects(runs, "filter_size")
    assert effect.sentence() == (
        "filter_size 5 vs 3: +0.5 points in each of the 3 pairs: 5 is better in every pair (no "
        "spread to set an interval by)"
    )


def test_the_report_on_a_repeated_sweep_states_effects_with_intervals(tmp_path, monkeypatch):
    sweep_dir, report_dir = tmp_path / "sweep", tmp_path / "report"
    proc = app("-m", *TINY, "model=cnn", "model.channels=[4]", "model.filter_size=3,5",
               "train.epochs=2", "train.repeats=2", "diagnostics.enabled=true",
               f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bands = []
    fill_between = matplotlib.axes.Axes.fill_between

    def spy(self, x, low, high, **kw):
        bands.append(len(x))
        return fill_between(self, x, low, high, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between", spy)
    assert report.main([str(sweep_dir), "--out", str(report_dir)]) == 0
    # learning curves: a band for each filter size (the mean of its 2 seeds) in each panel, in
    # the figures of both questions
    assert bands == [2] * 8
    text = (report_dir / "report.md").read_text()
    (line,) = [x for x in text.splitlines() if x.startswith("- filter_size 5 vs 3: ")]
    low, high = (float(v) for v in re.search(r"interval ([-+.\d]+) to ([-+.\d]+)", line).groups())
    verdict = "5 is better" if low > 0 else "5 is worse" if high < 0 else "not distinguishable"
    assert verdict in line
    if verdict == "not distinguishable":
        assert "with 2 pairs" in line
    assert "Best on average:" in text and "(95% interval, 2 seeds)" in text
