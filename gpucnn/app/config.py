"""Config schemas (registered in Hydra's ConfigStore) and the objects built from a config.

The schemas make OmegaConf reject a misspelt key or a wrong type while the config is composed;
``validate`` then rejects impossible values, each with one line naming the key, before any data
is loaded. ``build_model`` / ``build_optimizer`` turn a config into library objects.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import DictConfig, ListConfig, OmegaConf

from .. import initializers, presets
from ..data import folder, sources
from ..data.prepare import check_task, task_classes
from ..errors import ConfigError, NotEnoughMemory, check_choice, is_count
from ..model import Model
from ..optimizers import OPTIMIZERS, Optimizer
from ..schedules import ON_VALIDATION, Schedule
from . import loggers
from .results import flat

DATA_NAMES = (*sources.NAMES, "folder", "arrays")


@dataclass
class ModelConfig:
    """A general CNN (conv blocks, then dense layers) or an MLP (``kind: mlp``)."""

    name: str = "cnn"
    kind: str = "cnn"
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    filter_size: Any = 3  # one int for every conv layer, or a list with one per layer
    pool_size: Any = 2  # int or list; 0 or 1 means no pooling in that block
    pool_stride: Any = None  # null = pool_size
    pool: str = "max"  # each block's pooling: max (MaxPool) or avg (AvgPool)
    stride: Any = 1  # of each Conv: int or list
    padding: Any = "same"  # same, valid, an int, or a list of these
    activation: str = "relu"
    hidden: list[int] = field(default_factory=lambda: [64])
    hidden_activation: Optional[str] = None  # of the dense layers; null: the same as activation
    dropout: float = 0.0
    batch_norm: bool = False  # a BatchNorm between every Conv / hidden Dense and its activation
    global_pool: bool = False  # each channel's mean (GlobalAvgPool) instead of Flatten
    init: str = "auto"  # of the weights: he, glorot, or auto (He before ReLU, else Glorot)


@dataclass
class DataConfig:
    name: str = "fashion_mnist_mini"
    # the directory with the IDX files (only there when given); folder: the image folder
    root: Optional[str] = None
    download: bool = True
    url: Optional[str] = None  # a mirror instead of the official address
    task: str = "binary"  # binary or multiclass
    # binary: the classes labelled 1 and 0, by number or by name ([Shirt] is [6])
    positive: list[Any] = field(default_factory=lambda: [6])  # Shirt
    negative: list[Any] = field(default_factory=lambda: [0])  # T-shirt/top
    pad_to: Optional[int] = 32
    val_fraction: float = 0.1
    # training images augmented anew each epoch: mirrored left to right at random (flip), moved
    # by up to shift pixels each way (edge pixels fill in); validation and test images never
    flip: bool = False
    shift: int = 0
    # each epoch's training images drawn with every class as likely (with replacement), for
    # classes of unequal sizes; false: each image once per epoch
    balanced: bool = False
    limit_train: Optional[int] = None  # a subset of exactly N, each class in proportion
    limit_test: Optional[int] = None  # likewise
    # arrays: the .npz file (gpucnn/data/arrays.py), or a .csv of rows (gpucnn/data/csv_rows.py)
    path: Optional[str] = None
    # arrays: the names of the classes numbered 0 .. K-1, for a file that does not name them
    classes: Optional[list[str]] = None
    # folder (gpucnn/data/folder.py): images made grayscale (1) or RGB (3), fitted to a square
    # of image_size (pad: keep the aspect ratio, stretch: fill it)
    channels: int = 1
    image_size: int = 32
    fit: str = "pad"
    # folder without train/ and test/ folders, arrays without x_test: test_fraction of each
    # class is held out for testing, drawn with split_seed
    test_fraction: float = 0.2
    split_seed: int = 0


@dataclass
class OptimizerConfig:
    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # momentum only
    nesterov: bool = False  # momentum only
    beta1: float = 0.9  # adam and adamw only
    beta2: float = 0.999  # adam and adamw only
    eps: float = 1e-8  # adam and adamw only
    clip_norm: Optional[float] = None  # scale the gradients down to this L2 norm (null: never)
    # the learning rate over the epochs (gpucnn/schedules.py): constant; step (times decay every
    # decay_every epochs); cosine (falling from lr towards min_lr over train.epochs); plateau
    # (times decay after decay_every epochs in a row without a lower validation loss, to min_lr)
    schedule: str = "constant"
    decay: float = 0.1  # step and plateau only
    decay_every: int = 10  # step and plateau only
    min_lr: float = 0.0  # cosine and plateau only


@dataclass
class BackendConfig:
    name: str = "auto"  # auto, numpy or cupy
    dtype: str = "float32"
    # fast: the fast kernel set (and on CuPy the GPU's static step, replayed as CUDA graphs);
    # reference: the readable kernels (gpucnn/kernels/reference.py), layer by layer
    kernels: str = "fast"
    # CuPy: the GPU kernel set's cuBLAS products on tensor cores in TF32, as PyTorch's cuDNN
    # convolutions by default (inputs rounded to a 10-bit mantissa); false: full float32
    tf32: bool = False


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    seed: int = 0
    repeats: int = 1  # with --multirun: every combination with seeds seed .. seed + repeats - 1
    drop_last: bool = False
    eval_batch_size: int = 1024
    progress: bool = True  # a progress bar on a terminal; plain log lines otherwise
    threads: Optional[int] = None  # CPU threads of the job (null: its share; app/cores.py)
    micro_batch: int = 32  # NumPy, a CNN: images per micro-batch of a step (0: whole batches)
    save_model: bool = True
    # train towards targets moved this share of the way from one-hot to uniform over the
    # classes (0: none; torch's CrossEntropyLoss label_smoothing); the losses reported are these
    label_smoothing: float = 0.0
    # stop after this many epochs without a lower validation loss, and keep the weights of the
    # epoch that had the lowest (null: train every epoch, keep the last weights)
    patience: Optional[int] = None
    checkpoint_every_steps: Optional[int] = (
        None  # also checkpoint every N steps (null: epochs only)
    )
    resume: bool = False  # continue the same run found under outputs/ (or in hydra.run.dir)
    # a run (or sweep) directory to continue from instead, anywhere: an attempt at this run, or
    # the same settings for fewer epochs (trained on); anything else is refused
    resume_from: Optional[str] = None
    # a trained run's folder whose weights this run starts from instead of random ones (the
    # output layer's afresh where its classes differ); the model and image size must be its
    init_from: Optional[str] = None
    # keep the weights of the first N layers with parameters (Conv, Dense, BatchNorm, from the
    # input) as they start, training only the rest: with init_from, that run's features
    freeze: int = 0


@dataclass
class DiagnosticsConfig:
    enabled: bool = False  # per-layer gradient norms, update ratios, sparsity, saturation, times
    every: int = 10  # sample one step in this many (the others run as usual)


@dataclass
class LoggerConfig:
    """Where metrics go besides metrics.csv, which is always written (gpucnn/app/loggers.py)."""

    tensorboard: bool = False  # event files in <run dir>/tensorboard
    mlflow: bool = False  # one MLflow run per job
    tracking_uri: Optional[str] = None  # MLflow store (null: sqlite outputs/mlflow/mlflow.db)
    experiment: str = "gpucnn"  # the MLflow experiment the runs go into


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


@dataclass
class BenchSettings:
    batch_sizes: list[int] = field(default_factory=lambda: [128, 1024])
    epochs: int = 3  # timed epochs; the reported time is their median
    warmup_epochs: int = 1  # run first, not timed
    max_batches: Optional[int] = None  # cap batches per epoch (quick checks)
    peer: bool = True  # also train the PyTorch twin, when torch imports
    peer_compile: bool = False  # also time torch.compile(mode="reduce-overhead") (GPU only)
    profile: bool = False  # print where one training step spends its time
    profile_steps: int = 20


@dataclass
class BenchConfig(Config):
    bench: BenchSettings = field(default_factory=BenchSettings)


@dataclass
class LrFindSettings:
    min_lr: float = 1e-6  # the first step's rate
    max_lr: float = 10.0  # the last step's, if the loss has not risen by then
    steps: int = 100
    stop_factor: float = 4.0  # stop once the smoothed loss is this many times its lowest


@dataclass
class LrFindConfig(Config):
    lr_find: LrFindSettings = field(default_factory=LrFindSettings)


# Each command's schema, and the command.
COMMAND_OF = {Config: "run", BenchConfig: "bench", LrFindConfig: "lr_find"}


_CONV_KEYS = (
    "channels",
    "pool",
    "filter_size",
    "stride",
    "pool_size",
    "pool_stride",
    "padding",
    "hidden_activation",
    "global_pool",
)
_FOLDER_KEYS = ("channels", "image_size", "fit")
#: Keys that only some choices read: key -> (the key that chooses, the choices that read it). An
#: override of one for another choice would change nothing (optimizer=sgd optimizer.momentum=0.9
#: would train without momentum, and a sweep over it would repeat one run).
READ_ONLY_WITH = {
    **{f"model.{k}": ("model.kind", ("cnn",)) for k in _CONV_KEYS},
    "train.micro_batch": ("model.kind", ("cnn",)),  # an MLP trains on whole batches
    "optimizer.momentum": ("optimizer.name", ("momentum",)),
    "optimizer.nesterov": ("optimizer.name", ("momentum",)),
    **{f"optimizer.{k}": ("optimizer.name", ("adam", "adamw")) for k in ("beta1", "beta2", "eps")},
    "optimizer.decay": ("optimizer.schedule", ("step", "plateau")),
    "optimizer.decay_every": ("optimizer.schedule", ("step", "plateau")),
    "optimizer.min_lr": ("optimizer.schedule", ("cosine", "plateau")),
    "data.positive": ("data.task", ("binary",)),
    "data.negative": ("data.task", ("binary",)),
    "data.root": ("data.name", ("fashion_mnist", "mnist", "folder")),
    "data.download": ("data.name", ("fashion_mnist", "mnist")),
    "data.url": ("data.name", ("fashion_mnist", "mnist")),
    "data.path": ("data.name", ("arrays",)),
    "data.classes": ("data.name", ("arrays",)),
    **{f"data.{k}": ("data.name", ("folder",)) for k in _FOLDER_KEYS},
    **{f"data.{k}": ("data.name", ("folder", "arrays")) for k in ("test_fraction", "split_seed")},
    "backend.tf32": ("backend.name", ("auto", "cupy")),
    "diagnostics.every": ("diagnostics.enabled", (True,)),
    "logger.tracking_uri": ("logger.mlflow", (True,)),
    "logger.experiment": ("logger.mlflow", (True,)),
}


def unread(config: dict[str, Any]) -> set[str]:
    """The keys of a config as dotted keys (results.flat) that its own choices do not read
    (READ_ONLY_WITH): an MLP's filter_size, plain SGD's momentum."""
    return {
        key
        for key, (chooser, readers) in READ_ONLY_WITH.items()
        if key in config and chooser in config and config[chooser] not in readers
    }


def override_key(override: str) -> str:
    """The key of a command-line override as Hydra lists them: ``+train.foo=1`` is train.foo."""
    return override.lstrip("+~").partition("=")[0]


def refuse_unread(overrides: Sequence[str], unread: dict[str, str], command: str) -> None:
    """ConfigError for an override of a training setting that ``command`` does not read: one of
    ``unread``, each with what to give instead, or why."""
    for key in map(override_key, overrides):
        if key in unread:
            raise ConfigError(f"{key} does nothing in {command}: {unread[key]}")


def check_overrides_read(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """ConfigError for an override (``key=value``, as Hydra lists them) of a key that the
    config's choices do not read, naming the choice that does."""
    for override in overrides:
        key = override_key(override)
        if key not in READ_ONLY_WITH:
            continue
        chooser, readers = READ_ONLY_WITH[key]
        chosen = OmegaConf.select(cfg, chooser)
        if chosen in readers:
            continue
        named, choices = _typed(chooser, chosen), [_typed(chooser, r) for r in readers]
        if chooser == "model.kind":
            named = f"model={cfg.model.name} ({named})"
            choices = ["model.kind=cnn (model=cnn and the lab's CNNs)"]
        elif chooser == "logger.mlflow":
            choices = ["logger=mlflow"]
        either = ", ".join(choices[:-1]) + " or " * (len(choices) > 1) + choices[-1]
        raise ConfigError(
            f"{key} does nothing with {named}: only {either} read{'s' * (len(choices) == 1)} "
            f"it; choose that, or leave {key} out"
        )


def _typed(key: str, value: Any) -> str:
    """A setting as one would type it: optimizer=sgd (a group's name), logger.mlflow=true."""
    value = str(value).lower() if isinstance(value, bool) else value
    group, _, field_name = key.partition(".")
    return f"{group}={value}" if field_name == "name" else f"{key}={value}"


def seeds(first: int, repeats: int) -> str:
    """The sweep of ``repeats`` seeds from ``first``, as Hydra writes one: "0,1,2"."""
    return ",".join(str(first + i) for i in range(max(1, int(repeats))))


def register() -> None:
    """Put the schemas in Hydra's ConfigStore (conf/config.yaml lists ``schema`` first,
    conf/bench.yaml ``bench_schema`` and conf/lr_find.yaml ``lr_find_schema``), the
    ``gpucnn.seeds`` resolver (conf/config.yaml sweeps ``train.seed`` with it), and gpucnn's
    Slurm launcher and Optuna sweeper in Hydra's plugins when the sweep extra is installed.
    Hydra's own scan of the hydra_plugins package skips their modules (named with a leading
    underscore), which would warn of a broken plugin on every run without the extra, and
    misses an editable install's anyway."""
    cs = ConfigStore.instance()
    cs.store(name="schema", node=Config)
    cs.store(name="bench_schema", node=BenchConfig)
    cs.store(name="lr_find_schema", node=LrFindConfig)
    if not OmegaConf.has_resolver("gpucnn.seeds"):
        OmegaConf.register_new_resolver("gpucnn.seeds", seeds)
    try:
        from hydra_plugins.gpucnn_plugins._optuna_sweeper import OptunaSweeper
        from hydra_plugins.gpucnn_plugins._slurm_launcher import SlurmLauncher
    except ImportError:  # no sweep extra: Hydra says what is missing when one is asked for
        return
    Plugins.instance().register(SlurmLauncher)
    Plugins.instance().register(OptunaSweeper)


@contextmanager
def config_group(group: str) -> Iterator[None]:
    """Library errors about an argument (ConfigError, NotEnoughMemory), re-raised with the
    config key it comes from: inside ``config_group("optimizer")``, "lr must be > 0" becomes
    "optimizer.lr must be > 0"."""
    try:
        yield
    except (ConfigError, NotEnoughMemory) as exc:
        if exc.argument is None:
            raise
        raise type(exc)(f"{group}.{exc}", f"{group}.{exc.argument}") from None


def _plain(value: Any) -> Any:
    """OmegaConf containers as Python lists / dicts."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _check_per_layer(key: str, value: Any, ok, allowed: str) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not ok(v):
            raise ConfigError(f"{key}={value!r} is not allowed: use {allowed}, or a list of these")


def validate(cfg: DictConfig, schema: type = Config) -> None:
    """Reject impossible values, one line naming the key and what is allowed; and keys that
    ``schema`` (the command's: a key of COMMAND_OF) does not have."""
    _check_known_keys(cfg, schema)
    m, d, o, b, t = cfg.model, cfg.data, cfg.optimizer, cfg.backend, cfg.train
    check_choice(m.kind, ("cnn", "mlp"), "model.kind")
    check_choice(m.init, ("auto", *initializers.SCHEMES), "model.init")
    for key, value in (("activation", m.activation), ("hidden_activation", m.hidden_activation)):
        if key == "activation" or value is not None:
            check_choice(value, ("relu", "sigmoid", "tanh"), f"model.{key}")
    if m.kind == "cnn":
        check_choice(m.pool, tuple(presets.POOLS), "model.pool")
        if not m.channels or any(c < 1 for c in m.channels):
            raise ConfigError(f"model.channels={list(m.channels)}: list positive channel counts")
        _check_per_layer(
            "model.filter_size",
            _plain(m.filter_size),
            lambda v: is_count(v, 1),
            "a positive integer",
        )
        _check_per_layer(
            "model.stride", _plain(m.stride), lambda v: is_count(v, 1), "a positive integer"
        )
        _check_per_layer(
            "model.pool_size",
            _plain(m.pool_size),
            lambda v: is_count(v, 0),
            "an integer >= 0 (0 or 1: no pooling)",
        )
        if m.pool_stride is not None:
            _check_per_layer(
                "model.pool_stride",
                _plain(m.pool_stride),
                lambda v: v is None or is_count(v, 1),
                "a positive integer or null",
            )
        _check_per_layer(
            "model.padding",
            _plain(m.padding),
            lambda v: v in ("same", "valid") or is_count(v, 0),
            "same, valid or an integer >= 0",
        )
        with config_group("model"):  # the per-block lists' lengths, and same padding
            presets.conv_blocks(
                list(m.channels),
                _plain(m.filter_size),
                _plain(m.pool_size),
                _plain(m.pool_stride),
                _plain(m.padding),
                _plain(m.stride),
            )
    if any(h < 1 for h in m.hidden):
        raise ConfigError(f"model.hidden={list(m.hidden)}: list positive layer widths")
    if not 0 <= m.dropout < 1:
        raise ConfigError(f"model.dropout={m.dropout} must be in [0, 1)")
    validate_data(d)
    if d.test_fraction == 1:
        raise ConfigError(
            "data.test_fraction=1 leaves no image to train on: give a fraction below 1 (1 is "
            "for evaluating a trained run on every image of a folder)"
        )
    check_choice(o.name, tuple(OPTIMIZERS), "optimizer.name")
    if t.threads is not None and t.threads < 1:
        raise ConfigError(
            f"train.threads={t.threads} must be null (the job's share of the cores) or >= 1"
        )
    if t.checkpoint_every_steps is not None and t.checkpoint_every_steps < 1:
        raise ConfigError(
            f"train.checkpoint_every_steps={t.checkpoint_every_steps} must be null or >= 1"
        )
    if cfg.diagnostics.every < 1:
        raise ConfigError(f"diagnostics.every={cfg.diagnostics.every} must be >= 1")
    if t.micro_batch < 0:
        raise ConfigError(f"train.micro_batch={t.micro_batch} must be >= 0 (0: whole batches)")
    if t.seed < 0:
        raise ConfigError(f"train.seed={t.seed} must be >= 0")
    if t.freeze < 0:
        raise ConfigError(f"train.freeze={t.freeze} must be >= 0 (0: every layer learns)")
    if t.patience is not None and t.patience < 1:
        raise ConfigError(f"train.patience={t.patience} must be null or >= 1 epochs")
    if not 0 <= t.label_smoothing < 1:
        raise ConfigError(
            f"train.label_smoothing={t.label_smoothing} must be in [0, 1) (0.1 is usual; 0: none)"
        )
    watchers = on_validation(cfg)
    if watchers and d.val_fraction == 0:
        watcher, instead = watchers[0]
        raise ConfigError(
            f"{watcher}, and data.val_fraction=0 holds out no validation images: give "
            f"data.val_fraction > 0, or {instead}"
        )
    if o.schedule in ON_VALIDATION and t.patience is not None and o.decay_every >= t.patience:
        raise ConfigError(
            f"optimizer.schedule={o.schedule} lowers the rate after optimizer.decay_every="
            f"{o.decay_every} epochs without a lower validation loss, but train.patience="
            f"{t.patience} stops the run after {t.patience}: the rate would never fall. Give "
            "optimizer.decay_every below train.patience (2 and 5, say)"
        )
    if not is_count(t.repeats, 1):
        raise ConfigError(f"train.repeats={t.repeats!r} must be an integer >= 1")
    for key in ("epochs", "batch_size"):
        if t[key] < 1:
            raise ConfigError(f"train.{key}={t[key]} must be a positive integer")
    validate_where(b, t)
    if b.tf32 and (b.dtype, b.kernels) != ("float32", "fast"):  # training's: not validate_where
        raise ConfigError(
            f"backend.tf32=true rounds the float32 products of the GPU kernel set, which "
            f"backend.dtype={b.dtype} backend.kernels={b.kernels} does not run: choose "
            "backend.dtype=float32 backend.kernels=fast, or leave backend.tf32 out"
        )
    build_optimizer(o)  # range checks of lr, betas, momentum
    build_schedule(o, t.epochs)
    loggers.check(cfg.logger)


def _schema_keys(schema_type: type) -> dict[str, Any]:
    """The settings of a command's schema (a key of COMMAND_OF), by dotted key."""
    return flat(OmegaConf.to_container(OmegaConf.structured(schema_type)))


def _not_a_setting(key: str, schema_type: type) -> str:
    """Why ``key`` is refused, naming the setting it may mean: the same name in another group
    (train.lr: optimizer.lr), else a close spelling of it."""
    names = {k: k.rpartition(".")[2] for k in _schema_keys(schema_type)}
    close = difflib.get_close_matches(key.rpartition(".")[2], set(names.values()), cutoff=0.75)
    near = [k for k, name in names.items() if name in close[:1]]
    near.sort(key=lambda k: k.partition(".")[0] != key.partition(".")[0])  # its group first
    command = COMMAND_OF[schema_type]
    return (
        f"{key} is not a setting: nothing reads it"
        + (f" (did you mean {' or '.join(near)}?)" if near else "")
        + f"; python -m gpucnn.{command} --help lists them all"
    )


def _check_known_keys(cfg: DictConfig, schema_type: type) -> None:
    """ConfigError for a key the schema lacks: Hydra's ``+key=value`` adds one, but nothing
    would read it."""
    schema = _schema_keys(schema_type)
    given = flat(OmegaConf.to_container(cfg, resolve=False))
    for key in (k for k in given if k not in schema and not k.startswith("hydra.")):
        raise ConfigError(_not_a_setting(key, schema_type))


def unknown_override(argv: Sequence[str], schema_type: type = Config) -> str | None:
    """Why an override ``key=value`` of the command line names no setting, else None. Hydra
    would refuse it too, but suggest ``+key=value``, which adds the key only for the run to
    refuse it then. Adding (+, ++), deleting (~), group options (``model=cnn``,
    ``hydra/launcher=joblib``) and Hydra's own keys are left to Hydra."""
    schema = _schema_keys(schema_type)
    groups = {k.partition(".")[0] for k in schema} | {"experiment", "hydra"}
    for arg in argv:
        key, equals, _ = arg.partition("=")
        if not equals or arg.startswith(("-", "+", "~")) or "/" in key or "@" in key:
            continue
        if key not in schema and key not in groups and key.partition(".")[0] != "hydra":
            return _not_a_setting(key, schema_type)
    return None


def single_for_list(argv: Sequence[str], schema_type: type = Config) -> str | None:
    """Why an override gives a list setting (data.positive, model.channels) one value or a
    comma-separated few without brackets, naming the list to give; else None. Hydra would
    refuse it as "str is not a ListConfig", or take 6,2 as a sweep over two single values."""
    schema = _schema_keys(schema_type)
    for arg in argv:
        key, equals, value = arg.lstrip("+").partition("=")
        if not equals or not isinstance(schema.get(key), list):
            continue
        if value.startswith("[") or "(" in value or "${" in value or value == "null":
            continue  # a list, a sweep function, a reference; null is Hydra's to refuse
        values = value.split(",")
        fix = f"{key}=[{value}]"
        if len(values) > 1:
            sweep = ",".join(f"[{v}]" for v in values)
            fix += f" for one list of them, or {key}={sweep} to sweep over lists of one"
        return f"{arg}: {key} takes a list: {fix}"
    return None


def validate_where(b: DictConfig, t: DictConfig) -> None:
    """Where a model runs, which evaluation may change too: the backend's settings ``b`` and
    ``t.eval_batch_size``."""
    check_choice(b.name, ("auto", "numpy", "cupy"), "backend.name")
    check_choice(b.dtype, ("float32", "float64"), "backend.dtype")
    check_choice(b.kernels, ("fast", "reference"), "backend.kernels")
    if t.eval_batch_size < 1:
        raise ConfigError(f"train.eval_batch_size={t.eval_batch_size} must be a positive integer")


def _check_class_names(names: list[Any]) -> None:
    """ConfigError unless ``names`` (data.classes) are distinct, non-empty names."""
    texts = [str(n).strip() for n in names]
    if not texts or not all(texts):
        raise ConfigError(f"data.classes={names}: give a name for each class, none empty")
    twice = sorted({t for t in texts if texts.count(t) > 1})
    if twice:
        raise ConfigError(
            f"data.classes names {', '.join(twice)} more than once: give each class its own name"
        )


def validate_data(d: DictConfig) -> None:
    """The data checks that need no files, for training and evaluation alike; the sources
    check the rest as they read."""
    check_choice(d.name, DATA_NAMES, "data.name")
    if d.name == "folder" and not d.root:
        raise ConfigError(
            "data=folder needs data.root=DIR, the folder with one folder of images per class"
        )
    if d.name == "arrays" and not d.path:
        raise ConfigError(
            "data=arrays needs data.path=FILE.npz, holding x_train, y_train, x_test, y_test "
            "(or x_train and y_train alone: a data.test_fraction of them is held out), or "
            "data.path=FILE.csv, a label and an image's pixels on each row"
        )
    if d.classes is not None:
        _check_class_names(list(d.classes))
    names = sources.class_names(d.name)  # a named set's: its class names are checked now
    with config_group("data"):
        if names and d.task == "binary":  # multiclass reads none: check_overrides_read says so
            task_classes(d.task, list(d.positive), list(d.negative), names)
        else:
            check_task(d.task, list(d.positive), list(d.negative))
        folder.check_settings(d.channels, d.image_size, d.fit, d.test_fraction)
    if d.pad_to is not None and d.pad_to < 1:
        raise ConfigError(f"data.pad_to={d.pad_to} must be null or a positive image size")
    if not 0 <= d.val_fraction < 1:
        raise ConfigError(f"data.val_fraction={d.val_fraction} must be in [0, 1)")
    if d.shift < 0:
        raise ConfigError(f"data.shift={d.shift} must be a number of pixels >= 0")
    for key in ("limit_train", "limit_test"):
        if d[key] is not None and d[key] < 1:
            raise ConfigError(f"data.{key}={d[key]} must be null or a positive number of images")


def build_model(m: DictConfig, input_shape: Sequence[int], n_outputs: int) -> Model:
    """The model a config describes, built and shape-checked for per-sample ``input_shape``
    (C, H, W) and ``n_outputs`` outputs (the prepared data's)."""
    with config_group("model"):
        return _model(m, tuple(input_shape), n_outputs)


def _model(m: DictConfig, shape: tuple[int, ...], outputs: int) -> Model:
    if m.kind == "mlp":
        width = shape[0] * shape[1] * shape[2]
        return presets.mlp(
            [width, *m.hidden, outputs], m.activation, m.dropout, shape, m.batch_norm, m.init
        )
    return presets.cnn(
        shape,
        list(m.channels),
        _plain(m.filter_size),
        _plain(m.pool_size),
        _plain(m.pool_stride),
        _plain(m.padding),
        m.activation,
        list(m.hidden),
        m.dropout,
        outputs,
        m.hidden_activation,
        m.batch_norm,
        _plain(m.stride),
        m.global_pool,
        m.init,
        m.pool,
    )


def on_validation(cfg: DictConfig) -> list[tuple[str, str]]:
    """The settings of run config ``cfg`` that act on the validation loss, and so need
    validation images: what each does, and how to do without it."""
    found = []
    if cfg.train.patience is not None:
        found.append(
            (f"train.patience={cfg.train.patience} stops on the validation loss",
             "leave train.patience out")
        )  # fmt: skip
    if cfg.optimizer.schedule in ON_VALIDATION:
        found.append(
            (f"optimizer.schedule={cfg.optimizer.schedule} lowers the rate on the validation "
             "loss", "choose another optimizer.schedule")
        )  # fmt: skip
    return found


def build_schedule(o: DictConfig, epochs: int) -> Schedule:
    """The learning-rate schedule of the optimizer config ``o`` over ``epochs``."""
    with config_group("optimizer"):
        return Schedule(o.schedule, o.lr, epochs, o.decay, o.decay_every, o.min_lr)


def build_optimizer(o: DictConfig) -> Optimizer:
    with config_group("optimizer"):
        common = {"weight_decay": o.weight_decay, "clip_norm": o.clip_norm}
        if o.name in ("adam", "adamw"):
            adam = {"beta1": o.beta1, "beta2": o.beta2, "eps": o.eps}
            return OPTIMIZERS[o.name](o.lr, **common, **adam)
        if o.name == "momentum":
            return OPTIMIZERS["momentum"](o.lr, o.momentum, o.nesterov, **common)
        return OPTIMIZERS["sgd"](o.lr, **common)
