"""Image sets (IDX files, downloads, the embedded subset, image folders, .npz arrays, CSV rows),
tasks and device-resident batches."""

from . import arrays, csv_rows, folder
from .arrays import from_arrays
from .batches import Batches, epoch_order
from .images import read_image
from .prepare import (
    Prepared,
    Split,
    check_scale,
    describe,
    gaps,
    prepare,
    preprocess,
    scaled,
    unpadded,
)
from .raw import RawData
from .sources import NAMES, load

__all__ = [
    "NAMES",
    "Batches",
    "Prepared",
    "RawData",
    "Split",
    "arrays",
    "check_scale",
    "csv_rows",
    "describe",
    "epoch_order",
    "folder",
    "from_arrays",
    "gaps",
    "load",
    "prepare",
    "preprocess",
    "read_image",
    "scaled",
    "unpadded",
]
