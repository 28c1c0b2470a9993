"""The IDX format of the MNIST family: a magic number, the dimensions, then the raw values.

    magic: 0x00 0x00 <type code> <number of dimensions>, then one big-endian uint32 per
    dimension, then prod(dims) values of that type, big-endian.

Files may be gzipped (recognised by their first bytes, whatever their name).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

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


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's content, decompressed if it is gzipped."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: the gzip stream is corrupt or truncated ({exc})") from None


def parse(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes into an array (native byte order); ``name`` appears in errors."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in TYPES:
        raise DataError(
            f"{name}: not an IDX file (bad magic number {data[:4].hex() or 'empty'}; "
            "expected 0000 then a type code 08-0e and the number of dimensions)"
        )
    dtype, ndim = TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated header ({len(data)} bytes, {header} needed)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{name}: {len(data)} bytes but the header's dimensions {dims} need {expected}: "
            "the file is truncated or corrupt; delete it and fetch it again"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="), copy=False)


def read(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzipped or raw; errors name the file and what is wrong."""
    return parse(read_bytes(path), str(path))


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
