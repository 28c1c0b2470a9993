"""Model: a stack of layers you ``add()`` to, as in the lab.

    model = Model()
    model.add(Conv(filter_size=3, input_channel=1, output_channel=8, pad=1, stride=1))
    model.add(Activation("relu"))
    ...
    model.build((1, 32, 32))   # checks every shape now; also done on first use
    print(model.summary())

A model ending in ``Activation("sigmoid")`` or ``Activation("softmax")`` returns probabilities from
``forward`` / ``predict``; training goes through the logits (``forward(x, logits=True)``) so that
the loss can fuse that activation stably.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import backend, kernels
from .errors import ConfigError, InputError, ShapeError, check_count, is_count
from .fileio import atomic_write
from .layers import Activation, BatchNorm, Conv, Dropout, Layer, MaxPool, ParamLayer, Shape

HEADS = ("sigmoid", "softmax")
CHECKPOINT_PARAMS = "param/"  # where a run's checkpoint.npz keeps the state_dict's arrays
CHECKPOINT_BEST = "best/"  # and, with train.patience, the best epoch's, which the run keeps


class Hooks:
    """What a pass lets an observer see and time; the defaults do nothing.

    ``run(name, fn, *args)`` calls each piece of a training step (a layer's forward or
    backward, the loss, the update), named "<index> <layer type> forward|backward", so a
    profiler can time it; ``forward(index, layer, y)`` sees each layer's output;
    ``before_update`` / ``after_update`` see the model around the optimiser's update.
    """

    def run(self, name: str, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def forward(self, index: int, layer: Layer, y: Any) -> None:
        """After layer ``index`` computed y in the forward pass."""

    def before_update(self, model: Model) -> None:
        """Gradients are ready; parameters not yet updated."""

    def after_update(self, model: Model) -> None:
        """Parameters updated."""


NO_HOOKS = Hooks()


class _Outputs(Hooks):
    """Keeps each layer's output of a forward pass, in order."""

    def __init__(self) -> None:
        self.outputs: list[Any] = []

    def forward(self, index: int, layer: Layer, y: Any) -> None:
        self.outputs.append(y)


class Model:
    def __init__(self, layers: list[Layer] | None = None) -> None:
        self.layers: list[Layer] = []
        self.input_shape: Shape | None = None
        self.shapes: list[Shape] = []  # output shape of each layer, per sample
        self._to_logits: bool | None = None  # whether the last forward stopped at the logits
        self._out: tuple[int, ...] | None = None  # the shape of the last forward's output
        self._training: bool | None = None  # whether the last forward ran in training mode
        if isinstance(layers, Layer):
            raise ConfigError(f"Model takes a list of layers: Model([{layers!r}, ...])")
        for layer in layers or []:
            self.add(layer)

    # ----- construction -------------------------------------------------------------------
    def add(self, layer: Layer) -> Model:
        """Append a layer. A sigmoid or tanh right after a layer with ``init="auto"`` switches
        that layer to Glorot initialisation (He stays for ReLU)."""
        if isinstance(layer, type) and issubclass(layer, Layer):
            name = layer.__name__
            raise ConfigError(f"Model.add expects a layer, got the class {name}: add {name}(...)")
        if not isinstance(layer, Layer):
            raise ConfigError(f"Model.add expects a layer (Conv, Dense, ...), got {layer!r}")
        # A layer keeps its input for backward: one object in two places would hand the
        # first place the second's input, and its gradients would be wrong without a word.
        earlier = next((i for i, mine in enumerate(self.layers) if mine is layer), None)
        if earlier is not None:
            raise ConfigError(
                f"{layer!r} is already layer {earlier} of this model: each place needs a layer "
                f"object of its own (it keeps its input for backward): add {layer!r} anew"
            )
        prev = self.layers[-1] if self.layers else None
        if (
            isinstance(layer, Activation)
            and layer.name in ("sigmoid", "tanh")
            and isinstance(prev, ParamLayer)
            and prev.init == "auto"
        ):
            prev.reset_parameters("glorot")
        self.layers.append(layer)
        self.input_shape = None
        return self

    def build(self, input_shape: Shape) -> Model:
        """Infer and check every layer's output shape for per-sample ``input_shape``, e.g.
        (1, 32, 32). Raises ShapeError naming the layer, its index and the shapes."""
        if not self.layers:
            raise ConfigError("the model has no layers: add some with model.add(...)")
        shape = sample_shape(input_shape)
        shapes = []
        for i, layer in enumerate(self.layers):
            _check_grads(i, layer)
            try:
                shape = layer.output_shape(shape)
            except ShapeError as exc:
                raise ShapeError(f"layer {i} {layer!r}, input shape {shape}: {exc}") from None
            shapes.append(shape)
        for i, layer in enumerate(self.layers[:-1]):
            if isinstance(layer, Activation) and layer.name == "softmax":
                raise ShapeError(f"layer {i} {layer!r}: softmax is only allowed as the last layer")
        self.input_shape, self.shapes = sample_shape(input_shape), shapes
        return self

    def min_training_batch(self) -> tuple[int, str]:
        """The smallest batch the model trains on, and the layer that needs it ("" for 1)."""
        self._require_built()
        need, who = 1, ""
        for i, (layer, shape) in enumerate(zip(self.layers, [self.input_shape, *self.shapes])):
            n = layer.min_training_batch(shape)
            if n > need:
                need, who = n, f"layer {i} {layer!r}"
        return need, who

    def activation_bytes(
        self,
        batch: int,
        training: bool = True,
        gathered: Callable[[int, int, int], bool] | None = None,
    ) -> list[tuple[str, int]]:
        """(part, bytes) of what one pass over ``batch`` samples needs at least: every layer's
        output and every Conv's im2col columns (kept for the backward pass), and when
        ``training`` the gradient of the largest columns, made in the backward pass.
        ``gathered(rows, C*K*K, output_channel)``: whether the pass gathers a Conv's columns
        inside its matrix products instead of writing them out (a kernel set's
        ``implicit_conv``); those columns are not counted."""
        self._require_built()
        item = np.dtype(backend.dtype()).itemsize
        parts = []
        for i, (layer, shape) in enumerate(zip(self.layers, self.shapes, strict=True)):
            parts.append((f"layer {i} {layer!r}'s output", batch * math.prod(shape) * item))
            if isinstance(layer, Conv):  # shape: (output_channel, OH, OW)
                rows, ckk = batch * math.prod(shape[1:]), layer.k**2 * layer.c_in
                if gathered is None or not gathered(rows, ckk, layer.c_out):
                    parts.append((f"layer {i} {layer!r}'s im2col columns", rows * ckk * item))
        columns = [(name, b) for name, b in parts if name.endswith("columns")]
        if training and columns:
            name, b = max(columns, key=lambda part: part[1])
            parts.append((name.replace("columns", "columns' gradient"), b))
        return parts

    @property
    def output_shape(self) -> Shape:
        self._require_built()
        return self.shapes[-1]

    @property
    def head(self) -> str:
        """The output activation (``sigmoid`` or ``softmax``) or "" if the model ends in logits."""
        last = self.layers[-1] if self.layers else None
        return last.name if isinstance(last, Activation) and last.name in HEADS else ""

    def runs(self, logits: bool = False, fuse: bool = True) -> list[tuple[int, Layer, bool]]:
        """(index, layer, fused) for each layer a pass runs, in declared order; with ``logits``
        the output activation (sigmoid / softmax), if any, is left out.

        Where the active kernel set asks for it (the fast set) and ``fuse`` allows it, a ReLU
        directly followed by a max pool is fused into the pool: the pair runs as one call,
        ``MaxPool.forward(x, relu=True)`` (``fused``), computing relu(maxpool(x)), which equals
        maxpool(relu(x)), on the smaller map; the ReLU layer itself is skipped.
        """
        layers = self.layers[:-1] if logits and self.head else self.layers
        fuse = fuse and kernels.active().FUSES_RELU_INTO_POOL
        out = []
        for i, layer in enumerate(layers):
            if out and out[-1][2] and out[-1][0] == i:
                continue  # the pool this ReLU was fused into was already taken
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            relu = isinstance(layer, Activation) and layer.name == "relu"
            if fuse and relu and isinstance(nxt, MaxPool):
                out.append((i + 1, nxt, True))
            else:
                out.append((i, layer, False))
        return out

    def _require_built(self) -> None:
        if self.input_shape is None:
            raise ConfigError("the model is not built: call model.build(input_shape) first")

    # ----- passes -------------------------------------------------------------------------
    def forward(
        self,
        x: Any,
        training: bool = False,
        logits: bool = False,
        hooks: Hooks = NO_HOOKS,
        fuse: bool = True,
    ) -> Any:
        """x: (N, *input_shape) -> outputs (N, *output_shape). With ``logits=True`` the output
        activation (sigmoid / softmax), if any, is skipped. ``hooks`` observe each layer;
        ``fuse=False`` runs every layer on its own (see runs). Inputs of another floating-point
        dtype than the weights are cast to theirs: x / 255.0 of uint8 pixels is float64, and
        would run every layer of a float32 model in float64, twice as slow."""
        self.check_batch(x)
        dtype = next((p.dtype for _, p, _ in self.parameters()), x.dtype)
        x = x if x.dtype == dtype else x.astype(dtype)
        self._to_logits, self._training = logits, training
        for i, layer, fused in self.runs(logits, fuse):
            args = (x, training, True) if fused else (x, training)  # (x, training[, relu])
            x = hooks.run(f"{_piece(i, layer, fused)} forward", layer.forward, *args)
            if tuple(x.shape[1:]) != self.shapes[i]:  # a layer of one's own, its shape unsaid
                raise ShapeError(
                    f"layer {i} {layer!r} gave outputs {tuple(x.shape[1:])} per sample, but its "
                    f"output_shape says {self.shapes[i]}, which build checked the layers after "
                    f"it with: give {type(layer).__name__} an output_shape(shape) that returns "
                    "the shape its forward gives"
                )
            hooks.forward(i, layer, x)
        self._out = tuple(x.shape)
        return x

    def layer_outputs(self, x: Any) -> list[Any]:
        """What the network computes on the way: x: (N, *input_shape) -> one array per layer,
        (N, *shapes[i]), its output in evaluation mode (the feature maps of a Conv, say). Every
        layer runs on its own (nothing fused), so each output is the layer's own."""
        seen = _Outputs()
        self.forward(x, hooks=seen, fuse=False)
        return seen.outputs

    def check_batch(self, x: Any, batch_size: int = 1) -> None:
        """ShapeError, with the fix, unless x is a batch (N, *input_shape), N > 0; InputError
        unless it is an array of floating-point numbers; ConfigError unless ``batch_size`` (of
        the slices x is taken in) is a positive integer. A model not built yet is built for x's
        samples (its first use)."""
        check_count(batch_size, "batch_size", "a positive integer", least=1)
        _check_input_type(x)
        if x.ndim == 0:
            raise ShapeError(f"got one number, {x}, not a batch (N, *input_shape) of inputs")
        if len(x) == 0:
            raise ShapeError(f"got an empty batch {tuple(x.shape)}: pass one sample or more")
        if self.input_shape is None:
            self.build(x.shape[1:])
        if tuple(x.shape) == self.input_shape:  # one image, no batch axis
            raise ShapeError(
                f"got one input {tuple(x.shape)} without its batch axis: pass x[None], "
                f"a batch of one {(1, *x.shape)}"
            )
        if tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"the model was built for inputs {self.input_shape} but got a batch "
                f"{tuple(x.shape)}: {_input_fix(self.input_shape, tuple(x.shape))}"
            )

    def backward(
        self,
        dy: Any,
        logits: bool = False,
        input_grad: bool = True,
        hooks: Hooks = NO_HOOKS,
        fuse: bool = True,
        *,
        evaluation: bool = False,
    ) -> Any:
        """Backpropagate dy (the gradient of the loss w.r.t. the output, or w.r.t. the logits
        when ``logits=True``) through the layers the forward pass ran (same ``fuse``); fills
        each layer's ``grads``; returns dx.

        With ``input_grad=False`` (training) the gradient w.r.t. the input is not computed:
        the first parameter layer fills its grads only (nothing before it needs a gradient),
        and None is returned. After a forward pass in evaluation mode, a model with Dropout or
        BatchNorm takes ``evaluation=True`` (gradcheck): training would want training mode.
        """
        if not evaluation and self._training is False and self._trains_otherwise():
            raise ConfigError(
                "the last forward pass ran in evaluation mode (training=False: Dropout passes "
                "everything, BatchNorm uses its running statistics), and these gradients would "
                "train another network: call model.forward(x, training=True, logits=True) "
                "before backward (evaluation=True takes evaluation-mode gradients on purpose)"
            )
        if self.head and self._to_logits is not None and logits != self._to_logits:
            raise ConfigError(
                f"the last forward pass stopped at the logits, before the output {self.head} "
                "(logits=True): call model.backward(dy, logits=True), dy the loss's gradient "
                "with respect to the logits"
                if self._to_logits
                else f"the last forward pass ran the output {self.head} (logits=False): call "
                "model.backward(dy) with dy the loss's gradient with respect to the outputs, or "
                "run forward with logits=True"
            )
        got = tuple(getattr(dy, "shape", ()))
        if self._out is not None and got != self._out:
            raise ShapeError(
                f"backward takes dy shaped as the last forward pass's output, {self._out}, got "
                f"{got}"
                + (": the loss's gradient, loss.backward(), not the loss" if not got else "")
            )
        runs = self.runs(logits, fuse)
        # Below the first layer that learns, no gradient is needed (frozen layers, the input's)
        first = next((k for k, run in enumerate(runs) if learns(run[1])), 0)
        for k in reversed(range(len(runs))):
            i, layer, fused = runs[k]
            name = f"{_piece(i, layer, fused)} backward"
            if k == first and not input_grad:
                learn = layer.param_grads if isinstance(layer, ParamLayer) else layer.backward
                hooks.run(name, learn, dy)
                return None
            dy = hooks.run(name, layer.backward, dy)
        return dy if input_grad else None

    def _trains_otherwise(self) -> bool:
        """Whether a training pass computes another function than evaluation does."""
        return any(
            isinstance(layer, BatchNorm) or (isinstance(layer, Dropout) and layer.rate > 0)
            for layer in self.layers
        )

    def predict(self, x: Any, batch_size: int = 1024) -> Any:
        """Outputs in evaluation mode (no dropout), in batches to bound memory."""
        xp = backend.get_array_module(x)
        self.check_batch(x, batch_size)
        outs = [self.forward(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return xp.concatenate(outs)

    # ----- parameters ---------------------------------------------------------------------
    def parameters(self) -> Iterator[tuple[str, Any, Any]]:
        """(name, param, grad) for every parameter, named ``"<layer index>.<key>"``, e.g. "0.W"."""
        for i, layer in enumerate(self.layers):
            for key, p in layer.params.items():
                yield f"{i}.{key}", p, layer.grads[key]

    def trainable_parameters(self) -> Iterator[tuple[str, Any, Any]]:
        """parameters() of the layers that learn: all but the frozen ones (freeze), what an
        optimiser updates."""
        for i, layer in enumerate(self.layers):
            if layer.trainable:
                for key, p in layer.params.items():
                    yield f"{i}.{key}", p, layer.grads[key]

    def freeze(self, count: int) -> list[Layer]:
        """Keep the weights of the first ``count`` layers with parameters (from the input) as
        they are while the rest learns, as fine-tuning a trained model's last layers does; 0
        unfreezes all. Returns the frozen layers; ConfigError unless a layer with parameters is
        left to learn."""
        learning = [layer for layer in self.layers if layer.params]
        if not (is_count(count, 0) and count < len(learning)):
            raise ConfigError(
                f"freeze takes a count of layers with parameters from 0 to {len(learning) - 1} "
                f"(this model has {len(learning)}: {', '.join(map(repr, learning))}), got "
                f"{count!r}: one must be left to learn"
            )
        for k, layer in enumerate(learning):
            layer.trainable = k >= count
        return learning[:count]

    def buffers(self) -> Iterator[tuple[str, Any]]:
        """(name, array) for every buffer (saved, not learned), e.g. "1.running_mean"."""
        for i, layer in enumerate(self.layers):
            for key, b in layer.buffers.items():
                yield f"{i}.{key}", b

    def count_params(self, bias: bool = False, learning: bool = False) -> int:
        """Learnable parameters: weights only (as the lab counts), or with biases; with
        ``learning``, only those of the layers that learn (not frozen: Model.freeze)."""
        layers = [layer for layer in self.layers if learns(layer)] if learning else self.layers
        return sum(sum(param_counts(layer)) if bias else param_counts(layer)[0] for layer in layers)

    def count_multiply_adds(self) -> int:
        """Multiply-adds of one image's forward pass (Layer.multiply_adds): the arithmetic cost
        of the architecture, whatever the hardware; training costs about three times as much."""
        self._require_built()
        return sum(layer.multiply_adds(shape) for layer, shape in zip(self.layers, self.shapes))

    def summary(self) -> str:
        """A table: each layer, its output shape, weights, biases and multiply-adds per image,
        and the totals."""
        self._require_built()
        rows = [("#", "layer", "output shape", "weights", "biases", "multiply-adds")]
        rows.append(("", "Input", str(self.input_shape), "", "", ""))
        for i, (layer, shape) in enumerate(zip(self.layers, self.shapes, strict=False)):
            counts = [f"{n:,}" if layer.params else "" for n in param_counts(layer)]
            macs = layer.multiply_adds(shape)
            rows.append((str(i), repr(layer), str(shape), *counts, f"{macs:,}" if macs else ""))
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        align = ["<", "<", "<", ">", ">", ">"]
        fmt = "  ".join(f"{{:{a}{w}}}" for a, w in zip(align, widths, strict=False))
        lines = [fmt.format(*r).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        weights, total = self.count_params(bias=False), self.count_params(bias=True)
        footer = (
            f"weights: {weights:,}   biases: {total - weights:,}   total: {total:,}   "
            f"multiply-adds per image: {self.count_multiply_adds():,}"
        )
        buffered = sum(b.size for _, b in self.buffers())
        if buffered:
            footer += f"   (and {buffered:,} buffered statistics, not learned)"
        lines += ["-" * len(lines[0]), footer]
        return "\n".join(lines)

    # ----- weights on disk ----------------------------------------------------------------
    def _arrays(self) -> dict[str, Any]:
        """Every parameter and buffer, by name: what is saved."""
        return {**{name: p for name, p, _ in self.parameters()}, **dict(self.buffers())}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Host copies of every parameter and buffer, by name."""
        return {name: backend.to_host(a).copy() for name, a in self._arrays().items()}

    def load_state_dict(self, state: dict[str, np.ndarray], source: str = "the weights") -> None:
        """Copy ``state`` into the parameters and buffers in place, after checking it
        (check_state_dict)."""
        self.check_state_dict(state, source)
        for name, p in self._arrays().items():
            p[...] = backend.to_device(state[name], dtype=p.dtype)

    def check_state_dict(self, state: dict[str, np.ndarray], source: str = "the weights") -> None:
        """ConfigError naming ``source`` unless ``state`` has this model's names and shapes,
        and every value is a finite floating-point number."""
        own = self._arrays()
        missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
        if missing or unexpected:
            raise ConfigError(
                f"{source} do not match this model: missing {missing or 'none'}, "
                f"unexpected {unexpected or 'none'}"
            )
        for name, p in own.items():
            if tuple(state[name].shape) != tuple(p.shape):
                raise ConfigError(
                    f"{source}: {name} has shape {tuple(state[name].shape)} but the model's "
                    f"is {tuple(p.shape)}"
                )
            value = np.asarray(backend.to_host(state[name]))
            if value.dtype.kind != "f":
                raise ConfigError(f"{source}: {name} holds {value.dtype} values, not floats")
            if not np.isfinite(value).all():
                raise ConfigError(f"{source}: {name} holds NaN or infinite values")

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights to an .npz file atomically."""
        state = self.state_dict()
        atomic_write(path, lambda f: np.savez(f, **state))

    def load(self, path: str | os.PathLike) -> None:
        """Load the weights in ``path`` (saved_weights); rejects unreadable files, mismatched
        names or shapes, and values that are not finite floats."""
        self.load_state_dict(saved_weights(path), source=f"the weights in {path}")


def sample_shape(value: Any) -> Shape:
    """``value`` as one sample's shape, a tuple of counts: (C, H, W) or (features,). ShapeError
    saying what to give for anything else (a number, a batch's shape, a string)."""
    items = None if isinstance(value, str) else _items(value)
    if items is None or not all(is_count(d, 1) for d in items):
        raise ShapeError(
            f"input_shape {value!r} is not a shape: give one sample's (channels, height, width) "
            "or (features,), positive counts without the batch axis: (1, 28, 28) or (784,)"
        )
    shape = tuple(int(d) for d in items)
    if not 1 <= len(shape) <= 3:
        fix = f": build({shape[1:]})" if len(shape) > 3 else ""
        raise ShapeError(
            f"input_shape {shape} has {len(shape)} axes: it is one sample's shape, (C, H, W) "
            f"or (features,), without the batch axis{fix}"
        )
    return shape


def _items(value: Any) -> list[Any] | None:
    """The items of a sequence (a tuple, a list, an array); None for anything else."""
    try:
        return list(value)
    except TypeError:
        return None


def saved_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The state_dict in a file written by ``Model.save``, or in a run's checkpoint.npz (the
    weights the run keeps: its best epoch's with train.patience, CHECKPOINT_BEST, else its
    last, CHECKPOINT_PARAMS); ConfigError naming a file that is unreadable."""
    state = _read_npz(path)
    weights = {}
    if "meta" in state:  # a checkpoint's record
        weights = checkpoint_weights(state, CHECKPOINT_BEST) or checkpoint_weights(state)
    return weights or state


def checkpoint_weights(arrays: dict[str, Any], prefix: str = CHECKPOINT_PARAMS) -> dict[str, Any]:
    """A state_dict in a run checkpoint's arrays: those under ``prefix``, unprefixed."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def _read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an .npz file; ConfigError naming the file and what it is instead."""
    path = Path(path)
    if path.is_dir():
        inside = path / "model.npz"
        fix = f": pass {inside}" if inside.is_file() else ""
        raise ConfigError(f"cannot read weights from {path}: it is a folder{fix}")
    try:
        with open(path, "rb") as f:
            is_npz = zipfile.is_zipfile(f)
            f.seek(0)
            if is_npz:
                with np.load(f, allow_pickle=False) as npz:
                    return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"cannot read weights from {path}: {exc}{_near(path)}") from None
    raise ConfigError(
        f"cannot read weights from {path}: it is not an .npz file, or it is cut short "
        "(model.save writes one; a run's is its model.npz)"
    )


def _near(path: Path) -> str:
    """For a file that is not there, the one with or without ".npz" that is: np.savez adds
    the suffix, model.save writes the name as given."""
    other = path.with_suffix("") if path.suffix == ".npz" else path.with_name(path.name + ".npz")
    if path.exists() or not other.is_file():
        return ""
    return f" (did you mean {other}? model.save writes the name as given, np.savez adds .npz)"


def param_counts(layer: Layer) -> tuple[int, int]:
    """(weights, biases) of a layer: the sizes of its parameters, biases (``bias_names``) apart."""
    biases = sum(p.size for key, p in layer.params.items() if key in layer.bias_names)
    return sum(p.size for p in layer.params.values()) - biases, biases


def learns(layer: Layer) -> bool:
    """Whether training changes ``layer``'s parameters: it has some, and is not frozen."""
    return bool(layer.params) and layer.trainable


def _piece(index: int, layer: Layer, fused: bool) -> str:
    """A layer's name in a profile: "<index> <type>", "+relu" when a ReLU was fused into it."""
    return f"{index:>2} {type(layer).__name__}{'+relu' if fused else ''}"


def _check_grads(index: int, layer: Layer) -> None:
    """Each parameter needs a gradient array of its shape for backward to fill (a layer of
    one's own that leaves one out would fail in the middle of its first step)."""
    for key, p in layer.params.items():
        g = layer.grads.get(key)
        if g is None or tuple(g.shape) != tuple(p.shape):
            had = "none" if g is None else f"one of shape {tuple(g.shape)}"
            raise ConfigError(
                f"layer {index} {layer!r}: params[{key!r}] {tuple(p.shape)} has {had} in grads: "
                f"give it a gradient array of its shape in __init__, "
                f"self.grads[{key!r}] = xp.zeros_like(self.params[{key!r}])"
            )


def _check_input_type(x: Any) -> None:
    """InputError unless x is an array of floats: the layers would compute on integer pixels
    as they are, 0 to 255, and on a list not at all."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise InputError(
            f"the model takes an array (N, C, H, W) or (N, features), got a {type(x).__name__}: "
            "pass np.asarray(x, dtype=np.float32)"
        )
    if x.dtype.kind != "f":
        scale = " / 255 if they are pixel values 0-255 (as data.prepare scales images)"
        raise InputError(
            f"the model takes floating-point inputs, got a batch of {x.dtype}: pass "
            f"x.astype(np.float32){scale if x.dtype.kind in 'ui' else ''}"
        )


def _input_fix(expected: Shape, batch: tuple[int, ...]) -> str:
    """How to turn a batch of another shape into the (N, *expected) the model was built for."""
    shape = batch[1:]
    if len(expected) == 3 and shape == (*expected[1:], expected[0]):
        return "it looks channels-last (N, H, W, C): pass x.transpose(0, 3, 1, 2), (N, C, H, W)"
    if len(expected) == 3 and expected[0] == 1 and shape == expected[1:]:
        return "it has no channel axis: pass x[:, None], (N, 1, H, W)"
    if len(expected) == 1 and len(shape) > 1 and math.prod(shape) == expected[0]:
        return "pass x.reshape(len(x), -1), one row per image"
    return f"pass batches (N, {', '.join(map(str, expected))}), or build a model for {shape}"
