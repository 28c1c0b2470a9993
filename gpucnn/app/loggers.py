"""Where a run's metrics go besides metrics.csv: TensorBoard event files and MLflow runs.

metrics.csv is always written (the report, the sweep summary and resume read it): ``logger=csv``,
the default, adds nothing to it.

``logger=tensorboard`` writes event files into ``<run dir>/tensorboard``: each epoch's metrics as
scalars (loss/train, loss/val, accuracy/..., speed/...), the model's summary and the run's
overrides as text, and at the end curves.png as an image and the overrides with the final
accuracies for the HParams dashboard. ``tensorboard --logdir outputs/multiruns/<time>`` shows
a sweep's jobs side by side.

``logger=mlflow`` makes one MLflow run per job in the experiment ``logger.experiment`` of the
store ``logger.tracking_uri`` (null: a local SQLite store, outputs/mlflow/mlflow.db, with the
artifacts beside it): the resolved config as params, each epoch's metrics, the test metrics,
and the run's files (not its checkpoints) as artifacts. A sweep's jobs are nested under one
parent run named after the sweep's folder; a resumed job continues its own MLflow run, and a
run carried into a new directory (``train.resume``) logs the epochs it took over first.

``logger=[tensorboard,mlflow]`` does both. Each library is imported only when chosen (pip extras
``tensorboard`` and ``mlflow``). A logger that fails during training is switched off with a
warning: the run goes on, and metrics.csv keeps every epoch.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from ..fileio import locked
from ..model import Model
from . import checkpoint, rundir
from .results import finite, flat

log = logging.getLogger(__name__)

# The library each logger needs, and the pip extra that installs it.
NEEDS = {"tensorboard": ("tensorboardX", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
SCALARS = {  # metrics.csv column -> TensorBoard tag
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "val_balanced_loss": "loss/val_balanced",  # validation classes of unequal sizes
    "train_accuracy": "accuracy/train",
    "val_accuracy": "accuracy/val",
    "val_balanced_accuracy": "accuracy/val_balanced",  # validation classes of unequal sizes
    "seconds": "speed/seconds_per_epoch",
    "images_per_second": "speed/images_per_second",
    "lr": "optimizer/lr",  # with optimizer.schedule
}
# summary.json keys logged at the end
FINAL = ("val_accuracy", "val_balanced_accuracy", "test_accuracy", "test_balanced_accuracy")
FINAL += ("test_loss",)
MLFLOW_STATUS = {"ok": "FINISHED", "interrupted": "KILLED"}  # any other end is FAILED
NOT_ARTIFACTS = {checkpoint.CURRENT, checkpoint.PREVIOUS, checkpoint.DAMAGED, rundir.LOCK}
MLFLOW_BATCH = 100  # params per call, MLflow's limit


def check(lc: DictConfig) -> None:
    """ConfigError, before any work, if a chosen logger's library is not installed."""
    for name, (module, extra) in NEEDS.items():
        if lc[name] and importlib.util.find_spec(module) is None:
            raise ConfigError(f"logger={name} needs {module}: pip install 'gpucnn[{extra}]'")


def _code(text: str) -> str:
    """``text`` as a Markdown code block, which TensorBoard shows in a fixed-width font."""
    return "\n".join("    " + line for line in text.splitlines())


def given_settings(cfg: DictConfig, overrides: list[str]) -> dict[str, bool | int | float | str]:
    """The settings given on the command line (in a sweep, the swept ones among them), but not
    the loggers: numbers and words as the config holds them, the rest (lists, config groups,
    nulls) as they were written."""
    out: dict[str, bool | int | float | str] = {}
    for override in overrides:
        key, _, text = override.lstrip("+~").partition("=")
        if key.split(".")[0] == "logger":
            continue
        value = OmegaConf.select(cfg, key, default=text)
        out[key] = value if isinstance(value, (bool, int, float, str)) else text
    return out


class TensorBoard:
    name = "tensorboard"

    def __init__(self, run_dir: Path, model: Model, settings: dict[str, Any]) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.run_dir, self.settings = run_dir, settings
        self.writer.add_text("model", _code(model.summary()))
        given = "\n".join(f"{k}={v}" for k, v in settings.items()) or "(defaults)"
        self.writer.add_text("overrides", _code(given))

    def epoch(self, row: dict[str, Any]) -> None:
        for key, tag in SCALARS.items():
            if finite(row.get(key)):
                self.writer.add_scalar(tag, row[key], row["epoch"])
        self.writer.flush()

    def finish(self, status: str, summary: dict[str, Any]) -> None:
        final = {f"final/{k}": float(summary[k]) for k in FINAL if finite(summary.get(k))}
        if final and self.settings:
            self.writer.add_hparams(self.settings, final, name="hparams")
        curves = self.run_dir / "curves.png"
        if curves.is_file():  # the learning curves as the run drew them
            from PIL import Image

            with Image.open(curves) as image:
                drawn = np.asarray(image.convert("RGB"))
            self.writer.add_image(
                "curves", drawn, summary.get("epochs_completed") or 0, dataformats="HWC"
            )
        self.writer.close()


def _store(uri: str | None, sweep_dir: Path | None) -> tuple[str, str | None, Path | None]:
    """(tracking URI, artifact location of a new experiment, lock file): a SQLite store's
    tables, experiments and sweep runs are made by one job at a time, as is a sweep's parent
    run on a server."""
    if uri is None:
        uri = f"sqlite:///{Path('outputs/mlflow/mlflow.db').resolve()}"
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).resolve()
        return uri, (db.parent / "artifacts").as_uri(), db.with_name(db.name + ".lock")
    return uri, None, (sweep_dir / ".mlflow.lock" if sweep_dir else None)


class MLflow:
    name = "mlflow"

    def __init__(
        self,
        lc: DictConfig,
        run_dir: Path,
        config: dict[str, Any],
        settings: dict[str, Any],
        sweep_dir: Path | None,
    ) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        sweep_dir = sweep_dir.resolve() if sweep_dir else None  # tags name absolute folders
        uri, artifacts, lock_file = _store(lc.tracking_uri, sweep_dir)
        self.run_dir = run_dir.resolve()
        lock: AbstractContextManager = locked(lock_file) if lock_file else nullcontext()
        try:  # MLflow and its database raise many kinds of errors: each is a bad store here
            with lock:
                self.client = MlflowClient(uri)
                experiment = self._experiment(lc.experiment, artifacts)
                parent = self._sweep_run(experiment, sweep_dir) if sweep_dir else None
                self.run_id, new = self._run(experiment, parent, settings, sweep_dir)
        except Exception as exc:
            raise ConfigError(
                f"logger.tracking_uri={uri}: MLflow cannot use it ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}): give a store it can reach"
            ) from None
        if new:  # a resumed run has its params already
            params = [Param(k, str(v)) for k, v in flat(config).items()]
            for i in range(0, len(params), MLFLOW_BATCH):
                self.client.log_batch(self.run_id, params=params[i : i + MLFLOW_BATCH])

    def _experiment(self, name: str, artifacts: str | None) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(name, artifact_location=artifacts)

    def _find(self, experiment: str, tag: str, value: str) -> str | None:
        """The id of a run of ``experiment`` whose tag ``tag`` is ``value``, if there is one."""
        quote = '"' if "'" in value else "'"  # MLflow's filters have no escapes
        runs = self.client.search_runs(
            [experiment], filter_string=f"tags.`{tag}` = {quote}{value}{quote}", max_results=1
        )
        return runs[0].info.run_id if runs else None

    def _sweep_run(self, experiment: str, sweep_dir: Path) -> str:
        """The sweep's parent run: found by its folder, else made (and marked finished: it
        only holds the jobs' runs)."""
        found = self._find(experiment, "gpucnn.sweep_dir", str(sweep_dir))
        if found:
            return found
        run = self.client.create_run(
            experiment, run_name=sweep_dir.name, tags={"gpucnn.sweep_dir": str(sweep_dir)}
        )
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def _run(
        self,
        experiment: str,
        parent: str | None,
        settings: dict[str, Any],
        sweep_dir: Path | None,
    ) -> tuple[str, bool]:
        """(run id, whether it is new): the run made for this run directory before (a resumed
        job), else a new one."""
        found = self._find(experiment, "gpucnn.run_dir", str(self.run_dir))
        if found:
            self.client.update_run(found, status="RUNNING")
            return found, False
        tags = {"gpucnn.run_dir": str(self.run_dir)}
        if parent:
            tags["mlflow.parentRunId"] = parent
        given = ", ".join(f"{k}={v}" for k, v in settings.items())
        name = f"{self.run_dir.name}: {given}" if sweep_dir and given else self.run_dir.name
        return self.client.create_run(experiment, run_name=name, tags=tags).info.run_id, True

    def epoch(self, row: dict[str, Any]) -> None:
        self._metrics({k: v for k, v in row.items() if k != "epoch"}, row["epoch"])

    def _metrics(self, values: dict[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items() if finite(v)]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, status: str, summary: dict[str, Any]) -> None:
        final = {k: summary.get(k) for k in FINAL if k not in SCALARS}  # those are logged
        self._metrics(final, summary.get("epochs_completed") or 0)
        self.client.set_tag(self.run_id, "gpucnn.status", status)
        for path in sorted(self.run_dir.rglob("*")):
            relative = path.relative_to(self.run_dir)
            if not path.is_file() or relative.parts[0] == "tensorboard":
                continue
            if path.name in NOT_ARTIFACTS or path.name.endswith(".tmp"):
                continue
            folder = str(relative.parent) if relative.parent != Path(".") else None
            self.client.log_artifact(self.run_id, str(path), folder)
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FAILED"))


class Loggers:
    """The chosen loggers; one that fails is switched off with a warning, and the run goes on."""

    def __init__(self, loggers: list[Any] | None = None) -> None:
        self.active = list(loggers or [])

    def epoch(self, row: dict[str, Any]) -> None:
        self._each("epoch", row)

    def finish(self, status: str, summary: dict[str, Any]) -> None:
        self._each("finish", status, summary)
        self.active = []

    def _each(self, method: str, *args: Any) -> None:
        for logger in list(self.active):
            try:
                getattr(logger, method)(*args)
            except Exception as exc:  # a logging library's failure must not stop training
                log.warning(
                    "the %s logger failed (%s: %s) and is off for the rest of this run; "
                    "metrics.csv has every epoch",
                    logger.name,
                    type(exc).__name__,
                    exc,
                )
                self.active.remove(logger)


def open_loggers(
    cfg: DictConfig, run_dir: Path, model: Model, overrides: list[str], sweep_dir: Path | None
) -> Loggers:
    """The loggers ``cfg.logger`` chooses, opened for this run."""
    lc, settings = cfg.logger, given_settings(cfg, overrides)
    chosen: list[Any] = []
    if lc.tensorboard:
        chosen.append(TensorBoard(run_dir, model, settings))
    if lc.mlflow:
        config = OmegaConf.to_container(cfg, resolve=True)
        chosen.append(MLflow(lc, run_dir, config, settings, sweep_dir))
    return Loggers(chosen)
