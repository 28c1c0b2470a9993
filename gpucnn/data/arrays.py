"""The user's own arrays: one ``.npz`` file (``np.savez``) with x_train, y_train, x_test, y_test.

Images are uint8 (0-255, scaled to [0, 1] as the IDX sets are) or floats (used as they are),
shaped (N, H, W), channels-last (N, H, W, C) as NumPy, Keras and Pillow keep them, or (N, C, H,
W); C is found as the axis of at most 4. Labels are integers 0 .. K-1. An optional ``classes``
array of K strings names them ("0", "1", ... otherwise). The file is read with
``allow_pickle=False``: it can hold numbers and strings, never code.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .raw import RawData, checked

KEYS = {  # the file's names -> RawData's
    "x_train": "train_images",
    "y_train": "train_labels",
    "x_test": "test_images",
    "y_test": "test_labels",
}
MAX_CHANNELS = 4


def channels_first(x: np.ndarray, what: str) -> np.ndarray:
    """Images (N, H, W), (N, H, W, C) or (N, C, H, W) as (N, C, H, W)."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[3] <= MAX_CHANNELS:
        return x.transpose(0, 3, 1, 2)
    if x.ndim == 4 and x.shape[1] <= MAX_CHANNELS:
        return x
    raise DataError(
        f"{what}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with at most "
        f"{MAX_CHANNELS} channels C, got shape {x.shape}"
    )


def load(path: str | os.PathLike) -> RawData:
    """The train and test splits in the .npz file ``path``, checked."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(
            f"{path} is not a file: give an .npz made with np.savez(path, x_train=..., "
            "y_train=..., x_test=..., y_test=...)"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise DataError(f"{path}: holds one array; give an .npz with {', '.join(KEYS)}")
            missing = [key for key in KEYS if key not in f.files]
            if missing:
                raise DataError(
                    f"{path}: lacks {', '.join(missing)} (it holds {', '.join(f.files) or '-'}): "
                    f"save the arrays as {', '.join(KEYS)}"
                )
            arrays = {name: f[key] for key, name in KEYS.items()}
            names = f["classes"] if "classes" in f.files else None
    except ValueError as exc:  # an array of Python objects, which only unpickling could read
        raise DataError(f"{path}: {exc}; save plain number and string arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    for split in ("train", "test"):
        key = f"{split}_images"
        arrays[key] = channels_first(arrays[key], f"{path}: x_{split}")
    return checked(str(path), _classes(names, arrays, path), arrays)


def _classes(names: np.ndarray | None, arrays: dict[str, np.ndarray], path: Path) -> tuple:
    """The class names: the file's ``classes``, or the labels' numbers."""
    if names is None:
        labels = [arrays[k] for k in ("train_labels", "test_labels") if arrays[k].size]
        top = max((int(y.max()) for y in labels if y.dtype.kind in "ui"), default=0)
        return tuple(str(k) for k in range(top + 1))
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(f"{path}: classes must be a list of names (strings), got {names.dtype}")
    return tuple(str(n) for n in names.astype(str))
