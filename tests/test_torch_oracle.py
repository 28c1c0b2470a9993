"""Layers against PyTorch in float64 (the oracle; skipped where torch is not installed)."""

import numpy as np
import pytest

from gpucnn import (
    SGD,
    Adam,
    AdamW,
    AvgPool,
    BatchNorm,
    BinaryCrossEntropy,
    Conv,
    CrossEntropy,
    GlobalAvgPool,
    MaxPool,
    Momentum,
    presets,
)
from gpucnn.app.peer import PeerTrainer
from gpucnn.gradcheck import relative_error
from gpucnn.steps import make_step

from .helpers import distinct

torch = pytest.importorskip("torch", reason="PyTorch is the oracle here: pip install torch")
F = torch.nn.functional


@pytest.mark.parametrize(
    "k,stride,pad,H", [(3, 1, 1, 9), (5, 2, 2, 11), (4, 3, 0, 10), (7, 1, 3, 8)]
)
def test_conv_matches_torch(kernel_set, k, stride, pad, H):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(3, 2, H, H + 1))
    layer = Conv(k, 2, 4, pad=pad, stride=stride)
    layer.params["b"][...] = rng.normal(size=4)
    y = layer.forward(x)
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(layer.params["W"], requires_grad=True)
    tb = torch.tensor(layer.params["b"], requires_grad=True)
    ty = F.conv2d(tx, tw, tb, stride=stride, padding=pad)
    ty.backward(torch.tensor(dy))
    assert relative_error(y, ty.detach().numpy()) < 1e-12
    assert relative_error(dx, tx.grad.numpy()) < 1e-12
    assert relative_error(layer.grads["W"], tw.grad.numpy()) < 1e-12
    assert relative_error(layer.grads["b"], tb.grad.numpy()) < 1e-12


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(
    "k,stride,H,W", [(2, 2, 8, 7), (3, 2, 9, 10), (3, 1, 6, 6), (2, 3, 11, 11)]
)
def test_pools_match_torch(kernel_set, kind, k, stride, H, W):
    rng = np.random.default_rng(k + stride)
    x = distinct(rng, (2, 3, H, W))  # no ties: one maximum per window
    layer = MaxPool(k, stride) if kind == "max" else AvgPool(k, stride)
    y = layer.forward(x)
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = (F.max_pool2d if kind == "max" else F.avg_pool2d)(tx, k, stride)
    ty.backward(torch.tensor(dy))
    assert relative_error(y, ty.detach().numpy()) < 1e-12
    assert relative_error(dx, tx.grad.numpy()) < 1e-12


@pytest.mark.parametrize("k,stride", [(2, 2), (3, 2), (3, 1)])
def test_a_max_pool_sends_a_tied_windows_gradient_to_its_first_maximum_as_torch(
    kernel_set, k, stride
):
    """Of equal maxima the first in row-major window order takes the gradient (PyTorch's
    choice), not the last, nor each of them."""
    rng = np.random.default_rng(k * stride)
    x = rng.integers(1, 4, size=(2, 3, 9, 8)).astype(np.float64)  # most windows tie
    layer = MaxPool(k, stride)
    y = layer.forward(x)
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    F.max_pool2d(tx, k, stride).backward(torch.tensor(dy))
    assert relative_error(dx, tx.grad.numpy()) < 1e-12  # overlapping windows: sums in any order


def test_cross_entropy_matches_torch():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(scale=4, size=(9, 10)), rng.integers(0, 10, size=9)
    loss = CrossEntropy()
    value = float(loss.forward(logits, y))
    t = torch.tensor(logits, requires_grad=True)
    tl = F.cross_entropy(t, torch.tensor(y))
    tl.backward()
    assert value == pytest.approx(tl.item(), rel=1e-12)
    assert relative_error(loss.backward(), t.grad.numpy()) < 1e-12


@pytest.mark.parametrize("outputs", [1, 10])
def test_label_smoothing_matches_torch(outputs):
    """CrossEntropy's as torch's label_smoothing; BinaryCrossEntropy's as BCE on targets moved
    towards 1/2 (the benchmark's twin, loss_twin)."""
    from gpucnn.app.peer import loss_twin
    from gpucnn.losses import for_outputs

    rng = np.random.default_rng(outputs)
    logits, y = rng.normal(scale=4, size=(9, outputs)), rng.integers(0, max(outputs, 2), size=9)
    loss = for_outputs(outputs, label_smoothing=0.15)
    value = float(loss.forward(logits, y))
    t = torch.tensor(logits, requires_grad=True)
    theirs = loss_twin(torch, loss)(t, torch.tensor(y))
    theirs.backward()
    assert value == pytest.approx(theirs.item(), rel=1e-12)
    assert relative_error(loss.backward(), t.grad.numpy()) < 1e-12
    plain = for_outputs(outputs)
    assert float(plain.forward(logits, y)) != pytest.approx(value, rel=1e-3)  # it does something


def test_global_avgpool_matches_torch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5, 4))
    layer = GlobalAvgPool()
    y = layer.forward(x)
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.adaptive_avg_pool2d(tx, 1).flatten(1)
    ty.backward(torch.tensor(dy))
    assert relative_error(y, ty.detach().numpy()) < 1e-12
    assert relative_error(dx, tx.grad.numpy()) < 1e-12


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (6, 5)])
def test_batch_norm_matches_torch_in_training_and_evaluation(kernel_set, shape):
    rng = np.random.default_rng(1)
    layer = BatchNorm(shape[1], momentum=0.2, eps=1e-3)
    twin = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(
        shape[1], eps=1e-3, momentum=0.2
    ).double()
    gamma, beta = rng.uniform(0.5, 2, size=shape[1]), rng.normal(size=shape[1])
    layer.params["gamma"][...], layer.params["beta"][...] = gamma, beta
    twin.weight.data, twin.bias.data = torch.tensor(gamma), torch.tensor(beta)
    for step in range(2):  # the running statistics move twice, then evaluation uses them
        x = rng.normal(loc=step, scale=2, size=shape)
        y = layer.forward(x, training=True)
        dy = rng.normal(size=shape)
        dx = layer.backward(dy)
        tx = torch.tensor(x, requires_grad=True)
        twin.zero_grad()
        ty = twin.train()(tx)
        ty.backward(torch.tensor(dy))
        assert relative_error(y, ty.detach().numpy()) < 1e-12
        assert relative_error(dx, tx.grad.numpy()) < 1e-10
        assert relative_error(layer.grads["gamma"], twin.weight.grad.numpy()) < 1e-12
        assert relative_error(layer.grads["beta"], twin.bias.grad.numpy()) < 1e-12
    assert relative_error(layer.buffers["running_mean"], twin.running_mean.numpy()) < 1e-12
    assert relative_error(layer.buffers["running_var"], twin.running_var.numpy()) < 1e-12
    x = rng.normal(size=shape)
    assert relative_error(layer.forward(x), twin.eval()(torch.tensor(x)).detach().numpy()) < 1e-12


@pytest.mark.parametrize(
    "opt,n_outputs,chunk",
    [
        (lambda: Adam(lr=1e-2, weight_decay=1e-2), 3, 4),
        (lambda: AdamW(lr=1e-2, weight_decay=0.1), 3, 4),
        (lambda: SGD(0.1, weight_decay=1e-3), 1, 0),
        (lambda: Momentum(0.05, nesterov=True, weight_decay=1e-3), 3, 32),
        # gradients clipped to a norm below theirs, then decayed (torch: clip_grad_norm_)
        (lambda: Momentum(0.05, weight_decay=1e-3, clip_norm=0.05), 3, 4),
        (lambda: SGD(0.1, clip_norm=0.02), 1, 0),
    ],
)
def test_a_model_trains_as_its_pytorch_twin(kernel_set, opt, n_outputs, chunk):
    """The twin the benchmark races (its PeerTrainer): same weights, same updates, step after
    step (ours in micro-batches over two threads, as the app trains); trained apart, neither
    moves the other's weights."""
    rng = np.random.default_rng(n_outputs)
    model = presets.cnn((2, 11, 11), channels=[3, 4], filter_size=[5, 3], pool_size=[3, 2],
                        activation="tanh", hidden=[6], n_outputs=n_outputs)  # fmt: skip
    ours = opt()
    loss = BinaryCrossEntropy() if n_outputs == 1 else CrossEntropy()
    peer = PeerTrainer(torch, model, ours, loss, compile_=False)
    with make_step(model, loss, ours, threads=2, chunk=chunk) as step:
        for _ in range(3):
            x, y = rng.normal(size=(13, 2, 11, 11)), rng.integers(0, max(n_outputs, 2), 13)
            step(x, y)
            peer.step(torch.tensor(x), torch.tensor(y))
    if ours.clip_norm is not None:  # the last gradients were clipped: their norm is clip_norm
        norm = sum(float((g * g).sum()) for _, _, g in model.parameters()) ** 0.5
        assert norm == pytest.approx(ours.clip_norm, rel=1e-4)
    for (name, p, _), q in zip(model.parameters(), peer.net.parameters()):
        q = q.detach().numpy()
        assert relative_error(p, q.T if p.ndim == 2 else q) < 1e-10, name
