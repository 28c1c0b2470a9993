"""The same random inputs through NumPy and CuPy give the same outputs and gradients (float32).

Runs where a GPU is usable; skips with the reason elsewhere.
"""

import numpy as np
import pytest

from gpucnn import (
    Activation,
    Adam,
    AvgPool,
    BatchNorm,
    Conv,
    CrossEntropy,
    Dense,
    Dropout,
    GlobalAvgPool,
    MaxPool,
    backend,
    presets,
)
from gpucnn.gradcheck import relative_error
from gpucnn.train import train_step

from .helpers import distinct

pytestmark = pytest.mark.gpu
TOL = 1e-4


def _run(make_layer, x, dy, name):
    """forward + backward of a fresh layer on backend ``name``; host copies of y, dx, and the
    gradients and buffers (BatchNorm's running statistics, updated by the forward pass)."""
    backend.use(name, dtype="float32", seed=0)
    layer = make_layer()
    y = layer.forward(backend.to_device(x, np.float32), training=True)
    dx = layer.backward(backend.to_device(dy, np.float32))
    grads = {k: backend.to_host(g) for k, g in (*layer.grads.items(), *layer.buffers.items())}
    return backend.to_host(y), backend.to_host(dx), grads


LAYERS = {
    "conv3_pad1": (lambda: Conv(3, 3, 8, pad=1), (4, 3, 13, 11)),
    "conv5_stride2": (lambda: Conv(5, 3, 6, pad=2, stride=2), (4, 3, 15, 15)),
    "pool2": (lambda: MaxPool(2), (4, 3, 13, 11)),
    "pool3_overlap": (lambda: MaxPool(3, stride=2), (4, 3, 13, 11)),
    "avgpool2": (lambda: AvgPool(2), (4, 3, 13, 11)),
    "avgpool3_overlap": (lambda: AvgPool(3, stride=2), (4, 3, 13, 11)),
    "global_avgpool": (lambda: GlobalAvgPool(), (4, 3, 13, 11)),
    "batch_norm_conv": (lambda: BatchNorm(3), (4, 3, 13, 11)),
    "batch_norm_dense": (lambda: BatchNorm(30), (16, 30)),
    "dense": (lambda: Dense(30, 7), (16, 30)),
    "relu": (lambda: Activation("relu"), (8, 30)),
    "sigmoid": (lambda: Activation("sigmoid"), (8, 30)),
    "tanh": (lambda: Activation("tanh"), (8, 30)),
    "softmax": (lambda: Activation("softmax"), (8, 30)),
}


@pytest.mark.parametrize("key", LAYERS)
def test_layer_matches(key):
    make, shape = LAYERS[key]
    rng = np.random.default_rng(0)
    x = distinct(rng, shape)
    backend.use("numpy", dtype="float32", seed=0)
    y_shape = make().forward(x.astype(np.float32)).shape
    dy = rng.normal(size=y_shape)
    ref, gpu = _run(make, x, dy, "numpy"), _run(make, x, dy, "cupy")
    for a, b in zip(ref[:2], gpu[:2]):
        assert relative_error(a, b) < TOL
    for k in ref[2]:
        assert relative_error(ref[2][k], gpu[2][k]) < TOL, k


def test_dropout_keeps_the_rate_and_scale_on_the_gpu():
    backend.use("cupy", dtype="float32", seed=0)
    x = backend.xp().ones((200, 500), dtype=np.float32)
    y = backend.to_host(Dropout(0.25).forward(x, training=True))
    assert abs((y == 0).mean() - 0.25) < 0.01
    assert np.allclose(y[y != 0], 1 / 0.75)


@pytest.mark.parametrize("frozen", [0, 2])
def test_training_steps_match(frozen):
    """The layers' step, with the first layers frozen too: those keep their weights on
    both."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 4, size=16)
    finals = []
    for name in ("numpy", "cupy"):
        backend.use(name, dtype="float32", seed=0)
        model = presets.cnn((1, 16, 16), channels=(4, 8), hidden=(16,), n_outputs=4)
        model.freeze(frozen)
        kept = {n for n, _, _ in model.parameters()} - {
            n for n, _, _ in model.trainable_parameters()
        }
        assert len(kept) == 2 * frozen  # a weight and a bias each
        start = model.state_dict()
        opt, loss = Adam(1e-3), CrossEntropy()
        for _ in range(5):
            train_step(model, loss, opt, backend.to_device(x), backend.to_device(y))
        finals.append(model.state_dict())
        assert all(np.array_equal(finals[-1][k], start[k]) for k in kept)
    for k in finals[0]:
        assert relative_error(finals[0][k], finals[1][k]) < 1e-3, k


def test_layer_outputs_match():
    """What visualize draws, of a network with strided convolutions and a global pool."""
    x = np.random.default_rng(2).normal(size=(2, 1, 16, 16)).astype(np.float32)
    outputs = []
    for name in ("numpy", "cupy"):
        backend.use(name, dtype="float32", seed=0)
        model = presets.cnn(
            (1, 16, 16), channels=(4, 8), stride=2, pool_size=0, n_outputs=3, global_pool=True
        )
        outputs.append([backend.to_host(y) for y in model.layer_outputs(backend.to_device(x))])
    for i, (on_numpy, on_cupy) in enumerate(zip(*outputs, strict=True)):
        assert relative_error(on_numpy, on_cupy) < TOL, i
