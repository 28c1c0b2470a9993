"""The GPU's training step: built once per batch size, then replayed as one CUDA graph.

Launching a kernel from Python costs more than running it for a small CNN, so StaticStep turns
a Model into a fixed program over preallocated buffers and captures that program as a CUDA
graph, which the GPU replays with one launch per step:

- one flat buffer for all parameters, one for their gradients and one per optimiser slot (the
  layers' ``params``, ``grads`` and the optimiser's ``state`` become views of them, so
  checkpoints, evaluation and ``state_dict`` see the same numbers); frozen layers (Model.freeze)
  come first in it, so the update runs over the tail that learns, and the slots hold that tail
  only;
- an operation per layer, with a Conv, Dense or BatchNorm fused with the activation after it,
  writing channels-last activations into buffers of its own (a max pool after a Conv applies
  the Conv's bias and activation to its maxima instead);
- the loss fused with its output activation, and the batch's loss and hits summed on the device;
- one optimiser kernel over the flat buffers, and device-side step counters (dropout masks come
  from a hash of (seed, step, layer), so a resumed run draws the same masks).

The program runs on any kernel set (gpucnn.kernels): on NumPy it is what the tests compare with
the layers' own step; on CuPy the first step of each batch size runs the kernels one by one and
later ones replay the graph captured at the second.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import backend, kernels
from .kernels import out_size
from .layers import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    MaxPool,
)
from .losses import BinaryCrossEntropy, CrossEntropy, Loss
from .model import NO_HOOKS, Hooks, Model, learns
from .optimizers import SGD, Adam, AdamW, Momentum, Optimizer
from .profile import Timer
from .steps import Step

log = logging.getLogger(__name__)

SLOTS = {Adam: ("m", "v"), AdamW: ("m", "v"), Momentum: ("v",), SGD: ()}
FUSABLE = ("relu", "sigmoid", "tanh")


def unsupported(model: Model, loss: Loss, optimizer: Optimizer) -> str:
    """Why StaticStep cannot run this model ("" when it can)."""
    kinds = (Conv, Dense, BatchNorm, MaxPool, AvgPool, GlobalAvgPool, Activation, Flatten, Dropout)
    for layer in _body(model):
        if not isinstance(layer, kinds) or getattr(layer, "name", "") == "softmax":
            return f"it has no kernels for {layer!r}"
    with_params = [layer for layer in model.layers if layer.params]
    learning = [learns(layer) for layer in with_params]
    if not any(learning):
        return "none of its layers learns (every one is frozen)"
    # The update runs over the flat buffers' tail: the frozen layers' parameters come first.
    late = next((layer for layer in with_params[learning.index(True) :] if not learns(layer)), None)
    if late is not None:
        return f"{late!r} is frozen after a layer that learns (freeze the first layers only)"
    if type(loss) not in (CrossEntropy, BinaryCrossEntropy):
        return f"it has no kernels for {type(loss).__name__}"
    if type(optimizer) not in SLOTS:
        return f"it has no kernels for {type(optimizer).__name__}"
    if len(model.input_shape) != 3:
        return f"it needs (C, H, W) inputs, not {model.input_shape}"
    first = _body(model)[0]
    if model.input_shape[0] > 1 and not isinstance(first, (Conv, Flatten)):
        return "an input with several channels must go to a Conv or Flatten first"
    return ""


def _body(model: Model) -> list[Layer]:
    """The layers a step runs, in declared order: all but a sigmoid / softmax head."""
    return model.layers[:-1] if model.head else list(model.layers)


class _Op:
    """One operation of the program: ``forward()`` fills ``y`` from ``x``; ``backward(dy,
    need_dx)`` fills the layer's gradients and returns dx (None when not needed).

    ``x_act`` names the activation fused into the operation that produced x, so that dx is
    multiplied by its derivative as it is written; ``y_act`` is this operation's own."""

    y_act = "none"

    @property
    def name(self) -> str:
        """The layer it runs, for the profile: Conv+relu, MaxPool, ..."""
        kind = type(self).__name__[1:]
        return kind if self.y_act == "none" else f"{kind}+{self.y_act}"

    def __init__(self, k: Any, x: Any, x_act: str) -> None:
        self.k, self.x, self.x_act = k, x, x_act
        self.aux = x if x_act != "none" else None

    def forward(self) -> None:
        raise NotImplementedError

    def backward(self, dy: Any, need_dx: bool) -> Any:
        raise NotImplementedError


class _Conv(_Op):
    """Conv (+ activation): y: (N, OH, OW, O) = act(im2col(x) @ W^T + b). The columns are kept
    for the weight gradient, and the input gradient's columns written before they are folded,
    unless the kernel set gathers both inside the products."""

    def __init__(self, k, x, x_act, layer: Conv, act: str, xp, work) -> None:
        super().__init__(k, x, x_act)
        self.layer, self.y_act, self.work = layer, act, work
        N, H, W, C = x.shape
        K, S, P, O = layer.k, layer.stride, layer.pad, layer.c_out
        OH, OW = out_size(H, K, S, P), out_size(W, K, S, P)
        shape = (N * OH * OW, C * K * K)
        implicit = k.implicit_conv(*shape, O)
        self.cols = None if implicit else xp.empty(shape, dtype=x.dtype)
        self.dcols = None if implicit else xp.empty(shape, dtype=x.dtype)
        self.y = xp.empty((N, OH, OW, O), dtype=x.dtype)
        self.dx = xp.empty((N, H, W, C), dtype=x.dtype)
        self.pooled = False  # True once a max pool applies the bias and activation instead

    def matrices(self) -> tuple[Any, Any, Any, Any]:
        """W and dW as (O, C*K*K) matrices, b and db."""
        p, g, O = self.layer.params, self.layer.grads, self.layer.c_out
        return p["W"].reshape(O, -1), g["W"].reshape(O, -1), p["b"], g["b"]

    def forward(self) -> None:
        L = self.layer
        w, _, b, _ = self.matrices()
        y2 = self.y.reshape(-1, L.c_out)
        b = None if self.pooled else b
        self.k.conv_forward(
            self.x, w.T, y2, L.k, L.stride, L.pad, b, self.y_act, self.cols, self.work
        )

    def backward(self, dy, need_dx):
        L, k = self.layer, self.k
        w, dw, _, db = self.matrices()
        dy2 = dy.reshape(-1, L.c_out)
        k.conv_weight_grad(dy2, self.x, dw, L.k, L.stride, L.pad, self.cols, self.work)
        k.colsum(dy2, db, work=self.work)
        if not need_dx:
            return None
        k.conv_input_grad(
            dy2, w, self.dx, L.k, L.stride, L.pad, self.aux, self.x_act, self.dcols, self.work
        )
        return self.dx


class _Dense(_Op):
    """Dense (+ activation): y: (N, out) = act(x @ W + b)."""

    def __init__(self, k, x, x_act, layer: Dense, act: str, xp, work) -> None:
        super().__init__(k, x, x_act)
        self.layer, self.y_act, self.work = layer, act, work
        self.y = xp.empty((x.shape[0], layer.n_out), dtype=x.dtype)
        self.dx = xp.empty_like(x)

    def forward(self) -> None:
        p = self.layer.params
        self.k.gemm(self.x, p["W"], self.y, bias=p["b"], act=self.y_act, work=self.work)

    def backward(self, dy, need_dx):
        p, g, k = self.layer.params, self.layer.grads, self.k
        k.gemm(self.x.T, dy, g["W"], work=self.work)
        k.colsum(dy, g["b"], work=self.work)
        if not need_dx:
            return None
        k.gemm(dy, p["W"].T, self.dx, aux=self.aux, aux_act=self.x_act, work=self.work)
        return self.dx


class _Pool(_Op):
    """A pool of K x K windows, stride S: y: (N, OH, OW, C) from x: (N, H, W, C)."""

    def __init__(self, k, x, x_act, layer: MaxPool | AvgPool, xp) -> None:
        super().__init__(k, x, x_act)
        self.K, self.S = layer.k, layer.stride
        N, H, W, C = x.shape
        shape = (N, out_size(H, self.K, self.S), out_size(W, self.K, self.S), C)
        self.y = xp.empty(shape, dtype=x.dtype)
        self.dx = xp.empty_like(x)


class _MaxPool(_Pool):
    """Each window's maximum, and where it was (arg)."""

    def __init__(self, k, x, x_act, layer: MaxPool, xp) -> None:
        super().__init__(k, x, x_act, layer, xp)
        self.arg = xp.empty(self.y.shape, dtype=np.int32)
        self.bias, self.act = None, "none"

    @property
    def name(self) -> str:
        return "MaxPool" if self.bias is None else f"MaxPool+bias+{self.act}"

    def finish(self, conv: _Conv) -> None:
        """Apply ``conv``'s bias and activation to the maxima instead of to its whole output
        (the same numbers: the activations are non-decreasing), saving a pass over the larger
        map forward and the mask's read backward."""
        self.bias, self.act = conv.layer.params["b"], conv.y_act
        self.x_act, self.aux = "none", None
        conv.y_act, conv.pooled = "none", True

    def forward(self) -> None:
        self.k.maxpool_forward(self.x, self.y, self.arg, self.K, self.S, self.bias, self.act)

    def backward(self, dy, need_dx):
        k, y = self.k, self.y
        k.maxpool_backward(dy, self.arg, self.dx, self.K, self.S, self.aux, self.x_act, y, self.act)
        return self.dx


class _BatchNorm(_Op):
    """BatchNorm (+ activation) in training: y = act(gamma * xhat + beta), each channel of x:
    (N, H, W, C) or (N, C) normalised with the batch's mean and variance (a column of the
    (rows, C) matrix x is), and the layer's running statistics updated in place."""

    def __init__(self, k, x, x_act, layer: BatchNorm, act: str, xp, work) -> None:
        super().__init__(k, x, x_act)
        self.layer, self.y_act, self.work = layer, act, work
        self.y, self.xhat, self.dx = (xp.empty(x.shape, dtype=x.dtype) for _ in range(3))
        self.stats = xp.empty((2, layer.c), dtype=x.dtype)  # mean, 1 / sqrt(var + eps)

    def _columns(self, a: Any) -> Any:
        return a.reshape(-1, self.layer.c)

    def forward(self) -> None:
        L, c = self.layer, self._columns
        self.k.batch_norm_forward(
            c(self.x),
            c(self.y),
            c(self.xhat),
            self.stats,
            L.params["gamma"],
            L.params["beta"],
            L.buffers["running_mean"],
            L.buffers["running_var"],
            L.momentum,
            L.eps,
            self.y_act,
            self.work,
        )

    def backward(self, dy, need_dx):
        g, c = self.layer.grads, self._columns
        self.k.batch_norm_backward(
            c(dy),
            c(self.xhat),
            self.stats,
            self.layer.params["gamma"],
            c(self.dx),
            g["gamma"],
            g["beta"],
            None if self.aux is None else c(self.aux),
            self.x_act,
            self.work,
        )
        return self.dx


class _AvgPool(_Pool):
    """Each window's mean."""

    def forward(self) -> None:
        self.k.avgpool_forward(self.x, self.y, self.K, self.S)

    def backward(self, dy, need_dx):
        self.k.avgpool_backward(dy, self.dx, self.K, self.S, self.aux, self.x_act)
        return self.dx


class _GlobalAvgPool(_Op):
    """Each channel's mean: y: (N, C) from x: (N, H, W, C)."""

    def __init__(self, k, x, x_act, xp) -> None:
        super().__init__(k, x, x_act)
        self.y = xp.empty((x.shape[0], x.shape[3]), dtype=x.dtype)
        self.dx = xp.empty_like(x)

    def forward(self) -> None:
        self.k.global_avgpool_forward(self.x, self.y)

    def backward(self, dy, need_dx):
        self.k.global_avgpool_backward(dy, self.dx, self.aux, self.x_act)
        return self.dx


class _Activation(_Op):
    def __init__(self, k, x, x_act, name: str, xp) -> None:
        super().__init__(k, x, x_act)
        self.act = name
        self.y, self.dx = xp.empty_like(x), xp.empty_like(x)

    @property
    def name(self) -> str:
        return f"Activation({self.act})"

    def forward(self) -> None:
        self.k.activation_forward(self.x, self.y, self.act)

    def backward(self, dy, need_dx):
        self.k.activation_backward(dy, self.y, self.dx, self.act, self.aux, self.x_act)
        return self.dx


class _Dropout(_Op):
    """Inverted dropout with the mask drawn from (seed, step, stream); stream: the layer's index."""

    def __init__(self, k, x, x_act, rate: float, seed: int, stream: int, counters, xp) -> None:
        super().__init__(k, x, x_act)
        self.rate, self.seed, self.stream = rate, seed, stream
        self.step = counters[0:1]
        self.y, self.dx = xp.empty_like(x), xp.empty_like(x)

    def forward(self) -> None:
        self.k.dropout(self.x, self.y, self.rate, self.seed, self.step, self.stream)

    def backward(self, dy, need_dx):
        k = self.k
        k.dropout(dy, self.dx, self.rate, self.seed, self.step, self.stream, self.aux, self.x_act)
        return self.dx


class _Flatten(_Op):
    """(N, H, W, C) channels-last -> (N, C*H*W) in the (c, h, w) order of Dense's weights."""

    def __init__(self, k, x, x_act, xp) -> None:
        super().__init__(k, x, x_act)
        N, H, W, C = x.shape
        self.y = xp.empty((N, C * H * W), dtype=x.dtype)
        self.dx = xp.empty_like(x)

    def forward(self) -> None:
        self.k.nhwc_to_flat(self.x, self.y)

    def backward(self, dy, need_dx):
        self.k.flat_to_nhwc(dy, self.dx, self.aux, self.x_act)
        return self.dx


class Program:
    """The operations of one training step on batches of ``n``, with every buffer they use.

    ``x``: (n, C, H, W) and ``y``: (n,) are the input buffers; after ``run()``, ``loss`` and
    ``hits`` hold the batch's mean loss and number of right predictions."""

    def __init__(self, step: StaticStep, n: int) -> None:
        xp, k, model = step.xp, step.k, step.model
        dtype = step.flat.dtype
        C, H, W = model.input_shape
        self.n, self.step, self.k = n, step, k
        self.x = xp.empty((n, C, H, W), dtype=dtype)
        self.y = xp.empty((n,), dtype=np.int64)
        self.work = xp.empty(max(1, workspace(k, model, n)), dtype=dtype)
        self.ops: list[_Op] = []
        cur, act = self.x.transpose(0, 2, 3, 1), "none"  # channels-last view of the input
        body = _body(model)
        skip = False
        for i, layer in enumerate(body):
            if skip:
                skip = False
                continue
            fused = "none"
            nxt = body[i + 1] if i + 1 < len(body) - 1 else None  # never fuse the last layer
            if isinstance(layer, (Conv, Dense, BatchNorm)) and isinstance(nxt, Activation):
                if nxt.name in FUSABLE:
                    fused, skip = nxt.name, True
            op = self._op(layer, i, cur, act, fused, xp)
            if op is None:  # a reshape or an identity: no work
                cur = self.x.reshape(n, -1) if isinstance(layer, Flatten) else cur
                continue
            before = self.ops[-1] if self.ops else None
            if isinstance(op, _MaxPool) and isinstance(before, _Conv) and before.y is cur:
                op.finish(before)
            self.ops.append(op)
            cur, act = op.y, op.y_act
        self.logits = cur if cur.ndim == 2 else cur.reshape(n, -1)
        self.dz = xp.empty_like(self.logits)
        self.row_loss = xp.empty((n,), dtype=dtype)
        self.row_hit = xp.empty((n,), dtype=np.int32)
        self.loss = xp.empty((1,), dtype=dtype)
        self.hits = xp.empty((1,), dtype=np.int32)
        # the first operation whose parameters learn: no gradient is needed below it
        self.first = next(
            i
            for i, op in enumerate(self.ops)
            if isinstance(op, (_Conv, _Dense, _BatchNorm)) and learns(op.layer)
        )
        self.graph = None
        self.runs = 0

    def _op(self, layer: Layer, index: int, x: Any, x_act: str, fused: str, xp) -> _Op | None:
        k, s = self.k, self.step
        if isinstance(layer, Conv):
            return _Conv(k, x, x_act, layer, fused, xp, self.work)
        if isinstance(layer, Dense):
            return _Dense(k, x, x_act, layer, fused, xp, self.work)
        if isinstance(layer, BatchNorm):
            return _BatchNorm(k, x, x_act, layer, fused, xp, self.work)
        if isinstance(layer, MaxPool):
            return _MaxPool(k, x, x_act, layer, xp)
        if isinstance(layer, AvgPool):
            return _AvgPool(k, x, x_act, layer, xp)
        if isinstance(layer, GlobalAvgPool):
            return _GlobalAvgPool(k, x, x_act, xp)
        if isinstance(layer, Activation):
            return _Activation(k, x, x_act, layer.name, xp)
        if isinstance(layer, Dropout):
            if layer.rate == 0:
                return None
            return _Dropout(k, x, x_act, layer.rate, s.seed, index, s.counters, xp)
        if isinstance(layer, Flatten):
            if x.base is self.x:  # a view of the NCHW input: its flat order is (c, h, w)
                return None
            return _Flatten(k, x, x_act, xp)
        raise TypeError(f"no operation for {layer!r}")

    def run(self, hooks: Hooks = NO_HOOKS) -> None:
        """Forward, loss, backward and update, as kernel launches only (no host sync).

        ``hooks.run(name, fn, *args)`` runs each piece (the profiler times them)."""
        k = self.k
        for i, op in enumerate(self.ops):
            hooks.run(f"{i:>2} {op.name} forward", op.forward)
        loss = self.step.loss
        head = k.softmax_xent if isinstance(loss, CrossEntropy) else k.sigmoid_bce
        hooks.run(
            "   loss forward+backward",
            head,
            self.logits,
            self.y,
            self.dz,
            self.row_loss,
            self.row_hit,
            loss.label_smoothing,
        )
        k.batch_result(self.row_loss, self.row_hit, self.loss, self.hits)
        dy = self.dz
        for i in reversed(range(self.first, len(self.ops))):
            op = self.ops[i]
            dy = hooks.run(f"{i:>2} {op.name} backward", op.backward, dy, i > self.first)
        hooks.run("   optimizer", self.step.update)
        k.advance(self.step.counters)


def products(model: Model, n: int) -> list[tuple[int, int, int]]:
    """(m, n, k) of every matrix product of a step on batches of n, with the column sums'
    (rows, cols, 0)."""
    out = []
    inputs = [model.input_shape, *model.shapes]
    for layer, x_shape, shape in zip(_body(model), inputs, model.shapes):
        if isinstance(layer, Conv):  # y = cols @ W^T, dW = dy^T @ cols, dcols = dy @ W
            rows, ckk, o = n * shape[1] * shape[2], layer.c_in * layer.k**2, layer.c_out
            out += [(rows, o, ckk), (o, ckk, rows), (rows, ckk, o), (rows, o, 0)]
            # dx = col2im(dcols) as one product when the columns are gathered
            out.append((n * x_shape[1] * x_shape[2], layer.c_in, layer.k**2 * o))
        elif isinstance(layer, Dense):  # y = x @ W, dW = x^T @ dy, dx = dy @ W^T
            rows, i, o = n, layer.n_in, layer.n_out
            out += [(rows, o, i), (i, o, rows), (rows, i, o), (rows, o, 0)]
        elif isinstance(layer, BatchNorm):  # the statistics and gradients: column sums
            out.append((n * math.prod(shape[1:]), layer.c, 0))
    return out


def workspace(k: Any, model: Model, n: int) -> int:
    """The largest scratch buffer any matrix product or column sum of the step needs."""
    return max(
        k.workspace(m, c, kk) if kk else k.colsum_workspace(m, c) for m, c, kk in products(model, n)
    )


class StaticStep(Step):
    """``step(x, y) -> (loss, hits)`` like PlainStep, as a static program per batch size;
    ``graphs`` captures each program as a CUDA graph (CuPy only)."""

    def __init__(self, model: Model, loss: Loss, optimizer: Optimizer, graphs: bool = True):
        why = unsupported(model, loss, optimizer)
        if why:
            raise TypeError(f"StaticStep cannot run this model: {why}")
        super().__init__(model, loss, optimizer, [model])
        self.xp = backend.xp()
        self.k = kernels.for_array_module(self.xp)
        self.graphs = graphs and backend.active().is_gpu
        self.seed = backend.active().seed
        params = list(model.parameters())
        total = sum(p.size for _, p, _ in params)
        dtype = params[0][1].dtype
        self.flat = self.xp.empty(total, dtype=dtype)
        self.flat_grad = self.xp.zeros(total, dtype=dtype)
        self.views: dict[str, slice] = {}
        offset = 0
        for name, p, _ in params:
            self.views[name] = slice(offset, offset + p.size)
            offset += p.size
        self.counters = self.xp.zeros(2, dtype=np.int64)  # steps taken, optimiser updates
        self._mirror: tuple[int, int] | None = None
        self._settings: tuple | None = None
        self._plan()

    def _plan(self) -> None:
        """Lay out the optimiser's slots for the layers that learn now, and bind the buffers;
        the programs, whose backward stops at the first layer that learns, are made anew."""
        model, xp = self.model, self.xp
        self._trainable = tuple(layer.trainable for layer in model.layers)
        learning = {name for name, _, _ in model.trainable_parameters()}
        # where the parameters that learn begin: the frozen layers' come before them
        self.start = min(self.views[name].start for name in learning)
        size, dtype = self.flat.size - self.start, self.flat.dtype
        self.slots = {s: xp.zeros(size, dtype=dtype) for s in SLOTS[type(self.optimizer)]}
        self._bind()
        self.programs: dict[int, Program] = {}
        # optimizer.clip_norm's: each gradient squared, their sum's scratch, then the norm and
        # the factor the gradients are scaled by (made when clip_norm is first set)
        self.clip_buffers: tuple[Any, Any, Any] | None = None

    # ----- the flat buffers -------------------------------------------------------------------
    def _bind(self) -> None:
        """Copy every parameter, and the optimiser slots of those that learn, into the flat
        buffers, and make the layers' arrays and the optimiser's state views of them."""
        state = self.optimizer.state
        for i, layer in enumerate(self.model.layers):
            for key in list(layer.params):
                name = f"{i}.{key}"
                where, shape = self.views[name], layer.params[key].shape
                view = self.flat[where].reshape(shape)
                view[...] = layer.params[key]
                layer.params[key] = view
                layer.grads[key] = self.flat_grad[where].reshape(shape)
                if not layer.trainable:
                    continue
                for slot, buf in self.slots.items():
                    own = buf[where.start - self.start : where.stop - self.start].reshape(shape)
                    own[...] = self.optimizer.slot(name, slot, own)
                    state[name][slot] = own
        self._state_ids = self._slot_ids()

    def _slot_ids(self) -> tuple[int, ...]:
        return tuple(id(a) for s in self.optimizer.state.values() for a in s.values())

    def _sync(self) -> None:
        """Take in whatever changed on the host since the last step: layers frozen or let
        learn, optimiser state loaded from a checkpoint, the step counts, the optimiser's
        settings."""
        if tuple(layer.trainable for layer in self.model.layers) != self._trainable:
            why = unsupported(self.model, self.loss, self.optimizer)
            if why:
                raise TypeError(f"StaticStep cannot run this model: {why}")
            self._plan()
        if self._slot_ids() != self._state_ids:
            self._bind()
        counts = (self.count, self.optimizer.steps)
        if counts != self._mirror:
            self.counters[...] = self.xp.asarray(counts, dtype=np.int64)
            self._mirror = counts
        if self.optimizer.clip_norm is not None and self.clip_buffers is None:
            total, xp, dtype = self.flat_grad.size - self.start, self.xp, self.flat.dtype
            work = xp.empty(max(1, self.k.colsum_workspace(total, 1)), dtype=dtype)
            self.clip_buffers = (xp.empty(total, dtype), work, xp.empty(1, dtype))
        settings = _settings(self.optimizer)
        if settings != self._settings:  # a graph holds the old values: capture again
            for program in self.programs.values():
                program.graph = None
            self._settings = settings

    def clip(self) -> None:
        """Scale the gradient of the parameters that learn by min(1, clip_norm / (its L2 norm +
        1e-6)), as Optimizer.step does, in kernels that write into the step's own buffers only
        (so that a CUDA graph holds them): the squares summed as a column, in a fixed order."""
        squares, work, factor = self.clip_buffers
        xp, g = self.xp, self.flat_grad[self.start :]
        xp.multiply(g, g, out=squares)
        self.k.colsum(squares.reshape(-1, 1), factor, work=work)
        xp.sqrt(factor, out=factor)
        xp.add(factor, 1e-6, out=factor)
        xp.divide(self.optimizer.clip_norm, factor, out=factor)
        xp.minimum(factor, 1.0, out=factor)
        xp.multiply(g, factor, out=g)

    def update(self) -> None:
        """The optimiser's update over the flat buffers' parameters that learn (after clip,
        where clip_norm is set)."""
        o, k = self.optimizer, self.k
        p, g = self.flat[self.start :], self.flat_grad[self.start :]
        if o.clip_norm is not None:
            self.clip()
        if isinstance(o, Adam):
            updates = self.counters[1:2]
            k.adam(
                p,
                g,
                self.slots["m"],
                self.slots["v"],
                updates,
                o.lr,
                o.beta1,
                o.beta2,
                o.eps,
                o.weight_decay,
                o.DECOUPLED,
            )
        elif isinstance(o, Momentum):
            k.momentum(p, g, self.slots["v"], o.lr, o.momentum, o.nesterov, o.weight_decay)
        else:
            k.sgd(p, g, o.lr, o.weight_decay)

    # ----- stepping ---------------------------------------------------------------------------
    def program(self, n: int) -> Program:
        if n not in self.programs:
            self.programs[n] = Program(self, n)
        return self.programs[n]

    def _load(self, x: Any, y: Any) -> Program:
        """The program for this batch size, with the batch copied into its input buffers."""
        self.model.check_batch(x)
        self.loss.check((len(x), *self.model.output_shape), y)
        self._sync()
        program = self.program(len(x))
        program.x[...] = x
        program.y[...] = y
        return program

    def _done(self, program: Program) -> tuple[Any, Any]:
        """Count the step that ``program`` took; its (loss, hits) on the device."""
        program.runs += 1
        self.count += 1
        self.optimizer.steps += 1
        self._mirror = (self.count, self.optimizer.steps)
        return program.loss[0], program.hits[0]

    def __call__(self, x: Any, y: Any) -> tuple[Any, Any]:
        program = self._load(x, y)
        if self.graphs and program.runs >= 1 and program.graph is None:
            program.graph = self._capture(program)
        if program.graph is not None:
            program.graph.launch()
        else:
            program.run()
        return self._done(program)

    def profile(self, batches: Iterable[tuple[Any, Any]], steps: int) -> dict[str, float]:
        """Mean milliseconds per step of each piece of the program over ``steps`` steps (after
        one warm-up step), launched one by one with a device synchronisation around each."""
        times: dict[str, float] = defaultdict(float)
        done = 0
        for x, y in batches:
            program = self._load(x, y)
            program.run(Timer(times if done else defaultdict(float)))  # warm-up: not counted
            self._done(program)
            done += 1
            if done > steps:
                break
        return {key: 1000 * t / max(done - 1, 1) for key, t in times.items()}

    def _capture(self, program: Program) -> Any:
        """The program as a CUDA graph, or None (and no more graphs) if capture fails."""
        try:
            return self.k.capture(program.run)
        except Exception as exc:  # an old CuPy or driver: run the kernels one by one
            log.warning("CUDA graph capture failed (%s): launching kernels one by one", exc)
            self.graphs = False
            return None


def _settings(optimizer: Optimizer) -> tuple:
    """The optimiser's hyperparameters (what a captured update has baked in)."""
    return tuple(
        (k, v)
        for k, v in sorted(vars(optimizer).items())
        if isinstance(v, (int, float, bool)) and k != "steps"
    )
