"""Test helpers: random inputs without ties or kinks, numerical gradients, the app's command."""

import subprocess
import sys

import numpy as np

from gpucnn import gradcheck

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


def distinct(rng, shape, scale=2.0):
    """Values in (-scale, scale), all different and at least 2*scale/size apart, none zero:
    max-pool sees no ties and ReLU no kink within a finite-difference step."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2 + 0.5) * (2 * scale / n)).reshape(shape)


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
