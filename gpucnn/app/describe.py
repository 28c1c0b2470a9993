"""``python -m gpucnn.describe``: the model a run would train and what it costs, without training.

Takes the overrides of ``python -m gpucnn.run`` (with ``-m``, each combination of a sweep's)
and prints the model layer by layer (each layer's output shape, weights, biases and
multiply-adds per image), the least memory a training step holds at ``train.batch_size``, and
the multiply-adds of an epoch. It reads the data only for its image size and classes, and
writes nothing (with ``-m``, Hydra keeps its record of the sweep in outputs/describe/). An
architecture that cannot work is refused as the run would refuse it.
"""

from __future__ import annotations

import logging
import textwrap

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from .. import backend, memory
from ..model import Model, learns
from ..optimizers import OPTIMIZERS
from . import cores, pretrained
from .config import build_model, check_overrides_read, register, validate
from .experiment import StepMemory, load_splits, step_memory
from .run import CONF_DIR, fail

log = logging.getLogger("gpucnn.describe")

register()


def describe(cfg: DictConfig, overrides: list[str]) -> str:
    """The text that describes the run ``cfg`` sets up: the model's table, then its costs."""
    validate(cfg)
    check_overrides_read(cfg, overrides)
    c, t = cfg.backend, cfg.train
    backend.use(c.name, c.dtype, t.seed, kernels=c.kernels, tf32=c.tf32)
    splits = load_splits(cfg, logged=False)
    model = build_model(cfg.model, splits.input_shape, splits.n_outputs)
    pretrained.freeze(model, cfg)
    threads = cores.job_threads(t.threads)
    macs = model.count_multiply_adds() * len(splits.train)
    costs = [
        *_learning_line(model, t.freeze),
        memory_line(step_memory(model, cfg, threads), cfg.optimizer.name),
        f"an epoch: {len(splits.train):,} training images, {_giga(macs)} multiply-adds forward "
        "(a training step takes about three times a forward pass)",
    ]
    return "\n".join([model.summary(), *(textwrap.fill(line, 100) for line in costs)])


def _learning_line(model: Model, freeze: int) -> list[str]:
    """With train.freeze, the weights that learn and where, in words; else nothing."""
    if not freeze:
        return []
    learning = [layer for layer in model.layers if learns(layer)]
    weights = model.count_params(learning=True)
    return [
        f"train.freeze={freeze}: {weights:,} of the {model.count_params():,} weights learn, in "
        f"{', '.join(map(repr, learning))}; the layers before keep theirs"
    ]


def memory_line(need: StepMemory, optimizer: str) -> str:
    """The least memory of a training step, in words: the activations (and the largest of
    their parts), then the weights, their gradients and the optimiser's slots."""
    name, largest = max(need.parts, key=lambda part: part[1])
    slots = len(OPTIMIZERS[optimizer].SLOTS)
    held = f" and {optimizer}'s {slots} slot{'s' * (slots != 1)}" if slots else ""
    at = f"{need.key}: {need.images:,} images at once"
    return (
        f"a training step holds at least {memory.size(sum(b for _, b in need.parts))} of "
        f"activations ({at}; the largest part: {name}, {memory.size(largest)}) and "
        f"{memory.size(2 * need.weights + need.state)} for the weights, their gradients{held}"
    )


def _giga(n: int) -> str:
    """A count of billions as people write it: 4.6 G, 0.42 G."""
    return f"{n / 1e9:.2g} G"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="describe")
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    try:
        text = describe(cfg, list(hc.overrides.task))
    except Exception as exc:
        fail(exc, log, hc.mode == RunMode.MULTIRUN)
        return
    print(text)
