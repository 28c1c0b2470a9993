"""Test helpers: random inputs without ties or kinks, numerical gradients, the app's command."""

import subprocess
import sys

import numpy as np

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


def numerical_grad(f, x, eps=1e-6):
    """Central-difference gradient of the scalar function f() w.r.t. array x (changed in place)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        hi = f()
        x[i] = old - eps
        lo = f()
        x[i] = old
        g[i] = (hi - lo) / (2 * eps)
    return g


def rel_error(a, b):
    """max |a - b| / max(|a|, |b|): the worst element's error relative to the largest value."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)))
    assert scale > 0, "comparing all-zero arrays proves nothing"
    return float(np.max(np.abs(a - b)) / scale)


def check_layer_gradients(layer, x, rng, training=False, before=lambda: None):
    """Compare backward() with central differences of sum(forward(x) * R) for x and every
    parameter; returns the worst relative error. ``before`` runs ahead of each forward (to
    re-seed a random mask)."""
    before()
    y = layer.forward(x, training)
    r = rng.normal(size=y.shape)

    def f():
        before()
        return float((layer.forward(x, training) * r).sum())

    before()
    layer.forward(x, training)
    dx = layer.backward(r)
    errors = [rel_error(dx, numerical_grad(f, x))]
    for key, p in layer.params.items():
        analytic = layer.grads[key].copy()
        errors.append(rel_error(analytic, numerical_grad(f, p)))
    return max(errors)


def model_for(cfg):
    """The config's model, built for the embedded set's 28x28 grayscale images (10 classes)
    as the config's data settings prepare them."""
    from gpucnn.app.config import build_model

    side = cfg.data.pad_to or 28
    return build_model(cfg.model, (1, side, side), 1 if cfg.data.task == "binary" else 10)
