"""Image sets (IDX files, downloads, the embedded subset), tasks and device-resident batches."""

from .batches import Batches, epoch_order
from .prepare import Prepared, Split, describe, prepare, preprocess
from .sources import NAMES, RawData, load

__all__ = [
    "NAMES",
    "Batches",
    "Prepared",
    "RawData",
    "Split",
    "describe",
    "epoch_order",
    "load",
    "prepare",
    "preprocess",
]
