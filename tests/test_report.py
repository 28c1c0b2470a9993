"""The report on a tiny real sweep: every section, only figures that exist, embedded HTML."""

import json
import os
import re
import shutil
import statistics
import time

import pytest

from .helpers import app, tool

TINY = [
    "backend=numpy",
    "data.limit_train=240",
    "data.limit_test=80",
    "train.epochs=2",
    "train.progress=false",
    "diagnostics.every=2",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    proc = app("-m", "experiment=relu_vs_sigmoid", *TINY, f"hydra.sweep.dir={out}")
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_preset_records_diagnostics(sweep):
    for job in "0123":
        assert (sweep / job / "diagnostics.csv").is_file()


def test_report_answers_the_three_questions(sweep, tmp_path):
    proc = tool("report", sweep, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "report.md").read_text()
    for heading in ("## 1. ReLU or sigmoid", "## 2. Which filter size", "## 3. How many"):
        assert heading in md
    assert "**3 conv layers, ReLU against sigmoid.** The first conv layer's weight gradient" in md
    assert "**5 conv layers, ReLU against sigmoid.**" in md and "Test accuracy: ReLU" in md
    # lab_cnn3, from the model: weights, biases, multiply-adds per image
    assert "| **total** |  | **88,784** | **177** | **2,572,352** |" in md
    assert "| test accuracy | weights | multiply-adds | s / epoch |" in md
    assert "multiply-adds per image and" in md  # the best setting's cost
    assert "131,200" in md and "158,500" in md and "weight sharing" in md
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(figures) >= 6
    for name in figures:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(figures)
    assert "<h2>3. How many learnable parameters?</h2>" in html


def test_relu_against_sigmoid_and_tanh_in_mlps_is_compared_by_their_dense_layers(tmp_path):
    sweep = tmp_path / "mlps"
    activations = "model.activation=relu,sigmoid,tanh"
    proc = app("-m", "model=lab_mlp4", activations, "diagnostics.enabled=true", *TINY,
               f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    done = tool("report", sweep, "--out", tmp_path / "r")
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    assert (
        "**6 dense layers (no convolutions), ReLU against sigmoid.** The first dense layer's "
        "weight gradient is" in md
    )
    assert "of the dense activations at exactly 0" in md
    tanh = next(line for line in md.splitlines() if ", ReLU against tanh.**" in line)
    assert "with tanh than with ReLU" in tanh and "ceiling of 0.25" not in tanh


def test_a_blocks_activation_is_found_past_batch_norm():
    from gpucnn.app.report.activations import _block_activations
    from gpucnn.app.report.runs import Run

    kinds = ["Conv", "BatchNorm", "relu", "MaxPool", "Conv", "BatchNorm", "relu", "MaxPool",
             "Flatten", "Dense", "relu", "Dense"]  # fmt: skip
    rows = [{"epoch": 2, "layer_index": i, "kind": k, "zero_fraction": 0.1 * i}
            for i, k in enumerate(kinds)]  # fmt: skip
    layers = [{"layer": f"{k}(...)"} for k in kinds]
    run = Run(None, {"layers": layers}, diagnostics=rows)
    assert [a["layer_index"] for a in _block_activations(run)] == [2, 6]  # not BatchNorm's rows
    assert run.block_kind == "Conv" and run.depth == 2 and run.label == "?, 2 conv layers"


def test_the_cost_figure_labels_points_by_name_when_too_many_settings_vary():
    from gpucnn.app.report.architecture import LABELLED_SETTINGS, _point_labels
    from gpucnn.app.report.runs import Run

    keys = [f"model.k{i}" for i in range(LABELLED_SETTINGS + 1)]
    config = {"model": {k.partition(".")[2]: [1, 2] for k in keys}}
    run = Run(None, {"config": config}, name="sweep/3")
    assert _point_labels([run], keys[:2]) == ("k0 / k1", {"sweep/3": "[1,2] / [1,2]"})
    assert _point_labels([run], keys) == ("by its name in the table", {"sweep/3": "sweep/3"})


def test_the_effects_figure_puts_at_most_four_settings_in_a_row(tmp_path):
    import struct

    for job in range(2):
        config = {"model": {f"k{i}": job + i for i in range(6)}, "train": {"seed": 0}}
        summary = {"status": "ok", "test_accuracy": 0.8 + job / 10, "weights": 300 + job,
                   "seconds_per_epoch": 1.0, "config": config}  # fmt: skip
        _job(tmp_path / "sweep", job, [], json.dumps(summary))
    proc = tool("report", tmp_path / "sweep", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    width, height = struct.unpack(">II", (tmp_path / "r" / "effects.png").read_bytes()[16:24])
    assert 1.5 < width / height < 3  # 4 panels of 5 x 4 inches over 2 rows; in one row: 7.5


def test_report_says_what_is_missing(tmp_path):
    summary = {"status": "ok", "test_accuracy": 0.8, "weights": 300, "config": {}}
    _job(tmp_path, "run", [], json.dumps(summary))  # one run, without diagnostics
    proc = tool("report", tmp_path / "run", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    assert "experiment=relu_vs_sigmoid" in md and "Fewer than two finished runs" in md
    assert "88,784" in md


def test_a_folder_without_runs_is_refused_naming_the_sweeps_below_it(tmp_path):
    """A report on nothing (a typo, or outputs/multiruns itself) is no answer."""
    (tmp_path / "empty").mkdir()
    proc = tool("report", tmp_path / "empty", "--out", tmp_path / "r")
    assert proc.returncode == 2 and not (tmp_path / "r").exists()
    assert f"error: {tmp_path / 'empty'} holds no runs: give run or sweep" in proc.stderr
    summary = {"status": "ok", "test_accuracy": 0.8, "weights": 300, "config": {}}
    for sweep in ("2026-01-01", "2026-01-02"):
        _job(tmp_path / "multiruns" / sweep, 0, [], json.dumps(summary))
    proc = tool("report", tmp_path / "multiruns", "--out", tmp_path / "r")
    assert proc.returncode == 2, proc.stderr
    assert "holds sweeps, not runs: give run or sweep directories, e.g. " in proc.stderr
    assert str(tmp_path / "multiruns" / "2026-01-02") in proc.stderr


def _job(sweep, num, overrides, summary_text):
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / "summary.json").write_text(summary_text)


def test_summaries_that_cannot_be_read_are_rows_and_nan_is_never_best(tmp_path):
    from gpucnn.app.sweep import collect

    ok = {"status": "ok", "test_accuracy": 0.7, "weights": 1000}
    _job(tmp_path, 0, ["model.filter_size=7"], json.dumps(ok).replace("0.7", "NaN"))
    _job(tmp_path, 1, ["model.filter_size=5"], '{"status": "ok", "test_acc')  # cut short
    _job(tmp_path, 2, ["model.filter_size=3"], json.dumps(ok))
    _job(tmp_path, 3, ["model.filter_size=9"], "[1, 2]")
    rows, varying, _ = collect(tmp_path)
    assert varying == ["model.filter_size"]
    by_size = {r["model.filter_size"]: r for r in rows}
    assert rows[0]["model.filter_size"] == "3"  # the NaN accuracy is not ranked first
    assert by_size["5"]["status"] == "unreadable" and "summary.json" in by_size["5"]["reason"]
    assert by_size["9"]["status"] == "unreadable" and "no run summary" in by_size["9"]["reason"]
    proc = tool("summarize", tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "unreadable" in (tmp_path / "sweep_summary.md").read_text()


def test_report_out_refuses_an_existing_file(tmp_path):
    summary = {"status": "ok", "test_accuracy": 0.8, "weights": 300, "config": {}}
    _job(tmp_path, "run", [], json.dumps(summary))
    taken = tmp_path / "report.md"
    taken.write_text("someone's notes")
    proc = tool("report", tmp_path, "--out", taken)
    assert proc.returncode == 2 and "is a file, not a directory" in proc.stderr
    assert taken.read_text() == "someone's notes"
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "report.md").write_text("an earlier report")
    proc = tool("report", tmp_path, "--out", tmp_path / "earlier")
    assert proc.returncode == 2 and "already holds a report" in proc.stderr
    assert (tmp_path / "earlier" / "report.md").read_text() == "an earlier report"
    proc = tool("report", tmp_path, "--out", taken / "inside")  # a folder that cannot be made
    assert proc.returncode == 7 and "Traceback" not in proc.stderr
    assert f"cannot write into {taken / 'inside'} (Not a directory)" in proc.stderr


def test_runs_recorded_before_multiply_adds_leave_those_cells_blank(tmp_path):
    from gpucnn.app import report

    for job, (k, acc) in enumerate([(3, 0.80), (5, 0.85)]):
        summary = {
            "status": "ok",
            "test_accuracy": acc,
            "weights": 100 * k,
            "seconds_per_epoch": 0.1 * k,
            "config": {"model": {"filter_size": k}},
        }
        _job(tmp_path / "sweep", job, [f"model.filter_size={k}"], json.dumps(summary))
    blocks = report.architecture.section(report.runs.collect([tmp_path / "sweep"]), tmp_path)
    _, header, rows = next(b for b in blocks if b[0] == "table")
    cells = [dict(zip(header, row)) for row in rows]
    assert [c["multiply-adds"] for c in cells] == ["", ""]
    assert [c["weights"] for c in cells] == ["500", "300"]  # best first, the rest as before
    assert "learning" not in header  # every weight learns: no column for those that do
    best = next(b[1] for b in blocks if b[0] == "p" and b[1].startswith("Best on average"))
    assert "500 weights and 0.50 s per epoch" in best
    assert (tmp_path / "accuracy_vs_cost.png").read_bytes()[:4] == b"\x89PNG"


def test_a_sweep_of_frozen_layers_shows_how_many_weights_learn(tmp_path):
    from gpucnn.app import report

    for job, (freeze, learning, acc) in enumerate([(0, 1000, 0.80), (3, 200, 0.85)]):
        config = {"train": {"freeze": freeze}}
        summary = {"status": "ok", "test_accuracy": acc, "weights": 1000, "config": config}
        summary.update(learning_weights=learning, seconds_per_epoch=0.1)
        _job(tmp_path / "sweep", job, [f"train.freeze={freeze}"], json.dumps(summary))
    blocks = report.architecture.section(report.runs.collect([tmp_path / "sweep"]), tmp_path)
    _, header, rows = next(b for b in blocks if b[0] == "table")
    cells = [dict(zip(header, row)) for row in rows]
    assert [(c["weights"], c["learning"]) for c in cells] == [("1,000", "200"), ("1,000", "1,000")]


def test_runs_of_one_architecture_are_not_compared_as_architectures(tmp_path):
    for job, seed in enumerate([0, 1]):  # a sweep over seeds only
        config = {"model": {"filter_size": 3}, "train": {"seed": seed}}
        summary = {"status": "ok", "test_accuracy": 0.8, "weights": 300, "config": config}
        _job(tmp_path / "sweep", job, [f"train.seed={seed}"], json.dumps(summary))
    proc = tool("report", tmp_path / "sweep", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    assert "The 2 finished runs share one setting: run a sweep" in md


def test_runs_that_did_not_end_ok_are_named_with_how_they_ended(tmp_path):
    ended = [
        ("ok", ""),
        ("invalid_config", "model.filter_size does nothing with model=lab_mlp4\nmore"),
        ("invalid_config", "model.filter_size does nothing with model=lab_mlp4\nmore"),
        ("diverged", "the loss became NaN in epoch 2"),
    ]
    for job, (status, reason) in enumerate(ended):
        summary = {"status": status, "reason": reason, "config": {"model": {"filter_size": job}}}
        summary.update({"test_accuracy": 0.8, "weights": 300} if status == "ok" else {})
        _job(tmp_path / "sweep", job, [f"model.filter_size={job}"], json.dumps(summary))
    proc = tool("report", tmp_path / "sweep", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    left_out = (tmp_path / "r" / "report.md").read_text().split("Left out, did not end ok: ")[1]
    sweep = tmp_path / "sweep"
    assert left_out.split("\n")[0] == (
        "2 runs, invalid_config (model.filter_size does nothing with model=lab_mlp4): "
        f"`{sweep / '1'}`, `{sweep / '2'}`; 1 run, diverged (the loss became NaN in epoch 2): "
        f"`{sweep / '3'}`."
    )


def test_damaged_csvs_are_left_out_and_named(tmp_path):
    header = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds,images_per_second\n"
    row = "1,0.56,0.71,0.49,0.80,0.44,4029.0\n"
    damage = {
        0: header + row + "2,0.39,0.82",  # cut short
        1: header + row + row.replace("0.49", "0.4x9"),
        2: "epoch,train_loss\n1,0.56\n",  # columns missing
        3: header + row,  # intact
        5: "",  # replaced by bytes below
        4: header + row + "2," + "9" * 200_000,  # over the csv module's field limit
    }
    for job, text in damage.items():
        config = {"model": {"filter_size": 3 + 2 * job}}
        summary = {"status": "ok", "test_accuracy": 0.8, "weights": 300, "config": config}
        summary["seconds_per_epoch"] = 0.5
        _job(tmp_path / "sweep", job, [f"model.filter_size={3 + 2 * job}"], json.dumps(summary))
        (tmp_path / "sweep" / str(job) / "metrics.csv").write_text(text)
    (tmp_path / "sweep" / "5" / "metrics.csv").write_bytes(b"\xff\xfe" * 100)
    (tmp_path / "sweep" / "3" / "diagnostics.csv").write_text("epoch,layer\n1,Conv\n")
    proc = tool("report", tmp_path / "sweep", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    left_out = md.split("Left out, damaged")[1].split("\n")[0]
    assert "0/metrics.csv: line 3: 7 fields expected" in left_out
    assert "1/metrics.csv: line 3: could not convert string to float: '0.4x9'" in left_out
    assert "2/metrics.csv: no column train_accuracy, val_loss" in left_out
    assert "3/diagnostics.csv: no column layer_index" in left_out
    assert "4/metrics.csv: line 3: field larger than field limit" in left_out
    assert "5/metrics.csv: 'utf-8' codec can't decode byte 0xff" in left_out
    assert "3/metrics.csv" not in left_out


def test_a_search_of_learning_rates_is_drawn_as_points_against_them(tmp_path, monkeypatch):
    """An Optuna search gives each trial its own learning rate: a bar per value would be a bar
    per run, their labels on top of each other; a few values still get bars."""
    from gpucnn.app import report

    rates = [0.0002, 0.0003, 0.0006, 0.001, 0.0013, 0.002, 0.004, 0.008]
    for job, lr in enumerate(rates):
        k = 3 + 2 * (job % 2)
        config = {"model": {"filter_size": k}, "optimizer": {"lr": lr}, "train": {"seed": 0}}
        summary = {"status": "ok", "test_accuracy": 0.7 + 0.01 * job, "val_accuracy": 0.7,
                   "weights": 100 * k, "seconds_per_epoch": 0.1, "config": config}  # fmt: skip
        _job(tmp_path / "sweep", job, [f"model.filter_size={k}", f"optimizer.lr={lr}"],
             json.dumps(summary))  # fmt: skip
    figures = {}
    monkeypatch.setattr(
        report.architecture, "save_figure", lambda fig, path: figures.setdefault(path.name, fig)
    )
    report.architecture.section(report.runs.collect([tmp_path / "sweep"]), tmp_path)
    by_title = {ax.get_title(): ax for ax in figures["effects.png"].axes if ax.get_visible()}
    assert sorted(by_title) == ["Accuracy against optimizer.lr", "Effect of filter_size"]
    rates_ax = by_title["Accuracy against optimizer.lr"]
    assert rates_ax.get_xscale() == "log" and not rates_ax.patches  # points, no bars
    assert sorted(rates_ax.collections[0].get_offsets()[:, 0]) == pytest.approx(rates)
    assert len(by_title["Effect of filter_size"].patches) == 2  # a bar for each of 3 and 5


@pytest.mark.parametrize(
    "values,labels",
    [
        ([38_864, 88_784], ["30k", "50k", "70k", "100k"]),  # under a decade: finer steps
        ([1_257_536, 2_572_352, 7_028_800], ["1M", "2M", "5M", "10M"]),
        ([0.14, 0.22], ["0.15", "0.2", "0.3"]),
    ],
)
def test_cost_axes_have_a_few_round_ticks(values, labels):
    from gpucnn.app.results import cost_axis, pyplot

    fig, ax = pyplot().subplots()
    ax.scatter(values, [0.5] * len(values))
    cost_axis(ax, values, "learnable weights")
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "learnable weights (log scale)"
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert len(ax.xaxis.get_minorticklocs()) == 0
    low, high = ax.get_xlim()
    assert low < min(values) and high > max(values) * 1.5  # room for the points' labels
    pyplot().close(fig)


def test_interval_bands_stay_within_what_the_values_can_be(tmp_path):
    from gpucnn.app import report
    from gpucnn.app.results import pyplot

    runs = [
        report.runs.Run(
            tmp_path, {}, [{"epoch": e, "val_accuracy": a} for e, a in enumerate(accs, 1)]
        )
        for accs in ([0.3, 0.6], [0.9, 0.99])
    ]
    fig, ax = pyplot().subplots()
    report.curves._mean_with_band(ax, runs, "val_accuracy", "two seeds", (0, 1))
    (band,) = ax.collections
    heights = band.get_paths()[0].vertices[:, 1]
    assert heights.min() == 0 and heights.max() == 1  # the t interval of 2 runs passes both
    pyplot().close(fig)


def test_a_run_named_twice_counts_once(tmp_path):
    from gpucnn.app import report

    for job in range(2):
        summary = {"status": "ok", "test_accuracy": 0.8, "weights": 300, "seed": job}
        _job(tmp_path / "sweep", job, [f"train.seed={job}"], json.dumps(summary))
    sweep = tmp_path / "sweep"
    runs = report.runs.collect([sweep, sweep / "0", tmp_path / "." / "sweep"])
    assert sorted(r.path.name for r in runs) == ["0", "1"]
    assert sorted(r.name for r in runs) == ["0", "1"]  # told apart by their own folders


def test_runs_of_two_sweeps_are_named_with_their_sweep(tmp_path):
    from gpucnn.app import report

    for sweep in ("a", "b"):
        for job in range(2):
            config = {"model": {"filter_size": 3 + 2 * job}, "train": {"seed": 0, "epochs": 1}}
            config["train"]["epochs"] += sweep == "b"
            accuracy = 0.8 - job / 10 - (sweep == "a") / 20
            summary = {"status": "ok", "test_accuracy": accuracy, "weights": 300 + job,
                       "seconds_per_epoch": 1.0, "config": config}  # fmt: skip
            _job(tmp_path / "runs" / sweep, job, [], json.dumps(summary))
    runs = report.runs.collect([tmp_path / "runs" / "a", tmp_path / "runs" / "b"])
    assert sorted(r.name for r in runs) == ["a/0", "a/1", "b/0", "b/1"]
    proc = tool("report", tmp_path / "runs" / "a", tmp_path / "runs" / "b", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    named = [line.split(" | ")[0] for line in md.splitlines() if re.match(r"\| [ab]/\d ", line)]
    assert named == ["| b/0", "| a/0", "| b/1", "| a/1"]  # the runs' table, best first


def test_runs_of_the_same_settings_and_seed_count_once(tmp_path):
    from gpucnn.app import report

    for sweep, status in (("first", "ok"), ("again", "ok"), ("cut", "interrupted")):
        for seed in (0, 1):
            config = {"model": {"filter_size": 3}, "train": {"seed": seed, "resume": False}}
            if sweep == "again":  # neither changes what is trained
                config["train"].update(resume=True, progress=False)
            summary = {"status": status, "test_accuracy": 0.8, "weights": 300, "config": config}
            _job(tmp_path / sweep, seed, [f"train.seed={seed}"], json.dumps(summary))
    os.utime(tmp_path / "cut" / "0" / "summary.json", (time.time() + 60,) * 2)  # newest
    sweeps = [tmp_path / name for name in ("first", "again", "cut")]
    runs, repeats = report.runs.distinct(report.runs.collect(sweeps))
    assert len(runs) == 2 and len(repeats) == 4
    assert all(r.summary["status"] == "ok" for r in runs)  # a finished one is kept
    proc = tool("report", tmp_path / "first", tmp_path / "again", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    assert "2 runs from" in md
    assert "Left out, the same config and seed as a run kept (a repeat, no new seed): `" in md


def test_runs_on_two_image_folders_are_two_settings_not_repeats(tmp_path):
    from gpucnn.app import report

    # two image folders are two data sets; one named set read from two places is one
    names = ["folder", "folder", "fashion_mnist", "fashion_mnist"]
    for job, (name, root) in enumerate(zip(names, ["cats", "birds", "/a", "/b"])):
        config = {"data": {"name": name, "root": root}, "train": {"seed": 0}}
        summary = {"status": "ok", "test_accuracy": 0.8, "weights": 300, "config": config}
        _job(tmp_path / "runs", job, [f"data.root={root}"], json.dumps(summary))
    runs, repeats = report.runs.distinct(report.runs.collect([tmp_path / "runs"]))
    kept = sorted(r.config["data.root"] for r in runs)
    assert len(kept) == 3 and kept[1:] == ["birds", "cats"]
    assert sorted([kept[0], *(r.config["data.root"] for r in repeats)]) == ["/a", "/b"]


def test_runs_pair_only_when_every_other_setting_agrees(tmp_path):
    from gpucnn.app import report

    job = 0
    for k in (3, 5):
        for lr in (0.001, 0.01):
            for seed in range(3):
                config = {
                    "model": {"filter_size": k},
                    "optimizer": {"lr": lr},
                    "train": {"seed": seed, "progress": seed == 0},  # progress changes nothing
                }
                accuracy = 0.7 + 0.01 * k + (0.1 if lr == 0.01 else 0) + 0.003 * seed
                summary = {"status": "ok", "test_accuracy": accuracy, "weights": 100 * k,
                           "seconds_per_epoch": 0.1, "seed": seed, "config": config}  # fmt: skip
                _job(tmp_path / "sweep", job, [f"model.filter_size={k}"], json.dumps(summary))
                job += 1
    blocks = report.architecture.section(report.runs.collect([tmp_path / "sweep"]), tmp_path)
    _, header, _ = next(b for b in blocks if b[0] == "table")
    assert header[1:3] == ["model.filter_size", "optimizer.lr"]
    sentences = next(b[1] for b in blocks if b[0] == "list")
    assert sentences[0].startswith("filter_size 5 vs 3: +2.0 points in each of the 6 pairs")
    assert sentences[1].startswith("optimizer.lr 0.01 vs 0.001: +10.0 points")
    best = next(b[1] for b in blocks if b[0] == "p" and b[1].startswith("Best on average"))
    assert best.startswith("Best on average: filter_size=5, optimizer.lr=0.01 with test")


def _best_on_average(tmp_path, summaries):
    """(the blocks of the report's second question, its "Best on average" paragraph) on a
    sweep of model.filter_size, one run of seed 0 each: ``summaries`` {filter size: the
    figures of its summary}."""
    from gpucnn.app import report

    for job, (k, figures) in enumerate(summaries.items()):
        config = {"model": {"filter_size": k}, "train": {"seed": 0}}
        summary = {"status": "ok", "weights": 100 * k, "seconds_per_epoch": 0.1, "seed": 0,
                   "config": config, **figures}  # fmt: skip
        _job(tmp_path / "sweep", job, [f"model.filter_size={k}"], json.dumps(summary))
    blocks = report.architecture.section(report.runs.collect([tmp_path / "sweep"]), tmp_path)
    return blocks, next(b[1] for b in blocks if b[0] == "p" and b[1].startswith("Best on average"))


def test_a_cheaper_setting_within_one_point_of_the_best_is_named_with_its_accuracy(tmp_path):
    _, best = _best_on_average(tmp_path, {5: {"test_accuracy": 0.85}, 3: {"test_accuracy": 0.845}})
    assert best.endswith(
        " Within one point of it in test accuracy, filter_size=3, at 0.845 (one run), needs only "
        "300 weights."
    )
    assert "Ranked on test accuracy, as not every finished run held out validation images" in best


def test_the_settings_worth_their_multiply_adds_are_named_cheapest_first(tmp_path):
    val = {3: 0.80, 5: 0.85, 7: 0.83}  # 7 costs more than 5 for less
    _, best = _best_on_average(
        tmp_path,
        {
            k: {"test_accuracy": a, "val_accuracy": a, "multiply_adds": 1000 * k}
            for k, a in val.items()
        },
    )
    assert best.endswith(
        " Worth their multiply-adds per image, as no other setting ranks as high for fewer (on "
        "the means of validation accuracy): filter_size=3 at 3,000 (0.800); filter_size=5 at "
        "5,000 (0.850)."
    )


def test_the_best_setting_is_chosen_on_validation_and_quoted_with_its_test_accuracy(tmp_path):
    """Chosen on the test images, the best setting's test accuracy would be the luckiest of
    several: the setting best on the validation images is named, with its test accuracy."""
    val = {3: 0.90, 5: 0.86, 7: 0.80}  # the test accuracies in the opposite order
    blocks, best = _best_on_average(
        tmp_path, {k: {"test_accuracy": 1.6 - a, "val_accuracy": a} for k, a in val.items()}
    )
    _, header, rows = next(b for b in blocks if b[0] == "table")
    cells = [dict(zip(header, row)) for row in rows]
    assert [c["val accuracy"] for c in cells] == ["0.9000", "0.8600", "0.8000"]
    assert [c["test accuracy"] for c in cells] == ["0.7000", "0.7400", "0.8000"]
    assert best.startswith("Best on average: filter_size=3 with test accuracy 0.700 (one run)")
    assert "Chosen on its validation accuracy, 0.900 (one run), so that" in best
    assert "Ranked on" not in best and "Within one point" not in best  # 5 is 4 points behind
    assert best.endswith(
        "Against the next best, filter_size=5, in validation accuracy by seed: +4.0 points from "
        "1 pair: no interval; repeat the runs (train.repeats=3) to tell them apart."
    )


@pytest.mark.parametrize("lead,said", [(2.0, "filter_size=5 is better"),
                                       (0.2, "not distinguishable with 3 pairs")])  # fmt: skip
def test_the_best_settings_lead_over_the_next_best_is_given_with_its_interval(tmp_path, lead, said):
    """The best of several settings may lead by luck: its lead over the next best, paired by
    seed, says whether three seeds tell them apart."""
    from gpucnn.app import report

    noise = [0.3, -0.4, 0.1]  # points, by seed
    for job, (k, seed) in enumerate((k, seed) for k in (3, 5, 7) for seed in range(3)):
        points = 80 + seed + {3: 0.0, 5: lead + noise[seed], 7: -5.0}[k]
        config = {"model": {"filter_size": k}, "train": {"seed": seed}}
        summary = {"status": "ok", "test_accuracy": 0.8, "val_accuracy": points / 100,
                   "weights": 100 * k, "seconds_per_epoch": 0.1, "config": config}  # fmt: skip
        overrides = [f"model.filter_size={k}", f"train.seed={seed}"]
        _job(tmp_path / "sweep", job, overrides, json.dumps(summary))
    blocks = report.architecture.section(report.runs.collect([tmp_path / "sweep"]), tmp_path)
    best = next(b[1] for b in blocks if b[0] == "p" and b[1].startswith("Best on average"))
    assert best.startswith("Best on average: filter_size=5 ")
    mean = lead + statistics.fmean(noise)
    assert (
        f"Against the next best, filter_size=3, in validation accuracy by seed: +{mean:.1f}" in best
    )
    assert said in best


def test_the_best_settings_curves_are_drawn_one_line_each(tmp_path, monkeypatch):
    """How each setting got where it ended, epoch by epoch: ten settings, the eight best drawn
    (a line per setting over its seeds), best first."""
    from gpucnn.app import report
    from gpucnn.app.results import METRICS

    job = 0
    for k in range(1, 11):
        for seed in range(2):
            accuracy = 0.5 + 0.03 * k + 0.001 * seed
            config = {"model": {"filter_size": k}, "train": {"seed": seed}}
            summary = {"status": "ok", "test_accuracy": accuracy, "weights": 10 * k,
                       "seconds_per_epoch": 0.1, "seed": seed, "config": config}  # fmt: skip
            _job(tmp_path / "sweep", job, [f"model.filter_size={k}"], json.dumps(summary))
            rows = [f"{e},1,0.5,{1 - accuracy * e / 3},{accuracy * e / 3},1,100" for e in (1, 2, 3)]
            (tmp_path / "sweep" / str(job) / "metrics.csv").write_text(
                ",".join(METRICS) + "\n" + "\n".join(rows) + "\n"
            )
            job += 1
    drawn = {}
    monkeypatch.setattr(
        report.curves, "save_figure", lambda figure, path: drawn.setdefault(path.name, figure)
    )
    blocks = report.architecture.section(report.runs.collect([tmp_path / "sweep"]), tmp_path)
    assert ("img", "setting_curves.png", "Validation loss and accuracy by epoch, the 8 best "
            "settings") in blocks  # fmt: skip
    accuracy_panel = drawn["setting_curves.png"].axes[1]
    lines = accuracy_panel.get_lines()
    assert [line.get_label() for line in lines] == [
        f"filter_size={k} (2 runs)" for k in range(10, 2, -1)
    ]
    assert list(lines[0].get_ydata()) == pytest.approx([(0.8 + 0.0005) * e / 3 for e in (1, 2, 3)])


def test_settings_a_run_does_not_read_are_not_its_values(tmp_path):
    """An MLP has no filter size: CNNs of filter 3 and 5 beside MLPs with the config's unread
    default of 3 have one effect of filter_size, and the MLPs' cells say they do not read it."""
    from gpucnn.app import report

    runs = [("cnn", 3, 0.80), ("cnn", 5, 0.82), ("mlp", 3, 0.70)]
    for job, (kind, k, accuracy, seed) in enumerate((*r, s) for r in runs for s in (0, 1)):
        accuracy += 0.001 * seed
        config = {"model": {"kind": kind, "filter_size": k}, "train": {"seed": seed}}
        summary = {"status": "ok", "test_accuracy": accuracy, "weights": 100 * k,
                   "seconds_per_epoch": 0.1, "seed": seed, "config": config}  # fmt: skip
        _job(tmp_path / "sweep", job, [f"model.kind={kind}"], json.dumps(summary))
    blocks = report.architecture.section(report.runs.collect([tmp_path / "sweep"]), tmp_path)
    _, header, rows = next(b for b in blocks if b[0] == "table")
    assert header[1:3] == ["model.filter_size", "model.kind"]
    assert (
        sorted((row[1], row[2]) for row in rows)
        == [("-", "mlp")] * 2 + [("3", "cnn")] * 2 + [("5", "cnn")] * 2
    )
    sentences = next(b[1] for b in blocks if b[0] == "list")
    (sentence,) = sentences  # an MLP and a CNN differ in more than their kind: no pair
    assert sentence.startswith("filter_size 5 vs 3: +2.0 points")


def test_a_runs_long_title_is_wrapped_above_its_curves(tmp_path, monkeypatch):
    from gpucnn.app import results

    figures = []
    monkeypatch.setattr(results, "save_figure", lambda fig, path: figures.append(fig))
    rows = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_accuracy": 0.2 * e}
        for e in (1, 2, 3)
    ]
    title = "lab_cnn3: " + ", ".join(f"model.key{i}=value{i}" for i in range(14))
    results.plot_curves(tmp_path / "curves.png", rows, title)
    (fig,) = figures
    lines = fig._suptitle.get_text().splitlines()
    assert len(lines) == 3 and " ".join(lines) == title and max(map(len, lines)) <= 110
    fig.canvas.draw()  # laid out: the title sits above the panels' own titles
    bottom_of_title = fig._suptitle.get_window_extent().y0
    assert all(ax.title.get_window_extent().y1 <= bottom_of_title for ax in fig.axes)


def test_the_runs_cnns_are_listed_once_each_with_every_run_that_built_one(tmp_path):
    """Two activations of one architecture are one CNN (not the last run's, with its
    activation); a fully connected run is none."""
    from gpucnn.app import report

    conv = {"layer": "Conv(filter_size=3, input_channel=1, output_channel=4, pad=1, stride=1)"}
    dense = {"layer": "Dense(64, 1)"}
    for job, (activation, layers, weights) in enumerate(
        [
            ("relu", [conv, dense], 100),
            ("sigmoid", [conv, dense], 100),
            ("relu", [conv, conv, dense], 250),
            ("relu", [dense], 64),
        ]
    ):
        config = {"model": {"activation": activation}, "train": {"seed": job}}
        summary = {"status": "ok", "test_accuracy": 0.8, "weights": weights, "layers": layers}
        summary["config"] = config
        _job(tmp_path / "sweep", job, [f"train.seed={job}"], json.dumps(summary))
    blocks = report.parameters.section(report.runs.collect([tmp_path / "sweep"]))
    listed = [b[1] for b in blocks if b[0] == "p" and b[1].startswith("The CNNs")]
    assert listed == [
        "The CNNs among these runs: 100 weights, 1 conv layer: runs 0, 1; "
        "250 weights, 2 conv layers: run 2."
    ]


def test_runs_tested_on_other_images_are_compared_only_among_themselves(tmp_path):
    """A run at 1.0 on an easy set of one's own is not the best setting of a Fashion-MNIST
    sweep: the runs of each test set are compared on their own."""
    from gpucnn.app import report

    runs = [("arrays", 3, 1.0), ("arrays", 5, 0.98)]
    runs += [("fashion_mnist", 3, 0.8), ("fashion_mnist", 5, 0.9)]
    for job, (name, k, accuracy) in enumerate(runs):
        config = {"data": {"name": name}, "model": {"filter_size": k}, "train": {"seed": 0}}
        summary = {"status": "ok", "test_accuracy": accuracy, "weights": 100 * k}
        summary.update(config=config, seconds_per_epoch=0.1)
        overrides = [f"data={name}", f"model.filter_size={k}"]
        _job(tmp_path / "runs", job, overrides, json.dumps(summary))
    collected = report.runs.collect([tmp_path / "runs"])
    blocks = report.architecture.section(collected, tmp_path)
    texts = [b[1] for b in blocks if b[0] in ("p", "h3")]
    assert texts[0].startswith(
        "These runs were tested on 2 different test sets (data.name differs)"
    )
    first = texts.index("Tested on data.name=arrays")
    second = texts.index("Tested on data.name=fashion_mnist")
    best = [t for t in texts if t.startswith("Best on average")]
    assert first < second and len(best) == 2
    assert "filter_size=3 with test accuracy 1.000" in best[0]
    assert "filter_size=5 with test accuracy 0.900" in best[1]
    for n in (1, 2):
        assert (tmp_path / f"effects_{n}.png").is_file()
        assert (tmp_path / f"accuracy_vs_cost_{n}.png").is_file()


def _copied_with(sweep, into, group, key, value):
    """A copy of the sweep's runs into ``into`` whose summaries say ``group.key=value``."""
    for job in sweep.iterdir():
        if (job / "summary.json").is_file():
            summary = json.loads((job / "summary.json").read_text())
            summary["config"][group][key] = value
            shutil.copytree(job, into / job.name)
            (into / job.name / "summary.json").write_text(json.dumps(summary))
    return into


def test_activations_on_other_test_sets_are_compared_apart(sweep, tmp_path):
    """ReLU and sigmoid runs of a binary task and of ten classes: the gradient norms, curves
    and findings of each task are their own, not means over both."""
    other = _copied_with(sweep, tmp_path / "multiclass", "data", "task", "multiclass")
    proc = tool("report", sweep, other, "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    q1 = md[md.index("## 1.") : md.index("## 2.")]
    assert "tested on 2 different test sets (data.task differs)" in q1
    binary, multiclass = q1.index("### Tested on data.task=binary"), q1.index("=multiclass")
    for start, end in ((binary, multiclass), (multiclass, len(q1))):
        part = q1[start:end]
        assert "**3 conv layers, ReLU against sigmoid.**" in part
        assert "Test accuracy: ReLU" in part and "(95% interval, 3 seeds)" in part  # not 6
    for name in ("gradient_norms", "curves", "sparsity_saturation", "step_time"):
        assert {p.name for p in (tmp_path / "r").glob(f"{name}*")} == {
            f"{name}_1.png",
            f"{name}_2.png",
        }


def test_a_bar_in_a_table_cell_stays_in_its_cell():
    """Runs named after folders such as 'a|b' would shift every cell after them."""
    from gpucnn.app.document import to_markdown

    md = to_markdown([("table", ["run", "accuracy"], [["cats|dogs/0", "0.9"]])])
    assert md.splitlines()[2] == r"| cats\|dogs/0 | 0.9 |"


def test_activations_swept_beside_another_setting_are_compared_within_each(sweep, tmp_path):
    """relu_vs_sigmoid's runs again with another learning rate: two settings for each
    depth and activation, each of three seeds, not one of six."""
    other = _copied_with(sweep, tmp_path / "lr", "optimizer", "lr", 0.01)
    proc = tool("report", sweep, other, "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    q1 = md[md.index("## 1.") : md.index("## 2.")]
    for depth in (3, 5):
        for lr in ("0.001", "0.01"):
            assert f"**{depth} conv layers, ReLU against sigmoid (optimizer.lr={lr}).**" in q1
    assert q1.count("(95% interval, 3 seeds)") == 8 and "6 seeds" not in q1


def test_a_list_cut_short_says_how_many_more_there_are():
    from gpucnn.app.results import first_of

    assert first_of(list("abcde"), 3) == "a, b, c and 2 more"
    assert first_of(list("abc"), 3) == "a, b, c" and first_of(list("ab"), 3, "; ") == "a; b"
