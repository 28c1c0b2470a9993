"""Where a run's weights start: train.init_from, the weights another run trained (fine-tuning),
and train.freeze, the layers that keep them.

Every layer starts with that run's weights where the two tell the same classes apart; where the
classes differ, the output layer starts afresh (its weights are one column per class of the
other run) and the rest carries over. The model and its input must have that run's shapes: the
differing settings are named where they do not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .. import data
from ..errors import ConfigError
from ..layers import ParamLayer
from ..model import Model, saved_weights
from .finished import RunError, finished_run
from .results import first_of, flat

log = logging.getLogger(__name__)


@dataclass
class Source:
    """The run that train.init_from names: ``given`` as written, ``run_dir`` where it is, its
    summary.json and the file of its weights."""

    given: str
    run_dir: Path
    summary: dict[str, Any]
    weights: Path


def source(given: str, run_dir: Path) -> Source:
    """The run in the folder ``run_dir`` (train.init_from=``given``): ConfigError where it
    holds no trained run's weights (a sweep's folder: naming its best run)."""
    try:
        summary, weights = finished_run(run_dir)
    except RunError as exc:
        raise ConfigError(f"train.init_from={given}: {exc}") from None
    return Source(given, run_dir, summary, weights)


def start_from(model: Model, src: Source, cfg: DictConfig, splits: data.Prepared) -> dict[str, Any]:
    """Copy ``src``'s weights into ``model``, built by run config ``cfg`` for ``splits``: all of
    them, or all but the output layer's where the classes differ. ConfigError naming the first
    array that does not fit and the settings that differ. Returns the record for
    summary.json."""
    classes, input_shape = list(splits.classes), tuple(splits.input_shape)
    theirs, ours = saved_weights(src.weights), model.state_dict()
    output = _output_names(model)
    same_classes = list(src.summary.get("classes") or []) == classes
    fits = {n for n in ours if n in theirs and theirs[n].shape == ours[n].shape}
    fresh = [] if same_classes and set(output) <= fits else output
    misfit = sorted((ours.keys() - fits - set(fresh)) | (theirs.keys() - ours.keys()))
    if misfit:
        name = misfit[0]
        if name in ours and name in theirs:
            what = f"{name} is {tuple(theirs[name].shape)} there, {tuple(ours[name].shape)} here"
        else:
            what = f"{name} is {'there, not here' if name in theirs else 'here, not there'}"
        raise ConfigError(
            f"train.init_from={src.given}: that run's weights do not fit this model ({what}): "
            f"{_differences(src.summary, cfg, input_shape)}; give the model settings and image "
            "size of that run"
        )
    model.load_state_dict(
        {**ours, **{n: theirs[n] for n in ours if n not in fresh}},
        source=f"the weights in {src.weights}",
    )
    if fresh:
        log.info(
            "starting from the weights of %s, but for the output layer's, which start afresh: "
            "that run told apart %s, this one %s",
            src.run_dir,
            _classes(src.summary.get("classes") or []),
            _classes(classes),
        )
    else:
        log.info("starting from the weights of %s (the same classes)", src.run_dir)
    return {"run": str(src.run_dir), "weights": src.weights.name, "fresh": fresh}


def _output_names(model: Model) -> list[str]:
    """The names of the output layer's arrays (the last layer with weights), e.g. ["12.W",
    "12.b"]."""
    last = max(i for i, layer in enumerate(model.layers) if isinstance(layer, ParamLayer))
    return [f"{last}.{key}" for key in model.layers[last].params]


def _classes(names: list[str]) -> str:
    """``10 classes (T-shirt/top, Trouser, Pullover, Dress and 6 more)``."""
    return f"{len(names)} classes ({first_of(names, 4)})"


def _differences(summary: dict[str, Any], cfg: DictConfig, input_shape: tuple[int, ...]) -> str:
    """The model settings and input shape that differ between that run and this one, in
    words; or that none do."""
    there = flat({"model": summary["config"].get("model", {})})
    here = flat({"model": OmegaConf.to_container(cfg.model, resolve=True)})
    keys = sorted(k for k in there.keys() | here.keys() if there.get(k) != here.get(k))
    said = [f"{k}={there.get(k)} there, {here.get(k)} here" for k in keys]
    if list(summary.get("input_shape") or []) != list(input_shape):
        said.append(f"input {tuple(summary.get('input_shape') or ())} there, {input_shape} here")
    return "; ".join(said) or "no model setting differs"


def freeze(model: Model, cfg: DictConfig) -> None:
    """Keep the weights of the first train.freeze layers with parameters as they start (that
    run's, or random ones), saying which; ConfigError naming the setting for a count that
    leaves no layer to learn."""
    count = cfg.train.freeze
    if not count:
        return
    try:
        frozen = model.freeze(count)
    except ConfigError as exc:
        raise ConfigError(f"train.{exc}") from None
    log.info(
        "keeping the weights of the first %s as they start (train.freeze=%d): %s",
        f"{count} layers" if count > 1 else "layer",
        count,
        ", ".join(map(repr, frozen)),
    )
