"""gpucnn: a convolutional network library written on array code, for NumPy (CPU) or CuPy (GPU).

from gpucnn import Model, Conv, MaxPool, Dense, Activation, Flatten, Dropout
from gpucnn import BatchNorm, AvgPool, GlobalAvgPool
"""

from . import backend, gradcheck, presets
from .errors import BackendError, ConfigError, GpucnnError, InputError, LabelError, ShapeError
from .layers import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    MaxPool,
)
from .losses import BinaryCrossEntropy, CrossEntropy
from .model import Model
from .optimizers import SGD, Adam, AdamW, Momentum

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Adam",
    "AdamW",
    "AvgPool",
    "BackendError",
    "BatchNorm",
    "BinaryCrossEntropy",
    "ConfigError",
    "Conv",
    "CrossEntropy",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "GpucnnError",
    "InputError",
    "LabelError",
    "Layer",
    "MaxPool",
    "Model",
    "Momentum",
    "SGD",
    "ShapeError",
    "backend",
    "gradcheck",
    "presets",
]
