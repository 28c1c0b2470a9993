"""The GPU kernel set's CUDA C, compiled as C++ and run on the CPU: a stand-in for CuPy's
RawModule, so the tests run gpucnn.kernels.gpu, wrappers and kernels, on machines without a GPU.

``RawModule(source)`` compiles with g++ (runtime.h supplies threadIdx, __shared__,
__syncthreads and the launch); ``get_function(name)`` returns a kernel called as CuPy's are,
``kernel(grid, block, args)``, with NumPy arrays for device pointers and NumPy scalars for
values. Each value's size is checked against the kernel's parameter, so an int32 passed for a
``long long`` fails here as it would misread on a GPU. Blocks run one after another and the
threads of a block take turns between barriers, so a race goes unseen: what this checks is the
arithmetic, the indexing and the arguments, not the timing.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RUNTIME = Path(__file__).with_name("runtime.h")
KERNEL = re.compile(r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(")


def unavailable() -> str:
    """Why the kernels cannot run on this CPU ("" when they can)."""
    if shutil.which("g++") is None:
        return "g++ is not on this machine's PATH"
    return ""


class RawModule:
    def __init__(self, code: str) -> None:
        names = KERNEL.findall(_preprocessed(code))
        launchers = [
            f'extern "C" EXPORT int run_{n}(const unsigned* g, const unsigned* b, void** a, int n,'
            f" const int* s) {{ return launch({n}, g, b, a, n, s); }}"
            for n in names
        ]
        unit = "\n".join([RUNTIME.read_text(), code, *launchers])
        with tempfile.TemporaryDirectory(prefix="gpucnn-cuda-on-cpu-") as folder:
            self.library = ctypes.CDLL(str(_compiled(unit, Path(folder))))
        self.names = names

    def get_function(self, name: str) -> Kernel:
        if name not in self.names:
            raise AttributeError(f"no kernel named {name!r}")
        return Kernel(name, getattr(self.library, f"run_{name}"))


class Kernel:
    def __init__(self, name: str, run: Any) -> None:
        self.name, self.run = name, run

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple) -> None:
        values = [_value(a) for a in args]
        rc = self.run(
            _dim3(grid),
            _dim3(block),
            (ctypes.c_void_p * len(values))(*map(ctypes.addressof, values)),
            len(values),
            (ctypes.c_int * len(values))(*map(ctypes.sizeof, values)),
        )
        if rc == -1:
            raise TypeError(f"{self.name}: {len(values)} arguments is not what it takes")
        if rc:
            raise TypeError(f"{self.name}: argument {rc - 1} has the wrong size ({args[rc - 1]!r})")


def _dim3(dims: tuple[int, ...]) -> Any:
    return (ctypes.c_uint * 3)(*dims, *(1,) * (3 - len(dims)))


def _value(a: Any) -> Any:
    """The bytes CuPy would pass for a: an array's data pointer, a scalar's own bytes."""
    if isinstance(a, np.ndarray):
        return ctypes.c_void_p(a.ctypes.data)
    if not isinstance(a, np.generic):
        raise TypeError(f"pass NumPy scalars to kernels, so their size is fixed: {a!r}")
    return (ctypes.c_char * a.itemsize).from_buffer_copy(a.tobytes())


def _preprocessed(code: str) -> str:
    """``code`` with its macros expanded, where every kernel's name can be read."""
    proc = ["g++", "-E", "-P", "-x", "c++", "-"]
    return subprocess.run(proc, input=code, capture_output=True, text=True, check=True).stdout


def _compiled(unit: str, folder: Path) -> Path:
    """The shared library built from ``unit`` in ``folder``."""
    source, library = folder / "kernels.cpp", folder / "kernels.so"
    source.write_text(unit)
    # Hidden symbols: a kernel named like a C library function (advance) must call itself.
    flags = ["-std=c++17", "-O1", "-shared", "-fPIC", "-fvisibility=hidden"]
    cmd = ["g++", *flags, "-o", library, source]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the CUDA sources do not compile as C++:\n{proc.stderr}")
    return library
