"""``python -m gpucnn.describe``: a run's model and its costs, printed without training."""

import subprocess
import sys

from gpucnn.app.describe import memory_line
from gpucnn.app.experiment import StepMemory

from .helpers import TINY, app


def describe(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "gpucnn.describe", *args, "backend=numpy"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_describe_prints_the_model_and_its_costs_and_writes_nothing(tmp_path):
    proc = describe(
        tmp_path, "model=lenet5", "data.task=multiclass", "train.batch_size=128", "train.threads=2"
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "AvgPool(pool_size=2, stride=2)" in out and "(16, 5, 5)" in out
    assert "weights: 61,470   biases: 236   total: 61,706   multiply-adds per image: 416,520" in out
    # 61,706 parameters of 4 bytes, with their gradients and Adam's two slots
    assert "987.3 KB for the weights, their gradients and adam's 2 slots" in out
    # on NumPy, two threads of 32-image micro-batches at once: their activations
    assert "(train.micro_batch: 64 images at once" in " ".join(out.split())
    assert "an epoch: 9,000 training images, 3.7 G multiply-adds forward" in " ".join(out.split())
    assert list(tmp_path.iterdir()) == []


def test_describe_says_which_weights_learn_with_frozen_layers(tmp_path):
    proc = describe(tmp_path, "model=lenet5", "data.task=multiclass", "train.freeze=2")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert ("train.freeze=2: 58,920 of the 61,470 weights learn, in Dense(400, 120), Dense(120, "
            "84), Dense(84, 10); the layers before keep theirs") in out  # fmt: skip
    # Adam's slots for the 59,134 parameters that learn only: not 987.3 KB
    assert "966.7 KB for the weights, their gradients and adam's 2 slots" in out


def test_describe_refuses_an_architecture_that_cannot_work_as_the_run_would(tmp_path):
    proc = describe(tmp_path, "model.filter_size=40", "model.padding=valid")
    assert proc.returncode == 2
    said = proc.stdout + proc.stderr
    assert "invalid config: layer 0 Conv(filter_size=40" in said
    assert "Traceback" not in said
    typo = describe(tmp_path, "filter_size=3")
    assert typo.returncode == 2 and "did you mean model.filter_size?" in typo.stderr


def test_describe_each_setting_of_a_sweep(tmp_path):
    proc = describe(tmp_path, "-m", "model.filter_size=3,7")
    assert proc.returncode == 0, proc.stderr
    assert "multiply-adds per image: 2,572,352" in proc.stdout  # 3x3, as the lab's CNN
    assert "multiply-adds per image: 13,713,472" in proc.stdout  # 7x7: over five times the work
    preset = describe(tmp_path, "-m", "experiment=filter_pool_sweep")  # its 12 settings, once each
    assert preset.returncode == 0, preset.stderr
    assert preset.stdout.count("multiply-adds per image:") == 12


def test_the_memory_line_names_the_setting_the_largest_part_and_the_optimisers_slots():
    need = StepMemory("train.micro_batch", 64, [("a", 3_000_000), ("b", 1_000_000)], 800, 400)
    assert memory_line(need, "momentum") == (
        "a training step holds at least 4.0 MB of activations (train.micro_batch: 64 images at "
        "once; the largest part: a, 3.0 MB) and 1.6 KB for the weights, their gradients and "
        "momentum's 1 slot"
    )
    assert memory_line(need, "sgd").endswith("and 1.6 KB for the weights, their gradients")


def test_a_run_logs_its_models_size_and_where_its_table_is(tmp_path):
    proc = app(*TINY, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert (
        "model lab_cnn3: 14 layers, 88,784 weights, 2,572,352 multiply-adds per image (its table: "
        "python -m gpucnn.describe with the same overrides)"
    ) in proc.stdout + proc.stderr
