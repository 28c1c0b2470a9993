"""The library's exceptions: each message names what is wrong and how to fix it."""

import difflib
from collections.abc import Sequence
from numbers import Integral, Real
from string import digits
from typing import Any

import numpy as np


class GpucnnError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(GpucnnError, ValueError):
    """A setting or an architecture that cannot work, found before any training starts.

    ``argument`` names the argument at fault, when there is one: the message starts with it
    ("lr must be > 0"), and the experiment app puts its config group in front ("optimizer.lr").
    """

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class ShapeError(ConfigError):
    """A layer that does not fit the shape flowing into it (names the layer and the shapes)."""


class InputError(GpucnnError, TypeError):
    """A batch the model cannot take as it is: not an array, or integer pixels (0-255) that
    were never scaled. Says how to convert it."""


class BackendError(GpucnnError, RuntimeError):
    """The array library asked for is not usable here (says what is missing and how to get it)."""


class DataError(GpucnnError):
    """A data file that is missing, corrupt, or does not match its partner (names the file)."""


class LabelError(GpucnnError, ValueError):
    """Labels that do not fit the loss or the model's outputs: their shape, type or values
    (one-hot rows for class indices, 1 to 10 for 10 outputs)."""


class NotEnoughMemory(GpucnnError, MemoryError):
    """Something would need more memory than is available, found before allocating it.

    ``argument``, when given, names the setting that makes it big, as for ConfigError.
    """

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (Python's or NumPy's, not a bool)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def as_float(value: Real) -> float:
    """A number setting as Python's float; a NumPy float32 as the decimal it prints as
    (np.float32(0.1) is 0.1, not 0.10000000149011612, in the layer's repr and summaries)."""
    return float(str(value)) if isinstance(value, np.floating) else float(value)


def is_count(value: Any, least: int) -> bool:
    """Whether ``value`` is an integer (Python's or NumPy's, not a bool) of at least ``least``."""
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= least


def check_count(value: Any, name: str, wanted: str, least: int) -> None:
    """ConfigError "``name`` must be ``wanted``, got ..." unless ``value`` is an integer (not a
    bool) of at least ``least``: a count of images, threads or steps."""
    if not is_count(value, least):
        raise ConfigError(f"{name} must be {wanted}, got {value!r}", name)


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'Shirt'?)`` for the choice ``word`` was likely meant as (another case,
    a close spelling: shirt, fashion-mnist), else "". Not for another number: float16 is not
    a misspelt float64."""
    by_case = [c for c in choices if c.lower() == word.lower()]
    close = by_case or [
        c
        for c in difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
        if c.rstrip(digits) != word.rstrip(digits)
    ]
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(value: Any, choices: Sequence[str], name: str) -> None:
    """ConfigError "model.activation='ReLU' is unknown (did you mean 'relu'?): choose relu,
    sigmoid or tanh" unless ``value`` is one of ``choices``."""
    if value not in choices:
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        listed = f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]
        raise ConfigError(f"{name}={value!r} is unknown{hint}: choose {listed}", name)
