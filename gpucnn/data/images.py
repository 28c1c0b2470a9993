"""Image files as uint8 arrays, read with Pillow the same way for training and for prediction."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError

# The suffixes torchvision's ImageFolder reads, and GIF (its first frame), which Pillow reads too.
SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
FITS = ("pad", "stretch")
# Pillow's one-channel modes wider than a byte, and the value each one's white is: converting
# them to "L" would clip every value above 255 (a 16-bit image comes out nearly all white).
WIDE_MODES = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}
DECODING = 3  # changes with how files become arrays, so that caches of the old way are not read


def read_image(
    path: str | os.PathLike, channels: int, size: tuple[int, int], fit: str = "pad"
) -> tuple[np.ndarray, tuple[int, int]]:
    """The image in ``path`` as uint8 (channels, H, W) for ``size`` (H, W), and its own size
    (height, width). ``channels``: 1 makes it grayscale, 3 RGB; transparent pixels become black.
    ``fit``: ``pad`` scales it to fit inside (H, W), keeping its aspect ratio, and fills the
    rest with black; ``stretch`` scales each side to fit exactly. 16-bit images are scaled to 8
    bits (white stays white), float ones from [0, 1]; a photo is turned upright as its EXIF
    orientation says (as viewers show it). DataError if unreadable."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image = _on_black(ImageOps.exif_transpose(_eight_bit(image, path)))
            image = image.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    own = (image.height, image.width)
    array = np.asarray(_fitted(image, size, fit))
    return (array[None] if channels == 1 else array.transpose(2, 0, 1)), own


def _eight_bit(image, path: str | os.PathLike):
    """``image`` (a Pillow image) with 8-bit values: a 16-bit (or 32-bit integer) one divided
    by 257, a float one times 255; others as they are."""
    from PIL import Image

    white = WIDE_MODES.get(image.mode)
    if white is None:
        return image
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > white:
        raise DataError(
            f"{path}: a {image.mode} image with values from {low:g} to {high:g}: give 8- or "
            "16-bit images or floats in [0, 1] (or the images as arrays in an .npz, where "
            "floats are used as they are)"
        )
    return Image.fromarray(np.rint(values * (255 / white)).astype(np.uint8), "L")


def _on_black(image):
    """``image`` (a Pillow image) over black where it is transparent, as the padding is black:
    dropping the alpha channel would show whatever colour the transparent pixels were saved
    with (often white, around a cut-out object)."""
    from PIL import Image

    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return image
    image = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image)


def placement(own: tuple[int, int], size: tuple[int, int], fit: str) -> tuple[slice, slice]:
    """The rows and columns of an image fitted to ``size`` (H, W) that an image of ``own``
    size (H, W) fills: all of them for ``stretch``, a centred box for ``pad`` (the rest is
    black)."""
    height, width = size
    if fit == "stretch" or own == size:
        return slice(0, height), slice(0, width)
    scale = min(width / own[1], height / own[0])
    inner = (max(1, round(own[0] * scale)), max(1, round(own[1] * scale)))
    top, left = (height - inner[0]) // 2, (width - inner[1]) // 2
    return slice(top, top + inner[0]), slice(left, left + inner[1])


def _fitted(image, size: tuple[int, int], fit: str):
    """``image`` (a Pillow image) at ``size`` (H, W), as ``fit`` says."""
    from PIL import Image

    height, width = size
    if (image.height, image.width) == (height, width):
        return image
    if fit == "stretch":
        return image.resize((width, height), Image.Resampling.BILINEAR)
    rows, cols = placement((image.height, image.width), size, fit)
    inner = (cols.stop - cols.start, rows.stop - rows.start)
    canvas = Image.new(image.mode, (width, height))  # black
    canvas.paste(image.resize(inner, Image.Resampling.BILINEAR), (cols.start, rows.start))
    return canvas


def is_image(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES
