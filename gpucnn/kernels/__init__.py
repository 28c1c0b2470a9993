"""Kernel sets: the arithmetic of a training step as plain functions over preallocated arrays.

Two sets share every signature below, so the static training step (gpucnn.static_step) is
written once:

- ``host``: NumPy, short and readable; the reference each GPU kernel is tested against, and what
  runs the static step on the CPU in the tests.
- ``gpu``: CuPy wrappers around the CUDA C kernels in ``cuda/*.cu`` (one thread per output
  element, matrix products on shared-memory tiles, no atomics, nothing allocated per call, so a
  whole step can be captured as one CUDA graph).

Layout: 4-d tensors are channels-last, x: (N, H, W, C); a convolution's columns are
(N*OH*OW, C*K*K) with columns ordered (c, kh, kw), so an (O, C, K, K) weight is an (O, C*K*K)
matrix as it is. Every function that writes a gradient dx of a tensor that an activation
produced takes ``aux`` (that tensor) and ``aux_act`` (the activation) and multiplies by the
activation's derivative as it writes, so a fused Conv/Dense + activation needs no separate
backward kernel.
"""

from __future__ import annotations

from typing import Any

#: Activation names and the codes the CUDA kernels use for them (common.cuh).
ACTIVATIONS = {"none": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def for_array_module(xp: Any):
    """The kernel set for NumPy or CuPy arrays."""
    if xp.__name__ == "numpy":
        from . import host

        return host
    from . import gpu

    return gpu
