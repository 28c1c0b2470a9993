"""Numerical gradient checks: does a layer's ``backward`` agree with central differences of its
``forward``? The check every layer of the library passes, for a layer of your own too (the
README's ``Scale``, say)::

    from gpucnn import backend, gradcheck
    backend.use("numpy", dtype="float64")         # before making the layer: float64 parameters
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8))
    layer = Scale(3)
    layer.params["s"][...] = [0.5, -1.5, 2.0]     # not ones: at s = 1, dy passes for s * dy
    print(gradcheck.errors(layer, x))             # e.g. {'x': 2e-09, 's': 1e-10}: < 1e-6 agrees

The layer's output is reduced to one number, ``sum(forward(x) * R)`` with a fixed random R, so
every output element counts; the gradient of that with respect to x and to each parameter is
computed by ``backward(R)`` and by nudging each value by +-eps in turn. ``varied(layer, rng)``
draws a layer's parameters at random first, and ``distinct(rng, shape)`` gives inputs without
the ties and kinks (max pooling, ReLU) that a nudge would cross. ``python -m gpucnn.check``
checks every layer of the library this way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import ConfigError, ShapeError

EPS = 1e-6  # the nudge: float64's rounding (1e-16 relative) stays far below the differences


def numerical_grad(f: Callable[[], float], x: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` w.r.t. the array ``x``, which is
    changed in place (and restored) one element at a time."""
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


def relative_error(a: Any, b: Any) -> float:
    """max |a - b| / max(|a|, |b|): the worst element's error relative to the largest value.
    ValueError for two all-zero arrays: their agreement proves nothing."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)))
    if not scale > 0:
        raise ValueError("both arrays are all zeros: comparing them proves nothing")
    return float(np.max(np.abs(a - b)) / scale)


def varied(layer: Any, rng: np.random.Generator) -> Any:
    """``layer`` with every parameter drawn from a normal distribution and every buffer (a
    BatchNorm's running statistics) from [0.5, 2), so that none is all ones or zeros, where a
    wrong gradient can pass for a right one."""
    for p in layer.params.values():
        p[...] = rng.normal(size=p.shape)
    for b in getattr(layer, "buffers", {}).values():
        b[...] = rng.uniform(0.5, 2, size=b.shape)
    return layer


def distinct(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 2.0) -> np.ndarray:
    """Values in (-scale, scale), all different, none zero, and far apart against the nudge of
    a numerical gradient: a max pool sees no ties and a ReLU no kink within one."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2 + 0.5) * (2 * scale / n)).reshape(shape)


def errors(
    layer: Any,
    x: np.ndarray,
    rng: np.random.Generator | None = None,
    training: bool = False,
    before: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """The relative error (``relative_error``) between ``layer.backward`` and central
    differences, for the input ("x") and for each of ``layer.params``. x: a float64 NumPy
    batch the layer takes, e.g. (N, C, H, W); ``training`` is passed to ``forward``;
    ``before`` runs ahead of every forward pass (to draw the same dropout mask each time)."""
    arrays = {"x": x, **layer.params}
    _check_float64(arrays)
    rng = np.random.default_rng(0) if rng is None else rng
    before()
    r = rng.normal(size=layer.forward(x, training).shape)

    def projected() -> float:
        before()
        return float((layer.forward(x, training) * r).sum())

    before()
    layer.forward(x, training)
    found = {"x": layer.backward(r), **{k: g.copy() for k, g in layer.grads.items()}}
    _check_shapes(layer, arrays, found)
    return {
        name: relative_error(found[name], numerical_grad(projected, a))
        for name, a in arrays.items()
    }


def model_errors(model: Any, loss: Any, x: np.ndarray, y: Any) -> dict[str, float]:
    """The relative error between ``model.backward`` and central differences of the loss, for
    every parameter ("0.W", "0.b", ...): the layers chained, the output activation fused into
    the loss as training does. x: a float64 batch, y: its labels; in evaluation mode (no
    dropout, BatchNorm with its running statistics), so that every pass computes the same."""
    from .train import check_head

    check_head(model, loss)
    params = {name: p for name, p, _ in model.parameters()}
    _check_float64({"x": x, **params})

    def value() -> float:
        return float(loss.forward(model.forward(x, logits=True), y))

    value()
    model.backward(loss.backward(), logits=True, evaluation=True)
    found = {name: g.copy() for name, _, g in model.parameters()}
    return {
        name: relative_error(found[name], numerical_grad(value, p)) for name, p in params.items()
    }


def _check_shapes(layer: Any, arrays: dict[str, Any], found: dict[str, Any]) -> None:
    """ConfigError (ShapeError) naming the layer unless backward returned a gradient shaped like
    x and filled one shaped like each parameter (other shapes would be compared by broadcasting)."""
    for name, a in arrays.items():
        what = "returned" if name == "x" else f"left in grads[{name!r}]"
        if name not in found:
            raise ConfigError(
                f"{type(layer).__name__}.grads has no {name!r}: give it an array shaped like "
                f"params[{name!r}] in __init__, and fill it in backward"
            )
        shape = getattr(found[name], "shape", None)
        if shape != a.shape:
            raise ShapeError(
                f"{type(layer).__name__}.backward {what} a gradient of shape {shape}, but "
                f"{name} is {a.shape}: each gradient is shaped like what it is the gradient for"
            )


def _check_float64(arrays: dict[str, Any]) -> None:
    """ConfigError, with the fix, unless every array is a float64 NumPy array: float32's
    rounding would swamp the differences."""
    coarse = [
        name for name, a in arrays.items() if not isinstance(a, np.ndarray) or a.dtype != np.float64
    ]
    if coarse:
        raise ConfigError(
            f"a gradient check needs float64 NumPy arrays, but {', '.join(coarse)} "
            f"{'is' if len(coarse) == 1 else 'are'} not: call backend.use('numpy', "
            "dtype='float64') before making the layers, and pass x.astype(np.float64)"
        )
