"""Atomic file writes: a temporary file beside the target, flushed, fsynced, then renamed.

A reader never sees a half-written file under the final name, even if the process is killed.
The locks (``is_locked``, ``locked``) are POSIX flocks, which the app's run directories use;
the library's writes need none, so it imports on Windows too.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file, then move it onto ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        # A rename onto a folder names the stand-in; a full disk names no file at all
        if isinstance(exc, OSError) and exc.errno and exc.filename in (tmp, None):
            raise _naming(exc, path) from None
        raise
    _fsync_dir(path.parent)
    return path


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` about ``path``, the file being written, rather than its temporary stand-in
    (model.save("outputs") onto a folder: "Is a directory: 'outputs'")."""
    return type(exc)(exc.errno, exc.strerror, str(path))


def copy_file(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Copy ``source`` onto ``path`` atomically."""
    with open(source, "rb") as src:
        return atomic_write(path, lambda f: shutil.copyfileobj(src, f))


def remove_leftovers(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that atomic writes killed half-way left in ``directory``
    (never a finished file: those were renamed onto their names); returns what went."""
    gone = []
    for path in Path(directory).glob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


def is_locked(path: str | os.PathLike) -> bool:
    """Whether a live process holds an flock on ``path`` (False if there is no such file)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (made if missing), waiting for other holders."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be
    opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically; NaN and infinities (which JSON
    has no words for) become null."""
    text = json.dumps(_finite(obj), indent=2, default=str, allow_nan=False)
    return write_text(path, text + "\n")


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None, in nested dicts and lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
