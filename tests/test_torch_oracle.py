"""Layers against PyTorch in float64 (the oracle; skipped where torch is not installed)."""

import numpy as np
import pytest

from gpucnn import Conv, CrossEntropy, MaxPool

from .helpers import distinct, rel_error

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
    assert rel_error(y, ty.detach().numpy()) < 1e-12
    assert rel_error(dx, tx.grad.numpy()) < 1e-12
    assert rel_error(layer.grads["W"], tw.grad.numpy()) < 1e-12
    assert rel_error(layer.grads["b"], tb.grad.numpy()) < 1e-12


@pytest.mark.parametrize(
    "k,stride,H,W", [(2, 2, 8, 7), (3, 2, 9, 10), (3, 1, 6, 6), (2, 3, 11, 11)]
)
def test_maxpool_matches_torch(kernel_set, k, stride, H, W):
    rng = np.random.default_rng(k + stride)
    x = distinct(rng, (2, 3, H, W))
    layer = MaxPool(k, stride)
    y = layer.forward(x)
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.max_pool2d(tx, k, stride)
    ty.backward(torch.tensor(dy))
    assert np.array_equal(y, ty.detach().numpy())
    assert rel_error(dx, tx.grad.numpy()) < 1e-12


def test_cross_entropy_matches_torch():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(scale=4, size=(9, 10)), rng.integers(0, 10, size=9)
    loss = CrossEntropy()
    value = float(loss.forward(logits, y))
    t = torch.tensor(logits, requires_grad=True)
    tl = F.cross_entropy(t, torch.tensor(y))
    tl.backward()
    assert value == pytest.approx(tl.item(), rel=1e-12)
    assert rel_error(loss.backward(), t.grad.numpy()) < 1e-12
