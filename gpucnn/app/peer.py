"""The benchmark's peer: the same network, weights, data, batch order and optimiser in PyTorch.

PyTorch is only ever imported here, by the benchmark, and is not a dependency of the library.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backend
from ..layers import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    MaxPool,
)
from ..losses import BinaryCrossEntropy, Loss
from ..model import Model
from ..optimizers import SGD, Adam, AdamW, Momentum, Optimizer


def import_torch() -> tuple[Any | None, str]:
    """(torch, "") or (None, why not)."""
    try:
        import torch
    except ImportError as exc:
        return None, f"PyTorch is not installed ({exc}); pip install torch to compare"
    return torch, ""


def twin(torch: Any, model: Model) -> Any:
    """A torch.nn.Sequential with the same layers and current weights as ``model``, without the
    output activation (the loss takes logits, as ours does)."""
    nn = torch.nn
    mods = []
    for layer in model.layers[:-1] if model.head else model.layers:
        if isinstance(layer, Conv):
            m = nn.Conv2d(layer.c_in, layer.c_out, layer.k, layer.stride, layer.pad)
        elif isinstance(layer, Dense):
            m = nn.Linear(layer.n_in, layer.n_out)
        elif isinstance(layer, MaxPool):
            m = nn.MaxPool2d(layer.k, layer.stride)
        elif isinstance(layer, Activation):
            m = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[layer.name]()
        elif isinstance(layer, Flatten):
            m = nn.Flatten()
        elif isinstance(layer, Dropout):
            m = nn.Dropout(layer.rate)
        elif isinstance(layer, AvgPool):
            m = nn.AvgPool2d(layer.k, layer.stride)
        elif isinstance(layer, GlobalAvgPool):
            m = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        elif isinstance(layer, BatchNorm):
            kind = (
                nn.BatchNorm2d
                if len(model.shapes[model.layers.index(layer)]) == 3
                else nn.BatchNorm1d
            )
            m = kind(layer.c, eps=layer.eps, momentum=layer.momentum)
        else:
            raise TypeError(f"no PyTorch twin for {layer!r}")
        if isinstance(layer, BatchNorm):
            host = {
                k: torch.from_numpy(backend.to_host(a).copy())
                for k, a in {**layer.params, **layer.buffers}.items()
            }
            m.weight.data, m.bias.data = host["gamma"], host["beta"]
            m.running_mean.data, m.running_var.data = host["running_mean"], host["running_var"]
        elif layer.params:  # copies: the twin must not train the model's own arrays
            w = backend.to_host(layer.params["W"])
            m.weight.data = torch.from_numpy(np.array(w.T if isinstance(layer, Dense) else w))
            m.bias.data = torch.from_numpy(backend.to_host(layer.params["b"]).copy())
        mods.append(m)
    return nn.Sequential(*mods)


def optimizer_twin(torch: Any, params: Any, opt: Optimizer) -> Any:
    if isinstance(opt, Adam):
        return (torch.optim.AdamW if isinstance(opt, AdamW) else torch.optim.Adam)(
            params,
            lr=opt.lr,
            betas=(opt.beta1, opt.beta2),
            eps=opt.eps,
            weight_decay=opt.weight_decay,
        )
    if isinstance(opt, Momentum):
        return torch.optim.SGD(
            params,
            lr=opt.lr,
            momentum=opt.momentum,
            nesterov=opt.nesterov,
            weight_decay=opt.weight_decay,
        )
    if isinstance(opt, SGD):
        return torch.optim.SGD(params, lr=opt.lr, weight_decay=opt.weight_decay)
    raise TypeError(f"no PyTorch twin for {type(opt).__name__}")


def as_tensor(torch: Any, x: Any, device: str) -> Any:
    """A zero-copy torch view of a NumPy or CuPy array."""
    if device == "cpu":
        return torch.from_numpy(backend.to_host(x))
    return torch.as_tensor(x, device=device)


def loss_twin(torch: Any, loss: Loss) -> Callable[[Any, Any], Any]:
    """PyTorch's twin of ``loss``, as a function of the logits and the labels (BCE's targets
    smoothed by hand: BCEWithLogitsLoss has no label_smoothing)."""
    e = loss.label_smoothing
    if isinstance(loss, BinaryCrossEntropy):
        bce = torch.nn.BCEWithLogitsLoss()
        return lambda out, y: bce(out[:, 0], y.to(out.dtype) * (1 - e) + e / 2)
    cross_entropy = torch.nn.CrossEntropyLoss(label_smoothing=e)
    return lambda out, y: cross_entropy(out, y)


class PeerTrainer:
    """Trains the twin of ``model`` on the same device arrays and batch orders."""

    def __init__(self, torch: Any, model: Model, opt: Optimizer, loss: Loss, compile_: bool):
        self.torch = torch
        self.device = "cuda" if backend.active().is_gpu else "cpu"
        self.net = twin(torch, model).to(self.device)
        self.opt = optimizer_twin(torch, self.net.parameters(), opt)
        self.clip_norm = opt.clip_norm
        self.loss, self.binary = loss_twin(torch, loss), isinstance(loss, BinaryCrossEntropy)
        self.step = self._step
        if compile_:
            self.step = torch.compile(self._step, mode="reduce-overhead")

    def _step(self, x: Any, y: Any) -> Any:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(self.net(x), y)
        loss.backward()
        if self.clip_norm is not None:
            self.torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.clip_norm)
        self.opt.step()
        return loss

    def synchronize(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def epoch(self, x: Any, y: Any, orders: Any, batch_size: int, max_batches: int | None) -> float:
        """Train one epoch over ``orders`` (a device permutation); returns its seconds."""
        torch = self.torch
        tx, ty, order = (as_tensor(torch, a, self.device) for a in (x, y, orders))
        self.net.train()
        self.synchronize()
        start = time.perf_counter()
        n = order.shape[0]
        for i, lo in enumerate(range(0, n, batch_size)):
            if max_batches is not None and i >= max_batches:
                break
            idx = order[lo : lo + batch_size]
            self.step(tx[idx], ty[idx])
        self.synchronize()
        return time.perf_counter() - start

    def accuracy(self, x: Any, y: Any, batch_size: int = 1024) -> float:
        torch = self.torch
        tx, ty = as_tensor(torch, x, self.device), as_tensor(torch, y, self.device)
        self.net.eval()
        correct = 0
        with torch.no_grad():
            for lo in range(0, tx.shape[0], batch_size):
                out = self.net(tx[lo : lo + batch_size])
                pred = (out[:, 0] > 0).long() if self.binary else out.argmax(1)
                correct += int((pred == ty[lo : lo + batch_size]).sum())
        return correct / tx.shape[0]
