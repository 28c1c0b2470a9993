"""scripts/gpu-check.sh, the one command that checks the GPU path on a GPU machine: its plumbing
(steps in the order named, each one's status and seconds in check.txt, a bad step named), run
here against stand-ins for CuPy and nvidia-smi, so that a slip in the script is found before a
GPU's time is spent on it."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).parents[1] / "scripts" / "gpu-check.sh"


def fake_gpu(tmp_path):
    """Environment variables under which the script finds a stand-in CuPy and nvidia-smi, and
    a ``timeout`` that logs its limit to tmp_path/limits before running the real one."""
    fake = tmp_path / "fake"
    (fake / "cupy" / "cuda").mkdir(parents=True)
    (fake / "cupy" / "__init__.py").write_text("__version__ = '0.test'\nfrom . import cuda\n")
    (fake / "cupy" / "cuda" / "__init__.py").write_text(
        "import types\nruntime = types.SimpleNamespace(getDeviceCount=lambda: 1)\n"
    )
    smi = fake / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\necho 'Test GPU, 1.0, 1 MiB'\n")
    real_timeout = shutil.which("timeout")
    timeout = fake / "bin" / "timeout"
    timeout.write_text(f'#!/bin/sh\necho "$1" >> {tmp_path / "limits"}\nexec {real_timeout} "$@"\n')
    for tool in (smi, timeout):
        tool.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{smi.parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(fake),
    }


def test_steps_run_in_order_and_each_reports_its_status(tmp_path):
    env = fake_gpu(tmp_path)
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
    # the stand-in CuPy compiles nothing: said in a line, and the check goes on
    assert lines[3].startswith("kernels: not compiled (AttributeError: ")
    assert lines[4].startswith("gpu-check: no step 'nosuch'")
    assert lines[5].startswith("variants: exit 1, ") and lines[5].endswith(" s")
    assert "Traceback" in (out / "variants.log").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["check.txt", "variants.log"]
    assert (tmp_path / "limits").read_text() == "120\n"  # the variants step's own limit


def test_within_cuts_each_limit_to_the_time_left_and_skips_steps_that_have_none(tmp_path):
    env = fake_gpu(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--within", "30", str(out), "variants", "variants"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    limits = [int(x) for x in (tmp_path / "limits").read_text().split()]
    assert len(limits) == 2 and 20 <= limits[0] <= 30 and limits[1] <= limits[0]
    steps = (out / "check.txt").read_text().splitlines()[4:]
    assert [line.split(":")[0] for line in steps] == ["variants", "variants"]

    proc = subprocess.run(
        ["bash", str(SCRIPT), "--within", "19", str(out), "variants"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert (out / "check.txt").read_text().splitlines()[4].startswith("variants: skipped, ")
    assert len((tmp_path / "limits").read_text().split()) == 2  # nothing more was run

    proc = subprocess.run(["bash", str(SCRIPT), "--within", "ten"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--within takes whole seconds, not 'ten'" in proc.stdout


def test_without_a_gpu_it_says_so_and_stops(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # an empty cupy package: no runtime
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text("")
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "CuPy cannot use a GPU here" in proc.stdout
