"""Nothing lost: kill and resume, signals, sweep resume, divergence, bad checkpoints, out of
memory, determinism, and a property test over the architecture space."""

import csv
import functools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from gpucnn.app import checkpoint
from gpucnn.app.config import Config, validate
from gpucnn.app.experiment import OutOfMemory, run_job
from gpucnn.app.trainer import Diverged, Trainer
from gpucnn.errors import ConfigError, ShapeError

from .conftest import CUPY_OK
from .helpers import app, model_for

# Slow enough (about 85 steps an epoch) to be caught in the middle of an epoch.
RUN = [
    "data.limit_train=1500",
    "data.limit_test=100",
    "train.batch_size=16",
    "train.epochs=2",
    "train.progress=false",
    "train.checkpoint_every_steps=5",
    "model=lab_cnn2",
]  # lab_cnn2 has dropout, whose masks must repeat too


def weights(run_dir):
    with np.load(Path(run_dir) / "model.npz") as f:
        return {k: f[k] for k in f.files}


def position(run_dir):
    """(epoch, batch) of the newest checkpoint, or None while there is none (or mid-rename)."""
    try:
        with np.load(Path(run_dir) / checkpoint.CURRENT) as f:
            meta = json.loads(f["meta"].tobytes().decode())
        return meta["epoch"], meta["batch"]
    except (OSError, ValueError, KeyError, EOFError):
        return None


def stop_mid_epoch(run, run_dir, sig):
    """Start ``run``, and send ``sig`` once it has checkpointed inside its second epoch."""
    proc = app(*run, f"hydra.run.dir={run_dir}", wait=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        pos = position(run_dir)
        if pos is not None and pos[0] == 1 and pos[1] >= 10:
            proc.send_signal(sig)
            break
        time.sleep(0.005)
    proc.wait(timeout=300)
    return proc, pos


@pytest.fixture(scope="module", params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def reference(request, tmp_path_factory):
    """The run's arguments on each backend, and its weights when never interrupted."""
    run = [f"backend={request.param}", *RUN]
    run_dir = tmp_path_factory.mktemp("reference")
    proc = app(*run, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    return run, weights(run_dir)


def test_killed_mid_epoch_then_resumed_ends_bit_identical(tmp_path, reference):
    run, reference = reference
    proc, pos = stop_mid_epoch(run, tmp_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert pos[0] == 1 and 0 < pos[1] < 85  # killed inside epoch 2
    done = app(*run, f"hydra.run.dir={tmp_path}", "train.resume=true")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["resumed_at"]["epoch"] == 2
    resumed = weights(tmp_path)
    for key in reference:
        assert np.array_equal(resumed[key], reference[key]), key
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs


def test_a_shorter_run_trained_on_to_more_epochs_ends_bit_identical(tmp_path, reference):
    """train.resume in a new directory takes the same run for fewer epochs (dropout masks and
    the step counter from its checkpoint) and ends with the longer run's weights."""
    run, reference = reference
    shorter = [o if o != "train.epochs=2" else "train.epochs=1" for o in run]
    assert app(*shorter, cwd=tmp_path).returncode == 0
    done = app(*run, "train.resume=true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    one, two = sorted((tmp_path / "outputs" / "runs").iterdir())
    summary = json.loads((two / "summary.json").read_text())
    assert summary["resumed_from"] == str(one) and summary["resumed_at"]["epoch"] == 2
    longer = weights(two)
    for key in reference:
        assert np.array_equal(longer[key], reference[key]), key


def test_a_batch_norm_model_killed_and_resumed_ends_bit_identical(tmp_path):
    # Its running statistics (buffers) must be in the checkpoint for this to hold.
    run = ["backend=numpy", *RUN, "model=cnn", "model.batch_norm=true", "model.channels=[4,8]"]
    proc = app(*run, f"hydra.run.dir={tmp_path / 'whole'}")
    assert proc.returncode == 0, proc.stderr
    proc, pos = stop_mid_epoch(run, tmp_path / "cut", signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL and pos[0] == 1
    done = app(*run, f"hydra.run.dir={tmp_path / 'cut'}", "train.resume=true")
    assert done.returncode == 0, done.stderr
    whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert "2.running_var" not in whole and "1.running_var" in whole
    for key in whole:
        assert np.array_equal(resumed[key], whole[key]), key


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_checkpoints_and_says_interrupted(tmp_path, reference, sig):
    run, reference = reference
    cut = tmp_path / "outputs" / "runs" / "cut"  # where the default run directories go
    proc, _ = stop_mid_epoch(run, cut, sig)
    assert proc.returncode == 128 + sig, proc.stderr
    log = (cut / "run.log").read_text()
    assert "a checkpoint was written; resume with train.resume=true (results in" in log
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["status"] == "interrupted" and signal.Signals(sig).name in summary["reason"]
    epoch, batch = position(cut)
    assert epoch == 1 and batch >= 10  # saved at (or after) the step the signal met
    done = app(*run, "train.resume=true", cwd=tmp_path)  # a new run directory: found by config
    assert done.returncode == 0, done.stderr
    (new_dir,) = [d for d in cut.parent.iterdir() if d != cut]
    again = json.loads((new_dir / "summary.json").read_text())
    assert again["status"] == "ok" and again["resumed_from"] == str(cut)
    resumed = weights(new_dir)
    assert all(np.array_equal(resumed[k], reference[k]) for k in reference)


@pytest.mark.parametrize("checkpointed", [True, False])
def test_a_second_ctrl_c_drops_the_step_and_says_so_without_a_traceback(checkpointed):
    """The second SIGINT during a step raised KeyboardInterrupt: a traceback, and a summary
    saying only "interrupted by the user"."""
    from gpucnn.app.signals import Interrupted, Stops

    stops = Stops()
    stops.checkpointed = checkpointed
    with stops.deferred():
        stops.handle(signal.SIGTERM, None)  # the first: recorded, the step goes on
        stops.handle(signal.SIGTERM, None)  # only SIGINT, Ctrl-C, insists
        with pytest.raises(Interrupted) as stopped:
            stops.handle(signal.SIGINT, None)
    said = str(stopped.value)
    assert said.startswith("stopped by a second SIGINT in the middle of a step, which was dropped")
    if checkpointed:
        assert said.endswith("; the last checkpoint stays")
        assert stopped.value.next_step == "resume with train.resume=true"
    else:
        assert said.endswith("; no checkpoint was written yet")
        assert stopped.value.next_step == "nothing to resume yet"
    assert stopped.value.signum == signal.SIGINT


def test_a_resumed_sweep_skips_finished_jobs(tmp_path):
    sweep = [
        "-m",
        "backend=numpy",
        "data.limit_train=200",
        "data.limit_test=50",
        "train.epochs=2",
        "train.progress=false",
        "model.filter_size=3,5,7",
    ]
    first = app(*sweep, cwd=tmp_path)  # in outputs/multiruns/<time>, as by default
    assert first.returncode == 0, first.stderr
    (first_dir,) = (tmp_path / "outputs" / "multiruns").iterdir()
    # Job 2 as if preempted during its second epoch: its summary says so, no final weights.
    job2 = first_dir / "2"
    (job2 / "model.npz").unlink()
    summary = json.loads((job2 / "summary.json").read_text())
    (job2 / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    second = app(*sweep, "train.resume=true", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    (second_dir,) = [d for d in first_dir.parent.iterdir() if d != first_dir]
    jobs = {j: json.loads((second_dir / j / "summary.json").read_text()) for j in ("0", "1", "2")}
    assert jobs["0"]["skipped"] and jobs["1"]["skipped"]
    assert jobs["0"]["resumed_from"] == str(first_dir / "0")
    assert jobs["2"]["status"] == "ok" and not jobs["2"].get("skipped")
    assert jobs["2"]["resumed_at"]["epoch"] == 3  # after the last epoch: only the test left
    rows = (second_dir / "sweep_summary.csv").read_text().splitlines()
    assert len(rows) == 4 and all(",ok," in r for r in rows[1:])
    assert rows[0].startswith("model.filter_size,runs,")  # train.resume is not "swept"


def test_a_data_root_without_the_data_is_one_line_and_exit_5(tmp_path):
    proc = app(
        "data=fashion_mnist", f"data.root={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path}"
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 5, output
    lines = [line for line in output.splitlines() if "data error" in line]
    assert len(lines) == 1 and f"root {tmp_path / 'nowhere'} is not a directory" in lines[0]
    assert "Traceback" not in output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "is not a directory" in summary["reason"]


def test_divergence_stops_with_the_last_good_checkpoint(tmp_path):
    proc = app(
        "backend=numpy",
        "data.limit_train=300",
        "train.progress=false",
        "optimizer=sgd",
        "optimizer.lr=1e6",
        "train.checkpoint_every_steps=1",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 3
    assert "RuntimeWarning" not in proc.stderr  # NumPy's overflow warnings would bury the line
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["epoch"] == 1 and summary["batch"] >= 1
    assert "lower optimizer.lr" in summary["reason"]
    kept = f"its last good checkpoint, after batch {summary['batch'] - 1} of epoch 1, is kept"
    assert summary["reason"].endswith(kept), summary["reason"]
    with np.load(tmp_path / checkpoint.CURRENT) as f:
        assert all(np.all(np.isfinite(f[k])) for k in f.files if k.startswith("param/"))
    assert not (tmp_path / "model.npz").exists()


def test_divergence_before_any_checkpoint_says_there_is_none_to_keep(tmp_path):
    cfg = _cfg(epochs=1, progress=False)
    cfg.optimizer.name, cfg.optimizer.lr = "sgd", 1e6
    with pytest.raises(Diverged, match="no checkpoint had been written yet$"):
        run_job(cfg, tmp_path, [])
    assert not checkpoint.exists(tmp_path)
    # at an epoch's end: the epochs done
    assert str(Diverged(2, 5, float("nan"), (2, 0))).endswith("checkpoint, after epoch 2, is kept")


def _cfg(**train):
    cfg = OmegaConf.structured(Config)
    cfg.data.limit_train, cfg.data.limit_test = 300, 50
    cfg.backend.name = "numpy"
    for key, value in train.items():
        cfg.train[key] = value
    return cfg


def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    cfg = _cfg(epochs=2, progress=False)
    run_job(cfg, tmp_path, [])
    current = tmp_path / checkpoint.CURRENT
    current.write_bytes(current.read_bytes()[:200])  # truncated on disk
    from gpucnn.app.experiment import load_splits

    model = model_for(cfg)
    trainer = Trainer(cfg, model, load_splits(cfg), tmp_path)
    meta = trainer.restore()
    trainer.close()
    assert (meta["epoch"], meta["batch"]) == (1, 0)  # checkpoint.prev: the end of epoch 1
    assert "corrupt or truncated" in caplog.text
    (tmp_path / checkpoint.PREVIOUS).write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="no usable checkpoint"):
        checkpoint.load(tmp_path, model, trainer.optimizer)


def test_after_falling_back_the_next_save_keeps_the_good_previous_checkpoint(tmp_path):
    from gpucnn.app.experiment import load_splits

    cfg = _cfg(epochs=2, progress=False)
    run_job(cfg, tmp_path, [])
    current, previous = tmp_path / checkpoint.CURRENT, tmp_path / checkpoint.PREVIOUS
    damaged = current.read_bytes()[:200]
    current.write_bytes(damaged)
    good = previous.read_bytes()
    trainer = Trainer(cfg, model_for(cfg), load_splits(cfg), tmp_path)
    assert trainer.restore()["epoch"] == 1
    assert (tmp_path / checkpoint.DAMAGED).read_bytes() == damaged  # set aside, not deleted
    trainer.save()
    trainer.close()
    assert previous.read_bytes() == good  # not replaced by the damaged file
    assert checkpoint.load(tmp_path, trainer.model, trainer.optimizer)["epoch"] == 1


def test_out_of_memory_is_one_clear_message(tmp_path, monkeypatch):
    def no_memory(self):
        raise MemoryError("Unable to allocate 3.2 GiB for an array")

    monkeypatch.setattr(Trainer, "fit", no_memory)
    with pytest.raises(OutOfMemory, match=r"out of host memory at train.batch_size=64 .*3.2 GiB"):
        run_job(_cfg(), tmp_path, [])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "lower train.batch_size" in summary["reason"]


def test_the_memory_check_counts_one_micro_batch_per_thread(monkeypatch):
    from gpucnn import memory
    from gpucnn.app.experiment import check_memory
    from gpucnn.errors import NotEnoughMemory

    cfg = _cfg(batch_size=256, eval_batch_size=16)
    model = model_for(cfg)

    def activations(images):
        return sum(b for _, b in model.activation_bytes(images))

    # Room for two threads' micro-batches of 32 (64 images), not for the whole batch.
    monkeypatch.setattr(
        memory, "_machine_available", lambda: (activations(64) + activations(256)) // 2
    )
    check_memory(model, cfg, threads=2, evaluated=1000)
    cfg.train.micro_batch = 0  # whole batches
    with pytest.raises(NotEnoughMemory, match=r"batch_size=256: the activations of 256 images"):
        check_memory(model, cfg, threads=2, evaluated=1000)
    cfg.train.micro_batch = 96
    with pytest.raises(NotEnoughMemory, match=r"micro_batch=96: the activations of 192 images"):
        check_memory(model, cfg, threads=2, evaluated=1000)


def test_an_evaluation_batch_larger_than_every_split_is_not_refused(tmp_path):
    """Evaluation never batches more images than a split holds: a batch size of 10**12
    (everything at once) over 50 test images needs the memory of 50, not of 10**12."""
    cfg = _cfg(eval_batch_size=10**12, epochs=1, progress=False)
    run_job(cfg, tmp_path, [])
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "ok"


# gpucnn.run with the up-front memory check set aside, so that the allocation itself fails.
UNCHECKED_RUN = (
    "from gpucnn.app import experiment, run; "
    "experiment.check_memory = lambda *args: None; run.main()"
)


@pytest.mark.gpu
def test_a_real_gpu_out_of_memory_is_one_line_and_exit_4(tmp_path):
    # 1,800 images of 32x32 through 32,768 channels: 240 GB for one activation, which
    # check_memory refuses up front; a real allocation fails like this where the estimate falls
    # short (another process taking the memory meanwhile, say). Not on the host: there the
    # kernel may grant the allocation and kill the process that touches it.
    args = ["model=cnn", "model.channels=[32768]", "model.hidden=[4]", "train.batch_size=1800"]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            UNCHECKED_RUN,
            "backend=cupy",
            *args,
            "train.progress=false",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 4, output
    lines = [line for line in output.splitlines() if "out of memory" in line]
    assert len(lines) == 1 and "out of GPU" in lines[0], output
    assert "lower train.batch_size" in lines[0] and "Traceback" not in output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "MB free of" in summary["reason"]


@pytest.mark.gpu
def test_jobs_give_their_gpu_memory_back(tmp_path):
    import cupy

    pool = cupy.get_default_memory_pool()
    held = []
    for name in ("a", "b", "c"):
        cfg = _cfg(epochs=1, progress=False)
        cfg.backend.name = "cupy"
        run_job(cfg, tmp_path / name, [])
        held.append(pool.total_bytes())
    # What stays is the backend's random generator, the same for every job: nothing piles up,
    # and far less than one job's data and buffers (an evaluation batch's columns alone: 38 MB).
    # (The cuBLAS handle's 32 MiB workspace, held for the process, is outside the pool.)
    assert held[2] <= held[1] <= held[0] < 32 * 2**20, held


def test_a_batch_larger_than_the_training_set_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"train.batch_size=512 is larger than the 270") as e:
        run_job(_cfg(batch_size=512), tmp_path / "a", [])
    assert "data.val_fraction=0.1, which holds out 30 of 300 for validation" in str(e.value)
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["status"] == "invalid_config"
    cfg = _cfg(batch_size=512)
    cfg.data.val_fraction = 0.0
    with pytest.raises(ConfigError, match=r"than the 300 training images: lower it \(") as e:
        run_job(cfg, tmp_path / "b", [])
    assert "val_fraction" not in str(e.value)


def test_same_seed_same_weights_bit_for_bit(tmp_path):
    for name in ("a", "b"):
        run_job(_cfg(epochs=1, progress=False), tmp_path / name, [])
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(np.array_equal(a[k], b[k]) for k in a)


blocks = st.integers(1, 4)


@st.composite
def architectures(draw):
    n = draw(blocks)
    per_block = lambda s: st.one_of(s, st.lists(s, min_size=n, max_size=n))  # noqa: E731
    return {
        "channels": draw(st.lists(st.integers(1, 6), min_size=n, max_size=n)),
        "filter_size": draw(per_block(st.integers(1, 7))),
        "stride": draw(per_block(st.integers(1, 3))),
        "global_pool": draw(st.booleans()),
        "pool_size": draw(per_block(st.integers(0, 4))),
        "pool_stride": draw(st.one_of(st.none(), per_block(st.integers(1, 3)))),
        "padding": draw(
            per_block(st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 3)))
        ),
        "activation": draw(st.sampled_from(["relu", "sigmoid", "tanh"])),
        "hidden": draw(st.lists(st.integers(1, 8), max_size=2)),
        "dropout": draw(st.floats(0, 0.9)),
        "pad_to": draw(st.sampled_from([None, 28, 32])),
        "task": draw(st.sampled_from(["binary", "multiclass"])),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=architectures())
def test_any_architecture_trains_one_step_or_is_rejected_by_name(arch):
    cfg = OmegaConf.structured(Config)
    cfg.backend.name = "numpy"
    cfg.data.pad_to, cfg.data.task = arch.pop("pad_to"), arch.pop("task")
    for key, value in arch.items():
        cfg.model[key] = value
    try:
        validate(cfg)
        model = model_for(cfg)
    except ShapeError as exc:
        assert "layer" in str(exc)
        return
    except ConfigError as exc:
        assert "model." in str(exc)
        return
    from gpucnn import SGD
    from gpucnn.losses import for_outputs
    from gpucnn.train import train_step

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, *model.input_shape)).astype(np.float32)
    y = rng.integers(0, 2, size=3)
    value, _ = train_step(model, for_outputs(model.output_shape[0]), SGD(0.01), x, y)
    assert np.isfinite(value)


def test_diagnostics_of_epochs_before_an_interruption_are_kept(tmp_path):
    cfg = _cfg(epochs=1, progress=False)
    cfg.diagnostics.enabled, cfg.diagnostics.every = True, 1
    run_job(cfg, tmp_path, [])  # ends after epoch 1 with its checkpoint: as if stopped there
    (tmp_path / "model.npz").unlink()  # (a stopped run has no final weights)
    summary = json.loads((tmp_path / "summary.json").read_text())
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    cfg.train.epochs = 2
    run_job(cfg, tmp_path, [])  # continues from that checkpoint
    with (tmp_path / "diagnostics.csv").open() as f:
        epochs = {row["epoch"] for row in csv.DictReader(f)}
    assert epochs == {"1", "2"}


def test_a_run_without_validation_writes_strict_json(tmp_path):
    cfg = _cfg(epochs=1, progress=False)
    cfg.data.val_fraction = 0.0
    run_job(cfg, tmp_path, [])

    def refuse(word):
        raise AssertionError(f"{word} is not JSON")

    summary = json.loads((tmp_path / "summary.json").read_text(), parse_constant=refuse)
    assert summary["status"] == "ok" and summary["val_accuracy"] is None


def test_a_test_subset_too_small_for_every_class_is_refused_before_training(tmp_path):
    cfg = _cfg(epochs=1, progress=False)
    cfg.data.limit_test = 1  # one image for two classes
    with pytest.raises(
        ConfigError, match="data.limit_test=1 is fewer than the 2 classes.*at least 2"
    ):
        run_job(cfg, tmp_path, [])
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "invalid_config"


@pytest.mark.skipif(CUPY_OK, reason="a GPU is usable here, so backend=cupy runs")
def test_backend_cupy_without_a_gpu_is_one_line_and_exit_2(tmp_path):
    proc = app("backend=cupy", f"hydra.run.dir={tmp_path}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in output
    lines = [line for line in output.splitlines() if "invalid config" in line]
    assert len(lines) == 1 and "backend=cupy needs CuPy and a CUDA GPU" in lines[0]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "invalid_config"


def test_temporary_files_of_an_interrupted_write_are_removed_at_the_next_start(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    leftover = tmp_path / ".checkpoint.npz.k2j4h1.tmp"  # as atomic_write names them
    leftover.write_bytes(b"half a checkpoint")
    keep = tmp_path / "notes.tmp"  # not one of ours: not hidden
    keep.write_text("mine")
    run_job(_cfg(epochs=1, progress=False), tmp_path, [])
    assert not leftover.exists() and keep.read_text() == "mine"


@pytest.mark.parametrize(
    "command, slow, args",
    [
        ("evaluate", "evaluate_run", []),
        ("predict", "predict_files", ["image.png"]),
        ("summarize", "summarize", []),
        ("report", "build", []),
    ],
)
def test_ctrl_c_in_a_command_is_one_line_and_exit_130(tmp_path, command, slow, args):
    """The commands besides run and bench: Ctrl-C is one line, not a traceback."""
    (tmp_path / "0").mkdir()  # a sweep's job, for summarize
    (tmp_path / "0" / "summary.json").write_text('{"status": "ok"}')
    made_slow = (  # the command's work made slow, so that the signal arrives while it runs
        f"import runpy, time; import gpucnn.app.{command} as c; "
        f"c.{slow} = lambda *a, **k: (print('working', flush=True), time.sleep(60)); "
        f"runpy.run_module('gpucnn.{command}', run_name='__main__')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", made_slow, str(tmp_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Started as from a terminal: tests started in the background inherit SIGINT ignored.
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline().strip() == "working"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted (SIGINT): no file was left half-written"
