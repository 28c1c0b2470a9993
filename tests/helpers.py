"""Test helpers: random inputs without ties or kinks, numerical gradients, the app's command."""

import subprocess
import sys

from gpucnn import gradcheck
from gpucnn.gradcheck import distinct  # noqa: F401  (the tests import it from here)

# A run of a few seconds on the embedded set.
TINY = [
    "data.limit_train=200",
    "data.limit_test=100",
    "train.epochs=1",
    "train.batch_size=32",
    "backend=numpy",
    "train.progress=false",
]


def app(*args, wait=True, cwd=None):
    """``python -m gpucnn.run`` with ``args``: the completed process, or (``wait=False``) the
    running one, its stderr piped."""
    cmd = [sys.executable, "-m", "gpucnn.run", *args]
    if not wait:
        return subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd
        )
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd)


def tool(name, *args):
    """``python -m gpucnn.<name> args``, completed, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", f"gpucnn.{name}", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def check_layer_gradients(layer, x, rng, training=False, before=lambda: None):
    """The worst of gpucnn.gradcheck.errors: backward() against central differences, for x and
    every parameter."""
    return max(gradcheck.errors(layer, x, rng, training, before).values())


def model_for(cfg):
    """The config's model, built for the embedded set's 28x28 grayscale images (10 classes)
    as the config's data settings prepare them."""
    from gpucnn.app.config import build_model

    side = cfg.data.pad_to or 28
    return build_model(cfg.model, (1, side, side), 1 if cfg.data.task == "binary" else 10)
