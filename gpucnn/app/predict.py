"""``python -m gpucnn.predict RUN_DIR IMAGES... [--json]``: classify new images with a trained run.

    python -m gpucnn.predict outputs/runs/<time> shirt.png boot.jpg
    python -m gpucnn.predict outputs/runs/<time> images.npy --json

Images are PNG, JPEG or BMP files (made grayscale and resized to the set's 28x28), or .npy
arrays of uint8 images, (H, W) or (N, H, W). They are prepared as in training: scaled to
[0, 1], padded to ``data.pad_to`` and normalised with the training images' mean and standard
deviation, saved in the run's summary.json. Prints one line per image: the file (with the
image's index for arrays), the predicted class and its probability.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend, data
from ..errors import DataError, GpucnnError
from ..losses import for_outputs
from ..train import predict
from .config import IMAGE_SIZE, build_model, n_outputs
from .evaluate import RunError, run_config
from .results import read_summary

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def read_images(path: Path) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 (28, 28) image) for an image file, or for each image of a .npy array."""
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npy array ({exc})") from None
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise DataError(
                f"{path}: expected uint8 images (H, W) or (N, H, W), got {array.dtype} "
                f"{array.shape}"
            )
        array = array[None] if array.ndim == 2 else array
        return [(f"{path}[{i}]", _sized(image, path)) for i, image in enumerate(array)]
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: give PNG, JPEG or BMP files, or a .npy array")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            gray = np.asarray(image.convert("L"))
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    return [(str(path), _sized(gray, path))]


def _sized(image: np.ndarray, path: Path) -> np.ndarray:
    """``image`` at the set's 28x28, resized if it is another size."""
    if image.shape == (IMAGE_SIZE, IMAGE_SIZE):
        return image
    from PIL import Image

    resized = Image.fromarray(image).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def predict_files(run_dir: Path, paths: list[Path]) -> list[dict[str, Any]]:
    """One record per image: its name, the predicted class and its probability."""
    cfg = run_config(run_dir, [])
    summary = read_summary(run_dir) or {}
    norm, classes = summary.get("normalisation"), summary.get("classes")
    if not isinstance(norm, dict) or not classes:
        raise RunError(f"{run_dir}/summary.json lacks the normalisation or the class names")
    named = [item for path in paths for item in read_images(path)]
    backend.use("numpy", cfg.backend.dtype, cfg.train.seed)
    model = build_model(cfg.model, cfg.data)
    model.load(run_dir / "model.npz")
    images = np.stack([image for _, image in named])
    x = data.preprocess(images, cfg.data.pad_to, norm["mean"], norm["std"])
    probs = predict(model, for_outputs(n_outputs(cfg.data)), x, cfg.train.eval_batch_size)
    return [
        {
            "image": name,
            "class": classes[int(p.argmax())],
            "label": int(p.argmax()),
            "probability": float(p.max()),
        }  # fmt: skip
        for (name, _), p in zip(named, probs)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpucnn.predict", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a finished run's directory")
    parser.add_argument("images", nargs="+", type=Path, help="image files or .npy arrays")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    args = parser.parse_args(argv)
    try:
        records = predict_files(args.run_dir, args.images)
    except GpucnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        for r in records:
            print(f"{r['image']}\t{r['class']}\t{r['probability']:.4f}")
    return 0
