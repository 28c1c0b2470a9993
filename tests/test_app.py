"""The Hydra app: one run through the real entry point, sweeps, launchers, presets, config errors.

Everything runs on the CPU for one epoch on a few hundred images.
"""

import csv
import json
import math
import multiprocessing
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import open_dict

from gpucnn.app import sweep
from gpucnn.app.config import check_overrides_read, register, validate
from gpucnn.app.experiment import run_job
from gpucnn.errors import ConfigError

from .helpers import TINY, app, model_for, tool

CONF = Path(__file__).resolve().parent.parent / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def composed(*overrides):
    register()
    with initialize_config_module(config_module="gpucnn.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize(
    "name", ["evaluate", "predict", "visualize", "report", "summarize", "check"]
)
def test_a_tools_help_shows_its_documentation_as_written(name):
    import importlib

    doc = importlib.import_module(f"gpucnn.app.{name}").__doc__
    proc = tool(name, "--help")
    assert proc.returncode == 0, proc.stderr
    shown = proc.stdout.splitlines()
    # Line by line, so that the example commands stay one per line.
    assert all(line in shown for line in doc.strip().splitlines()), proc.stdout


def test_python_m_gpucnn_lists_every_command(capsys):
    from gpucnn import __version__
    from gpucnn.__main__ import COMMANDS, main

    package = Path(__file__).resolve().parent.parent / "gpucnn"
    entry_points = sorted(
        p.stem for p in package.glob("*.py") if "The command's entry point" in p.read_text()
    )
    assert sorted(COMMANDS) == entry_points
    proc = subprocess.run(
        [sys.executable, "-m", "gpucnn"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for name in COMMANDS:
        assert f"\n  python -m gpucnn.{name}" in proc.stdout
    assert "  python -m gpucnn.predict RUN_DIR IMAGES... [--json]: classify" in proc.stdout
    given = subprocess.run(
        [sys.executable, "-m", "gpucnn", "run", "model.channels=[8,16]"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert given.returncode == 2
    assert "run python -m gpucnn.run 'model.channels=[8,16]'" in given.stderr
    assert "COMMAND:" not in given.stderr
    assert main(["train", "x=1"]) == 2
    assert capsys.readouterr().err.endswith(
        "run python -m gpucnn.COMMAND x=1 (a COMMAND: run, lr_find, describe, bench, evaluate, "
        "predict, visualize, report, summarize, check)\n"
    )
    assert main(["--version"]) == 0 and capsys.readouterr().out == f"gpucnn {__version__}\n"


@pytest.mark.parametrize("name", ["run", "bench"])
def test_the_hydra_apps_help_starts_with_what_to_type(name):
    proc = tool(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"python -m gpucnn.{name} [overrides]: ")
    assert f"\n  python -m gpucnn.{name} " in proc.stdout  # an example, on its own line
    assert "== Configuration groups ==" in proc.stdout


def test_one_run_writes_every_result_file(tmp_path):
    out = tmp_path / "run"
    proc = app(*TINY, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    assert f"results in {out}" in proc.stdout + proc.stderr
    assert "sweep: " not in proc.stdout  # a single run is no sweep
    for name in (".hydra/config.yaml", "metrics.csv", "summary.json", "curves.png", "model.npz"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 1 and set(rows[0]) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
        "images_per_second",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok"
    for key in (
        "test_accuracy",
        "test_loss",
        "weights",
        "biases",
        "layers",
        "epoch_seconds",
        "backend",
        "device",
        "versions",
        "seed",
        "config",
    ):
        assert key in summary, key
    assert summary["weights"] == 88_784 and summary["layers"][0]["output_shape"] == [16, 32, 32]
    assert summary["multiply_adds"] == 2_572_352
    assert summary["layers"][0]["multiply_adds"] == 16 * 32 * 32 * 9
    assert 0 <= summary["test_accuracy"] <= 1 and summary["config"]["train"]["epochs"] == 1
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    with np.load(out / "model.npz") as weights:
        assert weights["0.W"].shape == (16, 1, 3, 3)


def test_a_sweep_survives_an_impossible_combination(tmp_path):
    proc = app(
        "-m",
        *TINY,
        "model=cnn",
        "model.pool_size=2,4",
        "model.channels=[4],[4,4,4]",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert proc.returncode == 8, proc.stderr  # the sweep ran to its end, one job did not
    assert "not every job ended ok (1 invalid_config)" in proc.stdout
    progress = [line for line in proc.stdout.splitlines() if line.startswith("sweep: ")]
    assert len(progress) == 4 and progress[0].startswith("sweep: 1 of 4 jobs done")
    assert progress[-1] == "sweep: 4 of 4 jobs done (1 invalid_config)"
    rows = list(csv.DictReader((tmp_path / "sweep_summary.csv").open()))
    assert sorted(r["status"] for r in rows) == ["invalid_config", "ok", "ok", "ok"]
    bad = next(r for r in rows if r["status"] == "invalid_config")
    assert (bad["model.pool_size"], bad["model.channels"]) == ("4", "[4,4,4]")
    assert "MaxPool" in bad["reason"] and "does not fit" in bad["reason"]
    assert rows[0]["status"] == "ok" and float(rows[0]["val_accuracy"]) >= max(
        float(r["val_accuracy"]) for r in rows if r["status"] == "ok"
    )  # ranked on validation accuracy
    best = next(r for r in csv.DictReader((tmp_path / "sweep_runs.csv").open()))["job"]
    assert f"best run: {tmp_path / best} (its best on validation accuracy " in proc.stdout
    assert (tmp_path / "sweep.png").is_file() and (tmp_path / "sweep_summary.md").is_file()
    invalid_dir = tmp_path / bad["jobs"]
    assert json.loads((invalid_dir / "summary.json").read_text())["status"] == "invalid_config"


def test_summarize_a_sweep_while_it_is_unfinished(tmp_path):
    proc = app("-m", *TINY, "model=cnn", "model.filter_size=3,5", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "sweep_summary.csv").unlink()
    (tmp_path / "1" / "summary.json").unlink()  # as if job 1 were still running
    done = subprocess.run(
        [sys.executable, "-m", "gpucnn.summarize", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "sweep_summary.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "running"]
    assert f"best run: {tmp_path / '0'} (its best on validation accuracy " in done.stdout
    # How far it got, as the sweep itself says it: planned from its multirun.yaml, the time
    # left at the pace since that file was written (job 0's summary, a moment later).
    (said,) = [line for line in done.stdout.splitlines() if line.startswith("sweep: ")]
    assert re.fullmatch(r"sweep: 1 of 2 jobs done, about \d+ s left", said), said


def test_summarize_shows_a_sweep_it_cannot_write_into(tmp_path, monkeypatch, capsys):
    from gpucnn.app import summarize

    proc = app("-m", *TINY, "model.filter_size=3,5", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr

    def read_only(sweep_dir):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(summarize, "summarize", read_only)  # a sweep that is not ours
    assert summarize.main([str(tmp_path)]) == 7
    out, err = capsys.readouterr()
    assert f"cannot write into {tmp_path} (Permission denied)" in err
    assert "| model.filter_size | runs |" in out  # the table all the same


def test_summarize_refuses_a_folder_without_runs_and_writes_nothing_there(tmp_path):
    (tmp_path / "2026-12-06_04-10-11-000000" / "0" / ".hydra").mkdir(parents=True)  # a sweep
    proc = tool("summarize", tmp_path)  # its parent, as outputs/multiruns
    assert proc.returncode == 2, proc.stderr
    sweep = tmp_path / "2026-12-06_04-10-11-000000"
    assert f"holds sweeps, not runs: give a sweep directory, e.g. {sweep} (all 1:" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-12-06_04-10-11-000000"]
    (tmp_path / "jobs.json").write_text("[]")  # a cluster sweep whose jobs have no folder yet
    assert tool("summarize", tmp_path).returncode == 0


def test_summarize_lists_the_submitted_jobs_that_have_not_started(tmp_path, monkeypatch):
    proc = app("-m", *TINY, "model=cnn", "model.filter_size=3", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    ran = json.loads((tmp_path / "0" / "summary.json").read_text())["overrides"]
    shared = [o for o in ran if not o.startswith("model.filter_size")]  # as the launcher has them
    submitted = [
        {"job": n, "slurm_id": f"9_{n}", "overrides": [*shared, f"model.filter_size={k}"]}
        for n, k in ((0, 3), (1, 5), (2, 7))
    ]
    (tmp_path / "jobs.json").write_text(json.dumps(submitted))
    monkeypatch.setattr(sweep, "slurm_states", lambda ids: {"9_1": "pending"})  # squeue's view
    rows, keys, _ = sweep.collect(tmp_path)
    assert [(r["job"], r["model.filter_size"], r["status"]) for r in rows] == [
        ("0", "3", "ok"),
        ("1", "5", "pending"),
        ("2", "7", "not started"),  # no longer queued, never started
    ]
    assert keys == ["model.filter_size"]


@pytest.mark.parametrize(
    "launcher,plugin",
    [
        ("joblib", "hydra_plugins.hydra_joblib_launcher"),
        ("submitit_local", "hydra_plugins.hydra_submitit_launcher"),
    ],
)
def test_parallel_launchers_run_a_sweep(tmp_path, launcher, plugin):
    pytest.importorskip(plugin, reason='the sweep extra is needed: pip install -e ".[sweep]"')
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    proc = app(
        "-m",
        f"hydra/launcher={launcher}",
        *extra,
        *TINY,
        "model.filter_size=3,5",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "sweep_summary.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    if launcher == "joblib":  # (submitit's jobs print into their own logs)
        assert "sweep: 2 of 2 jobs done" in proc.stdout


def test_optuna_search_runs_three_trials(tmp_path):
    pytest.importorskip(
        "hydra_plugins.hydra_optuna_sweeper",
        reason='the sweep extra is needed: pip install -e ".[sweep]"',
    )
    proc = app(
        "-m",
        "experiment=optuna_search",
        "hydra.sweeper.n_trials=3",
        *TINY,
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,  # the study goes to outputs/optuna/ below the working directory
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "outputs" / "optuna" / "gpucnn.db").is_file()
    assert "Best value" in proc.stdout + proc.stderr
    rows = list(csv.DictReader((tmp_path / "sweep_summary.csv").open()))
    assert len(rows) == 3 and "optimizer.lr" in rows[0]
    # Optuna's lines in the sweep's format, without terminal colour codes (in a log file too)
    assert "] A new study created in RDB with name: gpucnn\n" in proc.stdout + proc.stderr
    assert "\x1b[" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("side, ended", [(6, {"ok", "invalid_config"}), (3, {"invalid_config"})])
def test_an_optuna_search_goes_on_past_impossible_architectures(tmp_path, side, ended):
    """On 6x6 images some sampled architectures pool their maps away, on 3x3 all do: a failed
    trial is counted failed and the search goes on, to its summary and exit 8, no traceback."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the sweep extra")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (80, side, side), dtype=np.uint8), np.arange(80) % 2
    np.savez(tmp_path / "small.npz", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    proc = app("-m", "experiment=optuna_search", "hydra.sweeper.n_trials=3",
               "hydra.sweeper.n_jobs=1", "data=arrays", f"data.path={tmp_path / 'small.npz'}",
               "train.epochs=1", "train.batch_size=16", "backend=numpy", "train.progress=false",
               f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 8, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Failed experiment: the run did not end ok: its reason is in" in proc.stdout
    assert "Error executing job" not in proc.stderr  # the two lines above say it all
    rows = list(csv.DictReader((tmp_path / "sweep" / "sweep_runs.csv").open()))
    assert len(rows) == 3 and {r["status"] for r in rows} == ended


def _open_studies(storages, name, barrier):
    """Open each new study database at the same moment as the other process does."""
    from hydra_plugins.gpucnn_plugins._optuna_sweeper import _finished

    try:
        for storage in storages:
            barrier.wait(timeout=60)
            _finished(storage, name)
    except BaseException:
        barrier.abort()  # the other process stops waiting
        raise


def test_searches_opening_a_new_study_database_together_both_start(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs the sweep extra")
    # Optuna makes a new database's tables when it first opens it: two processes doing so at
    # the same moment collide unless the one that fails tries again.
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    storages = [f"sqlite:///{tmp_path / f'{i}.db'}" for i in range(4)]
    procs = [spawn.Process(target=_open_studies, args=(storages, n, barrier)) for n in "ab"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0, 0]


def _first_combination(cfg):
    """The overrides of a preset sweep's first job."""
    params = cfg.hydra.sweeper.get("params") or {}
    out = []
    for key, value in params.items():
        value = str(value)
        if value.startswith("choice("):
            value = value[len("choice(") : -1]
        if value.startswith("tag("):
            value = "0.001"
        first = value.split("],")[0] + "]" if value.startswith("[") else value.split(",")[0]
        out.append(f"{key}={first}")
    return out


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_preset_composes_and_runs(tmp_path, name):
    if name == "optuna_search":
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs the sweep extra")
    cfg = composed(f"experiment={name}", *TINY)
    first = _first_combination(cfg)
    assert first, f"experiment {name} sweeps nothing"
    cfg = composed(f"experiment={name}", *TINY, *first)
    with open_dict(cfg):
        del cfg["hydra"]  # as the app sees it
    value = run_job(cfg, tmp_path, first, job_num=0)  # one job of the sweep
    assert math.isfinite(value)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "ok"


@pytest.mark.parametrize("multirun", [[], ["-m"]])
def test_a_misspelt_experiment_is_refused_not_skipped(tmp_path, multirun):
    """An optional experiment group made experiment=relu_vs_sigmod run the defaults instead
    (one job, where the preset has twelve), without a word."""
    proc = app(*multirun, "experiment=relu_vs_sigmod", *TINY, f"hydra.run.dir={tmp_path}",
               f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Could not find 'experiment/relu_vs_sigmod'" in proc.stderr
    assert "relu_vs_sigmoid" in proc.stderr and not (tmp_path / "summary.json").exists()
    assert not list(tmp_path.glob("*/summary.json"))


def test_a_preset_of_ones_own_runs_from_its_folder_as_the_readme_shows(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (preset,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "depth" in b]
    (tmp_path / "myconf" / "experiment").mkdir(parents=True)
    (tmp_path / "myconf" / "experiment" / "depth.yaml").write_text(preset)
    sweep = tmp_path / "sweep"
    proc = app("-m", "--config-dir", str(tmp_path / "myconf"), "experiment=depth", *TINY,
               "train.repeats=1", f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    channels = sorted(s["config"]["model"]["channels"] for s in summaries)
    assert channels == [[16, 16, 32, 32, 64], [16, 32], [16, 32, 64]]


def test_a_presets_swept_key_of_no_setting_is_named_with_the_one_it_may_be(tmp_path):
    """Hydra's error for it ends in 'use +model.filtersize=3', which only moves the refusal."""
    (tmp_path / "myconf" / "experiment").mkdir(parents=True)
    (tmp_path / "myconf" / "experiment" / "typo.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n      model.filtersize: 3,5\n"
    )
    proc = app("-m", "--config-dir", str(tmp_path / "myconf"), "experiment=typo",
               f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: model.filtersize is not a setting: nothing reads it (did you mean "
        "model.filter_size?); python -m gpucnn.run --help lists them all"
    )
    assert not list(tmp_path.glob("sweep/*/summary.json"))


def test_the_binary_classes_can_be_named(tmp_path):
    proc = app(
        *TINY, "data.positive=[Trouser]", "data.negative=[Dress]", f"hydra.run.dir={tmp_path}"
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["classes"] == ["Dress", "Trouser"]
    proc = app(*TINY, "data.positive=[trouser]", f"hydra.run.dir={tmp_path / 'typo'}")
    assert proc.returncode == 2 and "'trouser' is no class" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "command, override, says",
    [
        # A key of no setting, named with the one it may be (Hydra would suggest +key=...).
        (
            "run",
            "model.filtr_size=3",
            "model.filtr_size is not a setting: nothing reads it (did "
            "you mean model.filter_size?); python -m gpucnn.run --help lists them all",
        ),
        ("run", "epochs=5", "epochs is not a setting: nothing reads it (did you mean train.ep"),
        ("run", "lr=0.1", "lr is not a setting: nothing reads it (did you mean optimizer.lr?)"),
        (
            "run",
            "train.epochs=many",
            "Value 'many' of type 'str' could not be converted to Integer",
        ),
        ("run", "model=lab_cnn4", "Could not find 'model/lab_cnn4'"),
        (
            "bench",
            "bench.epoch=1",
            "bench.epoch is not a setting: nothing reads it (did you "
            "mean bench.epochs or train.epochs?); python -m gpucnn.bench --help",
        ),
        ("bench", "batch_sizes=[64]", "(did you mean bench.batch_sizes?)"),
        # One value for a list: Hydra's "str is not a ListConfig" did not say what to write.
        ("run", "data.positive=Coat", "data.positive=Coat: data.positive takes a list: "),
        ("run", "data.positive=null", "field 'data.positive' is not Optional"),  # Hydra's
        (
            "run",
            "data.positive=4,6",
            "data.positive=[4,6] for one list of them, or data.positive=[4],[6] to sweep",
        ),
        (
            "bench",
            "bench.batch_sizes=128",
            "bench.batch_sizes takes a list: bench.batch_sizes=[128]",
        ),
        # The shell expands no ~ after data.root= (not a variable name), and Hydra cannot parse it.
        (
            "run",
            "data.root=~/shapes",
            "write data.root=$HOME/shapes, or quote it: 'data.root=\"~/shapes\"'",
        ),
        ("bench", "data.root=~", "write data.root=$HOME, or quote it"),
    ],
)
def test_a_command_line_hydra_cannot_compose_is_an_invalid_config(
    tmp_path, command, override, says
):
    """Hydra's own errors (exit 1 by Hydra, which means a bug here) exit 2, and name the key."""
    proc = (app if command == "run" else lambda *a: tool("bench", *a))(
        override, f"hydra.run.dir={tmp_path}"
    )
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "override, says",
    [
        (
            "+train.lr=0.1",
            "train.lr is not a setting: nothing reads it (did you mean optimizer.lr?)",
        ),
        ("+model.dropuot=0.5", "model.dropuot is not a setting: nothing reads it (did you mean "),
        ("+bench.epochs=2", "bench.epochs is not a setting"),  # the benchmark's, not a run's
        ("+data.chanels=3", "(did you mean data.channels or model.channels?)"),
        ("+train.foo=1", "train.foo is not a setting: nothing reads it; python -m gpucnn.run"),
    ],
)
def test_a_key_appended_with_a_plus_is_refused_unless_the_schema_has_it(override, says):
    """Hydra's error for an unknown key says to append it with +, which it then accepts."""
    with pytest.raises(ConfigError, match=re.escape(says)):
        validate(composed(override))


def test_a_bug_in_a_job_is_still_exit_1_with_its_traceback(tmp_path):
    broken = (
        "import runpy, gpucnn.app.run as r\n"
        "def bug(*a, **k): raise RuntimeError('a bug')\n"
        "r.run_job = bug\n"
        "runpy.run_module('gpucnn.run', run_name='__main__')"
    )
    cmd = [sys.executable, "-c", broken, *TINY, f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "RuntimeError: a bug" in proc.stderr


def test_an_impossible_value_fails_before_data_with_one_line(tmp_path):
    proc = app(
        "model.dropout=1.5", "data.name=mnist", "data.download=false", f"hydra.run.dir={tmp_path}"
    )
    assert proc.returncode == 2
    output = (proc.stdout + proc.stderr).splitlines()
    errors = [line for line in output if "invalid config" in line]
    assert len(errors) == 1 and "model.dropout=1.5 must be in [0, 1)" in errors[0]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "invalid_config"


@pytest.mark.parametrize(
    "override,match",
    [
        ("model.activation=gelu", "model.activation='gelu'"),
        ("model.channels=[]", "model.channels"),
        ("model.filter_size=[3,0]", r"model.filter_size=\[3, 0\]"),
        ("model.stride=0", "model.stride=0 is not allowed: use a positive integer"),
        ("model.init=xavier", "model.init='xavier' is unknown: choose auto, he or glorot"),
        ("model.padding=half", "model.padding='half'"),
        ("data.positive=[0]", r"share classes \[0\]"),
        ("data.positive=[1.5]", r"data.positive: 1.5 is no class; give class numbers 0..9 or"),
        # The named sets' classes are known before their data is read.
        (
            "data.positive=[Shrt]",
            r"'Shrt' is no class \(did you mean 'Shirt'\?\); .* \(T-shirt/top,",
        ),
        ("data.negative=[10]", r"data.negative has classes \[10\] outside 0..9"),
        ("data.pad_to=0", "data.pad_to=0 must be null or a positive"),
        ("data.channels=2", "data.channels=2: choose 1"),
        ("data.fit=crop", "data.fit='crop' is unknown: choose pad or stretch"),
        ("data=folder", "data=folder needs data.root=DIR"),
        ("data=arrays", "data=arrays needs data.path=FILE.npz"),
        ("data.test_fraction=1", "data.test_fraction=1 leaves no image to train on"),
        ("optimizer.lr=-1", "optimizer.lr must be a finite number > 0"),
        ("optimizer.lr=inf", "optimizer.lr must be a finite number > 0, got inf"),
        ("optimizer.eps=0", "optimizer.eps must be a finite number > 0"),
        ("optimizer.clip_norm=0", r"optimizer.clip_norm must be a finite number > 0 \(1 is usual"),
        ("model.pool=min", r"model.pool='min' is unknown: choose max or avg"),
        ("train.seed=-1", "train.seed=-1 must be >= 0"),
        ("data.task=regression", "data.task='regression' is unknown"),
        ("train.batch_size=0", "train.batch_size=0"),
        ("backend.name=tpu", "backend.name='tpu'"),
        # a choice in another case, or misspelt, is named with the one it may be
        ("model.activation=ReLU", r"'ReLU' is unknown \(did you mean 'relu'\?\): choose relu, sig"),
        (
            "model.hidden_activation=Tanh",
            r"hidden_activation='Tanh' is unknown \(did you mean 'tanh",
        ),
        ("data.task=Multiclass", r"data.task='Multiclass' is unknown \(did you mean 'multiclass"),
        ("backend.dtype=float16", r"dtype='float16' is unknown: choose float32 or float64"),
        ("backend.kernels=referense", r"'referense' is unknown \(did you mean 'reference'\?\)"),
        ("data.fit=Pad", r"data.fit='Pad' is unknown \(did you mean 'pad'\?\)"),
        ("model.hidden=[64,0]", r"model.hidden=\[64, 0\]: list positive layer widths"),
        ("data.val_fraction=1", r"data.val_fraction=1.0 must be in \[0, 1\)"),
        ("data.limit_train=0", "data.limit_train=0 must be null or a positive number of images"),
        ("train.threads=0", r"train.threads=0 must be null \(the job's share of the cores\)"),
        ("train.checkpoint_every_steps=0", "train.checkpoint_every_steps=0 must be null or >= 1"),
        ("diagnostics.every=0", "diagnostics.every=0 must be >= 1"),
        ("train.micro_batch=-1", r"train.micro_batch=-1 must be >= 0 \(0: whole batches\)"),
        ("train.repeats=0", "train.repeats=0 must be an integer >= 1"),
        ("train.eval_batch_size=0", "train.eval_batch_size=0 must be a positive integer"),
    ],
)
def test_validation_names_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        validate(composed(override))


@pytest.mark.parametrize("other", ["backend.dtype=float64", "backend.kernels=reference"])
def test_tf32_with_settings_that_run_no_float32_gpu_kernels_is_refused(other):
    with pytest.raises(ConfigError, match="backend.tf32=true rounds the float32 products of the"):
        validate(composed("backend.tf32=true", other))


@pytest.mark.parametrize(
    "overrides,match",
    [
        (
            ["optimizer=sgd", "optimizer.momentum=0.9"],
            "optimizer.momentum does nothing with optimizer=sgd: only optimizer=momentum reads it",
        ),
        (["optimizer.nesterov=true"], "optimizer.nesterov does nothing with optimizer=adam"),
        (["optimizer=momentum", "optimizer.beta2=0.9"], "only optimizer=adam or optimizer=adamw"),
        (["model=lab_mlp4", "model.filter_size=5"], r"with model=lab_mlp4 \(model.kind=mlp\)"),
        (["model=lab_mlp1", "model.stride=2"], r"model.stride does nothing with model=lab_mlp1"),
        (["model=lab_mlp4", "model.global_pool=true"], r"model.global_pool does nothing with"),
        (["model=lab_mlp1", "model.hidden_activation=tanh"], "model.hidden_activation does"),
        (["model=lab_mlp4", "train.micro_batch=16"], "train.micro_batch does nothing with model="),
        (["data.image_size=64"], "data.image_size does nothing with data=fashion_mnist_mini"),
        (["data.root=/data"], "only data=fashion_mnist, data=mnist or data=folder read it"),
        (["data=mnist", "data.path=x.npz"], "data.path does nothing with data=mnist"),
        (["data.task=multiclass", "+data.positive=[3]"], "only data.task=binary reads it"),
        (["data.task=multiclass", "data.positive=[Shrt]"], "only data.task=binary reads it"),
        (["diagnostics.every=5"], "with diagnostics.enabled=false: only diagnostics.enabled=true"),
        (["logger=tensorboard", "logger.experiment=x"], "only logger=mlflow reads it"),
        (["backend=numpy", "backend.tf32=true"], "backend.tf32 does nothing with backend=numpy"),
    ],
)
def test_a_setting_the_chosen_options_do_not_read_is_refused(overrides, match):
    """optimizer=sgd optimizer.momentum=0.9 would train without momentum, without a word."""
    cfg = composed(*overrides)
    validate(cfg)
    with pytest.raises(ConfigError, match=match):
        check_overrides_read(cfg, overrides)
    for fine in (
        ["optimizer=momentum", "optimizer.nesterov=true"],
        ["data.task=binary", "data.positive=[3]"],
        ["data=folder", "data.root=/d", "data.image_size=64"],
    ):
        check_overrides_read(composed(*fine), fine)


def test_optimizer_adamw_is_adam_with_decoupled_weight_decay_of_001_by_default():
    from gpucnn.app.config import build_optimizer
    from gpucnn.optimizers import AdamW

    overrides = ["optimizer=adamw", "optimizer.beta1=0.8"]  # Adam's settings are AdamW's
    cfg = composed(*overrides)
    check_overrides_read(cfg, overrides)
    opt = build_optimizer(cfg.optimizer)
    assert type(opt) is AdamW and (opt.weight_decay, opt.beta1, opt.lr) == (0.01, 0.8, 1e-3)


def test_label_smoothing_outside_its_range_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"train.label_smoothing=1.0 must be in \[0, 1\)"):
        validate(composed("train.label_smoothing=1.0"))
    validate(composed("train.label_smoothing=0.1"))


def test_a_run_with_a_setting_its_options_do_not_read_stops_before_data(tmp_path):
    proc = app("optimizer=sgd", "optimizer.momentum=0.9", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "invalid config" in line]
    assert len(errors) == 1 and "optimizer.momentum does nothing with optimizer=sgd" in errors[0]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "invalid_config"


@pytest.mark.parametrize(
    "override,match",
    [
        ("model.filter_size=[3,5]", "model.filter_size has 2 values but there are 3 conv blocks"),
        ("model.filter_size=4", "model.padding=same needs an odd filter_size"),
        ("model.padding=[1,same]", "model.padding has 2 values but there are 3 conv blocks"),
        ("model.stride=[1,2]", "model.stride has 2 values but there are 3 conv blocks"),
    ],
)
def test_per_block_sizes_are_checked_before_any_data_is_loaded(override, match):
    """They need no image: a folder of photos is not decoded to find a list one too long."""
    cfg = composed(override)
    with pytest.raises(ConfigError, match=match):
        validate(cfg)
    with pytest.raises(ConfigError, match=match):  # and the library's own check names the key
        model_for(cfg)


def test_a_terminal_gets_a_progress_bar_with_loss_and_speed(tmp_path, monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    cfg = composed(*TINY, "train.progress=true", "data.limit_train=700")
    with open_dict(cfg):
        del cfg["hydra"]
    run_job(cfg, tmp_path, [])
    shown = screen.getvalue()
    assert "epoch 1/1:" in shown and "loss=" in shown and "img_s=" in shown


def test_hydras_plugin_scan_passes_over_ours_without_the_sweep_extra(monkeypatch):
    """A regular install puts hydra_plugins/gpucnn_plugins where Hydra scans; without the
    sweep extra our modules must not be imported there (each would warn of a broken plugin)."""
    import types
    import warnings
    from pathlib import Path

    from hydra.core.plugins import Plugins

    for missing in ("hydra_plugins.hydra_optuna_sweeper", "hydra_plugins.hydra_submitit_launcher"):
        monkeypatch.setitem(sys.modules, missing, None)  # importing it raises ImportError
    for name in [m for m in sys.modules if m.startswith("hydra_plugins.gpucnn_plugins.")]:
        monkeypatch.delitem(sys.modules, name)
    package = types.SimpleNamespace(
        __name__="hydra_plugins", __path__=[str(Path(__file__).parents[1] / "hydra_plugins")]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Plugins._scan_all_plugins([package])
    assert [str(w.message) for w in caught] == []


def test_a_sweep_plugin_that_is_not_installed_is_named_with_the_extra(monkeypatch):
    import importlib.util

    from gpucnn.app.run import missing_extra

    assert missing_extra(["-m", "hydra/launcher=joblib", "experiment=optuna_search"]) is None
    real = importlib.util.find_spec
    absent = {"hydra_plugins.hydra_joblib_launcher", "hydra_plugins.hydra_submitit_launcher"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name in absent else real(name)
    )
    assert missing_extra(["-m", "experiment=optuna_search", "train.epochs=1"]) is None
    why = missing_extra(["-m", "hydra/launcher=slurm_cpu", "hydra/launcher=joblib"])
    assert why.startswith("hydra/launcher=slurm_cpu needs Hydra's submitit launcher, which")
    assert why.endswith("pip install 'gpucnn[sweep]' (in a checkout: pip install -e '.[sweep]')")


def test_summarize_refuses_one_run_and_writes_nothing_into_it(tmp_path):
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / "summary.json").write_text('{"status": "ok"}')
    proc = tool("summarize", tmp_path / "run")
    assert proc.returncode == 2 and "run is one run, not a sweep: give the sweep's" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".hydra", "summary.json"]


def test_the_seconds_per_epoch_of_two_epochs_are_the_faster_ones(tmp_path):
    proc = app(*TINY, "train.epochs=2", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["epoch_seconds"]) == 2
    assert summary["seconds_per_epoch"] == min(summary["epoch_seconds"])


def test_a_regular_install_holds_every_package():
    """pyproject lists the packages by name: one left out is missing from a regular (not
    editable) install, while the tests, run from the checkout, still find it."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads TOML")

    root = Path(__file__).resolve().parent.parent
    listed = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = {
        ".".join(init.parent.relative_to(root).parts)
        for top in ("gpucnn", "hydra_plugins")
        for init in (root / top).rglob("__init__.py")
    }
    assert found <= set(listed), "add these to pyproject's packages"


def test_the_epoch_lines_give_each_figure_to_a_fixed_number_of_decimals(tmp_path, caplog):
    """So that one epoch's line sits under the last: 0.83 is written 0.8300, not 0.83."""
    cfg = composed(*TINY, "train.epochs=2", "optimizer.schedule=cosine")
    with open_dict(cfg):
        del cfg["hydra"]
    with caplog.at_level("INFO", logger="gpucnn.app.trainer"):
        run_job(cfg, tmp_path, [])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(lines) == 2
    for line in lines:
        figures = dict(re.findall(r"(\w+) ([-0-9.e+]+)(?:  |$)", line.split(": ", 1)[1]))
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert re.fullmatch(r"\d+\.\d{4}", figures[key]), (key, line)
        assert re.fullmatch(r"\d+\.\d{2}", figures["seconds"]), line
        assert re.fullmatch(r"\d+", figures["images_per_second"]), line
        assert "lr" in figures, line
