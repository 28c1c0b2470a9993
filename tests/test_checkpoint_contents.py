"""Checkpoints and weights are checked for what they hold, not only for being readable: each
bad content is refused naming the file, and the previous checkpoint is tried."""

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from gpucnn import backend
from gpucnn.app import checkpoint
from gpucnn.app.config import Config, build_optimizer
from gpucnn.app.experiment import run_job
from gpucnn.errors import ConfigError

from .helpers import TINY, app, model_for


def _nan_weight(meta, arrays):
    key = next(k for k in arrays if k.startswith("param/"))
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] = np.nan


def _float64(meta, arrays):
    for key in arrays:
        arrays[key] = arrays[key].astype(np.float64)


def _no_adam_state(meta, arrays):
    for key in [k for k in arrays if k.endswith("/m")]:
        del arrays[key]


def _inf_adam_state(meta, arrays):
    key = next(k for k in arrays if k.endswith("/v"))
    arrays[key] = np.full_like(arrays[key], np.inf)


BEST = {"epoch": 1, "val_loss": 0.5}  # a record of train.patience's best epoch


def _best_of_another_shape(meta, arrays):
    meta["best"] = BEST
    for key in [k for k in arrays if k.startswith("param/")]:
        arrays["best/" + key[len("param/") :]] = arrays[key].ravel()


CORRUPTIONS = {
    "nan weight": (_nan_weight, "holds NaN or infinite values"),
    "float64 arrays": (_float64, "is float64, this run uses float32"),
    "missing optimiser state": (_no_adam_state, "missing ['opt/"),
    "infinite optimiser state": (_inf_adam_state, "holds NaN or infinite values"),
    "epoch not a number": (lambda m, a: m.update(epoch="two"), "no valid epoch"),
    "negative batch": (lambda m, a: m.update(batch=-3), "no valid batch"),
    "metrics for other epochs": (lambda m, a: m.update(rows=[]), "epochs' metrics"),
    "no running sums": (lambda m, a: m.update(sums={}), "running sums are incomplete"),
    "record not a mapping": (lambda m, a: (m.clear(), m.update(format=None)), "has format"),
    "best epoch without its weights": (lambda m, a: m.update(best=BEST), "missing ['best/"),
    "best epoch 0": (lambda m, a: m.update(best={**BEST, "epoch": 0}), "best epoch is not valid"),
    "best weights of another shape": (_best_of_another_shape, "best epoch's weights in"),
}


def rewrite(path, change):
    """Apply ``change(meta, arrays)`` to a checkpoint file, keeping it a readable .npz."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    change(meta, arrays)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def _cfg():
    cfg = OmegaConf.structured(Config)
    cfg.data.limit_train, cfg.data.limit_test = 200, 50
    cfg.backend.name = "numpy"
    cfg.train.epochs, cfg.train.progress = 2, False
    return cfg


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-epoch run's directory (checkpoints of epoch 2 and, previous, epoch 1)."""
    run_dir = tmp_path_factory.mktemp("finished")
    run_job(_cfg(), run_dir, [])
    return run_dir


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_bad_contents_are_refused_by_name_and_the_previous_checkpoint_used(
    finished, tmp_path, name, caplog
):
    change, says = CORRUPTIONS[name]
    for f in (checkpoint.CURRENT, checkpoint.PREVIOUS):
        (tmp_path / f).write_bytes((finished / f).read_bytes())
    rewrite(tmp_path / checkpoint.CURRENT, change)
    cfg = _cfg()
    backend.use("numpy", "float32", 0)
    model, optimizer = model_for(cfg), build_optimizer(cfg.optimizer)
    meta = checkpoint.load(tmp_path, model, optimizer)
    assert meta["epoch"] == 1  # the previous checkpoint: the end of epoch 1
    assert str(tmp_path / checkpoint.CURRENT) in caplog.text and says in caplog.text
    rewrite(tmp_path / checkpoint.PREVIOUS, change)
    with pytest.raises(checkpoint.CheckpointError, match="no usable checkpoint"):
        checkpoint.load(tmp_path, model_for(cfg), optimizer)


def test_no_usable_checkpoint_is_one_line_and_exit_6(tmp_path):
    first = app(*TINY, "train.epochs=2", f"hydra.run.dir={tmp_path}")
    assert first.returncode == 0, first.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    for name in (checkpoint.CURRENT, checkpoint.PREVIOUS):
        rewrite(tmp_path / name, _nan_weight)
    again = app(*TINY, "train.epochs=2", f"hydra.run.dir={tmp_path}")
    output = again.stdout + again.stderr
    assert again.returncode == 6, output
    assert "Traceback" not in output and "lower optimizer.lr" not in output
    (line,) = [x for x in output.splitlines() if "unusable checkpoint" in x]
    assert "no usable checkpoint" in line and "NaN" in line


@pytest.mark.parametrize(
    "value, says",
    [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (3, "not floats")],
)
def test_weights_with_non_finite_or_integer_values_are_refused(tmp_path, value, says):
    cfg = _cfg()
    model = model_for(cfg)
    model.save(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz") as f:
        state = {k: f[k] for k in f.files}
    first = next(iter(state))
    state[first] = np.full(state[first].shape, value, dtype=type(value))
    np.savez(tmp_path / "w.npz", **state)
    with pytest.raises(ConfigError, match=f"w.npz: {first} holds .*{says}"):
        model.load(tmp_path / "w.npz")


def test_a_checkpoint_written_before_settings_were_added_is_resumed(tmp_path):
    """Its record lacks train.patience and label_smoothing, the optimizer's schedule keys and
    the model's stride, global_pool and init: the run it was written for trained as their
    defaults do, so it is this run's checkpoint."""
    first = app(*TINY, "train.epochs=2", f"hydra.run.dir={tmp_path}")
    assert first.returncode == 0, first.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))

    def before(meta, arrays):
        meta["run"].pop("train.patience")
        meta["run"].pop("train.label_smoothing")
        for key in ("schedule", "decay", "decay_every", "min_lr"):
            meta["run"]["optimizer"].pop(key)
        for key in ("stride", "global_pool", "init"):
            meta["run"]["model"].pop(key)

    rewrite(tmp_path / checkpoint.CURRENT, before)
    again = app(*TINY, "train.epochs=2", f"hydra.run.dir={tmp_path}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming from" in again.stdout + again.stderr


def test_resuming_from_a_good_checkpoint_moves_no_file(finished, tmp_path):
    """Only a damaged checkpoint.npz is set aside (as checkpoint.damaged.npz)."""
    files = {f: (finished / f).read_bytes() for f in (checkpoint.CURRENT, checkpoint.PREVIOUS)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    cfg = _cfg()
    backend.use("numpy", "float32", 0)
    assert checkpoint.load(tmp_path, model_for(cfg), build_optimizer(cfg.optimizer))["epoch"] == 2
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files
