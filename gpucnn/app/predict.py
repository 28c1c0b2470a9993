"""``python -m gpucnn.predict RUN_DIR IMAGES... [--top K] [--json]``: classify new images with a
trained run.

    python -m gpucnn.predict outputs/runs/<time> shirt.png boot.jpg
    python -m gpucnn.predict outputs/runs/<time> images.npy --json
    python -m gpucnn.predict outputs/runs/<time> test.csv              # every row of it
    python -m gpucnn.predict outputs/runs/<time> new_photos/           # every image under it
    python -m gpucnn.predict outputs/runs/<time> shirt.png --top 3     # its 3 likeliest classes

Images are image files (PNG, JPEG, BMP, ...: gpucnn.data.images.SUFFIXES), made grayscale or RGB and
fitted to the size of the run's training images as its data config says, or .npy arrays of images
already that size: one image (H, W), (H, W, C) or (C, H, W), or several (N, H, W), (N, H, W, C) or
(N, C, H, W); uint8 (0-255) or floats, as in training; or .csv files of one image a row (grayscale
or RGB, as the run's), as data=arrays reads them, with their labels or without. They are then
prepared as in training: scaled, padded to ``data.pad_to`` and normalised with the training images'
mean and standard deviation, saved in the run's summary.json. Prints one line per image: the file
(with the image's index for arrays and CSV rows), the predicted class and its probability (with
--top K, the K likeliest classes, each with its probability, likeliest first). A folder stands for
the image files under it, at any depth, in sorted order (hidden files and folders skipped). Images
light at their edges where the training images were dark, or the other way round (a dark shirt on
white paper for a model of Fashion-MNIST), are named in a warning.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from .. import backend, data
from ..data import edges
from ..data.arrays import channels_first, is_npy
from ..data.images import SUFFIXES, is_image, placement
from ..data.raw import check_image_type
from ..errors import DataError, GpucnnError
from ..losses import for_outputs
from ..model import Model
from ..train import predict
from . import command_parser
from .config import build_model
from .evaluate import load_run
from .finished import RunError
from .results import first_of

NEEDED = ("classes", "image_shape", "input_shape", "normalisation")  # of summary.json
ESCAPED = str.maketrans({"\t": "\\t", "\n": "\\n", "\r": "\\r"})  # in a file's name
log = logging.getLogger(__name__)


def read_images(path: Path, image_shape: tuple[int, ...], fit: str) -> list[tuple[str, Any, Any]]:
    """(name, image (C, H, W), the part of it the picture fills) for an image file, or for
    each image of a .npy array, at ``image_shape`` (C, H, W). The part is the image less the
    black that ``fit=pad`` puts around a picture of another shape. A CSV file gives each of
    its rows (gpucnn.data.csv_rows.images_for)."""
    if data.csv_rows.is_csv(path):
        images = data.csv_rows.images_for(path, image_shape)
        return [(f"{path}[{i}]", image, image) for i, image in enumerate(images)]
    if path.suffix.lower() == ".npy":
        if not is_npy(path):  # np.load would take it for a pickle, and refuse that
            raise DataError(f"{path}: not a .npy file: save the images with np.save(path, x)")
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npy array ({exc})") from None
        check_image_type(array, f"{path}: images")
        images = channels_first(array[None] if _one_image(array, image_shape) else array, str(path))
        if len(images) == 0:
            raise DataError(f"{path}: holds no images (an array of shape {array.shape})")
        if images.shape[1:] != tuple(image_shape):
            C = image_shape[0]
            fix = (
                f"give them {C} channels"
                + (" (np.stack([x] * 3, axis=-1) for gray ones)" if C == 3 else "")
                + ", or give image files (they are converted)"
                if images.shape[2:] == tuple(image_shape[1:])
                else "resize them, or give image files (they are fitted)"
            )
            raise DataError(
                f"{path}: holds images of {images.shape[1:]} (C, H, W) but the run was trained "
                f"on {tuple(image_shape)}: {fix}"
            )
        return [(f"{path}[{i}]", image, image) for i, image in enumerate(images)]
    if not is_image(path):
        raise DataError(
            f"{path}: give image files ({', '.join(SUFFIXES)}), a .npy array or a .csv of rows"
        )
    C, H, W = image_shape
    if C not in (1, 3):
        raise DataError(
            f"{path}: the run was trained on images of {C} channels, which image files do not "
            "have: give them as a .npy array"
        )
    image, own = data.read_image(path, C, (H, W), fit)
    rows, cols = placement(own, (H, W), fit)
    return [(str(path), image, image[:, rows, cols])]


def _one_image(array: np.ndarray, image_shape: tuple[int, ...]) -> bool:
    """Whether ``array`` is a single image of ``image_shape`` (C, H, W): (H, W), or
    (H, W, C) or (C, H, W) of the run's size (a photo saved with np.save), which as a stack
    of grayscale images (N, H, W) would be a stack of C (or H) images of the wrong size."""
    C, H, W = image_shape
    return (
        array.ndim == 2
        or (array.ndim == 3 and array.shape in ((H, W, C), (C, H, W)) and C > 1)
        or array.shape == (H, W, 1)
    )


def image_files(paths: list[Path]) -> list[tuple[Path, bool]]:
    """(file, whether it was named itself) for ``paths``, each folder replaced by the image
    files under it, at any depth, sorted; names starting with a dot (hidden) are skipped.
    DataError for a folder without any."""
    out = []
    for path in paths:
        if not path.exists():
            if "=" in path.name and path.name == str(path):  # KEY=VALUE, as evaluate takes
                raise DataError(
                    f"{path}: predict takes no settings, only images: it prepares them as the "
                    "run's config says, and runs on NumPy"
                )
            raise DataError(f"{path}: no such file or folder")
        if not path.is_dir():
            out.append((path, True))
            continue
        found = sorted(
            p
            for p in path.rglob("*")
            if is_image(p) and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )  # fmt: skip
        if not found:
            raise DataError(f"{path}: a folder without image files ({', '.join(SUFFIXES)})")
        out += [(p, False) for p in found]
    return out


def predict_files(run_dir: Path, paths: list[Path], top: int = 1) -> list[dict[str, Any]]:
    """One record per image, in order: its name, the predicted class and its probability (and
    with ``top`` K > 1, the K likeliest classes); or, for a file in a folder that could not be
    read, its name and why it was ``skipped``."""
    cfg, summary, model = load_model(run_dir)
    classes = summary["classes"]
    if not 1 <= top <= len(classes):
        raise DataError(
            f"--top {top}: the run tells {len(classes)} classes apart: give 1 to {len(classes)}"
        )
    found = read_all(paths, cfg, summary)
    named = [entry for entry in found if isinstance(entry, tuple)]
    if not named:
        raise DataError(f"no readable image in {', '.join(map(str, paths))}")
    unlike = unlike_training(named, summary)
    x, loss = prepare(named, cfg, summary), for_outputs(model.output_shape[0])
    probs = iter(predict(model, loss, x, cfg.train.eval_batch_size))
    return [
        entry if isinstance(entry, dict) else _record(entry[0], next(probs), classes, unlike, top)
        for entry in found
    ]


def load_model(run_dir: Path) -> tuple[DictConfig, dict[str, Any], Model]:
    """(the run's config, its summary.json, its trained model on NumPy) for images prepared
    here; RunError where the summary lacks what preparing them needs (older versions')."""
    cfg, summary, weights = load_run(run_dir, [])
    missing = [key for key in NEEDED if not summary.get(key)]
    if missing:
        raise RunError(
            f"{run_dir}/summary.json lacks {', '.join(missing)}: train the run again with this "
            "version of gpucnn"
        )
    backend.use("numpy", cfg.backend.dtype, cfg.train.seed)
    n_outputs = 1 if cfg.data.task == "binary" else len(summary["classes"])
    model = build_model(cfg.model, summary["input_shape"], n_outputs)
    model.load(weights)
    return cfg, summary, model


def read_all(paths: list[Path], cfg: DictConfig, summary: dict[str, Any]) -> list[Any]:
    """In file order: (name, image (C, H, W), picture) for each image read (read_images), or a
    skipped file's record, for a file in a folder that could not be read (DataError for a file
    named itself). Images on another scale than the training images' are refused."""
    found: list[Any] = []
    for path, asked in image_files(paths):
        try:
            images = read_images(path, summary["image_shape"], cfg.data.fit)
        except DataError as exc:
            if asked:
                raise
            log.warning("skipped %s", exc)  # one bad file in a folder, as training does
            found.append({"image": str(path), "skipped": str(exc)})
            continue
        if summary.get("value_range"):  # runs of older versions lack it
            data.check_scale(
                np.stack([image for _, image, _ in images]), summary["value_range"], str(path)
            )
        found += images
    return found


def prepare(named: list[tuple[str, Any, Any]], cfg: DictConfig, summary: dict[str, Any]) -> Any:
    """The images of ``named`` (read_all's) as the model takes them, (N, *input_shape):
    scaled, padded and normalised as the run's training images were."""
    norm = summary["normalisation"]
    return np.concatenate(  # one by one: files (uint8) and arrays (maybe floats) are scaled apart
        [
            data.preprocess(image[None], cfg.data.pad_to, norm["mean"], norm["std"])
            for _, image, _ in named
        ]
    )


def unlike_training(named: list[tuple[str, Any, Any]], summary: dict[str, Any]) -> set[str]:
    """The names of the images whose edges are light where the training images' were dark, or
    the other way round (edges.py), said in one warning."""
    trained = summary.get("dark_edges")  # runs of older versions lack it
    if edges.background(trained) is None:
        return set()
    pictures = [data.scaled(picture[None]) for _, _, picture in named]  # each of its own size
    shares = np.concatenate([edges.dark_shares(p, summary["value_range"]) for p in pictures])
    unlike = [
        name for (name, _, _), odd in zip(named, edges.unlike_training(shares, trained)) if odd
    ]
    if unlike:
        log.warning(edges.warning(first_of(unlike, 3), len(unlike), len(named), trained))
    return set(unlike)


def _record(
    name: str, probs: np.ndarray, classes: list[str], unlike: set[str], top: int
) -> dict[str, Any]:
    """A predicted image's record: its name, class, label and the class's probability, the
    ``top`` likeliest classes as such records where ``top`` > 1, and
    ``background_unlike_training`` for an image in ``unlike``."""
    likeliest = [
        {"class": classes[label], "label": int(label), "probability": float(probs[label])}
        for label in np.argsort(-probs, kind="stable")[:top]
    ]
    record = {"image": name, **likeliest[0]}
    if top > 1:
        record["top"] = likeliest
    if name in unlike:
        record["background_unlike_training"] = True
    return record


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("predict", __doc__)
    parser.add_argument("run_dir", type=Path, help="a finished run's directory")
    parser.add_argument(
        "images", nargs="+", type=Path, help="image files, .npy arrays or folders of images"
    )
    parser.add_argument(
        "--top", type=int, default=1, metavar="K", help="the K likeliest classes (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")  # stdout: results
    try:
        records = predict_files(args.run_dir, args.images, args.top)
    except GpucnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        for r in records:
            if "skipped" not in r:  # said on stderr as it was skipped
                name = r["image"].translate(ESCAPED)  # one line a file, whatever its name
                likeliest = r.get("top", [r])
                print(
                    "\t".join([name, *(f"{c['class']}\t{c['probability']:.4f}" for c in likeliest)])
                )
    return 0
