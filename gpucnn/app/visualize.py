"""``python -m gpucnn.visualize RUN_DIR [IMAGE] [--test-image N | --class NAME]``: what a trained
run's layers learned, and what they make of one image.

    python -m gpucnn.visualize outputs/runs/<time>                   # its first test image
    python -m gpucnn.visualize outputs/runs/<time> --test-image 12
    python -m gpucnn.visualize outputs/runs/<time> --class Sneaker --smooth 50
    python -m gpucnn.visualize outputs/runs/<time> shirt.png          # or one image in a .npy
    python -m gpucnn.visualize outputs/multiruns/<time>               # a sweep: its runs' filters

Writes two figures into the run directory (--out DIR chooses):

filters.png: the weights of each Conv layer, a small square for each filter and input channel
(the first layer's filters of colour images in colour), red positive and blue negative on one
scale per layer; for a network without Conv layers, each unit of its first Dense layer drawn as
the image of the weights it gives each pixel.

feature_maps.png: one image on its way through the network: the input as the model takes it
(padded and normalised) and the gradient of the predicted class's score with respect to it (red
where a brighter pixel raises the score, blue where it lowers it; --smooth N: its mean over N
copies of the image with noise added, SmoothGrad, which keeps what the copies agree on and
averages away the speckle of a single gradient), then each layer's output: a
row of its channels (the first 16) where it keeps a map, a strip where it gives a vector, and
the class probabilities. The image is one of the run's test split (--test-image N, 0 by
default, or --class NAME: its first of that class) or an image file or .npy array of one image,
prepared as gpucnn.predict prepares them.

Given a sweep's folder, it writes filters.png there: the first layer's filters (the first 16)
of each of its runs, a row each, labelled with the settings that differ between them, so that
what 3x3 and 7x7 filters learn, say, is seen side by side. Runs that trained nothing are named
in a warning and left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from .. import backend
from ..errors import DataError, GpucnnError, did_you_mean
from ..layers import Activation, Conv, Dense, Dropout, Flatten, Layer
from ..model import Model
from . import command_parser
from .experiment import load_splits
from .finished import RunError
from .predict import load_model, prepare, read_all, unlike_training
from .results import counted, pyplot, run_dirs, save_figure, write_into
from .sweep import best_run

TILES = 16  # channels drawn per layer of feature_maps.png; filters or units per row of filters.png
FILTER_ROWS = 8  # filters drawn of a Conv layer with several input channels, one per row
UNITS = 32  # Dense units drawn as images, for a network without Conv layers
TILE_INCHES = 0.6  # the side of a filter's square in filters.png
DIVERGING = "RdBu_r"  # blue negative, white zero, red positive
GAP = "0.7"  # the grey between a mosaic's tiles
SAME_VALUES = (Dropout, Flatten)  # at evaluation their output is their input: no row of their own
log = logging.getLogger(__name__)


def visualize(
    run_dir: Path,
    out: Path,
    image: Path | None = None,
    test_image: int = 0,
    of_class: str | None = None,
    smooth: int = 0,
) -> dict[str, Any]:
    """Write filters.png and feature_maps.png (see above) into ``out`` for the run in
    ``run_dir``, of ``image``, or else of the first test image of the class ``of_class`` (a
    name or number), or else of the test image numbered ``test_image``, its gradient averaged
    over ``smooth`` noisy copies (smooth_gradient) if given; returns what was drawn: the
    image's ``name``, the predicted ``class`` and its ``probability``."""
    cfg, summary, model = load_model(run_dir)
    if image is None:
        x, name = _test_image(run_dir, cfg, summary, test_image, of_class)
    else:
        x, name = _own_image(image, cfg, summary)
    outputs = model.layer_outputs(x)
    probs = _probabilities(outputs[-1][0], model)
    out.mkdir(parents=True, exist_ok=True)
    plot_filters(out / "filters.png", model)
    label = int(probs.argmax())
    drawn = {"image": name, "class": summary["classes"][label], "probability": float(probs[label])}
    title = f"{name}: predicted {drawn['class']} ({drawn['probability']:.2f})"
    of = f"the {drawn['class']} score"
    if smooth:
        gradient = (
            f"{of}, mean of {smooth}\nnoisy copies",
            smooth_gradient(model, x, label, smooth),
        )
    else:
        gradient = (of, input_gradient(model, x, label))
    plot_feature_maps(
        out / "feature_maps.png", model, x[0], outputs, summary["classes"], title, gradient
    )
    return drawn


def input_gradient(model: Model, x: Any, label: int, mean: bool = False) -> np.ndarray:
    """x: (1, *input_shape) -> (*input_shape): the gradient of class ``label``'s score (its
    logit) with respect to each input value, the backward pass run for one image: where the
    image would have to change to raise the score most (a saliency map). A sigmoid's one
    logit scores the positive class; the negative class's score is minus it. ``mean``: x is
    (n, *input_shape), and the mean of its n images' gradients is returned."""
    logits = backend.to_host(model.forward(x, logits=True))
    wanted = np.zeros_like(logits)
    if wanted.shape[1] == 1:
        wanted[:, 0] = 1.0 if label == 1 else -1.0
    else:
        wanted[:, label] = 1.0
    dx = model.backward(backend.to_device(wanted), logits=True, evaluation=True)
    dx = np.asarray(backend.to_host(dx), dtype=np.float64)
    return dx.mean(axis=0) if mean else dx[0]


NOISE = 0.15  # SmoothGrad's noise: its standard deviation, a share of the image's value range


def smooth_gradient(model: Model, x: Any, label: int, copies: int, seed: int = 0) -> np.ndarray:
    """x: (1, *input_shape) -> (*input_shape): input_gradient's mean over ``copies`` copies of
    x, each with Gaussian noise of NOISE times x's value range added (SmoothGrad, Smilkov et
    al., 2017), drawn from ``seed``; the copies go through the network as one batch."""
    host = np.asarray(backend.to_host(x), dtype=np.float64)
    sigma = NOISE * float(host.max() - host.min())
    noise = np.random.default_rng(seed).normal(0.0, sigma, size=(copies, *host.shape[1:]))
    noisy = backend.to_device(host + noise, dtype=x.dtype)
    return input_gradient(model, noisy, label, mean=True)


def _test_image(
    run_dir: Path, cfg: DictConfig, summary: dict[str, Any], index: int, of_class: str | None
) -> tuple[Any, str]:
    """(test image ``index`` of the run's test split, or its first of the class ``of_class``,
    as the model takes it, (1, *input_shape); its name, with its class)."""
    norm = summary["normalisation"]
    try:
        test = load_splits(cfg, (norm["mean"], norm["std"]), logged=False).test
    except GpucnnError as exc:
        raise RunError(
            f"the run's test images cannot be loaded ({exc}): or draw an image of your own, "
            f"python -m gpucnn.visualize {run_dir} IMAGE"
        ) from None
    if of_class is not None:
        index = _first_of_class(of_class, summary["classes"], backend.to_host(test.y))
    if not 0 <= index < len(test.y):
        raise DataError(
            f"--test-image {index}: the run's test split has {len(test.y):,} images: give a "
            f"number from 0 to {len(test.y) - 1:,}"
        )
    true = summary["classes"][int(test.y[index])]
    return test.x[index : index + 1], f"test image {index} ({true})"


def _first_of_class(asked: str, classes: list[str], labels: np.ndarray) -> int:
    """The number of the first test image of the class ``asked``: one of ``classes`` by name
    (any case), else by number. DataError naming the classes for another."""
    names = {name.lower(): label for label, name in enumerate(classes)}
    label = names.get(asked.lower(), int(asked) if asked.isdigit() else None)
    if label is None or label >= len(classes):
        listed = ", ".join(f"{i}={name}" for i, name in enumerate(classes))
        raise DataError(
            f"--class {asked}: the run has no such class{did_you_mean(asked, classes)}: give "
            f"one of {listed}"
        )
    found = np.flatnonzero(labels == label)
    if not len(found):
        raise DataError(f"--class {asked}: the run's test split holds no image of it")
    return int(found[0])


def _own_image(path: Path, cfg: DictConfig, summary: dict[str, Any]) -> tuple[Any, str]:
    """(the image in ``path`` as the model takes it, (1, *input_shape); its name). A file of
    several images (a .npy stack) is refused, naming how to pick one."""
    if path.is_dir():
        raise DataError(f"{path}: a folder: give one image file, or a .npy array of one image")
    named = read_all([path], cfg, summary)
    if len(named) != 1:
        raise DataError(
            f"{path}: holds {len(named)} images: give one, e.g. np.save('one.npy', x[12])"
        )
    unlike_training(named, summary)  # warns where its background is unlike training's
    return prepare(named, cfg, summary), str(path)


def _is_sweep(folder: Path) -> bool:
    """Whether ``folder`` holds runs' folders (a sweep's) rather than being a run's own."""
    return run_dirs(folder) not in ([], [folder])


def _probabilities(output: Any, model: Model) -> np.ndarray:
    """The class probabilities of one image from the model's output (its head's): a sigmoid's
    one output is the positive class's, so the negative class's is 1 minus it."""
    output = np.asarray(output, dtype=np.float64)
    return np.array([1 - output[0], output[0]]) if model.head == "sigmoid" else output


def plot_filters(path: Path, model: Model) -> None:
    """filters.png: each Conv layer's weights (W: (O, I, k, k)) as squares; without Conv
    layers, the first Dense layer's units as images of the input."""
    sections = [(i, layer) for i, layer in enumerate(model.layers) if isinstance(layer, Conv)]
    if not sections:
        dense = next(i for i, layer in enumerate(model.layers) if isinstance(layer, Dense))
        sections = [(dense, model.layers[dense])]
    drawn = [_filter_tiles(i, layer, model) for i, layer in sections]
    heights = [tiles.shape[0] + 0.6 for _, tiles in drawn]
    width = max(tiles.shape[1] for _, tiles in drawn)
    fig, axes = pyplot().subplots(
        len(drawn),
        1,
        figsize=(TILE_INCHES * width + 2, TILE_INCHES * sum(heights)),
        height_ratios=heights,
        squeeze=False,
    )
    for ax, (title, tiles) in zip(axes[:, 0], drawn, strict=True):
        shown = _draw_weights(ax, tiles)
        if shown is not None:
            fig.colorbar(shown, ax=ax, shrink=0.8, label="weight")
        ax.set_title(title, fontsize=10)
    save_figure(fig, path)


def _draw_weights(ax: Any, tiles: np.ndarray) -> Any:
    """Draw ``tiles`` (rows, cols, h, w[, 3]) as one mosaic on ``ax``: colour as it is, else on
    a scale centred on zero; returns the image for a colour bar (None for colour)."""
    _bare(ax)
    if tiles.ndim == 5:
        ax.imshow(mosaic(tiles, blank=1.0))
        return None
    scale = float(np.nanmax(np.abs(tiles))) or 1.0
    return ax.imshow(mosaic(tiles), cmap=_gapped(DIVERGING), vmin=-scale, vmax=scale)


def _filter_tiles(index: int, layer: Layer, model: Model) -> tuple[str, np.ndarray]:
    """(a title, the weights as tiles: (rows, cols, h, w), or (rows, cols, h, w, 3) for
    colour) of a Conv layer, or of a Dense layer that takes the flattened input image."""
    W = np.asarray(layer.params["W"], dtype=np.float64)
    if isinstance(layer, Dense):  # W: (C*H*W, units): each unit's weights as an image
        C, H, Wd = model.input_shape
        shown = min(W.shape[1], UNITS)
        images = W[:, :shown].T.reshape(shown, C, H, Wd)
        title = f"layer {index} Dense: the weights of {_first(shown, W.shape[1], 'unit')}"
        return title, _rows(_as_tiles(images), TILES)
    O, I, k, _ = W.shape
    what = f"layer {index} Conv: {O} filters of {k}x{k}"
    if I == 1:
        return f"{what}", _rows(W[:, 0], TILES)
    if I == 3 and layer is next(lay for lay in model.layers if isinstance(lay, Conv)):
        return f"{what} over the colour channels", _rows(_as_tiles(W), TILES)
    rows, cols = min(O, FILTER_ROWS), min(I, TILES)
    title = (
        f"{what} over {I} channels: {_first(rows, O, 'filter')} (rows), "
        f"{_first(cols, I, 'input channel')} (columns)"
    )
    return title, W[:rows, :cols]


def _as_tiles(images: np.ndarray) -> np.ndarray:
    """images: (N, C, h, w) -> (N, h, w, 3), each stretched to [0, 1] on its own, for C = 3;
    else the first channel of each, (N, h, w)."""
    if images.shape[1] != 3:
        return images[:, 0]
    rgb = images.transpose(0, 2, 3, 1)
    low = rgb.min(axis=(1, 2, 3), keepdims=True)
    span = np.maximum(rgb.max(axis=(1, 2, 3), keepdims=True) - low, 1e-12)
    return (rgb - low) / span


def _rows(tiles: np.ndarray, per_row: int) -> np.ndarray:
    """tiles: (N, ...) -> (rows, per_row or fewer, ...), the last row filled with NaN
    (drawn blank)."""
    cols = min(len(tiles), per_row)
    rows = -(-len(tiles) // cols)
    blank = np.full((rows * cols - len(tiles), *tiles.shape[1:]), np.nan)
    return np.concatenate([tiles, blank]).reshape(rows, cols, *tiles.shape[1:])


def mosaic(tiles: np.ndarray, blank: float = np.nan) -> np.ndarray:
    """tiles: (rows, cols, h, w[, 3]) -> one image (rows * (h + gap) - gap, cols * (w + gap)
    - gap[, 3]) with ``blank`` (NaN: drawn grey) in the gaps between them, so that a grid
    of them is drawn at once."""
    rows, cols, h, w = tiles.shape[:4]
    gap = max(1, h // 8)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, *tiles.shape[4:]), blank)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tiles[r, c]
    return out


def plot_feature_maps(
    path: Path,
    model: Model,
    x: Any,
    outputs: list[Any],
    classes: list[str],
    title: str,
    gradient: tuple[str, np.ndarray],
) -> None:
    """feature_maps.png: x: (*input_shape), the image as the model takes it, and ``gradient``
    (what it is the gradient of, input_gradient's), then one row per layer of ``outputs``
    (Model.layer_outputs', each (1, *shape)) but those that change no value; the head's
    output as the class probabilities."""
    of, values = gradient
    rows = [("input", np.asarray(x, dtype=np.float64)), (f"gradient of\n{of}", values)]
    for i, (layer, y) in enumerate(zip(model.layers, outputs, strict=True)):
        if not isinstance(layer, SAME_VALUES):
            rows.append((f"{i} {_kind(layer)}", np.asarray(y[0], dtype=np.float64)))
    height = 1.1 * len(rows) + 0.6
    fig, axes = pyplot().subplots(len(rows), 1, figsize=(15, height), squeeze=False)
    fig.subplots_adjust(top=1 - 0.6 / height)
    for r, (ax, (name, values)) in enumerate(zip(axes[:, 0], rows, strict=True)):
        label = f"{name}\n{tuple(values.shape)}"
        if model.head and r == len(rows) - 1:
            probs = _probabilities(values, model)
            ax.bar(range(len(probs)), probs, color="tab:blue")
            ax.set_xticks(range(len(probs)), classes, rotation=30, ha="right", fontsize=7)
            ax.set_ylim(0, 1)
            label = f"{name}\nprobability"
        elif values.ndim == 3:  # (C, h, w): the first channels side by side, on one scale
            low, high = _value_scale(values[:TILES])
            cmap = "gray" if r == 0 else _cmap(values[:TILES])
            ax.imshow(mosaic(values[None, :TILES]), cmap=_gapped(cmap), vmin=low, vmax=high)
            if len(values) > TILES:
                label += f"\n(first {TILES} of {len(values)})"
            _bare(ax)
        else:  # a vector, as a strip
            low, high = _value_scale(values)
            ax.imshow(values[None], aspect="auto", cmap=_cmap(values), vmin=low, vmax=high)
            _bare(ax)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, y=1 - 0.2 / height)
    save_figure(fig, path)


def _gapped(name: str) -> Any:
    """The colour map ``name``, with the gaps of a mosaic (NaN) in grey: white is a value."""
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=GAP)


def _bare(ax: Any) -> None:
    """No ticks: an image's pixel numbers say nothing here."""
    ax.set_xticks([])
    ax.set_yticks([])


def _cmap(values: np.ndarray) -> str:
    """Signed values diverge from zero (blue negative, red positive); others run dark to light."""
    return DIVERGING if values.min() < 0 < values.max() else "viridis"


def _value_scale(values: np.ndarray) -> tuple[float, float]:
    """(low, high) to draw ``values`` with: symmetric about zero where they have both signs."""
    low, high = float(values.min()), float(values.max())
    if low < 0 < high:
        return -max(-low, high), max(-low, high)
    return (low, high) if high > low else (low - 1, high + 1)


def _kind(layer: Layer) -> str:
    """A layer's short name: its type, and which for an activation."""
    return f"{layer.name}" if isinstance(layer, Activation) else type(layer).__name__


def _first(shown: int, total: int, what: str) -> str:
    """``the 16 filters``, or ``the first 8 of 32 filters``."""
    if shown == total:
        return f"the {total} {what}{'s' * (total != 1)}"
    return f"the first {shown} of {total} {what}s"


def visualize_sweep(sweep_dir: Path, out: Path) -> int:
    """Write filters.png into ``out``: the first layer's filters of each run in the sweep
    folder ``sweep_dir``, a row each; returns how many runs it drew."""
    runs, left_out = [], []
    for run_dir in run_dirs(sweep_dir):
        try:
            _, summary, model = load_model(run_dir)
        except GpucnnError as exc:
            left_out.append(f"{run_dir.name} ({exc})")
            continue
        runs.append((run_dir, summary, model))
    if left_out:
        log.warning("left out, without weights to draw: %s", "; ".join(left_out))
    if not runs:
        raise RunError(f"no run in {sweep_dir} has weights to draw")
    shared = set.intersection(*(set(summary.get("overrides", [])) for _, summary, _ in runs))
    rows = []
    for run_dir, summary, model in runs:
        differs = [o for o in summary.get("overrides", []) if o not in shared]
        layer = next(layer for layer in model.layers if isinstance(layer, (Conv, Dense)))
        tiles = _filter_tiles(0, layer, model)[1][:1]  # the first row: up to TILES filters
        kind = f"Conv {layer.k}x{layer.k}" if isinstance(layer, Conv) else "Dense units"
        label = f"{run_dir.name}: {', '.join(differs) or 'the shared settings'}\n{kind}"
        rows.append((label, tiles))
    out.mkdir(parents=True, exist_ok=True)
    plot_filter_rows(out / "filters.png", rows, sweep_dir.name)
    return len(rows)


def plot_filter_rows(path: Path, rows: list[tuple[str, np.ndarray]], sweep: str) -> None:
    """filters.png of a sweep: each run's first-layer filters, ``rows`` of (label, tiles: (1,
    n, h, w[, 3])), each row on its own colour scale (a 7x7 filter's weights start smaller than
    a 3x3's)."""
    width = max(tiles.shape[1] for _, tiles in rows)
    fig, axes = pyplot().subplots(
        len(rows), 1, figsize=(TILE_INCHES * width + 4, 0.9 * len(rows) + 0.8), squeeze=False
    )
    for ax, (label, tiles) in zip(axes[:, 0], rows, strict=True):
        _draw_weights(ax, tiles)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(
        f"sweep {sweep}: the first layer's filters of each run (up to {TILES}), each row on a "
        "scale of its own"
    )
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("visualize", __doc__)
    parser.add_argument("run_dir", type=Path, help="a trained run's directory")
    parser.add_argument(
        "image", nargs="?", type=Path, help="an image file or a .npy array of one image"
    )
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument(
        "--test-image", type=int, metavar="N", help="the run's test image N (default 0)"
    )
    chosen.add_argument(
        "--class", dest="of_class", metavar="NAME", help="the run's first test image of a class"
    )
    parser.add_argument("--out", type=Path, help="the folder to write into (default: the run's)")
    parser.add_argument(
        "--smooth",
        type=int,
        default=0,
        metavar="N",
        help="average the input gradient over N noisy copies of the image (SmoothGrad; 50 is "
        "typical)",
    )
    args = parser.parse_args(argv)
    if args.smooth < 0:
        parser.error(f"--smooth {args.smooth}: give a number of copies, 1 or more (0: none)")
    if args.image is not None and (args.test_image is not None or args.of_class is not None):
        parser.error("give an IMAGE or a test image (--test-image N, --class NAME), not both")
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    out = args.out or args.run_dir
    if _is_sweep(args.run_dir):
        if args.image or args.test_image is not None or args.of_class is not None or args.smooth:
            best = best_run(args.run_dir)
            parser.error(
                f"{args.run_dir} is a sweep's folder, whose runs' filters are drawn: for an "
                "image's feature maps give one run's folder" + (f", e.g. {best}" if best else "")
            )
        drawn, failed = write_into(out, lambda: visualize_sweep(args.run_dir, out))
        if not failed:
            print(f"{out / 'filters.png'}: the first layer's filters of {counted(drawn, 'run')}")
        return failed
    drawn, failed = write_into(
        out,
        lambda: visualize(
            args.run_dir, out, args.image, args.test_image or 0, args.of_class, args.smooth
        ),
    )
    if failed:
        return failed
    print(
        f"{out / 'filters.png'}, feature_maps.png: {drawn['image']}, predicted "
        f"{drawn['class']} ({drawn['probability']:.2f})"
    )
    return 0
