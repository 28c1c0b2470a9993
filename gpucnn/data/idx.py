"""The IDX format of the MNIST family: a magic number, the dimensions, then the raw values.

    magic: 0x00 0x00 <type code> <number of dimensions>, then one big-endian uint32 per
    dimension, then prod(dims) values of that type, big-endian.

Files may be gzipped (recognised by their first bytes, whatever their name).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .. import memory
from ..errors import DataError

# type code -> big-endian dtype
TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
CODES = {dt.newbyteorder("="): code for code, dt in TYPES.items()}


def read(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzipped or raw; errors name the file and what is wrong. The header is
    checked before the values are read: a file that declares more values than memory can hold
    (a damaged header, a gzip bomb) is refused without decompressing it."""
    path = Path(path)
    with path.open("rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raw.seek(0)
            return _decode(raw, str(path))
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw) as unpacked:
                return _decode(unpacked, str(path))
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: the gzip stream is corrupt or truncated ({exc})") from None


def _decode(f: BinaryIO, name: str) -> np.ndarray:
    """The array in the IDX stream ``f``, read no further than its header says."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in TYPES:
        raise DataError(
            f"{name}: not an IDX file (bad magic number {magic.hex() or 'empty'}; "
            "expected 0000 then a type code 08-0e and the number of dimensions)"
        )
    dtype, ndim = TYPES[magic[2]], magic[3]
    header = 4 + 4 * ndim
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{name}: truncated header ({4 + len(sizes)} bytes, {header} needed)")
    dims = struct.unpack(f">{ndim}I", sizes)
    nbytes = math.prod(dims) * dtype.itemsize
    memory.require(
        nbytes,
        f"{name}: its header declares {dims} values of {dtype.itemsize} bytes",
        "the header is damaged or this is not an IDX file of this set; fetch it again",
        host=True,
    )
    body = f.read(nbytes + 1)
    if len(body) != nbytes:
        state = "truncated" if len(body) < nbytes else "longer than its header says"
        raise DataError(
            f"{name}: {header + len(body)}{'' if len(body) < nbytes else '+'} bytes but the "
            f"header's dimensions {dims} need {header + nbytes}: the file is {state} or "
            "corrupt; delete it and fetch it again"
        )
    values = np.frombuffer(body, dtype=dtype).reshape(dims)
    return values.astype(dtype.newbyteorder("="), copy=False)


def encode(array: np.ndarray) -> bytes:
    """IDX bytes for ``array`` (one of the IDX value types)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in CODES:
        raise ValueError(f"IDX has no type for {array.dtype}")
    code = CODES[native]
    head = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(TYPES[code], copy=False).tobytes()


def write(path: str | os.PathLike, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` as an IDX file (gzipped when ``compress``)."""
    data = encode(array)
    Path(path).write_bytes(gzip.compress(data) if compress else data)
