"""The GPU kernel set's CUDA C, compiled as C++ and run on the CPU: a stand-in for CuPy's
RawModule, so the tests run gpucnn.kernels.gpu, wrappers and kernels, on machines without a GPU.

``RawModule(source)`` compiles with g++ (runtime.h supplies threadIdx, __shared__,
__syncthreads and the launch); ``get_function(name)`` returns a kernel called as CuPy's are,
``kernel(grid, block, args)``, with NumPy arrays for device pointers and NumPy scalars for
values. Each value's size is checked against the kernel's parameter, so an int32 passed for a
``long long`` fails here as it would misread on a GPU, and so does a grid or block that a GPU
would refuse to launch (``check_launch``). Each array is handed to the kernel as
a copy between two inaccessible pages, once flush against the page before and once against the
page after, so a thread reading or writing outside its array fails the launch, naming the
argument, block and thread (on a GPU it would read or corrupt other memory silently). Blocks
run one after another and the threads of a block take turns between barriers, so a race goes
unseen: what this checks is the arithmetic, the indexing and the arguments, not the timing.
"""

from __future__ import annotations

import ctypes
import mmap
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.array_utils import byte_bounds

RUNTIME = Path(__file__).with_name("runtime.h")
#: The most a CUDA launch takes: blocks in a grid and threads in a block, along x, y and z, and
#: threads in a block in all.
GRID_MAX, BLOCK_MAX, THREADS_MAX = (2**31 - 1, 65535, 65535), (1024, 1024, 64), 1024
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
        self.library.last_fault.restype = ctypes.POINTER(_Fault)
        self.names = names

    def get_function(self, name: str) -> Kernel:
        if name not in self.names:
            raise AttributeError(f"no kernel named {name!r}")
        return Kernel(name, getattr(self.library, f"run_{name}"), self.library.last_fault)


class Kernel:
    def __init__(self, name: str, run: Any, last_fault: Any) -> None:
        self.name, self.run, self.last_fault = name, run, last_fault

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple) -> None:
        check_launch(self.name, grid, block)
        # Against the page before, results dropped; then against the page after, kept.
        for at_end in (False, True):
            copies = _guarded_copies(args, at_end)
            try:
                self._launch(grid, block, args, copies)
            finally:
                for copy in set(copies.values()):
                    copy.close(keep=at_end)

    def _launch(self, grid, block, args, copies: dict[int, _Guarded]) -> None:
        values = [_value(a, copies.get(i)) for i, a in enumerate(args)]
        rc = self.run(
            _dim3(grid),
            _dim3(block),
            (ctypes.c_void_p * len(values))(*map(ctypes.addressof, values)),
            len(values),
            (ctypes.c_int * len(values))(*map(ctypes.sizeof, values)),
        )
        if rc == -1:
            raise TypeError(f"{self.name}: {len(values)} arguments is not what it takes")
        if rc == -2:
            raise IndexError(self._fault(args, copies))
        if rc:
            raise TypeError(f"{self.name}: argument {rc - 1} has the wrong size ({args[rc - 1]!r})")

    def _fault(self, args: tuple, copies: dict[int, _Guarded]) -> str:
        """Which thread reached outside which argument."""
        f = self.last_fault().contents
        who = f"block {tuple(f.block)} thread {tuple(f.thread)}"
        for i, copy in copies.items():
            side = copy.side(f.address or 0)
            if side:
                return f"{self.name}: {who} went {side} argument {i} {args[i].shape}"
        return f"{self.name}: {who} touched memory no argument holds ({f.address or 0:#x})"


class _Fault(ctypes.Structure):
    _fields_ = [
        ("address", ctypes.c_void_p),
        ("block", ctypes.c_uint * 3),
        ("thread", ctypes.c_uint * 3),
    ]


_LIBC = ctypes.CDLL(None)
_LIBC.mmap.restype = ctypes.c_void_p
_LIBC.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, *[ctypes.c_int] * 3, ctypes.c_long]
_LIBC.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_LIBC.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
PAGE = mmap.PAGESIZE
PROT_NONE = 0  # <sys/mman.h>; the mmap module has the others


class _Guarded:
    """A copy of the bytes [low, high) between two inaccessible pages, flush against the one
    after (``at_end``) or the one before."""

    def __init__(self, low: int, high: int, at_end: bool) -> None:
        self.low, self.size = low, high - low
        body = max(1, -(-self.size // PAGE)) * PAGE
        self.length = body + 2 * PAGE
        rw, private = mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        self.base = _LIBC.mmap(None, self.length, rw, private, -1, 0)
        if self.base in (None, ctypes.c_void_p(-1).value):
            raise MemoryError("mmap failed")
        _LIBC.mprotect(self.base, PAGE, PROT_NONE)
        _LIBC.mprotect(self.base + PAGE + body, PAGE, PROT_NONE)
        self.start = self.base + PAGE + (body - self.size if at_end else 0)
        ctypes.memmove(self.start, low, self.size)

    def side(self, address: int) -> str:
        """The side of the array whose guard page holds ``address`` (before, after), or ""."""
        if self.base <= address < self.base + PAGE:
            return "before"
        if self.base + self.length - PAGE <= address < self.base + self.length:
            return "after"
        return ""

    def close(self, keep: bool) -> None:
        if keep:
            ctypes.memmove(self.low, self.start, self.size)
        _LIBC.munmap(self.base, self.length)


def _guarded_copies(args: tuple, at_end: bool) -> dict[int, _Guarded]:
    """A guarded copy per array argument; arguments that are the same array share one."""
    spans = {i: byte_bounds(a) for i, a in enumerate(args) if isinstance(a, np.ndarray)}
    for i, (low, high) in spans.items():
        for j, (lo, hi) in spans.items():
            if i < j and low < hi and lo < high and (low, high) != (lo, hi):
                raise ValueError(f"arguments {i} and {j} overlap without being the same array")
    made: dict[tuple[int, int], _Guarded] = {}
    for span in spans.values():
        if span not in made:
            made[span] = _Guarded(*span, at_end)
    return {i: made[span] for i, span in spans.items()}


def check_launch(name: str, grid: tuple[int, ...], block: tuple[int, ...]) -> None:
    """ValueError, naming the kernel, for a grid or block that a GPU would refuse to launch."""
    grid, block = (tuple(d) + (1,) * (3 - len(d)) for d in (grid, block))
    if not all(1 <= n <= most for n, most in zip(grid, GRID_MAX)):
        raise ValueError(f"{name}: no GPU launches a grid of {grid} blocks (at most {GRID_MAX})")
    if not all(1 <= n <= most for n, most in zip(block, BLOCK_MAX)) or (
        block[0] * block[1] * block[2] > THREADS_MAX
    ):
        raise ValueError(
            f"{name}: no GPU launches a block of {block} threads (at most {BLOCK_MAX}, "
            f"{THREADS_MAX} in all)"
        )


def _dim3(dims: tuple[int, ...]) -> Any:
    return (ctypes.c_uint * 3)(*dims, *(1,) * (3 - len(dims)))


def _value(a: Any, copy: _Guarded | None) -> Any:
    """The bytes CuPy would pass for a: an array's data pointer (into its guarded copy), a
    scalar's own bytes."""
    if isinstance(a, np.ndarray):
        return ctypes.c_void_p(copy.start + a.ctypes.data - copy.low)
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
