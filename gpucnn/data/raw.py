"""The raw images and labels every source produces, checked once in one place."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

SPLIT_FILES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass
class RawData:
    """Images (N, C, H, W), uint8 (0-255) or float32 (used as they are), and int64 labels (N,)
    of the train and test splits; ``classes`` names the labels 0, 1, ...; ``skipped`` lists
    files a source passed over, each with why."""

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    skipped: tuple[str, ...] = ()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])


def checked(
    name: str, classes: tuple[str, ...], arrays: dict[str, np.ndarray], skipped: tuple = ()
) -> RawData:
    """RawData from ``arrays`` (keyed by SPLIT_FILES; images (N, H, W) get a channel axis)
    after checking shapes, types, lengths and label range; errors name ``name``."""
    images = {}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        x = x[:, None] if x.ndim == 3 else x
        if x.ndim != 4:
            raise DataError(
                f"{name}: {split} images must be (N, H, W) or (N, C, H, W), got {x.shape}"
            )
        if y.ndim != 1 or y.dtype.kind not in "ui":
            raise DataError(
                f"{name}: {split} labels must be integer class numbers (N,), got {y.dtype} "
                f"{y.shape}{_label_fix(y)}"
            )
        check_image_type(x, f"{name}: {split} images")
        if len(x) != len(y):
            raise DataError(
                f"{name}: {len(x)} {split} images but {len(y)} {split} labels; "
                "they do not belong together"
            )
        if y.size and y.min() < 0:
            raise DataError(
                f"{name}: {split} labels must be class numbers 0 .. K-1, found {int(y.min())}"
            )
        if y.size and y.max() >= len(classes):
            raise DataError(
                f"{name}: {split} labels must be in 0..{len(classes) - 1}, found "
                f"{int(y.min())}..{int(y.max())}"
            )
        images[split] = x if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
    train, test = images["train"], images["test"]
    if train.shape[1:] != test.shape[1:] or train.dtype != test.dtype:
        raise DataError(
            f"{name}: train images are {train.dtype} {train.shape[1:]} but test images "
            f"{test.dtype} {test.shape[1:]}: give both splits the same size and type"
        )
    if train.dtype.kind == "f" and not (np.isfinite(train).all() and np.isfinite(test).all()):
        raise DataError(f"{name}: the images hold NaN or infinite values")
    return RawData(
        name,
        tuple(classes),
        train,
        arrays["train_labels"].astype(np.int64),
        test,
        arrays["test_labels"].astype(np.int64),
        tuple(skipped),
    )


def check_image_type(x: np.ndarray, what: str) -> None:
    """DataError naming ``what`` (``"mine.npz: train images"``) unless the images ``x`` are
    uint8 or floats, saying how to convert them where their values tell: 0 and 1 (masks) to
    floats, which are used as they are (as uint8 they would be near-black pixels of 0-255),
    other values up to 255 to uint8, larger ones to floats divided by their white."""
    if x.dtype == np.uint8 or x.dtype.kind == "f":
        return
    fix = ""
    if x.dtype.kind in "uib" and x.size and x.min() >= 0:
        if x.max() <= 1:
            fix = ": their values are 0 and 1; give x.astype(np.float32), used as it is"
        elif x.max() <= 255:
            fix = ": their values are 0-255; give x.astype(np.uint8)"
        elif x.max() <= 65535:
            fix = (
                f": values up to {x.max()}; give floats divided by the images' white, "
                "(x / 65535).astype(np.float32) for 16-bit images"
            )
    raise DataError(f"{what} must be uint8 (0-255) or floats, got {x.dtype}{fix}")


def _label_fix(y: np.ndarray) -> str:
    """How to save labels ``y`` as integer class numbers (N,), where their form tells."""
    whole = y.dtype.kind in "uib" or (y.dtype.kind == "f" and np.array_equal(y, np.round(y)))
    as_int = "" if y.dtype.kind in "ui" else ".astype(np.int64)"
    if y.ndim == 2 and y.shape[1] == 1 and whole:
        return f": save y.reshape(-1){as_int}"
    if y.ndim == 2 and y.shape[1] > 1 and whole and np.all(np.isin(y, (0, 1))):
        if np.all(y.sum(axis=1) == 1):
            return ": they are one-hot rows; save y.argmax(axis=1)"
    if y.ndim == 1 and whole:
        return f": save y{as_int}"
    if y.ndim == 1 and y.dtype.kind in "US":  # the other split's are numbers (arrays.py)
        return ": they are names, the other split's labels are not: give both names, or numbers"
    return ""
