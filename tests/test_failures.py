"""Every failure a user can cause is one line naming the cause and the fix, with its documented
exit code, and a summary.json with the status wherever a run directory exists."""

import csv
import gzip
import json
import logging
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from gpucnn.app import exits
from gpucnn.data import idx, load
from gpucnn.errors import DataError, NotEnoughMemory

from .helpers import TINY, app
from .test_data import _fake_set, _write_set


def patched_app(patch, *args):
    """``python -m gpucnn.run args`` in a process where ``patch`` (Python code) ran first: a
    fault injected where no real one can be made (a full disk)."""
    code = (
        f"import runpy, sys\n{patch}\nsys.argv = ['gpucnn.run', *{list(args)!r}]\n"
        "runpy.run_module('gpucnn.run', run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def one_line(proc, code, *words):
    """The process ended with ``code``, printed no traceback, and one line holds ``words``."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if all(w in line for w in words)]
    assert len(lines) == 1, output
    return lines[0]


def status(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize(
    "args, words",
    [
        (["data.pad_to=100000"], ["data.pad_to=100000", "images of 1x100000x100000", "lower"]),
        (["model=cnn", "model.hidden=[100000000]"], ["Dense(1024, 100000000)", "needed"]),
        (["model.filter_size=201"], ["batch_size=", "im2col columns", "model.filter_size"]),
    ],
)
def test_work_that_cannot_fit_in_memory_is_refused_up_front(tmp_path, args, words):
    proc = app(*TINY, *args, f"hydra.run.dir={tmp_path}")
    one_line(proc, exits.OUT_OF_MEMORY, "out of memory", *words)
    summary = status(tmp_path)
    assert summary["status"] == "failed" and "memory is available" in summary["reason"]
    if "Dense(" in words[0]:  # the model is too big, whatever the batch size
        assert "batch_size" not in summary["reason"]


def test_an_idx_header_declaring_a_billion_images_is_refused_before_reading(tmp_path):
    head = bytes([0, 0, 8, 3]) + (10**9).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (tmp_path / "huge").write_bytes(head + bytes(100))
    with pytest.raises(NotEnoughMemory, match=r"huge: its header declares \(1000000000, 28, 28\)"):
        idx.read(tmp_path / "huge")


def test_a_gzip_bomb_is_read_no_further_than_its_header_says(tmp_path):
    header = idx.encode(np.zeros((10, 28, 28), dtype=np.uint8))
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(header + bytes(200_000_000), 1))
    tracemalloc.start()
    with pytest.raises(DataError, match="longer than its header says"):
        idx.read(tmp_path / "bomb.gz")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20_000_000  # 200 MB were never decompressed


@pytest.mark.parametrize(
    "key, values, says",
    [
        ("train_images", lambda a: a.astype(np.float32) / 255, "unsigned bytes 0-255"),
        ("test_images", lambda a: a.astype(np.int16) * 3, "unsigned bytes 0-255"),
        ("train_labels", lambda a: a.astype(np.float32) + 0.5, "labels must be integers"),
    ],
)
def test_image_files_of_other_value_types_are_refused_naming_the_file(tmp_path, key, values, says):
    arrays = _fake_set(np.random.default_rng(0))
    _write_set(tmp_path, {**arrays, key: values(arrays[key])})
    with pytest.raises(DataError, match=f"{sources_name(key)}.*{says}"):
        load("fashion_mnist", root=tmp_path, download_ok=False)


def sources_name(key):
    from gpucnn.data import sources

    return sources.FASHION_MNIST.files[key].name


def test_a_task_with_no_test_images_is_refused_before_training(tmp_path):
    arrays = _fake_set(np.random.default_rng(0), n_train=200)
    arrays["test_labels"][:] = 3  # neither class of the default binary task (0 and 6)
    _write_set(tmp_path / "data", arrays)
    run = [*TINY, "data=fashion_mnist", f"data.root={tmp_path / 'data'}", "train.batch_size=8"]
    proc = app(*run, f"hydra.run.dir={tmp_path / 'run'}")
    one_line(proc, exits.INVALID_CONFIG, "the test files hold no images of classes [0, 6]")
    assert status(tmp_path / "run")["status"] == "invalid_config"


def test_a_last_batch_too_small_for_batch_norm_is_refused_before_training(tmp_path):
    """180 training images in batches of 179 leave one image, which a BatchNorm after a Dense
    cannot normalise: found before the first epoch, not at its end."""
    bn = ["model=cnn", "model.batch_norm=true", "train.batch_size=179"]
    proc = app(*TINY, *bn, f"hydra.run.dir={tmp_path / 'run'}")
    one_line(
        proc,
        exits.INVALID_CONFIG,
        "train.batch_size=179 leaves a last batch of 1 of the 180 training images",
        "BatchNorm(64",
        "drop_last=true",
    )
    assert status(tmp_path / "run")["status"] == "invalid_config"
    assert not list((tmp_path / "run").glob("checkpoint*"))
    proc = app(*TINY, *bn, "train.drop_last=true", f"hydra.run.dir={tmp_path / 'dropped'}")
    assert proc.returncode == 0, proc.stderr


def test_a_full_disk_during_training_is_one_line_and_exit_7(tmp_path):
    full = (
        "import errno, numpy\n"
        "def savez(*a, **k):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "numpy.savez = savez"
    )
    proc = patched_app(full, *TINY, f"hydra.run.dir={tmp_path}")
    line = one_line(proc, exits.FILE_SYSTEM, "file system error", "No space left on device")
    assert f"No space left on device: {tmp_path}/checkpoint.npz: free some space" in line
    summary = status(tmp_path)
    assert summary["status"] == "failed" and "No space left" in summary["reason"]


def test_a_disk_full_before_the_run_is_said_before_hydra_writes(tmp_path):
    """A full disk still makes empty files: only bytes written and synced show it."""
    full = (
        "import errno, os\n"
        "def fsync(fd):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "os.fsync = fsync"
    )
    proc = patched_app(full, *TINY, f"hydra.run.dir={tmp_path / 'run'}")
    one_line(proc, exits.FILE_SYSTEM, f"cannot write into {tmp_path / 'run'} (No space left")
    assert not (tmp_path / "run" / ".hydra").exists()


def test_a_disk_full_under_hydras_own_writes_is_one_line_and_exit_7(tmp_path):
    """The second job of a sweep finds the disk full while Hydra writes its .hydra/ files,
    before gpucnn's code runs: not a bug to report."""
    full = (
        "import errno\n"
        "from hydra.core import utils\n"
        "saved = utils._save_config\n"
        "def _save_config(cfg, filename, output_dir):\n"
        "    if output_dir.parent.name == '1':\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "    saved(cfg, filename, output_dir)\n"
        "utils._save_config = _save_config"
    )
    proc = patched_app(full, "-m", *TINY, "train.seed=0,1", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == exits.FILE_SYSTEM, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "error: file system error: No space left on device: free some space, or point "
        "hydra.run.dir (hydra.sweep.dir) at another folder"
    )
    assert status(tmp_path / "0")["status"] == "ok"


def test_an_output_folder_that_cannot_be_made_is_one_line_and_exit_7(tmp_path):
    (tmp_path / "a-file").write_text("in the way")
    proc = app(*TINY, f"hydra.run.dir={tmp_path / 'a-file' / 'run'}")
    one_line(proc, exits.FILE_SYSTEM, "cannot write into", "a-file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_line_and_exit_7(tmp_path):
    tmp_path.chmod(0o555)
    try:
        proc = app(*TINY, f"hydra.run.dir={tmp_path / 'run'}")
    finally:
        tmp_path.chmod(0o755)
    one_line(proc, exits.FILE_SYSTEM, "cannot write into", "Permission denied")


def test_a_sweep_job_with_an_unexpected_error_is_summarised_and_the_sweep_says_so(tmp_path):
    bug = (
        "import gpucnn.app.experiment as e\n"
        "plot = e.plot_curves\n"
        "def plot_curves(path, rows, title, *kept):\n"
        "    if 'filter_size=5' in title:\n"
        "        raise RuntimeError('a bug in plotting')\n"
        "    plot(path, rows, title, *kept)\n"
        "e.plot_curves = plot_curves"
    )
    proc = patched_app(bug, "-m", *TINY, "model.filter_size=3,5,7", f"hydra.sweep.dir={tmp_path}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == exits.SOME_JOBS_FAILED, output
    assert "not every job ended ok (1 failed)" in output
    rows = {r["model.filter_size"]: r for r in csv.DictReader(open(tmp_path / "sweep_summary.csv"))}
    assert rows["5"]["status"] == "failed" and "a bug in plotting" in rows["5"]["reason"]
    assert rows["3"]["status"] == rows["7"]["status"] == "ok"  # the jobs after it ran too


@pytest.mark.parametrize("name", ["summary.json", "checkpoint.npz", ".lock", "diagnostics.csv"])
def test_a_folder_in_the_way_of_a_result_file_is_refused_before_training(tmp_path, name):
    (tmp_path / name).mkdir()
    proc = app(*TINY, f"hydra.run.dir={tmp_path}")
    line = one_line(proc, exits.FILE_SYSTEM, "file system error", str(tmp_path / name))
    assert "in each other's way" in line and "epoch 1" not in proc.stdout


def test_a_run_whose_output_reader_goes_away_trains_on_without_a_traceback(tmp_path):
    """``python -m gpucnn.run | head -1``: the pipe closes while the run logs and prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpucnn.run", *TINY, f"hydra.run.dir={tmp_path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader is gone before the first line
    stderr = proc.stderr.read()
    assert proc.wait(timeout=600) == 0, stderr
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "ok"
    assert "results in" in (tmp_path / "run.log").read_text()


@pytest.mark.parametrize(
    "command", [["gpucnn"], ["gpucnn.report", "--help"], ["gpucnn.bench", "--help"]]
)
def test_a_command_whose_output_reader_goes_away_ends_without_a_traceback(command):
    """``python -m gpucnn | head -1``, ``... --help | head``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in stderr, stderr


def test_output_and_log_lines_after_the_reader_went_away_are_dropped(monkeypatch):
    """The wrapped streams, and a log handler made before them on the raw stream (a launcher's
    worker process: Hydra sets up the job's logging before the job)."""
    from gpucnn.app.console import survive_closed_output

    read, write = os.pipe()
    os.close(read)
    stream = os.fdopen(write, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(sys, "stderr", sys.stderr)  # restored after the test
    handler = logging.StreamHandler(stream)
    monkeypatch.setattr(handler, "handleError", lambda record: pytest.fail("a logging error"))
    logging.getLogger().addHandler(handler)  # where Hydra puts its console handler
    try:
        survive_closed_output()
        assert handler.stream is sys.stdout is not stream
        print("dropped")
        logging.getLogger("gpucnn.test_console").warning("dropped too")
        sys.stdout.flush()
    finally:
        logging.getLogger().removeHandler(handler)
        stream.close()
