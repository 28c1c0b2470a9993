"""Images in one folder per class, the layout torchvision's ImageFolder reads:

    root/<class>/<image>              split here into train and test (seeded, stratified)
    root/train/<class>/<image>        or already split, when root holds train/ and test/
    root/test/<class>/<image>         (or train/ and val/, valid/ or validation/: the test split)

Classes are the class folders' names, sorted; images are found at any depth below them by their
suffix (gpucnn.data.images.SUFFIXES); other files and hidden ones are ignored. Each image is
decoded with Pillow, made grayscale or RGB and fitted to image_size x image_size
(gpucnn.data.images.read_image). A file that cannot be decoded is skipped with a warning that
names it, and listed in RawData.skipped: one bad file among thousands neither stops a run nor
goes unnoticed. A class left without images is an error.

The test split, when there is no test/ folder, is drawn with ``split_seed``, not the training
seed, so that every seed of a sweep is tested on the same images; ``test_fraction=1`` makes
every image a test image (to evaluate a trained model on a new folder). The decoded set is
cached in ``<cache>/folders/`` (gpucnn.data.sources.cache_root), keyed by the settings and
every file's path, size and modification time: a second run reads one file, and any change to
the images decodes them again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import memory
from ..errors import ConfigError, DataError, check_choice, is_count
from ..fileio import atomic_write
from .images import DECODING, FITS, SUFFIXES, is_image, read_image
from .prepare import stratified_split
from .raw import RawData, checked
from .sources import cache_root

log = logging.getLogger(__name__)

TRAIN, TEST, UNSPLIT = 0, 1, 2
VAL_FOLDERS = ("val", "valid", "validation")  # beside train/, the held-out images
SHOWN = 5  # file names given as examples in a log line


@dataclass(frozen=True)
class Entry:
    path: Path
    label: int
    part: int  # TRAIN, TEST or UNSPLIT


def load(
    root: str | os.PathLike,
    channels: int = 1,
    image_size: int = 32,
    fit: str = "pad",
    test_fraction: float = 0.2,
    split_seed: int = 0,
    progress: bool = True,
) -> RawData:
    """The train and test splits of the image folder ``root``: uint8 (N, channels, image_size,
    image_size) images and their labels; see the module docstring."""
    check_settings(channels, image_size, fit, test_fraction)
    root = Path(root).expanduser()
    folders = _parts(root)
    entries, classes = _entries(root, folders)
    settings = {"channels": channels, "image_size": image_size, "fit": fit, "decoding": DECODING}
    cache = _cache_path(root, entries, settings)
    found = _read_cache(cache, len(entries), (channels, image_size, image_size))
    if found is None:
        found = _decode(root, entries, channels, image_size, fit, progress)
        _write_cache(cache, *found)
    x, kept, skipped = found
    labels = np.array([entries[i].label for i in kept], dtype=np.int64)
    parts = np.array([entries[i].part for i in kept])
    _check_every_class_kept(entries, labels, parts, classes, folders)
    if (parts == UNSPLIT).any():
        test, train = stratified_split(labels, test_fraction, np.random.default_rng(split_seed))
    else:
        train, test = np.flatnonzero(parts == TRAIN), np.flatnonzero(parts == TEST)
    arrays = {
        "train_images": x[train],
        "train_labels": labels[train],
        "test_images": x[test],
        "test_labels": labels[test],
    }
    return checked(f"the images in {root}", classes, arrays, tuple(skipped))


def check_settings(channels: int, image_size: int, fit: str, test_fraction: float) -> None:
    """ConfigError naming the first impossible setting of ``load``."""
    if channels not in (1, 3):
        raise ConfigError(f"channels={channels}: choose 1 (grayscale) or 3 (RGB)", "channels")
    if not is_count(image_size, 1):
        raise ConfigError(f"image_size={image_size!r} must be a positive integer", "image_size")
    check_choice(fit, FITS, "fit")
    if not 0 < test_fraction <= 1:
        raise ConfigError(f"test_fraction={test_fraction} must be in (0, 1]", "test_fraction")


def _parts(root: Path) -> dict[int, Path]:
    """The folders that hold class folders: train/ and test/; train/ and val/ (or valid/,
    validation/), the held-out images then being the test split; or ``root`` itself."""
    if not root.is_dir():
        raise DataError(
            f"{root} is not a directory: give the folder that holds one folder of images per class"
        )
    train, test = root / "train", root / "test"
    val = next((root / name for name in VAL_FOLDERS if (root / name).is_dir()), None)
    if not train.is_dir() or not (test.is_dir() or val):
        return {UNSPLIT: root}
    if not test.is_dir():  # otherwise the two folders would be taken for two classes
        log.info("%s has train/ and %s/: %s/ is the test split", root, val.name, val.name)
        return {TRAIN: train, TEST: val}
    if val:
        log.warning(
            "%s is not read: the validation images are drawn from train/ (data.val_fraction); "
            "move its images into train/ or test/ to use them",
            val,
        )
    return {TRAIN: train, TEST: test}


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _entries(root: Path, parts: dict[int, Path]) -> tuple[list[Entry], tuple[str, ...]]:
    """Every image file with its label and part, and the class names (sorted folder names);
    ``parts``: the folders that hold the class folders (_parts)."""
    entries: list[Entry] = []
    classes: list[str] = []
    ignored: list[str] = []
    for part, directory in parts.items():
        children = sorted(p for p in directory.iterdir() if _visible(p))
        folders = [p for p in children if p.is_dir()]
        if not folders:
            raise DataError(
                f"{directory} has no class folders: put each class's images in "
                f"{directory}/<class name>/"
            )
        loose = [p.name for p in children if p.is_file() and is_image(p)]
        if loose:  # beside the class folders: no class to give them
            log.warning(
                "%d image file(s) in %s are in no class folder and are not read: %s; move each "
                "into its class's folder",
                len(loose),
                directory,
                _examples(loose),
            )
        if part == TEST:
            extra = [f.name for f in folders if f.name not in classes]
            if extra:
                raise DataError(
                    f"{directory} has classes {extra} that {root / 'train'} lacks: "
                    "give train/ a folder for every class"
                )
        else:
            classes = [f.name for f in folders]
        for folder in folders:
            files = sorted(p for p in folder.rglob("*") if p.is_file() and _visible(p))
            ignored += [str(p.relative_to(root)) for p in files if not is_image(p)]
            images = [p for p in files if is_image(p)]
            if not images:
                raise DataError(
                    f"{folder} holds no image files ({', '.join(SUFFIXES)}): add some, or "
                    "remove the folder"
                )
            entries += [Entry(p, classes.index(folder.name), part) for p in images]
    if len(classes) < 2:
        only = root / classes[0]
        if classes[0] in ("train", "test", *VAL_FOLDERS) and any(
            p.is_dir() and _visible(p) for p in only.iterdir()
        ):  # a split of class folders, without its partner
            raise DataError(
                f"{root} has {classes[0]}/ alone, a folder of class folders: give "
                f"data.root={only} (its test images are then drawn from it), or add the other "
                "split beside it (train/ and test/)"
            )
        raise DataError(
            f"{root} has one class folder ({classes[0]}): a classifier needs two or more"
        )
    if ignored:
        log.info(
            "ignored %d file(s) without an image suffix (%s): %s",
            len(ignored),
            ", ".join(SUFFIXES),
            _examples(ignored),
        )
    return entries, tuple(classes)


def _examples(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")


def _cache_path(root: Path, entries: list[Entry], settings: dict) -> Path:
    """``<cache>/folders/<folder and settings>-<files, sizes and times>.npz``."""
    where = hashlib.sha256(json.dumps([str(root.resolve()), settings]).encode()).hexdigest()
    listing = hashlib.sha256()
    for e in entries:
        stat = e.path.stat()
        line = f"{e.path.relative_to(root)}\0{e.label}\0{e.part}\0{stat.st_size}\0"
        listing.update(f"{line}{stat.st_mtime_ns}\n".encode())
    return cache_root() / "folders" / f"{where[:16]}-{listing.hexdigest()[:16]}.npz"


def _read_cache(
    path: Path, n_entries: int, image_shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """(images, indices of the entries they are, skipped files) from the cache, or None where
    there is none or it does not fit the folder: images of another shape (C, H, W) than
    ``image_shape`` or type, more indices than entries."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            x, kept, skipped = f["x"], f["kept"], [str(s) for s in f["skipped"]]
    except Exception as exc:  # whatever is wrong with it, decoding again mends it
        log.warning("the cached images %s are unreadable (%s): decoding again", path, exc)
        return None
    fits = x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == image_shape
    if not fits or len(x) != len(kept) or (kept.size and kept.max() >= n_entries):
        log.warning("the cached images %s do not match the folder: decoding again", path)
        return None
    log.info("%d images from the cache %s", len(x), path)
    for line in skipped:
        log.warning("skipped %s", line)
    return x, kept, skipped


def _write_cache(path: Path, x: np.ndarray, kept: np.ndarray, skipped: list[str]) -> None:
    """Write the cache atomically and remove the folder's older caches; a failure is only
    logged (the next run decodes again)."""
    try:
        atomic_write(path, lambda f: np.savez(f, x=x, kept=kept, skipped=np.array(skipped, str)))
    except OSError as exc:
        log.warning("could not cache the decoded images in %s: %s", path, exc)
        return
    for older in path.parent.glob(f"{path.name.split('-')[0]}-*.npz"):
        if older != path:
            older.unlink(missing_ok=True)


def _decode(
    root: Path, entries: list[Entry], channels: int, size: int, fit: str, progress: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode every entry (on several threads: Pillow decodes without holding the GIL):
    (images, indices of the entries decoded, skipped files with why)."""
    from tqdm import tqdm

    def read(entry: Entry):
        try:
            return read_image(entry.path, channels, (size, size), fit)
        except DataError as exc:
            return exc

    memory.require(
        len(entries) * channels * size * size,
        f"image_size={size}: {len(entries):,} images of {channels}x{size}x{size} bytes",
        "lower image_size (or channels)",
        host=True,
        argument="image_size",
    )
    log.info("decoding %d images in %s (cached for the next run)", len(entries), root)
    x = np.empty((len(entries), channels, size, size), dtype=np.uint8)
    kept, skipped, fitted = [], [], []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = pool.map(read, entries)
        bar = tqdm(
            results,
            total=len(entries),
            desc="decoding",
            unit="image",
            leave=False,
            disable=None if progress else True,
        )
        for i, result in enumerate(bar):
            if isinstance(result, DataError):
                log.warning("skipped %s", result)
                skipped.append(str(result))
                continue
            image, own = result
            x[len(kept)] = image
            kept.append(i)
            if own != (size, size):
                fitted.append(f"{entries[i].path.relative_to(root)} {own[1]}x{own[0]}")
    if fitted:
        log.info(
            "fitted %d of %d images of other sizes to %dx%d (%s): %s",
            len(fitted),
            len(entries),
            size,
            size,
            fit,
            _examples(fitted),
        )
    return x[: len(kept)], np.array(kept, dtype=np.int64), skipped


def _check_every_class_kept(
    entries: list[Entry],
    labels: np.ndarray,
    parts: np.ndarray,
    classes: tuple[str, ...],
    folders: dict[int, Path],
) -> None:
    """DataError naming the classes of a part (``folders``: train/, test/ or the one folder)
    none of whose images could be read."""
    for part in sorted({e.part for e in entries}):
        lost = sorted({e.label for e in entries if e.part == part} - set(labels[parts == part]))
        if lost:
            where = "" if part == UNSPLIT else f" in {folders[part].name}/"
            raise DataError(
                f"no image of class {', '.join(classes[k] for k in lost)}{where} could be read "
                "(see the skipped files above): replace the unreadable files"
            )
