"""From raw images to device-resident, standardised train / validation / test splits.

Steps: pick the task's classes and relabel them (binary: positive classes -> 1, negative -> 0;
multiclass: all classes), take optional stratified subsets, split a seeded stratified validation
set off the training images, scale uint8 images to [0, 1] (float images are taken as they are),
pad to ``pad_to`` x ``pad_to`` (with background, 0), and standardise each channel with the
training split's mean and standard deviation of it. Each split is then copied to the device
once, as one array.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import backend, memory
from ..errors import ConfigError, DataError, check_choice, check_count, did_you_mean
from . import edges
from .sources import RawData

log = logging.getLogger(__name__)

TASKS = ("binary", "multiclass")
#: A binary task's classes: a class number or name, or a list of them.
Classes = int | str | Sequence[int | str]


@dataclass
class Split:
    """x: (N, C, H, W) floats and y: (N,) int64 labels, both on the device."""

    x: Any
    y: Any

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):  # batches would index past the shorter one
            raise DataError(
                f"a split of {len(self.x)} images but {len(self.y)} labels: give one label "
                "per image"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Prepared:
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]  # the task's class names, by label
    n_outputs: int  # 1 for binary (sigmoid), the number of classes otherwise (softmax)
    mean: tuple[float, ...]  # per channel, of the training split's scaled images
    std: tuple[float, ...]
    balance: dict[str, list[int]]  # examples per label in each split
    image_shape: tuple[int, int, int]  # (C, H, W) of the images before padding
    value_range: tuple[float, float] | None = None  # (min, max) of the scaled training images
    dark_edges: float | None = None  # the share of their edge pixels that are dark (edges.py)
    skipped: tuple[str, ...] = ()  # files the source could not read, each with why

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train.x.shape[1:])


def stratified_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices (taken, rest): ``fraction`` of every class taken at random."""
    taken = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        taken.append(members[: int(round(len(members) * fraction))])
    take = np.sort(np.concatenate([np.zeros(0, dtype=np.int64), *taken]))  # y may be empty
    return take, np.setdiff1d(np.arange(len(y)), take)


def _select(
    x: np.ndarray, y: np.ndarray, task: str, positive: Sequence[int], negative: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the task's examples and relabel them."""
    if task == "multiclass":
        return x, y
    keep = np.isin(y, positive) | np.isin(y, negative)
    return x[keep], np.isin(y[keep], positive).astype(np.int64)


def check_task(
    task: str,
    positive: Sequence[int | str],
    negative: Sequence[int | str],
    n_classes: int | None = None,
) -> None:
    """Reject a task that cannot work, naming the argument (class numbers are checked against
    ``n_classes`` when it is known; names, against the data's when it is loaded)."""
    check_choice(task, TASKS, "task")
    if task == "multiclass":
        return
    for key, classes in (("positive", positive), ("negative", negative)):
        if not classes:
            raise ConfigError(f"{key} must list at least one class for the binary task", key)
        odd = [c for c in classes if not _is_class(c)]
        if odd:
            raise ConfigError(f"{key} lists {odd}: give class numbers or names", key)
        numbers = [c for c in classes if not isinstance(c, str)]
        bad = [c for c in numbers if c < 0 or (n_classes is not None and c >= n_classes)]
        if bad and n_classes is None:
            raise ConfigError(f"{key} has negative classes {bad}", key)
        if bad:
            raise ConfigError(
                f"{key} has classes {bad} outside 0..{n_classes - 1}, the data's: choose the "
                "binary task's classes among them, or task=multiclass for all of them",
                key,
            )
    overlap = sorted(set(positive) & set(negative))
    if overlap:
        raise ConfigError(
            f"positive and negative share classes {overlap}: a class can only be one", "positive"
        )


def _is_class(c: Any) -> bool:
    """Whether ``c`` can stand for a class: a number (not a bool) or a name."""
    return isinstance(c, (int, np.integer, str)) and not isinstance(c, bool)


def task_classes(
    task: str, positive: Classes, negative: Classes, names: Sequence[str]
) -> tuple[list[int], list[int]]:
    """The binary task's classes as numbers among the data's class ``names``, checked as
    check_task does (a name that is no class is refused, naming them all)."""
    positive, negative = (
        _class_numbers(classes, key, names)
        for key, classes in (("positive", positive), ("negative", negative))
    )
    check_task(task, positive, negative, len(names))
    return positive, negative


def _class_numbers(classes: Classes, key: str, names: Sequence[str]) -> list[int]:
    """The class numbers ``classes`` stands for: numbers, or names among ``names``."""
    numbers = []
    for c in [classes] if _is_class(classes) else list(classes):
        if isinstance(c, str) and c in names:
            numbers.append(names.index(c))
        elif _is_class(c) and not isinstance(c, str):
            numbers.append(int(c))
        else:
            hint = did_you_mean(c, names) if isinstance(c, str) else ""
            raise ConfigError(
                f"{key}: {c!r} is no class{hint}; give class numbers 0..{len(names) - 1} or "
                f"names ({', '.join(names)})",
                key,
            )
    return numbers


def _subset(
    x: np.ndarray, y: np.ndarray, limit: int | None, key: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``limit`` examples at random (all of them if fewer), each class's count in proportion
    to its size: rounded down, the images left over going to the classes rounded down most
    (ties drawn at random), so that the subset holds exactly ``limit``."""
    if limit is None:
        return x, y
    check_count(limit, key, "a positive number of images", 1)
    if limit > len(y):  # in a sweep of limits, this run is the same as one of all the images
        log.warning("%s=%d is more than the %d images: all of them are used", key, limit, len(y))
    if limit >= len(y):
        return x, y
    classes, sizes = np.unique(y, return_counts=True)
    if limit < len(classes):
        raise ConfigError(
            f"{key}={limit} is fewer than the {len(classes)} classes, so some would have no "
            f"image: use at least {len(classes)}",
            key,
        )
    shares = sizes * limit / len(y)
    counts = np.floor(shares).astype(np.int64)
    by_remainder = np.lexsort((rng.permutation(len(classes)), counts - shares))
    counts[by_remainder[: limit - counts.sum()]] += 1
    keep = np.sort(
        np.concatenate(
            [rng.permutation(np.flatnonzero(y == c))[:n] for c, n in zip(classes, counts)]
        )
    )
    return x[keep], y[keep]


def _check_pad_to(pad_to: int | None, image_shape: Sequence[int]) -> None:
    _, H, W = image_shape
    if pad_to and pad_to < max(H, W):
        raise ConfigError(
            f"pad_to={pad_to} is smaller than the {H}x{W} images: give null or at least "
            f"{max(H, W)}",
            "pad_to",
        )


def _pad(x: np.ndarray, pad_to: int | None) -> np.ndarray:
    """x: (N, C, H, W) -> (N, C, pad_to, pad_to), centred, padded with 0 (the background)."""
    N, C, H, W = x.shape
    if not pad_to:
        return x
    _check_pad_to(pad_to, (C, H, W))
    out = np.zeros((N, C, pad_to, pad_to), dtype=x.dtype)
    out[_placed(out.shape, H, W)] = x
    return out


def unpadded(x: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    """x: (N, C, P, P) padded to ``data.pad_to`` -> the images (N, C, H, W) inside (a view)."""
    return x[_placed(x.shape, *image_shape[1:])]


def _placed(padded: Sequence[int], H: int, W: int) -> tuple[slice, ...]:
    """Where images of H x W sit in ``padded`` (N, C, P, P): centred."""
    top, left = (padded[2] - H) // 2, (padded[3] - W) // 2
    return slice(None), slice(None), slice(top, top + H), slice(left, left + W)


def scaled(images: np.ndarray) -> np.ndarray:
    """float32 images: uint8 ones divided by 255, float ones as they are."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) * np.float32(1 / 255)
    return images.astype(np.float32, copy=False)


def check_scale(images: np.ndarray, value_range: Sequence[float], name: str) -> None:
    """DataError if ``images`` (N, C, H, W), scaled as in training, reach beyond the training
    images' ``value_range`` (min, max) by more than its width, or are uint8 (so scaled to 0-1)
    for a run trained on floats beyond 0-1: images on another scale (floats of 0-255 for a
    model trained on uint8 images, which became 0-1, say) would be classified as noise,
    without a word."""
    low, high = value_range
    if images.dtype == np.uint8 and high > 2:
        raise DataError(
            f"{name}: uint8 images (image files too) are scaled to 0-1, but the run's training "
            f"images were floats of {low:g} to {high:g}, used as they are: give these as floats "
            "on that scale (a .npy array)"
        )
    width = high - low
    x = scaled(images)
    found_low, found_high = round(float(x.min()), 4), round(float(x.max()), 4)
    if low - width <= found_low and found_high <= high + width:
        return
    hint = (
        "floats of 0-255? divide them by 255, or give uint8 images"
        if found_high > 2 and high <= 1
        else "give them on the training images' scale"
    )
    raise DataError(
        f"{name}: values from {found_low:g} to {found_high:g}, but the run's training images "
        f"were {low:g} to {high:g} (uint8 images are scaled to 0-1, floats used as they are): "
        f"{hint}"
    )


def preprocess(
    images: np.ndarray, pad_to: int | None, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """images (N, C, H, W) -> float32 (N, C, pad_to, pad_to): scaled, padded, and each channel
    normalised with the training images' ``mean`` and ``std`` of it (what training did, and
    what prediction must do)."""
    per_channel = (-1, 1, 1)
    mean = np.asarray(mean, dtype=np.float32).reshape(per_channel)
    std = np.asarray(std, dtype=np.float32).reshape(per_channel)
    return (_pad(scaled(images), pad_to) - mean) / std


def prepare(
    raw: RawData,
    task: str = "binary",
    positive: Classes = (6,),
    negative: Classes = (0,),
    pad_to: int | None = 32,
    val_fraction: float = 0.1,
    seed: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
    normalisation: tuple[Sequence[float], Sequence[float]] | None = None,
) -> Prepared:
    """The task's train / val / test splits on the active backend's device, each channel
    normalised with the training split's mean and standard deviation, or with
    ``normalisation`` = (mean, std) when given (a trained model's, to evaluate it).
    ``positive`` / ``negative``: the binary task's classes, by number or by name ("Shirt"), one
    or a list."""
    positive, negative = task_classes(task, positive, negative, raw.classes)
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}", "val_fraction")
    rng = np.random.default_rng(seed)
    x_train, y_train = _select(raw.x_train, raw.y_train, task, positive, negative)
    x_test, y_test = _select(raw.x_test, raw.y_test, task, positive, negative)
    for split, y in (("training", y_train), ("test", y_test)):
        if len(y) == 0 and (split == "test" or normalisation is None):  # evaluating: no training
            wanted = "any class" if task == "multiclass" else f"classes {[*negative, *positive]}"
            raise ConfigError(
                f"the {split} files hold no images of {wanted}: choose the task's classes "
                "(positive, negative) among those the data holds, or use other files"
            )
    x_train, y_train = _subset(x_train, y_train, limit_train, "limit_train", rng)
    x_test, y_test = _subset(x_test, y_test, limit_test, "limit_test", rng)
    val_idx, train_idx = stratified_split(y_train, val_fraction, rng)
    if len(train_idx) == 0 and normalisation is None:
        raise ConfigError(
            f"val_fraction={val_fraction} takes all {len(y_train)} training images for "
            "validation (each class's share is rounded), leaving none to train on: lower it, or "
            "use more images",
            "val_fraction",
        )
    _check_pad_to(pad_to, raw.image_shape)
    C, H, W = raw.image_shape
    n, (height, width) = len(y_train) + len(y_test), ((pad_to, pad_to) if pad_to else (H, W))
    memory.require(  # the float32 images on the host, then on the device
        n * C * height * width * (4 + np.dtype(backend.dtype()).itemsize),
        f"pad_to={pad_to}: {n:,} images of {C}x{height}x{width}",
        "lower pad_to (or limit_train and limit_test)",
        host=True,
        argument="pad_to",
    )

    value_range = dark_edges = None  # what new images are checked against: training's
    if normalisation is not None:
        mean, std = (tuple(float(v) for v in values) for values in normalisation)
        if len(mean) != raw.image_shape[0]:
            raise ConfigError(
                f"the model was trained on images with {len(mean)} channel(s), these have "
                f"{raw.image_shape[0]}: give images with {len(mean)} (data.channels for a "
                "folder)"
            )
    else:
        train_x = scaled(x_train[train_idx])
        mean = tuple(float(m) for m in train_x.mean(axis=(0, 2, 3), dtype=np.float64))
        std = tuple(float(s) for s in train_x.std(axis=(0, 2, 3), dtype=np.float64))
        value_range = (float(train_x.min()), float(train_x.max()))
        dark_edges = float(edges.dark_shares(train_x, value_range).mean())
    if min(std) == 0:
        raise ConfigError(
            f"the training images hold one value in channel {std.index(0)}: nothing to learn"
        )

    def to_split(x: np.ndarray, y: np.ndarray) -> Split:
        x = preprocess(x, pad_to, mean, std)
        return Split(backend.to_device(x, dtype=backend.dtype()), backend.to_device(y))

    if task == "binary":
        neg = "+".join(raw.classes[c] for c in negative)
        pos = "+".join(raw.classes[c] for c in positive)
        classes, n_outputs = (neg, pos), 1
    else:
        classes, n_outputs = raw.classes, len(raw.classes)
    n_labels = len(classes)
    parts = {
        "train": (x_train[train_idx], y_train[train_idx]),
        "val": (x_train[val_idx], y_train[val_idx]),
        "test": (x_test, y_test),
    }
    balance = {k: np.bincount(y, minlength=n_labels).tolist() for k, (_, y) in parts.items()}
    splits = {k: to_split(x, y) for k, (x, y) in parts.items()}
    return Prepared(
        **splits,
        classes=classes,
        n_outputs=n_outputs,
        mean=mean,
        std=std,
        balance=balance,
        image_shape=raw.image_shape,
        value_range=value_range,
        dark_edges=dark_edges,
        skipped=raw.skipped,
    )


def describe(data: Prepared) -> str:
    """Lines for the run's log: the classes, and how many examples of each are in each split."""
    lines = [f"classes: {', '.join(f'{i}={name}' for i, name in enumerate(data.classes))}"]
    for split, counts in data.balance.items():
        total = sum(counts)
        if not total:  # no validation split, or the training split of an evaluation
            lines.append(f"{split}: none")
            continue
        shares = ", ".join(f"{n:,} ({n / total:.0%})" for n in counts)
        lines.append(f"{split}: {total:,} image{'s' * (total != 1)}; per label: {shares}")
    return "\n".join(lines)


SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


def gaps(data: Prepared, limits: dict[str, str | None] | None = None) -> list[str]:
    """A warning for each split that holds no images of some class (empty splits aside): a
    class missing from the training split is never learned, one missing from the validation
    or test split is left out of that split's accuracy. ``limits``: the setting that limits
    the images of a split, by split, None where none is (``{"test": "limit_test=50"}``)."""
    warnings = []
    for split, counts in data.balance.items():
        missing = [data.classes[label] for label, n in enumerate(counts) if n == 0]
        if missing and sum(counts):
            name, them = SPLIT_NAMES[split], "it" if len(missing) == 1 else "them"
            effect = (
                f"the model never learns {them}"
                if split == "train"
                else f"{name} accuracy leaves {them} out"
            )
            limit = (limits or {}).get(split)
            warnings.append(
                f"the {name} split holds no images of {', '.join(missing)}: {effect}; use more "
                f"images of {them}" + (f" (or a larger {limit})" if limit else "")
            )
    return warnings
