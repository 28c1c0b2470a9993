"""A property test through the entry point: random configs, with random corruptions of the data,
checkpoint and summary files, always end with a documented exit code and no traceback, and never
change an existing run's results unless the run finished."""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gpucnn.app import checkpoint, exits

from .helpers import TINY, app
from .test_data import _fake_set, _write_set

DOCUMENTED = {
    exits.OK,
    exits.INVALID_CONFIG,
    exits.DIVERGED,
    exits.OUT_OF_MEMORY,
    exits.DATA_ERROR,
    exits.RUN_DIR_REFUSED,
    exits.FILE_SYSTEM,
}
# What a finished run leaves that nothing but a finished rerun may change.
RESULTS = ("summary.json", "metrics.csv", "model.npz", checkpoint.CURRENT, checkpoint.PREVIOUS)

SETTINGS = {  # each key's values: good ones and bad ones
    "model.filter_size": ["3", "5", "0", "-2", "41", "4"],
    "model.pool_size": ["0", "2", "3", "40"],
    "model.stride": ["1", "2", "0", "9"],
    "model.channels": ["[4]", "[4,4]", "[]"],
    "model.dropout": ["0.0", "0.5", "1.5"],
    "optimizer.lr": ["0.001", "0", "-1", "1e6"],
    "optimizer.eps": ["1e-8", "0"],
    "train.seed": ["0", "3", "-1"],
    "train.batch_size": ["8", "0", "100000"],
    "data.val_fraction": ["0.0", "0.1", "1.0"],
    "data.pad_to": ["null", "32", "10", "100000"],
}


def _corrupt_bytes(path: Path, how: str, rng: np.random.Generator) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: rng.integers(0, max(len(data) // 2, 1))]))
    elif how == "flip":
        for i in rng.integers(0, len(data), size=8):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "empty":
        path.write_bytes(b"")
    else:  # garbage of the same length
        path.write_bytes(rng.integers(0, 256, len(data), dtype=np.uint8).tobytes())


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A small IDX data set and a finished run's directory, copied before each example."""
    base = tmp_path_factory.mktemp("originals")
    arrays = _fake_set(np.random.default_rng(0), n_train=120, n_test=40)
    _write_set(base / "data", arrays)
    proc = app(*TINY, "train.epochs=2", f"hydra.run.dir={base / 'run'}", cwd=base)
    assert proc.returncode == 0, proc.stderr
    return base


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    chosen=st.dictionaries(st.sampled_from(sorted(SETTINGS)), st.integers(0, 5), max_size=3).map(
        lambda d: {k: SETTINGS[k][i % len(SETTINGS[k])] for k, i in d.items()}
    ),
    target=st.sampled_from(["data", "checkpoint", "summary", "none"]),
    how=st.sampled_from(["truncate", "flip", "empty", "garbage"]),
    which=st.integers(0, 3),
    seed=st.integers(0, 2**16),
    fresh=st.booleans(),
)
def test_random_configs_and_corruptions_end_in_a_documented_way(
    originals, chosen, target, how, which, seed, fresh
):
    rng = np.random.default_rng(seed)
    work = Path(tempfile.mkdtemp(prefix="gpucnn-property-"))
    try:
        shutil.copytree(originals / "data", work / "data")
        shutil.copytree(originals / "run", work / "run")
        args = [*TINY, "train.epochs=2", *(f"{k}={v}" for k, v in chosen.items())]
        if target == "data":
            files = sorted((work / "data").iterdir())
            _corrupt_bytes(files[which % len(files)], how, rng)
            args += ["data=fashion_mnist", f"data.root={work / 'data'}", "train.batch_size=8"]
        elif target == "checkpoint":
            name = (checkpoint.CURRENT, checkpoint.PREVIOUS)[which % 2]
            _corrupt_bytes(work / "run" / name, how, rng)
        elif target == "summary":
            _corrupt_bytes(work / "run" / "summary.json", how, rng)
        before = {n: (work / "run" / n).read_bytes() for n in RESULTS}
        run_dir = work / ("new" if fresh or target == "data" else "run")  # or the finished one
        proc = app(*args, f"hydra.run.dir={run_dir}", cwd=work)
        output = proc.stdout + proc.stderr
        event(f"exit code {proc.returncode}")  # pytest --hypothesis-show-statistics
        assert proc.returncode in DOCUMENTED, output
        assert "Traceback" not in output, output
        if proc.returncode != exits.OK:
            after = {n: (work / "run" / n).read_bytes() for n in RESULTS}
            changed = [n for n in RESULTS if after[n] != before[n]]
            assert not changed, f"{changed} changed by a run that did not finish:\n{output}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
