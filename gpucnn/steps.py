"""Training step functions: ``step(x, y) -> (loss, correct)``, made by ``make_step``.

On the GPU a step is a StaticStep (gpucnn.static_step): the GPU kernel set's program for the
batch, replayed as a CUDA graph; or, with the reference kernel set or a model it cannot run,
train.train_step on the whole batch. On the CPU a model with convolutions runs in micro-batches
spread over threads, one model replica per thread (one without, an MLP, runs whole batches,
its matrix products on BLAS's threads): most of a small CNN's step on NumPy is
elementwise work and copies, bound by memory bandwidth rather than arithmetic, so micro-batches
of a few dozen images keep each layer's arrays in the CPU cache from one operation to the next;
and since NumPy releases the GIL inside its loops, replicas on different micro-batches run at the
same time on different cores. Replicas share the parameter arrays (an update is seen by all) and
keep their own gradients and caches. A model with BatchNorm, whose statistics span the batch,
gives each replica its whole share at once instead, and its BatchNorm layers sum their
statistics over the shares (ShardSums): the whole batch's normalisation, computed in parallel.

Both kinds count their steps (``count``) and seed dropout from (seed, step), so a run resumed
from a checkpoint draws the same masks as one never interrupted.
"""

from __future__ import annotations

import copy
import functools
import logging
import operator
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from . import backend, kernels
from .errors import ConfigError, check_count
from .layers import Conv, Dropout, Layer
from .losses import Loss
from .model import Hooks, Model
from .optimizers import Optimizer
from .profile import timed_step
from .train import check_head, forward_backward, train_step

log = logging.getLogger(__name__)


def replicate(model: Model) -> Model:
    """A model whose layers share ``model``'s parameter arrays but own their gradients."""
    twin = copy.copy(model)
    twin.layers = []
    for layer in model.layers:
        layer = copy.copy(layer)
        layer.grads = {k: g.copy() for k, g in layer.grads.items()}
        twin.layers.append(layer)
    return twin.build(model.input_shape)


def _whole_batch_layer(model: Model, unsharded: bool = False) -> Layer | None:
    """The first layer whose training pass needs the whole batch (BatchNorm), or None; with
    ``unsharded``, the first of them that cannot sum its statistics over shares of it."""
    return next(
        (
            layer
            for layer in model.layers
            if layer.whole_batch and not (unsharded and layer.sums_shards)
        ),
        None,
    )


def _has_conv(model: Model) -> bool:
    """Whether micro-batches pay for ``model``: they keep a convolution's activations in cache.
    Without a Conv a step is a few matrix products, faster on the whole batch with BLAS's
    threads (an MLP on 2 cores: 1.3 ms a step against 2.8 ms in micro-batches of 32)."""
    return any(isinstance(layer, Conv) for layer in model.layers)


def _dropouts(model: Model) -> list[Dropout]:
    return [layer for layer in model.layers if isinstance(layer, Dropout)]


def _seed(layers: list[Dropout], step: int, stream: int) -> None:
    if layers:
        rng = backend.step_rng(step, stream)
        for layer in layers:
            layer.rng = rng


class Step:
    """Shared by both kinds: the step counter, per-step dropout generators, and the
    instrumented step that diagnostics sample."""

    def __init__(self, model: Model, loss: Loss, optimizer: Optimizer, runners: list[Model]):
        check_head(model, loss)
        optimizer.bind(model)
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.count = 0  # steps taken; set from a checkpoint on resume
        self._dropouts = [_dropouts(m) for m in runners]

    def _seed_dropout(self) -> None:
        for stream, layers in enumerate(self._dropouts):
            _seed(layers, self.count, stream)

    def instrumented(self, x: Any, y: Any, times: dict[str, float], probe: Hooks) -> tuple:
        """The same update on the whole batch, one layer at a time in declared order, timed
        and observed by ``probe`` (profile.timed_step)."""
        _seed(_dropouts(self.model), self.count, len(self._dropouts))
        self.count += 1
        return timed_step(self.model, self.loss, self.optimizer, x, y, times, True, probe)

    def close(self) -> None:
        """Release threads (a no-op for the plain step)."""

    def __enter__(self) -> Step:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PlainStep(Step):
    """train.train_step on the whole batch."""

    def __init__(self, model: Model, loss: Loss, optimizer: Optimizer) -> None:
        super().__init__(model, loss, optimizer, [model])

    def __call__(self, x: Any, y: Any) -> tuple[Any, Any]:
        self._seed_dropout()
        self.count += 1
        return train_step(self.model, self.loss, self.optimizer, x, y)


class ShardSums:
    """Sums over the shards of one batch, trained at once by one thread each: every shard's
    thread hands in its list of per-channel arrays and gets the batch's, added in shard order
    (the same sums in every thread, step after step). ``abort`` frees the threads waiting when
    one of them fails."""

    def __init__(self, shards: int) -> None:
        self._barrier = threading.Barrier(shards)
        self._parts: list[list] = [[] for _ in range(shards)]

    def total(self, shard: int, arrays: list) -> list:
        self._parts[shard] = arrays
        self._barrier.wait()
        sums = [functools.reduce(operator.add, column) for column in zip(*self._parts)]
        self._barrier.wait()  # every thread has its sums before any hands in the next arrays
        return sums

    def abort(self) -> None:
        self._barrier.abort()


class MicroBatchStep(Step):
    """train.train_step's result, computed in micro-batches of at most ``chunk`` images spread
    over ``threads`` replicas (NumPy).

    The gradient equals that of the whole batch up to the order of summation, which is fixed,
    so results repeat exactly run to run; the update is applied once per batch. ``chunk=None``
    gives each replica its whole share of the batch at once: what a model with BatchNorm
    needs, whose layers then sum their statistics over the shares (ShardSums).
    """

    def __init__(
        self, model: Model, loss: Loss, optimizer: Optimizer, threads: int, chunk: int | None
    ) -> None:
        from threadpoolctl import ThreadpoolController

        whole = _whole_batch_layer(model, unsharded=chunk is None)
        if whole is not None:
            raise ConfigError(
                f"{whole!r} computes statistics over the whole batch, which micro-batches "
                "would split: train it with whole batches (make_step(..., chunk=0))"
            )
        self.threads, self.chunk = threads, chunk
        self.replicas = [replicate(model) for _ in range(threads)]
        self._sharded = [[layer for layer in r.layers if layer.whole_batch] for r in self.replicas]
        super().__init__(model, copy.copy(loss), optimizer, self.replicas)
        self.losses = [copy.copy(loss) for _ in range(threads)]  # settings kept, caches apart
        self.sums = [
            [{k: g.copy() for k, g in layer.grads.items()} for layer in r.layers]
            for r in self.replicas
        ]
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="gpucnn-step")
        self.closed = False
        self._blas = ThreadpoolController() if threads > 1 else None

    def _part(self, i: int, x: Any, y: Any, n: int) -> tuple[Any, Any]:
        """Replica i's share x: (n_i, ...) of a batch of n, in micro-batches; its gradient
        (weighted by its share of the batch) summed into self.sums[i]."""
        replica, loss, sums = self.replicas[i], self.losses[i], self.sums[i]
        total, correct = 0.0, 0
        chunk = self.chunk or x.shape[0]
        for lo in range(0, x.shape[0], chunk):
            xb, yb = x[lo : lo + chunk], y[lo : lo + chunk]
            weight = xb.shape[0] / n
            value, hits = forward_backward(replica, loss, xb, yb, scale=weight)
            total += value * weight
            correct += hits
            for layer, acc in zip(replica.layers, sums):
                for key, grad in layer.grads.items():
                    if lo == 0:
                        np.copyto(acc[key], grad)
                    else:
                        acc[key] += grad
        return total, correct

    def __call__(self, x: Any, y: Any) -> tuple[Any, Any]:
        if self.closed:  # its threads are gone: the pool would refuse the work obscurely
            raise RuntimeError(
                "this step was closed (its with block ended, or close() was called) and its "
                "threads released: make another with make_step(model, loss, optimizer)"
            )
        self._seed_dropout()
        self.count += 1
        if self._blas is None:
            return self._step(x, y)
        # The parallelism is ours during the step: one BLAS thread per call, so threads do
        # not compete for the cores.
        with self._blas.limit(limits=1, user_api="blas"):
            return self._step(x, y)

    def _step(self, x: Any, y: Any) -> tuple[Any, Any]:
        n = x.shape[0]
        # Shares as equal as can be, of at least two images (a BatchNorm after a Dense needs
        # two values per feature), for as many threads as the batch can keep busy.
        shards = max(1, min(self.threads, n // 2))
        bounds = [n * k // shards for k in range(shards + 1)]
        sums = ShardSums(shards)
        for k, layers in enumerate(self._sharded[:shards]):
            for layer in layers:
                layer.shards = (functools.partial(sums.total, k), k == 0)
        futures = [
            self.pool.submit(self._share, sums, k, x[lo:hi], y[lo:hi], n)
            for k, (lo, hi) in enumerate(zip(bounds, bounds[1:]))
        ]
        wait(futures)
        failures = [f.exception() for f in futures if f.exception() is not None]
        if failures:  # the shard's own error, not the others' that its abort set free
            raise next(
                (e for e in failures if not isinstance(e, threading.BrokenBarrierError)),
                failures[0],
            )
        results = [f.result() for f in futures]
        used = self.sums[:shards]
        for layer, *parts in zip(self.model.layers, *used):
            for key, grad in layer.grads.items():
                np.copyto(grad, parts[0][key])
                for other in parts[1:]:
                    grad += other[key]
        self.optimizer.step(self.model.trainable_parameters())
        return sum(v for v, _ in results), sum(c for _, c in results)

    def _share(self, sums: ShardSums, i: int, x: Any, y: Any, n: int) -> tuple[Any, Any]:
        """_part, freeing the other shards' threads if it fails while they wait for it."""
        try:
            return self._part(i, x, y, n)
        except BaseException:
            sums.abort()
            raise

    def close(self) -> None:
        self.pool.shutdown()
        self.closed = True


def make_step(
    model: Model,
    loss: Loss,
    optimizer: Optimizer,
    threads: int | None = None,
    chunk: int = 32,
    graphs: bool = True,
) -> Step:
    """The step function for the active backend: MicroBatchStep on NumPy (``threads``: None =
    every core; ``chunk``: micro-batch size, 0 = whole batches on one thread; a model with
    BatchNorm gets a share of the batch per thread, one without a Conv whole batches); on the
    GPU a StaticStep with the fast kernel set, where it can run the model, else PlainStep
    (``graphs=False``: launching the static step's kernels one by one, for settings that change
    at every step, which a captured graph would hold). Call ``close()`` when done, or use it in
    a ``with`` block."""
    if threads is not None:
        check_count(threads, "threads", "a positive integer, or None for every core", least=1)
    check_count(chunk, "chunk", "an integer >= 0 (0: whole batches)", least=0)
    if backend.active().is_gpu:
        if kernels.name() == "fast":
            from .static_step import StaticStep, unsupported

            why = unsupported(model, loss, optimizer)
            if not why and backend.dtype() is not np.float32:
                why = "its kernels are float32 only"
            if not why:
                return StaticStep(model, loss, optimizer, graphs)
            log.info("GPU kernel set not used (%s): running the layers' array code", why)
        return PlainStep(model, loss, optimizer)
    if not chunk or not _has_conv(model):
        return PlainStep(model, loss, optimizer)
    whole = _whole_batch_layer(model)
    threads = backend.available_cores() if threads is None else threads
    if whole is None:
        return MicroBatchStep(model, loss, optimizer, threads, chunk)
    if threads > 1 and _whole_batch_layer(model, unsharded=True) is None:
        log.info("%r sums its statistics over the batch: a share of it per thread", whole)
        return MicroBatchStep(model, loss, optimizer, threads, None)
    log.info("%r needs the whole batch at once: no micro-batches", whole)
    return PlainStep(model, loss, optimizer)


def micro_batched(model: Model, chunk: int) -> bool:
    """Whether make_step trains ``model`` in micro-batches of ``chunk``: on NumPy, unless
    ``chunk`` is 0, the model has no Conv or a layer needs the whole batch."""
    return (
        not backend.active().is_gpu
        and chunk > 0
        and _has_conv(model)
        and _whole_batch_layer(model) is None
    )
