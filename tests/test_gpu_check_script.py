"""scripts/gpu-check.sh, the one command that checks the GPU path on a GPU machine: its plumbing
(steps in the order named, each one's status and seconds in check.txt, a bad step named), run
here against stand-ins for CuPy and nvidia-smi, so that a slip in the script is found before a
GPU's time is spent on it."""

import os
import subprocess
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).parents[1] / "scripts" / "gpu-check.sh"


def test_steps_run_in_order_and_each_reports_its_status(tmp_path):
    fake = tmp_path / "fake"
    (fake / "cupy" / "cuda").mkdir(parents=True)
    (fake / "cupy" / "__init__.py").write_text("__version__ = '0.test'\nfrom . import cuda\n")
    (fake / "cupy" / "cuda" / "__init__.py").write_text(
        "import types\nruntime = types.SimpleNamespace(getDeviceCount=lambda: 1)\n"
    )
    smi = fake / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\necho 'Test GPU, 1.0, 1 MiB'\n")
    smi.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{smi.parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(fake),
    }
    out = tmp_path / "out"
    # variants fails fast here: the stand-in CuPy has no arrays.
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(out), "nosuch", "variants"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = (out / "check.txt").read_text().splitlines()
    assert lines[:2] == ["Test GPU, 1.0, 1 MiB", f"cupy 0.test numpy {np.__version__}"]
    assert lines[3].startswith("gpu-check: no step 'nosuch'")
    assert lines[4].startswith("variants: exit 1, ") and lines[4].endswith(" s")
    assert "Traceback" in (out / "variants.log").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["check.txt", "variants.log"]


def test_without_a_gpu_it_says_so_and_stops(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # an empty cupy package: no runtime
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text("")
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "CuPy cannot use a GPU here" in proc.stdout
