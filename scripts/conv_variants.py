"""Time the ways the static step can run each convolution's products, layer by layer, and each
matrix product of the step, so that the rules choosing one (gpucnn.kernels.gpu.implicit_conv
and BLAS_MIN_MACS) rest on measurements.

For every Conv of a lab preset at each batch size, milliseconds per call of:
  forward   implicit: columns gathered inside the product | columns: im2col, then the product
  dW        implicit: gathered again | columns: the product over the forward pass's columns
  dx        implicit: dy gathered window by window (a transposed convolution)
            | columns: dy @ W written out, then folded by col2im
which way the rule picks and which is faster (over the products the step runs: a first layer
computes no dx). With the GPU kernel set, also every distinct matrix product of the step
((m, n, k) of out = a @ b), on the tiled kernel and on cuBLAS, which one BLAS_MIN_MACS picks and
which is faster, and on cuBLAS in TF32 (backend.tf32, for comparison: the rule is for float32).
On a GPU each variant is timed replayed from a CUDA graph, as the static step runs it; on
NumPy, called one by one.

Usage: python scripts/conv_variants.py [--backend cupy|numpy] [--model lab_cnn3]
                                       [--batches 128 1024] [--reps 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import time
from typing import Any

import numpy as np

from gpucnn import Conv, backend, kernels, presets
from gpucnn.kernels import out_size
from gpucnn.static_step import products, workspace


def _timed(k: Any, fn, reps: int, graph: bool) -> float:
    """Milliseconds per call of fn, after a warm-up call; ``graph``: replayed from a CUDA graph
    of reps calls, captured by kernel set ``k``."""
    fn()
    if graph:

        def in_a_row():
            for _ in range(reps):
                fn()

        run, calls = k.capture(in_a_row).launch, 1
    else:
        run, calls = fn, reps
    backend.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        run()
    backend.synchronize()
    return 1000 * (time.perf_counter() - start) / reps


def measure(model_name: str, batch: int, reps: int) -> list[dict[str, Any]]:
    """One row per Conv layer of the preset, on the active backend."""
    model = getattr(presets, model_name)(10)
    k = kernels.for_array_module(backend.xp())
    graph = backend.active().is_gpu
    work = backend.xp().empty(max(1, workspace(k, model, batch)), backend.dtype())
    inputs = [model.input_shape, *model.shapes]
    rows = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Conv):
            times = _times(k, layer, inputs[i], batch, reps, graph, work)
            # The step computes no input gradient for a first layer: its dx times do not count.
            ops = ("forward", "dw", "dx") if _has_params(model.layers[:i]) else ("forward", "dw")
            faster = min(
                ("implicit", "columns"), key=lambda way: sum(times[f"{o}_{way}_ms"] for o in ops)
            )
            rows.append({"layer": _label(i, layer), "batch": batch, **times, "faster": faster})
    return rows


def _has_params(layers: list) -> bool:
    return any(layer.params for layer in layers)


def _random_arrays():
    """arr(*dims): a device array of that shape, normal random numbers."""
    rng = np.random.default_rng(0)
    return lambda *dims: backend.to_device(rng.normal(size=dims), backend.dtype())


@contextlib.contextmanager
def _set(owner: Any, name: str, value: Any):
    """Within: ``owner.name`` is ``value`` (k.BLAS_MIN_MACS, the backend's tf32)."""
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


def measure_products(model_name: str, batch: int, reps: int) -> list[dict[str, Any]]:
    """One row per distinct matrix product of a step (GPU kernel set only: none on NumPy)."""
    k = kernels.for_array_module(backend.xp())
    if not hasattr(k, "BLAS_MIN_MACS"):
        return []
    arr, rows = _random_arrays(), []
    model = getattr(presets, model_name)(10)
    graph = backend.active().is_gpu
    for m, n, depth in sorted({p for p in products(model, batch) if p[2]}):
        a, b, out = arr(m, depth), arr(depth, n), arr(m, n)
        run = functools.partial(k.gemm, a, b, out, work=arr(max(1, k.workspace(m, n, depth))))
        times = {}
        for name, macs, tf32 in (("tiled", 2**62, False), ("cublas", 0, False),
                                 ("cublas_tf32", 0, True)):  # fmt: skip
            with _set(k, "BLAS_MIN_MACS", macs), _set(backend.active(), "tf32", tf32):
                times[f"{name}_ms"] = round(_timed(k, run, reps, graph), 4)
        rule = "cublas" if m * n * depth >= k.BLAS_MIN_MACS else "tiled"
        faster = min(("tiled", "cublas"), key=lambda name: times[f"{name}_ms"])  # in float32
        row = {"product": [m, n, depth], "batch": batch, **times, "rule": rule, "faster": faster}
        rows.append(row)
    return rows


def _label(i: int, c: Conv) -> str:
    return f"{i} Conv {c.c_in}->{c.c_out} {c.k}x{c.k} s{c.stride} p{c.pad}"


def _times(
    k: Any, layer: Conv, shape: tuple, batch: int, reps: int, graph: bool, work: Any
) -> dict:
    """The variants' milliseconds for one Conv with input ``shape`` (C, H, W); ``work``: the
    step's scratch buffer."""
    arr = _random_arrays()
    C, H, W = shape
    K, S, P, O = layer.k, layer.stride, layer.pad, layer.c_out
    m, ckk = batch * out_size(H, K, S, P) * out_size(W, K, S, P), C * K * K
    # As the step passes them: W as an (O, C*K*K) matrix, its transpose a view.
    x, w, b, dy = arr(batch, H, W, C), arr(O, ckk), arr(O), arr(m, O)
    y, dw, dx = arr(m, O), arr(O, ckk), arr(batch, H, W, C)
    cols, dcols = arr(m, ckk), arr(m, ckk)

    variants = {
        "forward_implicit": lambda: k.conv_forward(x, w.T, y, K, S, P, b, "relu", None, work),
        "forward_columns": lambda: k.conv_forward(x, w.T, y, K, S, P, b, "relu", cols, work),
        "dw_implicit": lambda: k.conv_weight_grad(dy, x, dw, K, S, P, None, work),
        "dw_columns": lambda: k.conv_weight_grad(dy, x, dw, K, S, P, cols, work),
        "dx_implicit": lambda: k.conv_input_grad(dy, w, dx, K, S, P, None, "none", None, work),
        "dx_columns": lambda: k.conv_input_grad(dy, w, dx, K, S, P, None, "none", dcols, work),
    }
    return {
        "product": [m, O, ckk],
        "graph": graph,
        **{f"{name}_ms": round(_timed(k, fn, reps, graph), 4) for name, fn in variants.items()},
        "rule": "implicit" if k.implicit_conv(m, ckk, O) else "columns",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cupy", choices=("cupy", "numpy"))
    parser.add_argument("--model", default="lab_cnn3")
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    backend.use(args.backend, dtype="float32", seed=0)
    found = {
        "convolutions": [r for n in args.batches for r in measure(args.model, n, args.reps)],
        "products": [r for n in args.batches for r in measure_products(args.model, n, args.reps)],
    }
    _print(found["convolutions"], "layer")
    _print(found["products"], "product")
    for kind, rows in found.items():
        if rows:
            agree = sum(r["rule"] == r["faster"] for r in rows)
            print(f"{kind}: the rule picks the faster way for {agree} of {len(rows)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(found, f, indent=1)


def _print(rows: list[dict[str, Any]], label: str) -> None:
    """The rows as a table: ``label``, batch, the timings and the rule."""
    if not rows:
        return
    keys = [key for key in rows[0] if key.endswith("_ms")]
    head = " ".join(f"{key[:-3]:>17}" for key in keys)
    print(f"\n{label:<26} {'batch':>5} {head}  {'rule':<8} faster")
    for r in rows:
        times = " ".join(f"{r[key]:>17.4f}" for key in keys)
        print(f"{str(r[label]):<26} {r['batch']:>5} {times}  {r['rule']:<8} {r['faster']}")


if __name__ == "__main__":
    main()
