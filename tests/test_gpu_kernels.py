"""Every CUDA kernel of the GPU set against its NumPy twin (gpucnn.kernels.host) on the same
random inputs, and the GPU's static step against the same step on NumPy.

Each test runs twice: on the GPU through CuPy (skipped, with the reason, where none is usable),
and on the CPU, the CUDA sources compiled as C++ (tests/cuda_on_cpu), which checks the kernels'
arithmetic and indexing and the wrappers' launch arguments on every machine.
"""

import functools
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings

from gpucnn import (
    SGD,
    Activation,
    Adam,
    Conv,
    CrossEntropy,
    Dense,
    Flatten,
    MaxPool,
    Model,
    Momentum,
    backend,
    kernels,
    presets,
)
from gpucnn.gradcheck import relative_error
from gpucnn.kernels import gpu, host, out_size
from gpucnn.static_step import StaticStep, products

from . import cuda_on_cpu
from .helpers import distinct
from .test_static_step import (
    MODELS,
    OPTIMIZERS,
    _data,
    _loss,
    hold_noise_at_zero,
    networks,
    rounding_only,
    same,
)

TOL = 1e-5  # float32 against float64
CPU_WHY = cuda_on_cpu.unavailable()


@functools.cache
def _kernels_on_cpu():
    return cuda_on_cpu.RawModule(gpu.source())


class Device:
    """Where the GPU kernel set runs: ``use()`` makes it the static step's kernel set, with
    arrays of its backend; ``use_host()`` goes back to NumPy and the host set."""

    def __init__(self, name, monkeypatch):
        self.name, self.monkeypatch = name, monkeypatch
        self.for_array_module = kernels.for_array_module

    def use(self):
        if self.name == "cuda":
            backend.use("cupy", dtype="float32", seed=0)
            return
        backend.use("numpy", dtype="float32", seed=0)
        self.monkeypatch.setattr(kernels, "for_array_module", lambda xp: gpu)

    def use_host(self):
        backend.use("numpy", dtype="float32", seed=0)
        self.monkeypatch.setattr(kernels, "for_array_module", self.for_array_module)


@pytest.fixture(params=[pytest.param("cuda", marks=pytest.mark.gpu), "cpu"], autouse=True)
def device(request, monkeypatch):
    if request.param == "cpu":
        if CPU_WHY:
            pytest.skip(f"the CUDA kernels cannot run on this CPU: {CPU_WHY}")
        monkeypatch.setattr(gpu, "_kernel", _kernels_on_cpu().get_function)
        # A small GPU, so that modest products split K; no cuBLAS to hand large ones to.
        monkeypatch.setattr(gpu, "_multiprocessors", lambda: 4)
        monkeypatch.setattr(gpu.cublas, "library", lambda: None)
    d = Device(request.param, monkeypatch)
    d.use()
    yield d
    backend.use("numpy", dtype="float64", seed=0)


cuda_only = pytest.mark.usefixtures("cuda_device")


@pytest.fixture
def cuda_device(device):
    if device.name != "cuda":
        pytest.skip("CUDA graphs, cuBLAS and CuPy's step selection exist only on a GPU")


def dev(a, dtype=np.float32):
    return backend.to_device(np.asarray(a), dtype=dtype)


def poisoned(shape, dtype=np.float32):
    """A device buffer full of NaN: an element a kernel forgot to write fails the comparison."""
    xp = backend.xp()
    return xp.full(shape, np.nan if np.dtype(dtype).kind == "f" else -7, dtype=dtype)


def close(ours, want, tol=TOL):
    got = backend.to_host(ours)
    assert not np.any(np.isnan(got)), "unwritten elements"
    assert relative_error(got, want) <= tol


@pytest.mark.parametrize(
    "m,n,k,transpose_a,transpose_b",
    [
        (300, 16, 9, False, True),
        (70, 33, 150, True, False),
        (16, 9, 20000, True, False),
        (5, 70, 1000, False, False),
        (1000, 64, 288, False, True),
    ],
)
@pytest.mark.parametrize("act,aux_act", [("none", "none"), ("relu", "none"), ("none", "tanh")])
def test_gemm(m, n, k, transpose_a, transpose_b, act, aux_act):
    rng = np.random.default_rng(m + n + k)
    a = rng.normal(size=(k, m) if transpose_a else (m, k))
    b = rng.normal(size=(n, k) if transpose_b else (k, n))
    bias = rng.normal(size=n) if act != "none" else None
    aux = np.tanh(rng.normal(size=(m, n)))
    a_, b_ = (a.T if transpose_a else a), (b.T if transpose_b else b)
    want = np.empty((m, n))
    host.gemm(a_, b_, want, bias, act, aux, aux_act)
    out = poisoned((m, n))
    da, db = dev(a), dev(b)
    work = poisoned(max(1, gpu.workspace(m, n, k)))
    gpu.gemm(
        da.T if transpose_a else da,
        db.T if transpose_b else db,
        out,
        None if bias is None else dev(bias),
        act,
        dev(aux),
        aux_act,
        work,
    )
    close(out, want)


def test_a_workspace_too_small_for_the_split_is_refused_before_launching():
    a, b = dev(np.ones((16, 20000))), dev(np.ones((20000, 9)))
    need = gpu.workspace(16, 9, 20000)
    assert need > 0
    with pytest.raises(
        ValueError, match=f"needs a workspace of {need:,} elements and was given 10"
    ):
        gpu.gemm(a, b, poisoned((16, 9)), work=poisoned(10))


def test_products_over_millions_of_pixels_launch_grids_a_gpu_takes(monkeypatch):
    # A first convolution at batch 512 on 128x128 images: 8.4 million output pixels, more
    # 128-row tiles than a grid's y dimension holds. Recorded, not run: no memory behind them.
    launches = []
    monkeypatch.setattr(gpu, "_kernel", lambda name: lambda *launch: launches.append(launch))
    monkeypatch.setattr(gpu.cublas, "library", lambda: None)  # every product tiled
    N, H, W, C, O, K = 512, 128, 128, 1, 16, 3

    def empty(*shape):
        return np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape, (0,) * len(shape))

    rows, ckk = N * H * W, C * K * K
    x, dx, w, dw = empty(N, H, W, C), empty(N, H, W, C), empty(O, ckk), empty(O, ckk)
    y, dy = empty(rows, O), empty(rows, O)
    work = empty(max(gpu.workspace(rows, O, ckk), gpu.workspace(O, ckk, rows), 1))
    gpu.conv_forward(x, w.T, y, K, 1, 1, work=work)
    gpu.conv_weight_grad(dy, x, dw, K, 1, 1, work=work)
    gpu.conv_input_grad(dy, w, dx, K, 1, 1, work=work)
    gpu.gemm(empty(rows, 3), empty(3, O), y, work=work)
    assert len(launches) >= 4
    for grid, block, _ in launches:
        cuda_on_cpu.check_launch("a product", grid, block)


@pytest.mark.parametrize("rows,cols", [(7, 3), (5000, 16), (300, 300), (20000, 64)])
def test_colsum(rows, cols):
    a = np.random.default_rng(rows).normal(size=(rows, cols))
    out = poisoned(cols)
    gpu.colsum(dev(a), out, poisoned(max(1, gpu.colsum_workspace(rows, cols))))
    close(out, a.sum(axis=0))


CONVS = [(K, S, P) for K in (1, 2, 3, 5, 7) for S in (1, 2, 3) for P in (0, 1, 3) if P < K + 1]


@pytest.mark.parametrize("K,S,P", CONVS)
def test_im2col_and_col2im(K, S, P):
    rng = np.random.default_rng(K * 100 + S * 10 + P)
    N, C, H, W = 3, 2, 11, 8
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    x_nchw = rng.normal(size=(N, C, H, W)).astype(np.float32)  # exact: no rounding to compare
    x = x_nchw.transpose(0, 2, 3, 1)  # read through strides, as the first layer does
    want = np.empty((N * OH * OW, C * K * K))
    host.im2col(x, want, K, S, P)
    cols = poisoned(want.shape)
    gpu.im2col(dev(x_nchw).transpose(0, 2, 3, 1), cols, K, S, P)
    close(cols, want, 0)
    dcols = rng.normal(size=want.shape)
    aux = rng.uniform(-1, 1, size=(N, H, W, C))
    back = np.empty((N, H, W, C))
    host.col2im(dcols, back, K, S, P, aux, "relu")
    dx = poisoned(back.shape)
    gpu.col2im(dev(dcols), dx, K, S, P, dev(aux), "relu")
    close(dx, back)


@pytest.mark.parametrize("gathered", [True, False], ids=["implicit", "columns"])
@pytest.mark.parametrize("K,S,P,C,O", [(3, 1, 1, 1, 16), (5, 2, 2, 3, 7), (1, 1, 0, 40, 33)])
def test_convolution_products(K, S, P, C, O, gathered):
    rng = np.random.default_rng(K + C)
    N, H, W = 3, 11, 9
    OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
    rows, ckk = N * OH * OW, C * K * K
    x_nchw = rng.normal(size=(N, C, H, W))
    x = x_nchw.transpose(0, 2, 3, 1)
    w, b, dy = rng.normal(size=(O, ckk)), rng.normal(size=O), rng.normal(size=(rows, O))
    aux = rng.uniform(-1, 1, size=x.shape)
    y, dw, dx = np.empty((rows, O)), np.empty((O, ckk)), np.empty(x.shape)
    host.conv_forward(x, w.T, y, K, S, P, b, "tanh")
    host.conv_weight_grad(dy, x, dw, K, S, P)
    host.conv_input_grad(dy, w, dx, K, S, P, aux, "relu")
    gx = dev(x_nchw).transpose(0, 2, 3, 1)  # read through strides, as the first layer does
    cols = None if gathered else poisoned((rows, ckk))
    dcols = None if gathered else poisoned((rows, ckk))
    sizes = [(rows, O, ckk), (O, ckk, rows), (N * H * W, C, K * K * O), (rows, ckk, O)]
    work = poisoned(max(1, *(gpu.workspace(*p) for p in sizes)))
    gy, gdw, gdx = poisoned(y.shape), poisoned(dw.shape), poisoned(dx.shape)
    gw = dev(w)
    gpu.conv_forward(gx, gw.T, gy, K, S, P, dev(b), "tanh", cols, work)
    gpu.conv_weight_grad(dev(dy), gx, gdw, K, S, P, cols, work)
    gpu.conv_input_grad(dev(dy), gw, gdx, K, S, P, dev(aux), "relu", dcols, work)
    close(gy, y)
    close(gdw, dw)
    close(gdx, dx)
    assert gpu.implicit_conv(rows, 9, O) and not gpu.implicit_conv(10**6, 144, 32)


@pytest.mark.parametrize(
    "K,S,H,W",
    [
        (2, 2, 13, 11),
        (3, 3, 13, 11),
        (3, 2, 13, 11),
        (2, 1, 13, 11),
        (5, 3, 13, 11),
        (3, 1, 13, 11),
        (2, 2, 12, 10),
        (3, 3, 9, 12),
    ],  # the last two: windows tile x exactly
)
@pytest.mark.parametrize("fused", [False, True], ids=["plain", "bias+tanh"])
def test_maxpool(K, S, H, W, fused):
    rng = np.random.default_rng(K * 10 + S)
    x = distinct(rng, (3, H, W, 4)).astype(np.float32)  # no ties: one maximum per window
    OH, OW = out_size(H, K, S), out_size(W, K, S)
    y, arg = np.empty((3, OH, OW, 4)), np.empty((3, OH, OW, 4), dtype=np.int32)
    # Fused: the convolution's bias and activation applied by the pool; else a mask (aux).
    bias, act = (rng.normal(size=4), "tanh") if fused else (None, "none")
    aux, aux_act = (None, "none") if fused else (rng.uniform(0.1, 1, size=x.shape), "sigmoid")
    host.maxpool_forward(x, y, arg, K, S, bias, act)
    gy, garg = poisoned(y.shape), poisoned(y.shape, np.int32)
    gpu.maxpool_forward(dev(x), gy, garg, K, S, None if bias is None else dev(bias), act)
    close(gy, y, 1e-6 if fused else 0)
    assert np.array_equal(backend.to_host(garg), arg)
    dy = rng.normal(size=y.shape)
    dx = np.empty(x.shape)
    host.maxpool_backward(dy, arg, dx, K, S, aux, aux_act, y, act)
    gdx = poisoned(x.shape)
    gaux = None if aux is None else dev(aux)
    gpu.maxpool_backward(dev(dy), garg, gdx, K, S, gaux, aux_act, gy, act)
    close(gdx, dx)


@pytest.mark.parametrize("K,S,H,W", [(2, 2, 12, 10), (2, 2, 13, 11), (3, 1, 13, 11), (3, 2, 9, 12)])
def test_average_pool(K, S, H, W):
    rng = np.random.default_rng(K * 10 + S)
    x, aux = rng.normal(size=(3, H, W, 4)), rng.uniform(-1, 1, size=(3, H, W, 4))
    y = np.empty((3, out_size(H, K, S), out_size(W, K, S), 4))
    dy, dx = rng.normal(size=y.shape), np.empty(x.shape)
    host.avgpool_forward(x, y, K, S)
    host.avgpool_backward(dy, dx, K, S, aux, "relu")
    gy, gdx = poisoned(y.shape), poisoned(x.shape)
    gpu.avgpool_forward(dev(x), gy, K, S)
    gpu.avgpool_backward(dev(dy), gdx, K, S, dev(aux), "relu")
    close(gy, y)
    close(gdx, dx)


@pytest.mark.parametrize("H,W,C", [(1, 1, 3), (3, 2, 5), (8, 8, 64)])
@pytest.mark.parametrize("aux_act", ["none", "relu"])
def test_global_average_pool(H, W, C, aux_act):
    rng = np.random.default_rng(H * W + C)
    x, aux = rng.normal(size=(3, H, W, C)), rng.uniform(-1, 1, size=(3, H, W, C))
    y, dy, dx = np.empty((3, C)), rng.normal(size=(3, C)), np.empty(x.shape)
    host.global_avgpool_forward(x, y)
    host.global_avgpool_backward(dy, dx, aux, aux_act)
    gy, gdx = poisoned(y.shape), poisoned(x.shape)
    gpu.global_avgpool_forward(dev(x), gy)
    gpu.global_avgpool_backward(dev(dy), gdx, dev(aux), aux_act)
    close(gy, y)
    close(gdx, dx)


@pytest.mark.parametrize("R,C", [(3, 3), (300, 16), (5000, 7)])  # of 2 rows, dx is 0: noise
@pytest.mark.parametrize("act,aux_act", [("none", "none"), ("relu", "tanh")])
def test_batch_norm(R, C, act, aux_act):
    rng = np.random.default_rng(R + C)
    x = rng.normal(2, 3, size=(R, C))  # a mean far from 0: the variance is of x - mean
    gamma, beta, dy = rng.normal(size=C), rng.normal(size=C), rng.normal(size=(R, C))
    running = (rng.normal(size=C), rng.uniform(0.5, 2, size=C))
    aux = rng.uniform(-1, 1, size=(R, C))
    on_device = [dev(a) for a in (x, gamma, beta, *running, dy, aux)]
    y, xhat, stats = np.empty((R, C)), np.empty((R, C)), np.empty((2, C))
    dx, dgamma, dbeta = np.empty((R, C)), np.empty(C), np.empty(C)
    host.batch_norm_forward(x, y, xhat, stats, gamma, beta, *running, 0.1, 1e-5, act)
    host.batch_norm_backward(dy, xhat, stats, gamma, dx, dgamma, dbeta, aux, aux_act)
    gx, ggamma, gbeta, gmean, gvar, gdy, gaux = on_device
    gy, gxhat, gstats = poisoned((R, C)), poisoned((R, C)), poisoned((2, C))
    gdx, gdgamma, gdbeta = poisoned((R, C)), poisoned(C), poisoned(C)
    work = poisoned(max(1, gpu.colsum_workspace(R, C)))
    gpu.batch_norm_forward(gx, gy, gxhat, gstats, ggamma, gbeta, gmean, gvar, 0.1, 1e-5, act, work)
    gpu.batch_norm_backward(gdy, gxhat, gstats, ggamma, gdx, gdgamma, gdbeta, gaux, aux_act, work)
    forward = [(gy, y), (gxhat, xhat), (gstats, stats), (gmean, running[0]), (gvar, running[1])]
    for ours, want in [*forward, (gdx, dx), (gdgamma, dgamma), (gdbeta, dbeta)]:
        close(ours, want)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh"])
def test_activations_and_layout(act):
    rng = np.random.default_rng(0)
    x = distinct(rng, (4, 5, 6, 3)).astype(np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    dy = rng.normal(size=x.shape)
    host.activation_forward(x, y, act)
    host.activation_backward(dy, y, dx, act)
    gy, gdx = poisoned(x.shape), poisoned(x.shape)
    gpu.activation_forward(dev(x), gy, act)
    gpu.activation_backward(dev(dy), gy, gdx, act)
    close(gy, y)
    close(gdx, dx)
    flat = np.empty((4, 90))
    host.nhwc_to_flat(x, flat)
    gflat = poisoned(flat.shape)
    gpu.nhwc_to_flat(dev(x), gflat)
    close(gflat, flat, 0)
    back = np.empty_like(x)
    host.flat_to_nhwc(flat, back, y, act)
    gback = poisoned(x.shape)
    gpu.flat_to_nhwc(gflat, gback, gy, act)
    close(gback, back)


@pytest.mark.parametrize(
    "seed, step, stream", [(123, 77, 5), (3 * 2**32 + 123, 5 * 2**32 + 77, 2**32 + 100)]
)
def test_dropout_masks_are_the_same_bits_on_both(seed, step, stream):
    """Seeds, steps and streams past 32 bits are taken modulo 2**32 on both."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 300)).astype(np.float32)
    want = np.empty_like(x)
    host.dropout(x, want, 0.4, seed, np.array([step]), stream)
    got = poisoned(x.shape)
    gpu.dropout(dev(x), got, 0.4, seed, dev([step], np.int64), stream)
    assert np.array_equal(backend.to_host(got), want)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("k", [1, 10])
def test_losses(k, smoothing):
    rng = np.random.default_rng(k)
    z = rng.normal(scale=3, size=(300, k))
    y = rng.integers(0, max(k, 2), size=300)
    dz, loss, hit = np.empty_like(z), np.empty(300), np.empty(300, dtype=np.int32)
    fn = "softmax_xent" if k > 1 else "sigmoid_bce"
    getattr(host, fn)(z, y, dz, loss, hit, smoothing)
    gdz, gloss, ghit = poisoned(z.shape), poisoned(300), poisoned(300, np.int32)
    getattr(gpu, fn)(dev(z), dev(y, np.int64), gdz, gloss, ghit, smoothing)
    close(gdz, dz)
    close(gloss, loss)
    assert np.array_equal(backend.to_host(ghit), hit)
    total, hits = poisoned(1), poisoned(1, np.int32)
    gpu.batch_result(gloss, ghit, total, hits)
    assert float(total[0]) == pytest.approx(loss.mean(), rel=1e-5)
    assert int(hits[0]) == hit.sum()


def test_optimizers():
    rng = np.random.default_rng(0)
    p, g, m, v = (rng.normal(size=1000) for _ in range(4))
    v = np.abs(v)
    step = np.array([4])
    cases = {
        "sgd": lambda k, a: k.sgd(a[0], a[1], 0.1, 0.01),
        "momentum": lambda k, a: k.momentum(a[0], a[1], a[3], 0.1, 0.9, True, 0.01),
        "adam": lambda k, a: k.adam(*a[:4], a[4], 1e-2, 0.9, 0.999, 1e-8, 0.01),
        "adamw": lambda k, a: k.adam(*a[:4], a[4], 1e-2, 0.9, 0.999, 1e-8, 0.1, True),
    }
    for update in cases.values():
        ref = [p.copy(), g, m.copy(), v.copy(), step]
        ours = [dev(p), dev(g), dev(m), dev(v), dev(step, np.int64)]
        update(host, ref)
        update(gpu, ours)
        for a, b in zip(ours[:4], ref[:4]):
            close(a, b)


def _train_static(use, make, opt, graphs=True, steps=5):
    use()
    rng = np.random.default_rng(2)
    model = make()
    step = StaticStep(model, _loss(model), opt(), graphs=graphs)
    for _ in range(steps):
        x, y = _data(rng, model, 24)
        step(backend.to_device(x, np.float32), backend.to_device(y))
        hold_noise_at_zero(model)
    noise = rounding_only(model)  # zero
    return {name: a for name, a in model.state_dict().items() if name not in noise}


def _dropout_cnn():
    return presets.cnn((1, 13, 11), channels=(4, 6), hidden=(20,), dropout=0.3, n_outputs=4)


def _frozen_cnn():
    """A Conv, its BatchNorm and the next Conv kept as they are, with weights moved off their
    start as training moves them (no bias of zero); the update runs over the rest of the flat
    buffers."""
    model = MODELS["batch_norm"]()
    rng = np.random.default_rng(0)
    for layer in model.freeze(3):
        for p in layer.params.values():
            p += backend.to_device(rng.normal(0, 0.1, size=p.shape), p.dtype)
    return model


@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("key", [*MODELS, "dropout", "frozen"])
def test_static_step_matches_numpy(key, opt, device):
    make = {"dropout": _dropout_cnn, "frozen": _frozen_cnn}.get(key) or MODELS[key]
    _assert_static_step_matches_numpy(device, make, OPTIMIZERS[opt])


def _assert_static_step_matches_numpy(device, make, opt, steps=5):
    ref = _train_static(device.use_host, make, opt, steps=steps)
    ours = _train_static(device.use, make, opt, steps=steps)
    for name in ref:
        assert relative_error(ours[name], ref[name]) < 1e-4, name


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(make=networks(dropout=True))
def test_any_network_takes_the_same_steps_on_both_kernel_sets(make, device):
    """The GPU's kernels against NumPy's on random networks: every layer after every other."""
    device.use_host()
    first = make()
    note(f"{first.input_shape}: {first.layers}")
    start = first.state_dict()

    def train(use):
        use()
        model = make()
        model.load_state_dict(start)
        step = StaticStep(model, _loss(model), SGD(0.05))
        rng = np.random.default_rng(2)
        for _ in range(3):
            x, y = _data(rng, model, 6)
            step(backend.to_device(x, np.float32), backend.to_device(y))
        return {name: backend.to_host(a) for name, a in model.state_dict().items()}

    want, got = train(device.use_host), train(device.use)
    for name in want:
        assert same(got[name], want[name], 1e-4), name


def _lab_cnn3():
    """Large enough at batch 24 for some products to go to cuBLAS (BLAS_MIN_MACS)."""
    model = presets.lab_cnn3(10)
    assert max(m * n * k for m, n, k in products(model, 24)) >= gpu.BLAS_MIN_MACS
    return model


def _thin_cnn():
    """A first Conv with more columns (5x5 = 25) than output channels (4): it gathers them."""
    layers = [Conv(5, 1, 4, pad=2), Activation("relu"), MaxPool(2), Flatten(), Dense(784, 10)]
    return Model(layers).build((1, 28, 28))


def _bytes_held(*owners):
    """Bytes of the distinct device buffers that the owners' attributes are or view."""
    buffers = {}
    for owner in owners:
        for a in vars(owner).values():
            if isinstance(a, backend.xp().ndarray):
                while a.base is not None:
                    a = a.base
                buffers[id(a)] = a.nbytes
    return sum(buffers.values())


@pytest.mark.parametrize("make", [_thin_cnn, _lab_cnn3])
def test_the_memory_estimate_is_at_most_what_the_static_step_holds(make, device):
    # A run is refused up front when the estimate does not fit: it must not exceed the step's.
    model = make()
    program = StaticStep(model, _loss(model), Adam(1e-3), graphs=False).program(64)
    held = _bytes_held(program, *program.ops)

    def estimate(gathered):
        return sum(b for _, b in model.activation_bytes(64, True, gathered))

    assert estimate(gpu.implicit_conv) <= held
    if make is _thin_cnn:  # counting the columns it never writes would overstate it 4 times
        assert estimate(None) > 3 * held


@cuda_only
def test_static_step_with_products_for_cublas_matches_numpy(device):
    _assert_static_step_matches_numpy(device, _lab_cnn3, OPTIMIZERS["momentum"], steps=3)


@cuda_only
@pytest.mark.parametrize(
    "make", [_dropout_cnn, _lab_cnn3, MODELS["batch_norm"], MODELS["avg_pool"]]
)
def test_graph_replay_is_the_same_as_launching_kernels_one_by_one(make, device):
    eager = _train_static(device.use, make, lambda: Adam(1e-2), graphs=False)
    graph = _train_static(device.use, make, lambda: Adam(1e-2), graphs=True)
    again = _train_static(device.use, make, lambda: Adam(1e-2), graphs=True)
    for name in eager:
        assert np.array_equal(eager[name], graph[name]), name  # no atomics: bit for bit
        assert np.array_equal(graph[name], again[name]), name


@cuda_only
def test_changing_the_learning_rate_recaptures():
    backend.use("cupy", dtype="float32", seed=0)
    runs = []
    for lr_late in (0.1, 0.0):
        backend.set_seed(0)
        model = MODELS["relu_k3"]()
        opt = SGD(0.1)
        step = StaticStep(model, CrossEntropy(), opt)
        data = [_data(np.random.default_rng(i), model, 8) for i in range(4)]
        for i, (x, y) in enumerate(data):
            if i == 2:
                opt.lr = lr_late
                before = model.state_dict()
            step(backend.to_device(x, np.float32), backend.to_device(y))
        runs.append((before, model.state_dict()))
    frozen_before, frozen_after = runs[1]
    assert all(np.array_equal(frozen_before[k], frozen_after[k]) for k in frozen_before)
    assert not all(np.array_equal(runs[0][1][k], frozen_after[k]) for k in frozen_after)


@cuda_only
def test_the_trainer_uses_the_static_step_on_the_gpu():
    from gpucnn.steps import make_step

    model = presets.lab_cnn3(10)
    assert isinstance(make_step(model, CrossEntropy(), Momentum(0.1)), StaticStep)
    model.freeze(3)  # fine-tuning its dense layers
    assert isinstance(make_step(model, CrossEntropy(), Momentum(0.1)), StaticStep)
    backend.use("cupy", kernels="reference")
    assert not isinstance(make_step(model, CrossEntropy(), Momentum(0.1)), StaticStep)


def test_the_variants_script_times_every_product_on_both_kernels():
    path = Path(__file__).parents[1] / "scripts" / "conv_variants.py"
    spec = importlib.util.spec_from_file_location("conv_variants", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threshold = gpu.BLAS_MIN_MACS
    rows = script.measure_products("lab_cnn2", 4, 1)
    assert gpu.BLAS_MIN_MACS == threshold, "the threshold is restored"
    assert not backend.active().tf32, "and so is the backend's tf32"
    want = sorted({p for p in products(presets.lab_cnn2(10), 4) if p[2]})
    assert [tuple(r["product"]) for r in rows] == want
    assert all(r["tiled_ms"] > 0 and r["cublas_ms"] > 0 and r["rule"] == "tiled" for r in rows)
    assert all(r["cublas_tf32_ms"] > 0 for r in rows)
    assert all(r["faster"] == min(("tiled", "cublas"), key=lambda w: r[f"{w}_ms"]) for r in rows)
