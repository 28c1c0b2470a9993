"""The benchmark end to end on a tiny setting (timings are printed, never asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

TINY = [
    "backend=numpy",
    "data.limit_train=256",
    "data.limit_test=100",
    "bench.epochs=1",
    "bench.warmup_epochs=1",
    "bench.max_batches=2",
    "bench.batch_sizes=[32,64]",
]


def bench(tmp_path, *args):
    proc = subprocess.run(
        [sys.executable, "-m", "gpucnn.bench", *TINY, *args, f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads((tmp_path / "bench.json").read_text())


def test_bench_against_pytorch_writes_bench_json(tmp_path):
    pytest.importorskip("torch", reason="the peer is PyTorch: pip install torch")
    out, report = bench(tmp_path, "bench.profile=true", "data.task=multiclass")
    assert (
        report["backend"] == "numpy" and report["device"] and report["peer"].startswith("PyTorch")
    )
    assert report["peer_tf32"] is None  # a question for GPU peers only
    assert [r["batch_size"] for r in report["results"]] == [32, 64]
    for row in report["results"]:
        for key in (
            "ours_epoch_s",
            "peer_epoch_s",
            "ratio",
            "ours_acc",
            "peer_acc",
            "ours_images_per_s",
            "ours_peak_mb",
            "peer_peak_mb",
        ):
            assert key in row, key
        assert row["ratio"] == pytest.approx(row["ours_epoch_s"] / row["peer_epoch_s"])
    assert "| batch | ours s/epoch" in out and "ratio" in out
    assert "profile of one training step" in out and "Conv backward" in out
    assert "the whole batch through each layer in turn (training splits the batch into" in out


def test_the_report_says_which_of_the_peers_products_run_in_tf32(monkeypatch):
    torch = pytest.importorskip("torch", reason="the peer is PyTorch: pip install torch")
    from gpucnn.app.bench import peer_tf32, table

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    matmul = torch.backends.cuda.matmul.allow_tf32  # False unless set: PyTorch's default
    assert peer_tf32(torch) == {"convolutions": True, "matmul": matmul}
    report = {
        **dict.fromkeys(("backend", "device", "threads", "model", "data", "task")),
        **dict(train_images=1, optimizer="adam", peer="PyTorch", results=[]),
    }
    report["peer_tf32"] = peer_tf32(torch)
    said = "convolutions and matmul" if matmul else "convolutions"
    assert f"PyTorch runs its {said} in TF32; gpucnn in full float32" in table(report)
    report["tf32"] = True  # backend.tf32=true
    assert f"PyTorch runs its {said} in TF32; gpucnn its larger products in TF32" in table(report)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    report["peer_tf32"], report["tf32"] = peer_tf32(torch), False
    assert report["peer_tf32"]["convolutions"] is False
    assert ("TF32" in table(report)) == matmul
    if not matmul:
        report["tf32"] = True
        assert "PyTorch runs in full float32; gpucnn its larger products in TF32" in table(report)


def test_bench_without_the_peer_says_why(tmp_path):
    out, report = bench(tmp_path, "bench.peer=false")
    assert report["peer"] is None and report["peer_missing"] == "bench.peer=false"
    assert "ratio" not in report["results"][0]
    assert "no peer: bench.peer=false" in out


def test_a_compiled_peer_asked_for_on_the_cpu_is_said_to_be_left_out(tmp_path):
    pytest.importorskip("torch", reason="the peer is PyTorch: pip install torch")
    out, report = bench(tmp_path, "bench.peer_compile=true", "bench.batch_sizes=[32]")
    assert report["peer_compile_missing"] == "it is timed on the GPU only"
    assert "ratio_compile" not in report["results"][0]
    assert "(no torch.compile column: it is timed on the GPU only)" in out


def test_the_profile_of_a_batch_norm_model_says_how_training_splits_it(tmp_path):
    args = ("bench.peer=false", "bench.profile=true", "model.batch_norm=true", "train.threads=2")
    out, _ = bench(tmp_path, *args)
    assert "(training gives each of 2 threads a share of the batch)" in out
    assert "BatchNorm forward" in out and "micro-batches of None" not in out


PEAKS = """
import numpy as np
from gpucnn import backend
from gpucnn.app.bench import _memory_window
backend.use("numpy")
backend.recycle_host_memory()           # as the bench does: freed memory is kept for reuse
before = np.ones(200 * 2**20 // 8)      # the side before: 200 MB, freed but kept
del before
peak = _memory_window(None, False)
ours = np.ones(100 * 2**20 // 8)        # this side: 100 MB
print(peak())
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="resident-set peaks are read on Linux"
)
def test_a_sides_peak_memory_is_what_it_took_not_what_ran_before_it_kept():
    proc = subprocess.run(
        [sys.executable, "-c", PEAKS], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert 95 < float(proc.stdout) < 130  # not 0 (reusing the freed 200 MB), not the process


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="resident-set peaks are read on Linux"
)
def test_the_first_batch_sizes_peak_does_not_hold_what_the_process_takes_once(tmp_path):
    """Thread pools, BLAS buffers and library code read in at first use are taken before
    any window opens: the same batch size twice gives the same peaks."""
    _, report = bench(tmp_path, "bench.batch_sizes=[32,32]")
    first, second = report["results"]
    for side in ("ours_peak_mb", "peer_peak_mb")[: 1 + ("peer_peak_mb" in first)]:
        assert first[side] == pytest.approx(second[side], abs=8), side


def test_without_warm_up_no_peak_memory_is_read_and_the_table_says_why():
    from omegaconf import OmegaConf

    from gpucnn.app.bench import _measure, table

    class Side:
        def epoch(self, epoch):
            return 0.25

        def accuracy(self):
            return 0.5

    b = OmegaConf.create({"warmup_epochs": 0, "epochs": 1})
    measured = _measure({"ours": Side()}, b, None)
    assert measured["ours"]["peak_mb"] is None
    report = {
        **dict.fromkeys(("backend", "device", "threads", "model", "data", "task")),
        **dict(train_images=1, optimizer="adam", peer=None, peer_missing="bench.peer=false"),
    }
    report["results"] = [
        dict(
            batch_size=8, ours_epoch_s=0.25, ours_images_per_s=4.0, ours_acc=0.5, ours_peak_mb=None
        )
    ]
    said = table(report)
    assert "| 8 | 0.250 | 4 | - | 0.5000 |" in said
    assert "(no peak memory: it is read during warm-up epochs, on Linux)" in said


@pytest.mark.parametrize(
    "setting,says",
    [
        ("bench.max_batches=0", "bench.max_batches=0"),
        ("bench.profile_steps=-1", "bench.profile_steps=-1"),
        ("bench.batch_sizes=[64,5000]", "bench.batch_sizes [5000] larger than the 1800 training"),
        ("bench.batch_sizes=[]", "bench.batch_sizes=[]: list positive batch sizes"),
        ("bench.epochs=0", "bench.epochs=0 must be >= 1"),
        ("bench.warmup_epochs=-1", "bench.warmup_epochs=-1 must be >= 0"),
        ("train.epochs=3", "train.epochs does nothing in the benchmark: bench.epochs and"),
        ("train.batch_size=32", "train.batch_size does nothing in the benchmark: bench.batch_s"),
        ("train.patience=2", "train.patience does nothing in the benchmark: both sides train"),
        ("optimizer.schedule=cosine", "optimizer.schedule does nothing in the benchmark"),
        ("data.flip=true", "data.flip does nothing in the benchmark"),
        ("data.balanced=true", "data.balanced does nothing in the benchmark"),
        ("train.init_from=outputs/runs/x", "train.init_from does nothing in the benchmark: both"),
        ("train.freeze=2", "train.freeze does nothing in the benchmark: both sides train every"),
    ],
)
def test_impossible_bench_settings_are_refused_before_work(tmp_path, setting, says):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpucnn.bench",
            "backend=numpy",
            setting,
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2
    assert says in proc.stdout + proc.stderr
    assert not (tmp_path / "bench.json").exists()


def test_data_that_is_not_there_is_one_line_and_exit_code_5(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gpucnn.bench", "backend=numpy", "data=mnist",
         f"data.root={tmp_path / 'none'}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    said = proc.stdout + proc.stderr
    assert proc.returncode == 5, said
    assert "data error: root" in said and "is not a directory" in said
    assert "Traceback" not in said


def test_the_convolution_variants_script_times_every_conv_of_the_model(tmp_path):
    script = Path(__file__).parents[1] / "scripts" / "conv_variants.py"
    out = tmp_path / "variants.json"
    args = ["--backend", "numpy", "--model", "lab_cnn2", "--batches", "2", "3", "--reps", "1"]
    proc = subprocess.run(
        [sys.executable, str(script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(out.read_text())
    assert found["products"] == []  # the GPU kernel set's products only
    rows = found["convolutions"]
    assert [(r["layer"], r["batch"]) for r in rows] == [
        ("0 Conv 1->8 3x3 s1 p1", 2),
        ("3 Conv 8->16 3x3 s1 p1", 2),
        ("0 Conv 1->8 3x3 s1 p1", 3),
        ("3 Conv 8->16 3x3 s1 p1", 3),
    ]
    assert all(r[k] > 0 for r in rows for k in r if k.endswith("_ms"))
    assert rows[0]["product"] == [2 * 32 * 32, 8, 9] and rows[0]["rule"] == "columns"
    assert "forward_implicit" in proc.stdout
    first, later = rows[0], rows[1]  # the first layer computes no input gradient
    for r, ops in ((first, ("forward", "dw")), (later, ("forward", "dw", "dx"))):
        total = {w: sum(r[f"{op}_{w}_ms"] for op in ops) for w in ("implicit", "columns")}
        assert r["faster"] == min(total, key=total.get)
    assert "convolutions: the rule picks the faster way for" in proc.stdout
