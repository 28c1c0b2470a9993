"""The user's images as rows of a CSV file, one image a row, as Kaggle's Fashion-MNIST, MNIST
and Sign Language MNIST are published: a label column, then the pixels row by row
(``label,pixel1,...,pixel784``: a 28x28 grayscale image).

The label column is the one named label (or labels, class, target, y) in a header row, else
the first. Every other column is a pixel: their number must be a square, the side of a
grayscale image, or three times one, an RGB image (2,352: 28x28, as Skin Cancer MNIST's
hmnist_28_28_RGB.csv). An RGB row may hold each pixel's red, green and blue in turn, or all
its red values, then the green, then the blue: the rows are read the way in which neighbouring
pixels differ least (colour_order). Pixels that are whole numbers from 0 to 255 are 8-bit
(scaled to [0, 1] as the IDX sets are); any others are used as they are. Labels are class
numbers 0 .. K-1 (numbers that skip one are warned about: no image trains those outputs), or
names (numbered in sorted order).

A file named with ``train`` (``fashion-mnist_train.csv``) whose twin named with ``test`` lies
beside it (``fashion-mnist_test.csv``) has that file as its test split, as the published sets
come; otherwise a stratified ``test_fraction`` of each class is held out for testing, drawn
with ``split_seed``. A twin without labels (a competition's test file) is said and not read.
``images_for`` reads such a file's rows for a trained model (gpucnn.predict), with a label
column or without.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import from_arrays, skipped_numbers
from .raw import RawData

LABEL_NAMES = ("label", "labels", "class", "target", "y")  # a header's label column, any case
SUFFIX = ".csv"
ENCODING = "utf-8-sig"  # UTF-8, after the byte-order mark that spreadsheets may write first
_TRAIN = re.compile("train", re.IGNORECASE)
SAMPLE_ROWS = 1000  # the images that tell an RGB row's order (colour_order)
DECISIVE = 1.25  # how much smoother the order read must make them than the other
NO_DATA = "(loadtxt: input|Input line [0-9]+) contained no data"  # loadtxt's warnings: not ours

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """A CSV file's columns: whether its first row is a header, how many columns there are,
    and which one holds the labels."""

    header: bool
    columns: int
    label: int | None  # None: no label column (a test file whose labels are withheld)

    @property
    def pixels(self) -> list[int]:
        return [c for c in range(self.columns) if c != self.label]


def is_csv(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a CSV file (by its suffix, in any case)."""
    return Path(path).suffix.lower() == SUFFIX


def layout(path: Path) -> Layout:
    """The columns of the CSV file at ``path``, from its first line; DataError if it is empty."""
    with open(path, encoding=ENCODING, errors="replace") as f:
        first = f.readline()
    fields = [field.strip().strip('"') for field in first.rstrip("\r\n").split(",")]
    if not first.strip():
        raise DataError(f"{path} is empty: give a CSV file with a label and the pixels on each row")
    header = not all(_is_number(field) for field in fields)
    names = [field.lower() for field in fields]
    label = next((names.index(n) for n in LABEL_NAMES if header and n in names), 0)
    return Layout(header, len(fields), label)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read(path: Path, shape: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, side, side) or (N, 3, side, side), labels (N,)) of the CSV file at ``path``
    with columns ``shape`` (read_pixels); labels int64 where every one is a whole number, else
    their text (class names)."""
    images = read_pixels(path, shape)
    labels = _columns(path, shape, [shape.label], str)[:, 0]  # rows as the pixels read
    return images, _labels(np.char.strip(labels), path, shape)


def image_size(pixels: int) -> tuple[int, int] | None:
    """(channels, side) of an image of ``pixels`` values: grayscale where they are a square,
    RGB where they are three times a square of a side of 2 or more (neighbouring pixels tell
    how its colours are ordered); None otherwise."""
    for channels, least in ((1, 1), (3, 2)):
        side = math.isqrt(pixels // channels)
        if side >= least and channels * side * side == pixels:
            return channels, side
    return None


def read_pixels(path: Path, shape: Layout) -> np.ndarray:
    """The images of the CSV file at ``path`` with columns ``shape``: (N, side, side), or
    (N, 3, side, side) for RGB (image_size); uint8 where every pixel is a whole number 0..255,
    else float32."""
    size = image_size(len(shape.pixels))
    if size is None:
        besides = "" if shape.label is None else f" (besides the label, column {shape.label + 1})"
        raise DataError(
            f"{path}: {len(shape.pixels)} pixel columns{besides} are not a square image: a row "
            "holds a label and the pixels of one grayscale image (28x28: 784) or RGB image "
            "(3x28x28: 2,352); save other images with np.savez in their shape "
            "(data.path=FILE.npz)"
        )
    try:
        try:  # 8-bit pixels, read as such: eight times faster than parsing floats
            pixels = _columns(path, shape, shape.pixels, np.uint8)
        except ValueError:  # a value below 0, above 255 or with a fraction
            pixels = _columns(path, shape, shape.pixels, np.float32)
            whole = np.all(pixels == np.round(pixels))
            if pixels.size and whole and pixels.min() >= 0 and pixels.max() <= 255:
                pixels = pixels.astype(np.uint8)  # written as 0.0, 1.0, ...: still 8-bit
    except ValueError:  # a value that is no number, a row of another length
        raise DataError(f"{path}: {_first_bad_line(path, shape)}") from None
    if not len(pixels):
        raise DataError(f"{path} holds no rows of images, only its header")
    channels, side = size
    if channels == 1:
        return pixels.reshape(-1, side, side)
    return colour_order(pixels, side, path)


def colour_order(pixels: np.ndarray, side: int, path: Path) -> np.ndarray:
    """RGB rows ``pixels`` (N, 3*side*side) as images (N, 3, side, side): each pixel's red,
    green and blue in turn (as an (H, W, 3) image is flattened), or all red values, then
    green, then blue (as a (3, H, W) one is, CIFAR's order), whichever makes the neighbouring
    pixels of the first SAMPLE_ROWS images differ less, by at least DECISIVE times: in the
    wrong order a pixel's neighbours lie several pixels away. DataError where neither does."""
    interleaved = pixels.reshape(-1, side, side, 3).transpose(0, 3, 1, 2)
    orders = {
        "each pixel's red, green and blue in turn": interleaved,
        "all red values, then the green, then the blue": pixels.reshape(-1, 3, side, side),
    }
    rough = {name: _roughness(x[:SAMPLE_ROWS]) for name, x in orders.items()}
    first, second = sorted(orders, key=rough.get)
    if rough[second] <= DECISIVE * rough[first]:  # (both 0: images of one colour)
        raise DataError(
            f"{path}: {pixels.shape[1]} pixel columns a row are {side}x{side} RGB images, but "
            "their pixels do not tell whether a row holds each pixel's red, green and blue in "
            "turn or all red values first: save them as arrays in their shape, (N, H, W, 3) or "
            "(N, 3, H, W), with np.savez to train on (data.path=FILE.npz) or np.save to predict "
            "(FILE.npy)"
        )
    log.info(
        "%s: %d pixel columns a row, read as %dx%d RGB images, %s (neighbouring pixels differ "
        "by %.3g on average, against %.3g read as %s)",
        path, pixels.shape[1], side, side, first, rough[first], rough[second], second,
    )  # fmt: skip
    return np.ascontiguousarray(orders[first])


def _roughness(images: np.ndarray) -> float:
    """The mean absolute difference between horizontally and vertically neighbouring values of
    ``images`` (N, C, H, W)."""
    x = images.astype(np.float32)
    return float(np.abs(np.diff(x, axis=-1)).mean() + np.abs(np.diff(x, axis=-2)).mean())


def _columns(path: Path, shape: Layout, which: list[int], dtype: type) -> np.ndarray:
    """The columns ``which`` of every row of the CSV file, as ``dtype``: (rows, len(which))."""
    with warnings.catch_warnings():  # blank lines, passed over; a header alone, said by callers
        warnings.filterwarnings("ignore", NO_DATA)
        return np.loadtxt(
            path, delimiter=",", skiprows=int(shape.header), usecols=which, dtype=dtype, ndmin=2,
            quotechar='"', encoding=ENCODING,
        )  # fmt: skip


def images_for(path: str | os.PathLike, image_shape: tuple[int, ...]) -> np.ndarray:
    """The images of the CSV file ``path`` as (N, C, H, W), for a model trained on images of
    ``image_shape`` (C, H, W): rows of C*H*W pixels, after a label or without one (a test file
    whose labels are withheld); a label there is not read."""
    path = Path(path)
    C, H, W = image_shape
    pixels = C * H * W
    if H != W or image_size(pixels) != (C, H):
        raise DataError(
            f"{path}: a CSV row is one square grayscale or RGB image, and the run was trained on "
            f"images of {tuple(image_shape)} (C, H, W): give them as a .npy array, or as image "
            "files"
        )
    shape = layout(path)
    if shape.columns == pixels:
        shape = replace(shape, label=None)
    elif shape.columns != pixels + 1:
        kind = f"{H}x{W}" + (" RGB" if C == 3 else "")
        raise DataError(
            f"{path}: {shape.columns} columns a row, but the run's images have {pixels:,} pixels "
            f"({kind}): give rows of {pixels:,} pixels, with a label before them or without"
        )
    return read_pixels(path, shape).reshape(-1, C, H, W)


def _first_bad_line(path: Path, shape: Layout) -> str:
    """What is wrong with the first line of the CSV file at ``path`` that cannot be read with
    columns ``shape``, numbered as an editor numbers them (from 1, the header too)."""
    with open(path, encoding=ENCODING, errors="replace") as f:
        lines = enumerate(f, start=1)
        if shape.header:
            next(lines)
        for number, line in lines:
            if not line.strip():
                continue  # loadtxt passes over blank lines too
            fields = [field.strip().strip('"') for field in line.rstrip("\r\n").split(",")]
            if len(fields) != shape.columns:
                return (
                    f"line {number} has {len(fields)} values, against {shape.columns} on the "
                    "first: every row needs its label and every pixel"
                )
            for column in shape.pixels:
                if not _is_number(fields[column]):
                    return (
                        f"line {number}, column {column + 1}: {fields[column]!r} is not "
                        "a number: pixels are numbers (0 to 255 for 8-bit images)"
                    )
    return "it cannot be read as rows of numbers"


def _labels(text: np.ndarray, path: Path, shape: Layout) -> np.ndarray:
    """Labels given as text: class numbers (int64) where every one is a whole number, else
    the text itself (names); DataError for numbers that are not whole, naming the line."""
    try:
        numbers = text.astype(np.float64)
    except ValueError:
        return text  # names
    whole = numbers == np.round(numbers)
    if not whole.all():
        row = int(np.argmin(whole))
        raise DataError(
            f"{path}, line {row + 1 + shape.header}: the label {text[row]} is not a class "
            "number: labels are whole numbers 0 .. K-1, or class names"
        )
    return numbers.astype(np.int64)


def test_twin(path: Path) -> Path | None:
    """The file beside ``path`` named as it is with its last ``train`` as ``test`` (in the
    same case), if there is one."""
    found = list(_TRAIN.finditer(path.name))
    if not found:
        return None
    start, end = found[-1].span()
    word = path.name[start:end]
    test = "TEST" if word.isupper() else "Test" if word.istitle() else "test"
    twin = path.with_name(path.name[:start] + test + path.name[end:])
    return twin if twin.is_file() else None


def _numbered_classes(y_train: np.ndarray, y_test: np.ndarray, path: Path) -> list[str] | None:
    """The class names "0" .. "K-1" where class numbers skip one, after a warning naming the
    classes without an image (the model has an output for each, which no image trains): a
    CSV has no way to name its classes, and published sets skip numbers on purpose (Sign
    Language MNIST has no J, 9). None where the numbers do not skip, or labels are names."""
    if y_train.dtype.kind != "i" or y_test.dtype.kind != "i":
        return None
    found = np.unique(np.concatenate([y_train, y_test]))
    missing = skipped_numbers(found)
    if not missing:
        return None
    shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
    log.warning(
        "%s: the labels run from %d to %d without %s: the model gets an output for every "
        "number up to the largest, and no image is of class %s (labels that start at 1 "
        "rather than 0 leave class 0 so)",
        path,
        found.min(),
        found.max(),
        shown,
        shown.replace(", ", " or "),
    )
    return [str(k) for k in range(int(found.max()) + 1)]


def load(path: str | os.PathLike, test_fraction: float = 0.2, split_seed: int = 0) -> RawData:
    """The train and test splits of the CSV file ``path`` (and of its test twin, if it has
    one), checked."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path} is not a file: give a CSV file with a label and the pixels")
    shape = layout(path)
    x_train, y_train = read(path, shape)
    twin = test_twin(path)
    if twin is not None:
        twin_shape = layout(twin)
        if twin_shape.columns == shape.columns - 1:  # no label column: the answers are withheld
            log.warning(
                "%s has no labels (%d columns, against %d in %s): it is not read; a "
                "data.test_fraction of %s is held out for testing instead",
                twin,
                twin_shape.columns,
                shape.columns,
                path.name,
                path.name,
            )
            twin = None
        elif twin_shape.columns != shape.columns:
            raise DataError(
                f"{twin}, the test split beside {path.name}, has {twin_shape.columns} columns "
                f"against its {shape.columns}: give both files the same columns, or rename "
                f"{twin.name} to hold {path.name}'s images out for testing instead"
            )
    if twin is None:
        classes = _numbered_classes(y_train, y_train[:0], path)
        return from_arrays(x_train, y_train, classes=classes, name=path,
                           test_fraction=test_fraction, split_seed=split_seed)  # fmt: skip
    log.info("%s: its test split is %s, beside it", path, twin.name)
    x_test, y_test = read(twin, twin_shape)
    if (y_train.dtype.kind == "i") != (y_test.dtype.kind == "i"):
        raise DataError(
            f"{path} and {twin.name}: one labels its rows with numbers, the other with names: "
            "label both the same way"
        )
    classes = _numbered_classes(y_train, y_test, path)
    return from_arrays(x_train, y_train, x_test, y_test, classes=classes, name=path)
