"""Where the image sets come from: local IDX files, a verified download, or the embedded set.

``load(name, root, download)`` returns the raw uint8 images and labels of ``fashion_mnist``,
``mnist`` or the embedded ``fashion_mnist_mini``. A ``root`` given is the one place looked in
(an error names it if the files are not there); otherwise the full sets are looked for, in
order, in ``$GPUCNN_DATA/<set>``, Debian's ``/usr/share/datasets/<set>`` and the cache
(``~/.cache/gpucnn/<set>``, or ``$GPUCNN_CACHE/<set>``); failing that they are downloaded into
the cache (when allowed), checked against published checksums and moved into place only once
verified.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataError, did_you_mean
from ..fileio import atomic_write
from . import idx
from .raw import SPLIT_FILES, RawData, checked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileSpec:
    """One IDX file and how to verify a download of it."""

    name: str  # without .gz, e.g. "train-images-idx3-ubyte"
    sha256: str = ""  # of the decompressed bytes
    md5_gz: str = ""  # of the gzipped file as served

    def names(self) -> tuple[str, ...]:
        """The names the file goes by: gzipped or not, and with a dot before ``idx``
        (train-images.idx3-ubyte), as some copies of MNIST name it."""
        dotted = ".idx".join(self.name.rsplit("-idx", 1))
        return tuple(name + gz for name in (self.name, dotted) for gz in ("", ".gz"))


@dataclass(frozen=True)
class Source:
    name: str
    dirname: str
    title: str
    url: str
    classes: tuple[str, ...]
    files: dict[str, FileSpec]


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Checksums of the decompressed files, as published with the official Fashion-MNIST release.
FASHION_MNIST = Source(
    name="fashion_mnist",
    dirname="fashion-mnist",
    title="Fashion-MNIST",
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    classes=FASHION_CLASSES,
    files={
        "train_images": FileSpec(
            "train-images-idx3-ubyte",
            sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte",
            sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte",
            sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte",
            sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
)

# MD5 of the gzipped files as served (the checksums torchvision's MNIST dataset checks).
MNIST = Source(
    name="mnist",
    dirname="mnist",
    title="MNIST",
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    classes=tuple(str(d) for d in range(10)),
    files={
        "train_images": FileSpec(
            "train-images-idx3-ubyte", md5_gz="f68b3c2dcbeaaa9fbdd348bbdeb94873"
        ),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte", md5_gz="d53e105ee54ea40749a09fcbcd1e9432"
        ),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte", md5_gz="9fb629c4189551a2d022fa330f9573f3"
        ),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte", md5_gz="ec29112dd5afa0611ce80d1b7f02629c"
        ),
    },
)

SOURCES = {s.name: s for s in (FASHION_MNIST, MNIST)}
MINI = "fashion_mnist_mini"
NAMES = (MINI, *SOURCES)


def candidate_dirs(source: Source) -> list[Path]:
    """The directories searched for ``source`` when no root is given, in order."""
    dirs = []
    if os.environ.get("GPUCNN_DATA"):
        dirs.append(Path(os.environ["GPUCNN_DATA"]).expanduser() / source.dirname)
    dirs.append(Path("/usr/share/datasets") / source.dirname)
    dirs.append(cache_dir(source))
    return dirs


def cache_root() -> Path:
    """Where downloads and decoded image folders are kept: $GPUCNN_CACHE, else
    ~/.cache/gpucnn."""
    return Path(os.environ.get("GPUCNN_CACHE") or "~/.cache/gpucnn").expanduser()


def cache_dir(source: Source) -> Path:
    return cache_root() / source.dirname


def _file_in(directory: Path, spec: FileSpec) -> Path | None:
    for name in spec.names():
        if (directory / name).is_file():
            return directory / name
    return None


def locate(source: Source) -> Path | None:
    """The first candidate directory holding all four files of ``source``, or None."""
    for directory in candidate_dirs(source):
        if all(_file_in(directory, spec) for spec in source.files.values()):
            return directory
    return None


def verify(data: bytes, spec: FileSpec, what: str) -> None:
    """Check downloaded (still gzipped) ``data`` against ``spec``'s checksums."""
    if spec.md5_gz:
        got = hashlib.md5(data).hexdigest()
        if got != spec.md5_gz:
            raise DataError(f"{what}: MD5 {got} does not match the published {spec.md5_gz}")
    if spec.sha256:
        try:
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        except (OSError, EOFError) as exc:
            raise DataError(f"{what}: the download is not a valid gzip file ({exc})") from None
        got = hashlib.sha256(raw).hexdigest()
        if got != spec.sha256:
            raise DataError(f"{what}: SHA-256 {got} does not match the published {spec.sha256}")


def download(source: Source, dest: Path, url: str | None = None, timeout: float = 60) -> Path:
    """Fetch the four gzipped files of ``source`` into ``dest``, each verified before it is
    moved into place; a failed file leaves nothing under its final name."""
    base = url or source.url
    for spec in source.files.values():
        address = base.rstrip("/") + "/" + spec.name + ".gz"
        log.info("downloading %s", address)
        try:
            with urllib.request.urlopen(address, timeout=timeout) as response:
                data = response.read()
        except OSError as exc:
            raise DataError(f"cannot download {address}: {exc}") from None
        verify(data, spec, address)
        atomic_write(dest / (spec.name + ".gz"), lambda f, d=data: f.write(d))
    return dest


def _given_root(source: Source, root: Path) -> Path:
    """``root`` if it holds all four files of ``source``, else DataError naming what is missing."""
    if not root.is_dir():
        raise DataError(f"root {root} is not a directory: give the folder that holds the IDX files")
    missing = [spec.name for spec in source.files.values() if not _file_in(root, spec)]
    if missing:
        below = _holding(source, root)
        fix = (
            f"they are in {below}: give that"
            if below
            else "put the files there, or give no root to search the usual places"
        )
        raise DataError(
            f"root {root} does not hold {source.title}'s {', '.join(missing)} (gzipped or not, "
            f"-idx or .idx): {fix}"
        )
    return root


def _holding(source: Source, root: Path) -> Path | None:
    """A folder one or two levels below ``root`` that holds all four files of ``source``
    (torchvision keeps them in ``<root>/MNIST/raw``), named for it rather than for the other
    set (``FashionMNIST/raw`` holds files of the same names); None if there is none."""
    found = [
        folder
        for pattern in ("*", "*/*")
        for folder in sorted(root.glob(pattern))
        if folder.is_dir() and all(_file_in(folder, spec) for spec in source.files.values())
    ]

    def named_for(folder: Path, s: Source) -> bool:
        key = s.title.lower().replace("-", "")
        parts = folder.relative_to(root).parts
        return any(part.lower().replace("-", "").replace("_", "") == key for part in parts)

    others = [s for s in SOURCES.values() if s is not source]
    ours = [f for f in found if named_for(f, source)]
    neutral = [f for f in found if not any(named_for(f, s) for s in others)]
    return (ours or neutral or [None])[0]


def _not_found(source: Source, why: str) -> DataError:
    searched = "\n  ".join(str(d) for d in candidate_dirs(source))
    ways = [
        f"put the four IDX files ({', '.join(s.name for s in source.files.values())}, gzipped "
        f"or not, -idx or .idx) in a directory and pass it as root, or in "
        f"$GPUCNN_DATA/{source.dirname}",
        f"allow downloading (download=True) on a machine that reaches {source.url}",
    ]
    if source is FASHION_MNIST:  # the only one of the two that Debian packages
        ways.insert(0, f"sudo apt-get install dataset-{source.dirname} (Debian and Ubuntu)")
    listed = "".join(f"\n  {i}. {way}" for i, way in enumerate(ways, 1))
    return DataError(
        f"{source.title} was not found ({why}). Searched:\n  {searched}\n"
        f"Get it one of {['two', 'three'][len(ways) - 2]} ways:{listed}"
    )


def _of_type(values: np.ndarray, key: str, path: Path) -> np.ndarray:
    """``values`` if they are what ``key`` holds: images as bytes 0-255, labels as integers."""
    if key.endswith("images") and values.dtype != np.uint8:
        raise DataError(
            f"{path}: images must be unsigned bytes 0-255 (IDX type 08), this file holds "
            f"{values.dtype} values"
        )
    if key.endswith("labels") and values.dtype.kind not in "ui":
        raise DataError(f"{path}: labels must be integers, this file holds {values.dtype} values")
    return values


def load_idx_dir(source: Source, directory: Path) -> RawData:
    """Read and check the four IDX files of ``source`` in ``directory``."""
    arrays = {}
    for key, spec in source.files.items():
        path = _file_in(directory, spec)
        if path is None:
            raise DataError(
                f"{directory}: {spec.name} ({' or '.join(spec.names()[1:])}) is missing"
            )
        arrays[key] = _of_type(idx.read(path), key, path)
    _check_identity(source, arrays["train_images"], directory)
    return checked(f"{source.title} in {directory}", source.classes, arrays)


def _check_identity(source: Source, train_images: np.ndarray, directory: Path) -> None:
    """DataError if ``directory`` holds Fashion-MNIST's training images but ``source`` is another
    set (whose class names would be put on them); a warning if the Fashion-MNIST asked for is
    not the published one (local files are not verified otherwise)."""
    published = FASHION_MNIST.files["train_images"].sha256
    fashion = hashlib.sha256(idx.encode(train_images)).hexdigest() == published
    if fashion and source is not FASHION_MNIST:
        raise DataError(
            f"{directory} holds Fashion-MNIST's images, not {source.title}'s: choose "
            f"fashion_mnist (data=fashion_mnist), or give root a folder with {source.title}'s "
            "files"
        )
    if source is FASHION_MNIST and not fashion:
        log.warning(
            "%s: train-images is not the published Fashion-MNIST file (its SHA-256 differs): "
            "results will not compare with published ones",
            directory,
        )


def class_names(name: str) -> tuple[str, ...] | None:
    """The class names of the named set ``name``, known before it is loaded; None for a set of
    the user's own (a folder, arrays), whose names come with the data."""
    if name == MINI:
        return FASHION_CLASSES
    source = SOURCES.get(name)
    return source.classes if source else None


def mini_path() -> Path:
    """The embedded subset of Fashion-MNIST shipped with the package."""
    return Path(str(resources.files("gpucnn.data") / "fashion_mnist_mini.npz"))


def load_mini() -> RawData:
    """The embedded stratified subset of Fashion-MNIST (no download, no files needed)."""
    with np.load(mini_path(), allow_pickle=False) as f:
        arrays = {key: f[key] for key in SPLIT_FILES}
    return checked("the embedded fashion_mnist_mini", FASHION_CLASSES, arrays)


def load(
    name: str,
    root: str | os.PathLike | None = None,
    download_ok: bool = True,
    url: str | None = None,
) -> RawData:
    """Raw images and labels of dataset ``name`` (one of NAMES)."""
    if name == MINI:
        return load_mini()
    if name not in SOURCES:
        raise DataError(
            f"name={name!r} is unknown{did_you_mean(str(name), NAMES)}: choose one of "
            f"{', '.join(NAMES)}"
        )
    source = SOURCES[name]
    if root:  # asked for by name: that directory or an error, never a copy found elsewhere
        return load_idx_dir(source, _given_root(source, Path(root).expanduser()))
    directory = locate(source)
    if directory is None:
        if not download_ok:
            raise _not_found(source, "downloading is off")
        try:
            directory = download(source, cache_dir(source), url)
        except DataError as exc:
            raise _not_found(source, f"the download failed: {exc}") from None
    log.info("%s from %s", source.title, directory)
    return load_idx_dir(source, directory)
