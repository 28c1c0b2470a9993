"""The array kernels: the arithmetic of the layers, in interchangeable sets.

Layer kernels, which the layers call (NCHW-shaped arrays in and out; a forward function
returns a cache for its backward one): ``conv2d``, ``maxpool2d``, ``avgpool2d``,
``batch_norm``, each with its ``..._backward``.

- ``reference``: the readable version: plain im2col / col2im and a window argmax.
- ``fast`` (the default): the same functions rearranged for speed on NumPy (channels-last
  memory, a ReLU fused into the max pool after it); CuPy's layers run it too.

``use("fast" | "reference")`` picks the set (``backend.use(..., kernels=...)`` calls it) and
``active()`` returns it. Every set is tested against ``reference``, and ``reference`` against
numerical gradients and PyTorch.

Program kernels, which the GPU's static training step (gpucnn.static_step) calls: out-style
functions over preallocated channels-last buffers, in two sets sharing every signature below:

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

import importlib
from typing import Any

from ..errors import ConfigError

#: Activation names and the codes the CUDA kernels use for them (common.cuh).
ACTIVATIONS = {"none": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
#: The layer kernel sets.
SETS = ("fast", "reference")
_active = "fast"


def out_size(size: int, window: int, stride: int, pad: int = 0) -> int:
    """Output length of a sliding window, floored as in PyTorch (may be <= 0 if it does not fit)."""
    return (size + 2 * pad - window) // stride + 1


def use(name: str) -> None:
    """Make ``name`` (fast or reference) the layer kernel set."""
    global _active
    if name not in SETS:
        raise ConfigError(f"kernel set {name!r} is unknown: choose one of {', '.join(SETS)}")
    _active = name


def name() -> str:
    """The name of the active layer kernel set."""
    return _active


def active() -> Any:
    """The active layer kernel set (a module with conv2d, maxpool2d and their backwards)."""
    return importlib.import_module(f"{__name__}.{_active}")


def for_array_module(xp: Any):
    """The kernel set for NumPy or CuPy arrays."""
    if xp.__name__ == "numpy":
        from . import host

        return host
    from . import gpu

    return gpu
