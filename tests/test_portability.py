"""The library without POSIX file locks (fcntl), as on Windows: it imports and trains; the app,
which locks its run directories, says at import that it needs Linux or macOS."""

import subprocess
import sys

WITHOUT_FCNTL = """
import sys
sys.modules["fcntl"] = None  # importing it now raises ImportError, as on Windows
from gpucnn import Adam, BinaryCrossEntropy, backend, data, presets
from gpucnn.steps import make_step
backend.use("numpy", seed=0)
splits = data.prepare(data.load("fashion_mnist_mini"), task="binary", positive=[6], negative=[0])
model, loss, opt = presets.lab_cnn3(n_outputs=1), BinaryCrossEntropy(), Adam()
with make_step(model, loss, opt) as step:
    for xb, yb in data.Batches(splits.train, batch_size=64).epoch(0):
        step(xb, yb)
        break
model.save(sys.argv[1])
presets.lab_cnn3(n_outputs=1).load(sys.argv[1])
print("library ok")
try:
    import gpucnn.app
except ImportError as exc:
    print(exc)
"""


def test_the_library_runs_without_posix_file_locks_and_the_app_says_it_needs_them(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_FCNTL, str(tmp_path / "model.npz")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "library ok"
    assert lines[1].startswith("gpucnn's commands (python -m gpucnn.run and the others) need")
    assert "On Windows, run them in WSL" in lines[1]
