"""The user's own arrays: one ``.npz`` file (``np.savez``) with x_train, y_train, x_test, y_test,
or the same arrays in memory (``from_arrays``); a CSV file of images as rows goes to
gpucnn.data.csv_rows. Without x_test and y_test, a stratified ``test_fraction`` of each class of
x_train is held out for testing, drawn with ``split_seed`` (fixed, so that every training seed
is tested on the same images).

Images are uint8 (0-255, scaled to [0, 1] as the IDX sets are) or floats (used as they are),
shaped (N, H, W), channels-last (N, H, W, C) as NumPy, Keras and Pillow keep them, or (N, C, H,
W); C is found as the axis of at most 4. Labels are integers 0 .. K-1, or names (strings),
numbered in the order of ``classes`` or else sorted. An optional ``classes`` array of K strings
names them ("0", "1", ... otherwise, when every number up to the largest label must occur:
labels 1 .. 10, say, are refused rather than trained as 11 classes of which class 0 never
occurs). The file is read with ``allow_pickle=False``: it can hold numbers and strings, never
code.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .prepare import stratified_split
from .raw import RawData, checked

KEYS = ("x_train", "y_train", "x_test", "y_test")  # the file's arrays, from_arrays' arguments
TRAIN_KEYS, TEST_KEYS = KEYS[:2], KEYS[2:]
MAX_CHANNELS = 4
NPY_MAGIC = b"\x93NUMPY"  # how every .npy file starts

log = logging.getLogger(__name__)


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


def load(path: str | os.PathLike, test_fraction: float = 0.2, split_seed: int = 0) -> RawData:
    """The train and test splits in the .npz file ``path``, checked; a file without x_test
    and y_test has ``test_fraction`` of x_train held out (``from_arrays``). A ``.csv`` file
    holds images as rows of pixels (gpucnn.data.csv_rows)."""
    from . import csv_rows  # which builds on this module

    if csv_rows.is_csv(path):
        return csv_rows.load(path, test_fraction, split_seed)
    path = Path(path).expanduser()
    how = (
        "give an .npz made with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...),"
        " or a .csv file of rows of a label and the pixels"
    )
    if not path.is_file():
        raise DataError(f"{path} is not a file: {how}")
    if not zipfile.is_zipfile(path):  # np.load would take it for a pickle, and refuse that
        what = (
            "holds one array (an .npy file)"
            if is_npy(path)
            else "is not an .npz file (or a damaged one)"
        )
        raise DataError(f"{path} {what}: {how}")
    try:
        with np.load(path, allow_pickle=False) as f:
            wanted = KEYS if any(key in f.files for key in TEST_KEYS) else TRAIN_KEYS
            missing = [key for key in wanted if key not in f.files]
            if missing:
                raise DataError(
                    f"{path}: lacks {', '.join(missing)} (it holds {', '.join(f.files) or '-'}): "
                    f"save the arrays as {', '.join(KEYS)}, or as x_train and y_train alone "
                    "(a data.test_fraction of them is then held out for testing)"
                )
            arrays = {key: f[key] for key in wanted}
            names = f["classes"] if "classes" in f.files else None
            unread = [k for k in f.files if k not in (*KEYS, "classes")]
    except ValueError as exc:  # an array of Python objects, which only unpickling could read
        raise DataError(f"{path}: {exc}; save plain number and string arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    if unread:
        log.warning(
            "%s: %s not read: only %s and classes are (validation images are drawn from x_train, "
            "a data.val_fraction of them)",
            path,
            ", ".join(unread),
            ", ".join(KEYS),
        )
    return from_arrays(
        **arrays, classes=names, name=path, test_fraction=test_fraction, split_seed=split_seed
    )


def named(
    raw: RawData,
    names: list[str],
    what: str | os.PathLike,
    key: str = "classes",
    own_names_stand: bool = False,
) -> RawData:
    """``raw`` with its classes, numbered 0 .. K-1 by a file that does not name them (a CSV,
    an .npz without a classes array), called ``names``. A file that names its classes itself
    keeps them with ``own_names_stand`` (names that came with a trained model, say), else is
    a DataError naming ``key`` as where the names came from; so is a name too many or too
    few."""
    numbered = tuple(str(k) for k in range(len(raw.classes)))
    if raw.classes != numbered:
        if own_names_stand:
            return raw
        shown = ", ".join(raw.classes[:10]) + (", ..." if len(raw.classes) > 10 else "")
        raise DataError(
            f"{what} names its classes itself ({shown}): leave {key} out, which names classes "
            "numbered 0 .. K-1"
        )
    if len(names) != len(numbered):
        raise DataError(
            f"{key} gives {len(names)} names, but {what} has {len(numbered)} classes, numbered "
            f"0 .. {len(numbered) - 1}: give a name for each, in the order of their numbers"
        )
    return replace(raw, classes=tuple(names))


def is_npy(path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` starts as a .npy array (np.save) does."""
    try:
        with open(path, "rb") as f:
            return f.read(len(NPY_MAGIC)) == NPY_MAGIC
    except OSError:
        return False


def from_arrays(
    x_train: Any,
    y_train: Any,
    x_test: Any = None,
    y_test: Any = None,
    classes: Sequence[str] | None = None,
    name: str | os.PathLike = "arrays",
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> RawData:
    """Arrays in memory as a data set for ``prepare``, read and checked as an .npz file's are:
    images (N, H, W), (N, H, W, C) or (N, C, H, W), uint8 or floats; labels 0 .. K-1 (N,);
    ``classes`` names them. ``name`` is what errors call the set. Without x_test and y_test,
    ``test_fraction`` of each class of x_train is the test split, drawn with ``split_seed``.

        raw = data.from_arrays(x_train, y_train, x_test, y_test, classes=["cat", "dog"])
        raw = data.from_arrays(x, y, test_fraction=0.2)  # 20% of each class held out
        splits = data.prepare(raw, task="multiclass")
    """
    if (x_test is None) != (y_test is None):
        given, lacking = ("x_test", "y_test") if y_test is None else ("y_test", "x_test")
        raise DataError(
            f"{name}: {given} without {lacking}: give both, or neither (a test_fraction of "
            "x_train is then held out for testing)"
        )
    held_out = x_test is None
    if held_out:
        if not 0 < test_fraction <= 1:
            raise DataError(
                f"{name}: test_fraction={test_fraction} must be in (0, 1]: the share of "
                "x_train held out for testing, as there is no x_test"
            )
        x_train, y_train = np.asarray(x_train), np.asarray(y_train)
        x_test, y_test = x_train[:0], y_train[:0]
    names = None if classes is None else _checked_names(np.asarray(classes), name)
    y_train, y_test, names = _numbered(np.asarray(y_train), np.asarray(y_test), names, name)
    arrays = {
        "train_images": channels_first(np.asarray(x_train), f"{name}: x_train"),
        "train_labels": y_train,
        "test_images": channels_first(np.asarray(x_test), f"{name}: x_test"),
        "test_labels": y_test,
    }
    raw = checked(str(name), _classes(names, arrays, name), arrays)
    return _held_out(raw, test_fraction, split_seed) if held_out else raw


def _held_out(raw: RawData, test_fraction: float, split_seed: int) -> RawData:
    """``raw`` (all images in its train split) with ``test_fraction`` of each class moved to
    its test split."""
    test, train = stratified_split(raw.y_train, test_fraction, np.random.default_rng(split_seed))
    x, y = raw.x_train, raw.y_train
    return replace(raw, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])


def _numbered(
    y_train: np.ndarray, y_test: np.ndarray, names: np.ndarray | None, what: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Labels that are names ("cat", "dog") as class numbers, in the order of ``names`` when
    given, else sorted: (y_train, y_test, names). Labels that are numbers are returned as
    they are."""
    if not (y_train.dtype.kind in "US" and y_test.dtype.kind in "US"):
        return y_train, y_test, names
    found = np.unique(np.concatenate([y_train.ravel(), y_test.ravel()]).astype(str))
    names = found if names is None else names.astype(str)
    unknown = np.setdiff1d(found, names)
    if unknown.size:
        raise DataError(
            f"{what}: labels {', '.join(unknown[:10])} are not among the classes "
            f"({', '.join(names)}): add them to classes, or correct the labels"
        )
    order = np.argsort(names)

    def number(y: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(names[order], y.astype(str))]

    return number(y_train), number(y_test), names


def _classes(
    names: np.ndarray | None, arrays: dict[str, np.ndarray], what: str | os.PathLike
) -> tuple:
    """The class names: the set's ``classes``, or the labels' numbers; errors name ``what``."""
    if names is None:
        labels = [arrays[k] for k in ("train_labels", "test_labels") if arrays[k].size]
        labels = [y.ravel() for y in labels if y.dtype.kind in "ui"]  # checked() says the rest
        found = np.unique(np.concatenate(labels)) if labels else np.zeros(1, dtype=np.int64)
        if skipped_numbers(found):
            shown = ", ".join(map(str, found[:10])) + (", ..." if len(found) > 10 else "")
            raise DataError(
                f"{what}: the labels are {shown}, but without a classes array they must be "
                "numbered 0 .. K-1 (the model has an output for every number up to the "
                f"largest, {found.max()}): renumber them (names = np.unique(y_train), then "
                "y = np.searchsorted(names, y) for each split) and save classes=names.astype(str)"
            )
        return tuple(str(k) for k in range(int(found.max()) + 1))
    return tuple(str(n) for n in names.astype(str))


def skipped_numbers(found: np.ndarray) -> list[int]:
    """The class numbers from 0 to the largest of ``found`` (the distinct labels, sorted) that
    none has; none for negative labels, which checked() refuses."""
    if found.min() < 0 or len(found) == found.max() + 1:
        return []
    return sorted(set(range(int(found.max()) + 1)) - set(found.tolist()))


def _checked_names(names: np.ndarray, what: str | os.PathLike) -> np.ndarray:
    """``names`` as given for the classes, if they are a list of distinct strings; else
    DataError, naming ``what``."""
    if names.ndim != 1 or names.dtype.kind not in "US":
        given = f"{names.dtype} {names.shape}" if names.ndim else f"the one value {names.item()!r}"
        raise DataError(f"{what}: classes must be a list of names (strings), got {given}")
    found, counts = np.unique(names.astype(str), return_counts=True)
    if (counts > 1).any():
        twice = ", ".join(found[counts > 1][:10])
        raise DataError(f"{what}: classes names {twice} more than once: give each its own name")
    return names
