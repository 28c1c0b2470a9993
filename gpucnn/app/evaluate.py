"""``python -m gpucnn.evaluate RUN_DIR [overrides...]``: what a trained run gets right and wrong.

    python -m gpucnn.evaluate outputs/runs/<time>                     # its own test split
    python -m gpucnn.evaluate outputs/runs/<time> data=fashion_mnist   # another data config
    python -m gpucnn.evaluate outputs/runs/<time> data.limit_test=500

Loads the run's resolved config (summary.json) and weights (model.npz; its last checkpoint's for a
run that did not finish), evaluates them on the test split that config prepares (the same seeded
split as in training, or a warning where the run's data changed since), and writes evaluation.json
(loss, accuracy, per-class precision / recall / F1, the confusion matrix, the calibration),
confusion.png (the labelled matrix), calibration.png (accuracy against confidence) and mistakes.png
(the misclassified test images the model was surest about, with true and predicted labels) into the
run directory (and prints the classes least recognised first, with what each is most often taken
for, and how far its confidence is from its accuracy), or, evaluated on other data, into
RUN_DIR/evaluations/<the data overrides>/ (--out DIR chooses), so that no evaluation replaces
another. Overrides are a data group (``data=NAME``: the images come from there, while the task, its
classes and the image size stay the run's), ``backend=NAME`` and dotted keys (``data.root=DIR``),
applied to the run's config in that order. A folder or .npz file of images the run did not train on
is evaluated whole (every image a test image, unless it has test/ or x_test; data.test_fraction=F
takes a share); the run's own images moved elsewhere are recognised and their test split evaluated.
A run trained on CuPy is evaluated on NumPy where no GPU is usable.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .. import backend, data
from ..calibration import calibration
from ..data import edges, sources
from ..errors import ConfigError, GpucnnError
from ..fileio import write_json
from ..losses import for_outputs
from ..train import evaluate_and_predict
from . import command_parser, reliability
from .config import (
    Config,
    build_model,
    check_overrides_read,
    register,
    unknown_override,
    validate_data,
    validate_where,
)
from .experiment import load_raw, load_splits
from .finished import RunError, finished_run
from .results import (
    counted,
    finite,
    flat,
    pyplot,
    save_figure,
    split_counts,
    write_into,
)
from .trainer import images_changed, images_record

log = logging.getLogger(__name__)

MISTAKES_SHOWN = 24
CLASSES_SHOWN = 10  # classes in the printed table, the least recognised


# What an evaluation may change (the rest is the trained run's): the data, where it runs.
CHANGEABLE = ("data.", "backend=", "backend.", "train.eval_batch_size=", "train.progress=")
# The data configs that read the user's own images: name -> (the key naming where, what it is)
SOURCES = {"folder": ("root", "folder"), "arrays": ("path", "file")}
# What the model was trained for: data=NAME changes where the images come from, not these.
TRAINED_FOR = ("task", "positive", "negative", "pad_to", "channels", "image_size", "fit",
               "classes")  # fmt: skip


def load_run(run_dir: Path, overrides: list[str]) -> tuple[DictConfig, dict[str, Any], Path]:
    """(the run's resolved config, checked against the schema, with ``overrides`` applied; its
    summary.json; the file of its weights: finished_run's)."""
    summary, weights = finished_run(run_dir)
    cfg = _saved_config(run_dir, summary["config"])
    trained_on = cfg.data.copy()
    groups = [o for o in overrides if o.startswith("data=")]
    if groups:
        source = _data_group(groups[-1].partition("=")[2])
        for key in TRAINED_FOR:
            source[key] = cfg.data[key]
        cfg.data = source
    for override in (o for o in overrides if not o.startswith("data=")):
        if override.startswith(("+", "~")):
            raise ConfigError(
                f"{override}: evaluation changes settings the run has, nothing is added or "
                f"removed: give {override.lstrip('+~')}"
            )
        unknown = unknown_override([override])
        if unknown:
            raise ConfigError(unknown)
        if not override.startswith(CHANGEABLE):
            raise ConfigError(
                f"{override}: evaluation keeps the run's model and training settings; give "
                "data=NAME, backend=NAME, data.KEY=VALUE, backend.KEY=VALUE or "
                "train.eval_batch_size=N"
            )
        if override.startswith("backend="):  # the group sets nothing but the name
            override = f"backend.name={override.partition('=')[2]}"
        try:  # one at a time, so that an error names the override at fault
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([override]))
        except (OmegaConfBaseException, ValueError) as exc:
            reason = str(exc).splitlines()[0]
            raise ConfigError(
                f"{override}: {reason}: give data=NAME, backend=NAME or the run's settings as "
                "dotted keys with values, e.g. data.root=DIR or data.limit_test=500"
            ) from None
    changed = [k for k in TRAINED_FOR if cfg.data[k] != trained_on[k]]
    if changed:
        raise ConfigError(
            f"data.{changed[0]}={cfg.data[changed[0]]}: the run's model was trained for "
            f"data.{changed[0]}={trained_on[changed[0]]}, which evaluation keeps (as it keeps "
            f"{', '.join(k for k in TRAINED_FOR if k != changed[0])}): leave it out"
        )
    with _the_runs_classes(cfg, summary, overrides):
        validate_data(cfg.data)
    validate_where(cfg.backend, cfg.train)
    check_overrides_read(cfg, overrides)
    return cfg, summary, weights


@contextmanager
def _the_runs_classes(cfg: DictConfig, summary: dict[str, Any], overrides: list[str]):
    """Errors about data.positive or data.negative on data other than the run's, said as what
    they are here: that data lacks the classes the binary run tells apart (their advice, to
    choose other classes or another task, is for training)."""
    try:
        yield
    except ConfigError as exc:
        if exc.argument not in ("data.positive", "data.negative") or not _other_data(overrides):
            raise
        d, trained = cfg.data, " from ".join(reversed(summary.get("classes") or []))
        names = sources.class_names(d.name) or load_raw(cfg, own_names_stand=True).classes
        raise RunError(
            f"the run tells {trained or 'its classes'} apart (data.positive="
            f"{list(d.positive)}, data.negative={list(d.negative)}), but data {d.name} has "
            f"other classes ({', '.join(f'{i}={name}' for i, name in enumerate(names))}): "
            "evaluate it on data with those classes"
        ) from None


def _saved_config(run_dir: Path, saved: dict[str, Any]) -> DictConfig:
    """A run's saved config on this version's schema. Keys the schema lacks (added with
    ``+key=value`` by a version that took them, though nothing read them, or by another
    version) are left out with a warning naming them."""
    schema = OmegaConf.structured(Config)
    known = _known_only(saved, OmegaConf.to_container(schema))
    kept = flat(known)
    dropped = [key for key in flat(saved) if key not in kept]
    if dropped:
        log.warning(
            "%s: the run's config holds %s, which this version does not read: left out",
            run_dir,
            ", ".join(dropped),
        )
    try:
        return OmegaConf.merge(schema, known)
    except (OmegaConfBaseException, ValueError) as exc:
        key = getattr(exc, "full_key", None)
        reason = (f"{key}: " if key else "") + str(exc).splitlines()[0]
        raise RunError(
            f"{run_dir / 'summary.json'}: {reason}: the run was saved by a version of gpucnn "
            "with other settings; use that version for it"
        ) from None


def _known_only(saved: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``saved`` without the keys that ``schema`` (a nested dict of the same form) lacks."""
    return {
        key: _known_only(value, schema[key])
        if isinstance(value, dict) and isinstance(schema[key], dict)
        else value
        for key, value in saved.items()
        if key in schema
    }


def _choose_test_split(cfg: DictConfig, summary: dict[str, Any], overrides: list[str]) -> None:
    """Evaluate a folder or file the run did not train on (data.root=DIR, data.path=FILE)
    whole, every image a test image (the run's data.limit_train and limit_test left out),
    unless it has a test split of its own (test/, x_test, a CSV's test twin), data.test_fraction
    is given or it holds the run's own images, moved or copied to another machine (the same
    images per class in each split, and the same training mean and standard deviation): then
    the run's test split, as where it trained."""
    trained_on = OmegaConf.create(summary["config"]["data"])
    where = _new_source(trained_on, cfg.data)
    if where is None or _given("data.test_fraction", overrides):
        return
    if trained_on.name == cfg.data.name and _the_runs_images(cfg, summary):
        log.info("%s holds the images the run trained on: evaluating its test split", where)
        return
    if cfg.data.name == "folder":
        own_split = "beside a train/ folder, test/ or val/ is the test split"
    elif data.csv_rows.is_csv(cfg.data.path):
        own_split = "a CSV named with train has its twin named with test evaluated"
    else:
        own_split = "a file with x_test and y_test has those evaluated"
    log.info(
        "%s is not the %s the run trained on: every image in it is a test image "
        "(data.test_fraction=F evaluates a share; %s)",
        where,
        SOURCES[cfg.data.name][1],
        own_split,
    )
    cfg.data.test_fraction = 1.0
    for key in ("limit_train", "limit_test"):  # the run's subsets of its own images, not these
        if not _given(f"data.{key}", overrides):
            cfg.data[key] = None


def _check_the_runs_data_is_there(cfg: DictConfig, overrides: list[str]) -> None:
    """ConfigError, saying what to give, where the run's own folder or .npz file is no longer
    where it trained (moved, or the run copied from another machine)."""
    d = cfg.data
    if _other_data(overrides):
        return
    if d.name == "folder" and not Path(d.root).is_dir():
        key, where, what = "data.root", d.root, "images are no longer in"
    elif d.name == "arrays" and not Path(d.path).is_file():
        key, where, what = "data.path", d.path, "arrays are no longer at"
    else:
        return
    raise ConfigError(
        f"the run's {what} {where} ({key}): if they moved, or the run was copied from another "
        f"machine, give {key}=WHERE_THEY_ARE: its test split is evaluated there"
    )


def _the_runs_images(cfg: DictConfig, summary: dict[str, Any]) -> bool:
    """Whether the data ``cfg`` prepares, split as the run's was, gives the splits the run
    recorded (runs of older versions recorded none: then not). Data too small to split so is
    not the run's."""
    norm, balance = summary.get("normalisation"), summary.get("balance")
    if not (norm and balance):
        return False
    said = logging.getLogger("gpucnn.data")
    level = said.level
    said.setLevel(logging.ERROR)  # its warnings are about splits that are not evaluated
    try:
        splits = load_splits(cfg, logged=False, own_names_stand=True)  # described when evaluated
    except GpucnnError:  # too few images to split as the run did, say (the run's could)
        return False
    finally:
        said.setLevel(level)
    return images_changed({"balance": balance, **norm}, images_record(splits)) is None


def _new_source(trained_on: DictConfig, evaluated: DictConfig) -> Path | None:
    """The folder or file of images ``evaluated`` reads, where it is not the one the run
    trained on; else (the run's own, or a named set) None."""
    if evaluated.name not in SOURCES:
        return None
    key = SOURCES[evaluated.name][0]
    where = Path(evaluated[key]).expanduser().resolve()
    if trained_on.name == evaluated.name and where == Path(trained_on[key]).expanduser().resolve():
        return None
    return where


def _given(key: str, overrides: list[str]) -> bool:
    return any(o.partition("=")[0] == key for o in overrides)


def output_dir(run_dir: Path, overrides: list[str]) -> Path:
    """Where an evaluation is written: the run directory for its own test split, else
    ``evaluations/<the data overrides>`` inside it (characters other than letters, digits and
    ``._=,-`` made ``_``)."""
    changes = [o for o in overrides if o.startswith(("data=", "data."))]
    if not changes:
        return run_dir
    return run_dir / "evaluations" / re.sub(r"[^\w.=,-]", "_", ",".join(changes))


def _data_group(name: str) -> DictConfig:
    """The ``data`` node that ``data=NAME`` gives in a run's config."""
    from hydra import compose, initialize_config_module
    from hydra.errors import MissingConfigException

    register()  # the schema that conf/config.yaml lists first
    with initialize_config_module("gpucnn.conf", version_base="1.3"):
        try:
            return compose(config_name="config", overrides=[f"data={name}"]).data
        except MissingConfigException as exc:
            known = ", ".join(exc.options or [])
            raise ConfigError(f"data={name}: no such data config; choose one of {known}") from None


def _other_data(overrides: list[str]) -> bool:
    """Whether the overrides evaluate on other data than the run's (data=NAME, data.KEY=...)."""
    return any(o.startswith(("data=", "data.")) for o in overrides)


def not_the_runs(summary: dict[str, Any], splits: data.Prepared, test_loss: float) -> str | None:
    """How the run's own data, prepared again, differs from what the run recorded: the images
    of each class in each split, or (the same counts) the test loss, beyond the rounding that
    another backend or evaluation batch size gives. None where it agrees (or an older or
    unfinished run recorded neither)."""
    recorded = summary.get("balance")
    if recorded and recorded != splits.balance:
        return (
            f"images per class now {split_counts(splits.balance)}, in the run "
            f"{split_counts(recorded)}"
        )
    run_loss = summary.get("test_loss")
    if finite(run_loss) and abs(test_loss - run_loss) > 1e-4 * max(1.0, abs(run_loss)):
        return f"the test loss is {test_loss:.6g}, in the run {run_loss:.6g}"
    return None


def evaluate_run(
    run_dir: Path, overrides: list[str] = (), out: Path | None = None
) -> dict[str, Any]:
    """Evaluate the run in ``run_dir`` and write its evaluation files into ``out`` (by default
    ``output_dir``); returns the record."""
    cfg, summary, weights = load_run(run_dir, list(overrides))
    out = output_dir(run_dir, list(overrides)) if out is None else out
    b = cfg.backend
    backend.use(_backend_name(b.name, overrides), b.dtype, cfg.train.seed, kernels=b.kernels)
    _check_the_runs_data_is_there(cfg, list(overrides))
    _choose_test_split(cfg, summary, list(overrides))
    norm = summary.get("normalisation")  # as in training, whichever images are evaluated
    with _the_runs_classes(cfg, summary, overrides):
        normalisation = (norm["mean"], norm["std"]) if norm else None
        splits = load_splits(cfg, normalisation, own_names_stand=True)
    splits = _in_the_runs_order(splits, summary.get("classes"), cfg.data.name)
    model = build_model(cfg.model, splits.input_shape, splits.n_outputs)
    model.load(weights)
    loss, test = for_outputs(splits.n_outputs, cfg.train.label_smoothing), splits.test
    per_channel = (-1, 1, 1)  # undo the normalisation: the images as the model saw them
    std, mean = np.reshape(splits.std, per_channel), np.reshape(splits.mean, per_channel)
    images = backend.to_host(test.x) * std + mean
    if summary.get("value_range"):  # runs of older versions lack it
        data.check_scale(images, summary["value_range"], f"the test images of data {cfg.data.name}")
        _warn_of_backgrounds(images, splits.image_shape, summary, cfg.data.name)
    test_loss, accuracy, probs = evaluate_and_predict(
        model, loss, test.x, test.y, cfg.train.eval_batch_size
    )
    changed = None if _other_data(overrides) else not_the_runs(summary, splits, test_loss)
    if changed:
        log.warning(
            "these are not the test images the run was tested on: %s. The data changed since "
            "it trained (images added, removed or replaced in its folder or files), or was "
            "split by another gpucnn version: images it trained on may be among them, so this "
            "is not the run's test accuracy",
            changed,
        )
    truth, guess = backend.to_host(test.y), probs.argmax(axis=1)
    classes = list(splits.classes)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (truth, guess), 1)
    calibrated = calibration(probs, truth)
    per_class = _per_class(confusion, classes)
    record = {
        "run": str(run_dir),
        "weights": weights.name,  # model.npz, or checkpoint.npz for a run that did not finish
        "overrides": list(overrides),
        "test_images": int(len(truth)),
        "test_loss": test_loss,
        "test_accuracy": accuracy,
        "classes": classes,
        "balanced_accuracy": balanced_accuracy(per_class),
        "per_class": per_class,
        "confusion": confusion.tolist(),  # rows: true class, columns: predicted
        "calibration": dataclasses.asdict(calibrated),
        "predicted": guess.tolist(),  # each test image's predicted label, in split order
        "not_the_runs_test_images": changed,  # why not, where the run's own data changed
    }
    write_json(out / "evaluation.json", record)
    _plot_confusion(out / "confusion.png", confusion, classes, accuracy)
    reliability.plot(out / "calibration.png", calibrated)
    drawn = summary.get("value_range") or (0.0, 1.0)  # the training images' range
    _plot_mistakes(out / "mistakes.png", images, truth, probs, classes, drawn)
    return record


def _warn_of_backgrounds(
    images: np.ndarray, image_shape: tuple[int, ...], summary: dict[str, Any], data_name: str
) -> None:
    """Warn where a tenth or more of the test ``images`` (N, C, H, W), padded as the model saw
    them, are light at their edges where the training images were dark, or the other way round
    (a few such images are in any set)."""
    trained = summary.get("dark_edges")  # runs of older versions lack it
    if edges.background(trained) is None:
        return
    pictures = data.unpadded(images, image_shape)  # the padding to data.pad_to is black
    shares = edges.dark_shares(pictures, summary["value_range"])
    unlike = int(edges.unlike_training(shares, trained).sum())
    if unlike and unlike >= len(images) / 10:
        log.warning(
            edges.warning(f"the test images of data {data_name}", unlike, len(images), trained)
        )


def _backend_name(trained_on: str, overrides: list[str]) -> str:
    """The run's backend, or NumPy where a run trained on CuPy is evaluated without a usable
    GPU and no backend was asked for."""
    asked = any(o.startswith(("backend=", "backend.name=")) for o in overrides)
    if trained_on != "cupy" or asked:
        return trained_on
    usable, why = backend.cupy_available()
    if usable:
        return trained_on
    log.info("the run trained on CuPy, which cannot run here (%s): evaluating on NumPy", why)
    return "numpy"


def _in_the_runs_order(
    splits: data.Prepared, trained: list[str] | None, data_name: str
) -> data.Prepared:
    """The evaluated splits with the run's class numbers. Classes that are the run's in another
    order (an .npz whose ``classes`` lists them otherwise) are renumbered by name; RunError for
    another number of classes; a warning for other names (labels are compared by number)."""
    these = list(splits.classes)
    if not trained or trained == these:
        return splits
    if len(trained) != len(these):
        raise RunError(
            f"the run was trained on {len(trained)} classes ({', '.join(trained)}) but "
            f"data {data_name} has {len(these)} ({', '.join(these)}): evaluate it on data "
            "with the same classes"
        )
    if sorted(trained) != sorted(these):
        log.warning(
            "the classes of data %s (%s) are not named as the run's (%s): labels are compared "
            "by number",
            data_name,
            ", ".join(these),
            ", ".join(trained),
        )
        return splits
    log.info(
        "the classes of data %s are the run's in another order (%s): labels matched by name",
        data_name,
        ", ".join(these),
    )
    runs_label = np.array([trained.index(name) for name in these])  # by this data's label
    y = runs_label[backend.to_host(splits.test.y)]
    balance = {}
    for split, counts in splits.balance.items():
        balance[split] = [0] * len(counts)
        for label, count in enumerate(counts):
            balance[split][runs_label[label]] = count
    return dataclasses.replace(
        splits,
        test=data.Split(splits.test.x, backend.to_device(y)),
        classes=tuple(trained),
        balance=balance,
    )


def _per_class(confusion: np.ndarray, classes: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall and F1 of each class (0 where a ratio has nothing to divide)."""
    out = {}
    for k, name in enumerate(classes):
        hits, predicted, actual = confusion[k, k], confusion[:, k].sum(), confusion[k].sum()
        precision = hits / predicted if predicted else 0.0
        recall = hits / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    return out


def balanced_accuracy(per_class: dict[str, dict[str, float]]) -> float:
    """The mean recall of the classes that have test images: the accuracy the test images
    would give were every class as many (the accuracy itself where they are)."""
    recalls = [c["recall"] for c in per_class.values() if c["support"]]
    return float(np.mean(recalls))


def accuracy_text(record: dict[str, Any]) -> str:
    """The first line's figures: the accuracy and loss on so many images, and, where the
    classes have unequal numbers of test images, the balanced accuracy."""
    text = (
        f"test accuracy {record['test_accuracy']:.4f}, loss {record['test_loss']:.4f} on "
        f"{record['test_images']:,} images"
    )
    supports = {c["support"] for c in record["per_class"].values() if c["support"]}
    if len(supports) > 1:
        text += f" (classes of unequal sizes: balanced accuracy {record['balanced_accuracy']:.4f})"
    return text


def per_class_text(record: dict[str, Any], shown: int = CLASSES_SHOWN) -> list[str]:
    """The classes recognised least often (at most ``shown``, lowest recall first), each with
    its images, recall, precision and the class it is most often taken for, then the three
    mistakes made most often: the evaluation's lines after its accuracy, from ``record``
    (evaluation.json's: ``classes``, ``per_class``, ``confusion``, true classes as rows)."""
    classes, confusion = record["classes"], np.asarray(record["confusion"])
    stats = record["per_class"]
    tested = [k for k, name in enumerate(classes) if stats[name]["support"]]
    worst = sorted(tested, key=lambda k: stats[classes[k]]["recall"])[:shown]
    which = (
        "the classes, least recognised first:"
        if len(worst) == len(tested)
        else f"the {counted(len(worst), 'class')} least recognised, of {len(tested)}:"
    )
    width = max(len("class"), *(len(classes[k]) for k in worst))
    head = f"  {'class':<{width}}  {'images':>7}  {'recall':>6}  {'precision':>9}"
    lines = [which, f"{head}  most often taken for"]
    off = confusion.astype(float)  # a copy, whose diagonal is cleared
    np.fill_diagonal(off, 0)
    for k in worst:
        name, s = classes[k], stats[classes[k]]
        j = int(np.argmax(off[k]))
        taken = f"{classes[j]} ({off[k, j] / s['support']:.1%})" if off[k, j] else "-"
        lines.append(
            f"  {name:<{width}}  {s['support']:>7,}  {s['recall']:>6.3f}  {s['precision']:>9.3f}"
            f"  {taken}"
        )
    order = np.argsort(off, axis=None, kind="stable")[::-1][:3]
    mistakes = [
        f"{classes[t]} as {classes[p]} ({int(off[t, p]):,})"
        for t, p in zip(*np.unravel_index(order, off.shape))
        if off[t, p]
    ]
    if mistakes:
        lines.append(f"most often mistaken: {', '.join(mistakes)}")
    return lines


def _plot_confusion(path: Path, confusion: np.ndarray, classes: list[str], acc: float) -> None:
    plt = pyplot()
    size = 2.5 + 0.6 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    shown = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(shown, ax=ax, label="test images")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for (i, j), n in np.ndenumerate(confusion):
        light = n > confusion.max() / 2
        ax.text(j, i, str(n), ha="center", va="center", color="white" if light else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(confusion_title(int(confusion.sum()), acc))
    fig.tight_layout()
    save_figure(fig, path)


def _plot_mistakes(
    path: Path,
    images: np.ndarray,
    truth: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    value_range: tuple[float, float] = (0.0, 1.0),
) -> None:
    """The misclassified ``images`` (N, C, H, W) the model was surest about, in a grid, each
    with its number in the test split (which ``visualize --test-image`` takes); colour images
    are drawn with ``value_range`` (min, max) as black to white."""
    guess = probs.argmax(axis=1)
    wrong = np.flatnonzero(guess != truth)
    worst = wrong[np.argsort(-probs[wrong, guess[wrong]], kind="stable")][:MISTAKES_SHOWN]
    plt = pyplot()
    cols = 6
    rows = max(1, -(-len(worst) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, worst):
        image = images[i].transpose(1, 2, 0)  # (H, W, C), as matplotlib draws images
        if image.shape[2] == 3:  # matplotlib draws floats in [0, 1]: floats used as they
            low, high = value_range  # were in training (0-255, say) are brought there
            ax.imshow(np.clip((image - low) / (high - low), 0, 1))
        else:  # grayscale (or the first channel of others)
            ax.imshow(image[..., 0], cmap="gray")
        ax.set_title(
            f"#{i} true {classes[truth[i]]}\npred {classes[guess[i]]} ({probs[i, guess[i]]:.2f})",
            fontsize=8,
        )
    fig.suptitle(mistakes_title(len(worst), len(wrong), len(truth)))
    fig.tight_layout()
    save_figure(fig, path)


def confusion_title(images: int, accuracy: float) -> str:
    """The title of confusion.png."""
    return f"Confusion matrix: {images:,} test images, accuracy {accuracy:.4f}"


def mistakes_title(shown: int, wrong: int, images: int) -> str:
    """The title of mistakes.png."""
    if not wrong:
        return f"No mistakes: every one of the {images:,} test images is classified right"
    if shown == wrong:
        return f"The {wrong:,} mistake{'s' * (wrong != 1)}, surest first"
    return f"The {shown} mistakes the model was surest about (of {wrong:,})"


class _WarningsMarked(logging.Formatter):
    """The message alone, and ``warning: `` before a warning, so that it stands out from the
    lines saying what is loaded."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"warning: {text}" if record.levelno >= logging.WARNING else text


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("evaluate", __doc__)
    parser.add_argument("run_dir", type=Path, help="a finished run's directory")
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],  # without one, argparse names it as missing too when run_dir is
        help="data=NAME, backend=NAME and dotted keys, e.g. data.root=DIR",
    )
    parser.add_argument("--out", type=Path, help="the folder to write into (default: see above)")
    args = parser.parse_args(argv)
    shown = logging.StreamHandler()
    shown.setFormatter(_WarningsMarked())
    logging.basicConfig(level=logging.INFO, handlers=[shown])
    out = args.out or output_dir(args.run_dir, args.overrides)
    record, failed = write_into(out, lambda: evaluate_run(args.run_dir, args.overrides, out))
    if failed:
        return failed
    print(f"{accuracy_text(record)}: {out / 'evaluation.json'}, confusion.png, mistakes.png")
    print("\n".join(per_class_text(record)))
    print(reliability.text(record["calibration"]))
    return 0
