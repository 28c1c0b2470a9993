"""Image files as uint8 arrays, read with Pillow the same way for training and for prediction."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError

# The suffixes torchvision's ImageFolder reads.
SUFFIXES = (".bmp", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
FITS = ("pad", "stretch")


def read_image(
    path: str | os.PathLike, channels: int, size: tuple[int, int], fit: str = "pad"
) -> tuple[np.ndarray, tuple[int, int]]:
    """The image in ``path`` as uint8 (channels, H, W) for ``size`` (H, W), and its own size
    (height, width). ``channels``: 1 makes it grayscale, 3 RGB (an alpha channel is dropped).
    ``fit``: ``pad`` scales it to fit inside (H, W), keeping its aspect ratio, and fills the
    rest with black; ``stretch`` scales each side to fit exactly. DataError if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    own = (image.height, image.width)
    array = np.asarray(_fitted(image, size, fit))
    return (array[None] if channels == 1 else array.transpose(2, 0, 1)), own


def _fitted(image, size: tuple[int, int], fit: str):
    """``image`` (a Pillow image) at ``size`` (H, W), as ``fit`` says."""
    from PIL import Image

    height, width = size
    if (image.height, image.width) == (height, width):
        return image
    if fit == "stretch":
        return image.resize((width, height), Image.Resampling.BILINEAR)
    scale = min(width / image.width, height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new(image.mode, (width, height))  # black
    corner = ((width - inner[0]) // 2, (height - inner[1]) // 2)
    canvas.paste(image.resize(inner, Image.Resampling.BILINEAR), corner)
    return canvas


def is_image(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES
