"""Every layer kernel set against the reference set, on every available backend: one test
definition over sets x backends, on random tie-free inputs over a grid of filter sizes 1-7,
strides 1-3, paddings 0-3, odd and uneven maps, few and many channels, overlapping pools."""

import numpy as np
import pytest

from gpucnn import CrossEntropy, backend, kernels, presets
from gpucnn.gradcheck import relative_error
from gpucnn.kernels import reference

from .helpers import distinct

CONVS = [
    (K, S, P, H, W, C)
    for K, S, P in [
        (1, 1, 0),
        (2, 2, 1),
        (3, 1, 1),
        (3, 2, 0),
        (4, 3, 3),
        (5, 1, 2),
        (7, 2, 3),
        (6, 3, 2),
        (7, 1, 0),
    ]
    for H, W, C in [(9, 7, 1), (12, 11, 5)]
]
POOLS = [(1, 1), (2, 2), (2, 1), (3, 2), (3, 3), (4, 3), (5, 1)]


@pytest.fixture(params=[s for s in kernels.SETS if s != "reference"])
def kernel_set_name(request):
    return request.param


def _tol(xp_name):
    return 1e-10 if xp_name == "numpy" else 1e-5  # float64 on NumPy, float32 on CuPy


def _on(xp_name, set_name, fn, *arrays):
    """fn(set, *arrays) on the backend, the arrays moved there; results back on the host."""
    backend.use(xp_name, dtype="float64" if xp_name == "numpy" else "float32", kernels=set_name)
    out = fn(kernels.active(), *(backend.to_device(a, backend.dtype()) for a in arrays))
    backend.use("numpy", dtype="float64")
    return [None if o is None else backend.to_host(o) for o in out]


@pytest.mark.parametrize("K,S,P,H,W,C", CONVS)
def test_conv_matches_reference(xp_name, kernel_set_name, K, S, P, H, W, C):
    if min(H, W) + 2 * P < K:
        pytest.skip("the filter does not fit")
    rng = np.random.default_rng(K * 1000 + S * 100 + P * 10 + C)
    x = rng.normal(size=(3, C, H, W))
    w, b = rng.normal(size=(4, C, K, K)), rng.normal(size=4)

    def run(ks, x, w, b, dy=None):
        y, cache = ks.conv2d(x, w, b, S, P)
        if dy is None:
            return (y,)
        return (y, *ks.conv2d_backward(dy, w, cache, S, P))

    (y,) = _on("numpy", "reference", run, x, w, b)
    dy = rng.normal(size=y.shape)
    want = _on("numpy", "reference", run, x, w, b, dy)
    got = _on(xp_name, kernel_set_name, run, x, w, b, dy)
    for name, a, g in zip(("y", "dx", "dw", "db"), want, got):
        assert relative_error(g, a) < _tol(xp_name), name


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("K,S", POOLS)
def test_maxpool_matches_reference(xp_name, kernel_set_name, K, S, relu):
    rng = np.random.default_rng(K * 10 + S)
    x = distinct(rng, (2, 3, 11, 8))  # no ties: one maximum per window

    def run(ks, x, dy=None):
        y, cache = ks.maxpool2d(x, K, S, relu)
        return (y,) if dy is None else (y, ks.maxpool2d_backward(dy, cache, K, S))

    (y,) = _on("numpy", "reference", run, x)
    dy = rng.normal(size=y.shape)
    want = _on("numpy", "reference", run, x, dy)
    got = _on(xp_name, kernel_set_name, run, x, dy)
    for a, g in zip(want, got):
        assert relative_error(g, a) < _tol(xp_name)


@pytest.mark.parametrize("K,S", [*POOLS, (2, 3)])
def test_avgpool_matches_reference(xp_name, kernel_set_name, K, S):
    rng = np.random.default_rng(K * 10 + S)
    x = rng.normal(size=(2, 3, 11, 8))

    def run(ks, x, dy=None):
        y = ks.avgpool2d(x, K, S)
        return (y,) if dy is None else (y, ks.avgpool2d_backward(dy, x.shape, K, S))

    (y,) = _on("numpy", "reference", run, x)
    dy = rng.normal(size=y.shape)
    want = _on("numpy", "reference", run, x, dy)
    got = _on(xp_name, kernel_set_name, run, x, dy)
    for a, g in zip(want, got):
        assert a.shape == g.shape
        assert relative_error(g, a) < _tol(xp_name)


def _batch_norm_by_formula(x, dy, gamma, beta, mean, var, training, eps=1e-5):
    """(y, dx, dgamma, dbeta, running mean, running var) of x: (N, C, ...) written out per
    channel in NCHW (momentum 0.1): what every set's batch_norm must give."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    n = x.size // x.shape[1]
    if training:
        mu, sigma2 = x.mean(axis=axes), x.var(axis=axes)
        mean, var = 0.9 * mean + 0.1 * mu, 0.9 * var + 0.1 * sigma2 * n / (n - 1)
    else:
        mu, sigma2 = mean, var
    xhat = (x - mu.reshape(shape)) / np.sqrt(sigma2 + eps).reshape(shape)
    dbeta, dgamma = dy.sum(axis=axes), (dy * xhat).sum(axis=axes)
    dxhat = dy * gamma.reshape(shape)
    if training:  # through the batch's mean and variance as well
        dxhat = dxhat - (dbeta * gamma).reshape(shape) / n
        dxhat = dxhat - xhat * (dgamma * gamma).reshape(shape) / n
    dx = dxhat / np.sqrt(sigma2 + eps).reshape(shape)
    return xhat * gamma.reshape(shape) + beta.reshape(shape), dx, dgamma, dbeta, mean, var


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    "shape,channels_last",
    # Channel columns of 63 pixels a row, 9, and (13 pixels, prime) one.
    [((3, 5, 7, 6), False), ((3, 5, 7, 6), True), ((9, 4), False), ((13, 50), False)],
)
@pytest.mark.parametrize("set_name", kernels.SETS)
def test_batch_norm_matches_its_formula(xp_name, set_name, shape, channels_last, training):
    rng = np.random.default_rng(len(shape) + training)
    x, dy = rng.normal(loc=2, scale=3, size=shape), rng.normal(size=shape)
    gamma, beta = rng.uniform(0.5, 2, size=shape[1]), rng.normal(size=shape[1])
    mean, var = rng.normal(size=shape[1]), rng.uniform(0.5, 2, size=shape[1])
    want = _batch_norm_by_formula(x, dy, gamma, beta, mean, var, training)

    def run(ks, x, dy, gamma, beta, mean, var):
        if channels_last:  # NCHW views of channels-last memory, as the fast set's Conv leaves
            x, dy = (a.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2) for a in (x, dy))
        y, cache = ks.batch_norm(x, gamma, beta, mean, var, 0.1, 1e-5, training)
        return (y, *ks.batch_norm_backward(dy, gamma, cache), mean, var)

    got = _on(xp_name, set_name, run, x, dy, gamma, beta, mean, var)
    names = ("y", "dx", "dgamma", "dbeta", "running_mean", "running_var")
    for name, a, g in zip(names, want, got):
        assert relative_error(g, a) < _tol(xp_name), name


def test_reference_im2col_and_col2im_are_adjoint():
    # <col2im(c), x> == <c, im2col(x)> for any x and c: col2im is im2col's transpose.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 9, 8))
    cols = reference.im2col(x, 4, 2, 1)
    c = rng.normal(size=cols.shape)
    back = reference.col2im(c, x.shape, 4, 2, 1)
    assert np.isclose((back * x).sum(), (c * cols).sum(), rtol=1e-12)


def test_a_model_trains_the_same_on_every_set(kernel_set_name):
    """A whole model (a ReLU fused into the pool in the fast set, not in reference): the same
    gradients, to rounding."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 1, 12, 12)), rng.integers(0, 3, size=6)
    grads = {}
    for name in ("reference", kernel_set_name):
        backend.use("numpy", dtype="float64", seed=0, kernels=name)
        model = presets.cnn((1, 12, 12), channels=(3, 4), hidden=(5,), n_outputs=3)
        fused = [i for i, _, f in model.runs() if f]
        assert fused == ([2, 5] if kernels.active().FUSES_RELU_INTO_POOL else []), name
        loss = CrossEntropy()
        loss.forward(model.forward(x, training=True, logits=True), y)
        model.backward(loss.backward(), logits=True)
        grads[name] = {n: g.copy() for n, _, g in model.parameters()}
    for n in grads["reference"]:
        assert relative_error(grads[kernel_set_name][n], grads["reference"][n]) < 1e-12, n
