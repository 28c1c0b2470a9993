"""logger=tensorboard and logger=mlflow: what a run logs, read back with each tool's own reader."""

import csv
import logging

import pytest

from gpucnn.app import loggers
from gpucnn.errors import ConfigError

from .helpers import TINY, app

tensorboard = pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")


def store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def client(tmp_path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(store(tmp_path))


def runs(tmp_path):
    found = client(tmp_path).get_experiment_by_name("gpucnn")
    return client(tmp_path).search_runs([found.experiment_id])


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One run of two epochs with both loggers, into a store of its own."""
    tmp_path = tmp_path_factory.mktemp("logged")
    run_dir = tmp_path / "run"
    proc = app(
        *TINY,
        "train.epochs=2",
        "model.channels=[4,8]",
        "logger=[tensorboard,mlflow]",
        f"logger.tracking_uri={store(tmp_path)}",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.returncode == 0, proc.stderr
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return tmp_path, run_dir, rows


def test_tensorboard_event_files_hold_every_epochs_metrics_and_the_model(logged):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run_dir, rows = logged
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    for column, tag in (("val_accuracy", "accuracy/val"), ("train_loss", "loss/train")):
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert got == [(int(r["epoch"]), pytest.approx(float(r[column]), rel=1e-6)) for r in rows]
    (text,) = events.Tensors("model/text_summary")
    summary = text.tensor_proto.string_val[0].decode()
    assert "input_channel=1, output_channel=4" in summary and "total: " in summary
    (curves,) = events.Images("curves")
    assert curves.step == 2 and curves.width > 100 and curves.height > 100
    hparams = EventAccumulator(str(run_dir / "tensorboard" / "hparams"))
    hparams.Reload()
    assert "final/test_accuracy" in hparams.Tags()["scalars"]


def test_a_run_trained_on_from_another_directory_logs_its_earlier_epochs_too(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging_ = ["logger=[tensorboard,mlflow]", f"logger.tracking_uri={store(tmp_path)}"]
    assert app(*TINY, "train.epochs=1", cwd=tmp_path).returncode == 0  # no loggers then
    longer = app(*TINY, "train.epochs=2", "train.resume=true", *logging_, cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr
    run_dir = sorted((tmp_path / "outputs/runs").iterdir())[1]
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    expected = [(int(r["epoch"]), pytest.approx(float(r["val_loss"]), rel=1e-6)) for r in rows]
    assert len(expected) == 2
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss/val")] == expected
    (run,) = runs(tmp_path)
    history = client(tmp_path).get_metric_history(run.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == expected


def test_mlflow_holds_the_params_each_epochs_metrics_and_the_files(logged):
    tmp_path, run_dir, rows = logged
    (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.tags["gpucnn.status"] == "ok"
    assert run.data.params["model.channels"] == "[4, 8]"
    assert run.data.params["train.epochs"] == "2"
    history = client(tmp_path).get_metric_history(run.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [
        (int(r["epoch"]), pytest.approx(float(r["val_accuracy"]))) for r in rows
    ]
    assert "test_accuracy" in run.data.metrics
    files = {f.path for f in client(tmp_path).list_artifacts(run.info.run_id)}
    assert {"summary.json", "metrics.csv", "model.npz", "curves.png", ".hydra"} <= files
    assert "checkpoint.npz" not in files and "tensorboard" not in files


def test_a_sweeps_jobs_are_nested_under_one_run_of_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    proc = app(
        "-m",
        *TINY,
        "model.filter_size=3,5",
        "logger=mlflow",
        f"logger.tracking_uri={store(tmp_path)}",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr
    by_name = {r.info.run_name: r for r in runs(tmp_path)}
    parent = by_name.pop("sweep")
    assert parent.data.tags["gpucnn.sweep_dir"] == str(sweep)
    jobs = sorted(by_name)
    assert len(jobs) == 2 and jobs[0].startswith("0: ") and jobs[1].startswith("1: ")
    assert "model.filter_size=3" in jobs[0] and "model.filter_size=5" in jobs[1]
    assert "logger" not in jobs[0]  # where it logs is not a setting of the run
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in by_name.values())
    for job in by_name.values():
        assert job.data.tags["gpucnn.run_dir"] in {str(sweep / "0"), str(sweep / "1")}


def mlflow_logger(tmp_path, run_dir, sweep_dir=None, uri=None):
    from omegaconf import OmegaConf

    lc = OmegaConf.create(
        {"tracking_uri": uri or store(tmp_path), "experiment": "gpucnn", "mlflow": True}
    )
    return loggers.MLflow(lc, run_dir, {"train": {"seed": 0}}, {}, sweep_dir)


def test_a_resumed_job_continues_its_own_mlflow_run(tmp_path):
    first = mlflow_logger(tmp_path, tmp_path / "it's a run")
    first.epoch({"epoch": 1, "val_accuracy": 0.5})
    again = mlflow_logger(tmp_path, tmp_path / "it's a run")
    again.epoch({"epoch": 2, "val_accuracy": 0.75})
    other = mlflow_logger(tmp_path, tmp_path / "other")
    assert again.run_id == first.run_id != other.run_id
    history = client(tmp_path).get_metric_history(first.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.75)]


def test_a_store_mlflow_cannot_use_is_an_invalid_config(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    bad = f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}"
    with pytest.raises(ConfigError, match="logger.tracking_uri=.*MLflow cannot use it"):
        mlflow_logger(tmp_path, tmp_path / "run", uri=bad)


def test_a_logger_whose_library_is_missing_is_refused_before_work(monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        ConfigError, match=r"logger=mlflow needs mlflow: pip install 'gpucnn\[mlflow\]'"
    ):
        loggers.check(OmegaConf.create({"tensorboard": False, "mlflow": True}))


def test_a_failing_logger_is_switched_off_and_the_others_go_on(caplog):
    class Broken:
        name = "broken"

        def epoch(self, row):
            raise ConnectionError("the server went away")

    class Kept:
        name = "kept"
        rows = []

        def epoch(self, row):
            self.rows.append(row)

    kept = Kept()
    both = loggers.Loggers([Broken(), kept])
    with caplog.at_level(logging.WARNING):
        both.epoch({"epoch": 1})
        both.epoch({"epoch": 2})
    assert kept.rows == [{"epoch": 1}, {"epoch": 2}]
    (warning,) = caplog.records
    assert "the broken logger failed (ConnectionError: the server went away)" in warning.message
