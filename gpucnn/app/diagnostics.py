"""Training diagnostics (``diagnostics.enabled=true``): what each layer does, per epoch.

Every ``diagnostics.every`` steps the step runs instrumented (profile.timed_step, layers in
declared order) and records, per layer:
- grad_norm_W / grad_norm_b: the L2 norm of the parameter's gradient for the batch (W: the
  weights, BatchNorm's gamma; b: the biases, ``bias_names``, BatchNorm's beta);
- update_ratio_W / update_ratio_b: ||parameter change|| / ||parameter before|| for the step;
- zero_fraction: after an activation, the fraction of exact zeros (ReLU sparsity);
- saturated_fraction: after a sigmoid, the fraction below 0.01 or above 0.99; after a tanh,
  beyond +-0.99 (where their gradients all but vanish);
- forward_ms / backward_ms: time in the layer's forward and backward passes.
Each value is the mean over the epoch's sampled steps; diagnostics.csv gets one row per layer
per epoch. Sampling keeps it cheap: other steps run as usual.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from .. import backend
from ..layers import Activation
from ..model import Hooks, Model
from .results import write_csv

COLUMNS = [
    "epoch",
    "layer_index",
    "layer",
    "kind",
    "grad_norm_W",
    "grad_norm_b",
    "update_ratio_W",
    "update_ratio_b",
    "zero_fraction",
    "saturated_fraction",
    "forward_ms",
    "backward_ms",
]


def saturated(name: str, y: Any) -> Any:
    """Boolean map of saturated units after activation ``name`` (None where it has none)."""
    xp = backend.get_array_module(y)
    if name == "sigmoid":
        return (y < 0.01) | (y > 0.99)
    if name == "tanh":
        return xp.abs(y) > 0.99
    return None


def _column(layer: Any, key: str) -> str:
    """The column a parameter's numbers go in: b for a bias, W for the rest."""
    return "b" if key in layer.bias_names else "W"


def _norm(a: Any) -> float:
    return float(backend.get_array_module(a).sqrt((a.astype("float64") ** 2).sum()))


class Diagnostics(Hooks):
    def __init__(self, model: Model, run_dir: Path, rows: list[dict] | None = None) -> None:
        self.model, self.path = model, Path(run_dir) / "diagnostics.csv"
        self.rows: list[dict[str, Any]] = list(rows or [])  # earlier epochs (from a checkpoint)
        self._reset()

    def _reset(self) -> None:
        self.samples = 0
        self.sums: dict[tuple[int, str], float] = defaultdict(float)
        self.counts: dict[tuple[int, str], int] = defaultdict(int)
        self.times: dict[str, float] = defaultdict(float)
        self._before: dict[str, Any] = {}

    def sample(self, step, x: Any, y: Any) -> tuple[Any, Any]:
        """Run one instrumented training step (``step``: a steps.Step) and record it."""
        self.samples += 1
        return step.instrumented(x, y, self.times, self)

    def _add(self, index: int, column: str, value: float) -> None:
        self.sums[index, column] += value
        self.counts[index, column] += 1

    # ----- hooks -------------------------------------------------------------------------
    def forward(self, index: int, layer: Any, y: Any) -> None:
        if isinstance(layer, Activation):
            self._add(index, "zero_fraction", float((y == 0).mean()))
            mask = saturated(layer.name, y)
            if mask is not None:
                self._add(index, "saturated_fraction", float(mask.mean()))

    def before_update(self, model: Model) -> None:
        for i, layer in enumerate(model.layers):
            for key, grad in layer.grads.items():
                self._add(i, f"grad_norm_{_column(layer, key)}", _norm(grad))
                self._before[f"{i}.{key}"] = layer.params[key].copy()

    def after_update(self, model: Model) -> None:
        for i, layer in enumerate(model.layers):
            for key, p in layer.params.items():
                before = self._before.pop(f"{i}.{key}")
                size = _norm(before)
                if size > 0:  # biases start at zero: no ratio for that step
                    self._add(i, f"update_ratio_{_column(layer, key)}", _norm(p - before) / size)

    # ----- per epoch ----------------------------------------------------------------------
    def end_epoch(self, epoch: int) -> None:
        """Average this epoch's samples into rows and rewrite diagnostics.csv."""
        if self.samples:
            for i, layer in enumerate(self.model.layers):
                kind = layer.name if isinstance(layer, Activation) else type(layer).__name__
                row: dict[str, Any] = {
                    "epoch": epoch + 1,
                    "layer_index": i,
                    "layer": repr(layer),
                    "kind": kind,
                }
                for column in COLUMNS[4:10]:
                    if self.counts.get((i, column)):
                        row[column] = self.sums[i, column] / self.counts[i, column]
                for direction in ("forward", "backward"):
                    seconds = self.times.get(f"{i:>2} {type(layer).__name__} {direction}")
                    if seconds is not None:
                        row[f"{direction}_ms"] = 1000 * seconds / self.samples
                if len(row) > 4:  # the output activation is fused into the loss: nothing
                    self.rows.append(row)
            write_csv(self.path, self.rows, COLUMNS)
        self._reset()
