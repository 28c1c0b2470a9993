"""``python -m gpucnn.bench``: gpucnn and PyTorch side by side, in one run, on the same device.

For each batch size in ``bench.batch_sizes`` both train the same architecture from the same
initial weights, on the same device arrays in the same batch order, with the same optimiser,
for ``bench.warmup_epochs`` untimed and then ``bench.epochs`` timed epochs, taken in turns.
Reported per batch size: median seconds per epoch, images per second, peak memory and final
test accuracy. Prints a table and writes bench.json into the run directory;
``bench.profile=true`` also prints where one of our training steps spends its time.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .. import backend, data, profile
from ..errors import ConfigError
from ..fileio import write_json
from ..losses import for_outputs
from ..steps import MicroBatchStep, make_step
from ..train import check_batches, evaluate
from .config import (
    BenchConfig,
    build_model,
    build_optimizer,
    check_overrides_read,
    config_group,
    refuse_unread,
    register,
    single_for_list,
    unknown_override,
    validate,
)
from .experiment import load_splits
from .peer import PeerTrainer, import_torch
from .run import CONF_DIR, fail

log = logging.getLogger("gpucnn.bench")

# Settings of a training run that the benchmark does not read: each with what to give instead,
# or why (both sides train on the same plain batches at a constant rate, so that they compare).
NOT_BENCHED = {
    "train.epochs": "bench.epochs and bench.warmup_epochs set its epochs",
    "train.batch_size": "bench.batch_sizes sets its batch sizes",
    **dict.fromkeys(
        ("train.patience", "optimizer.schedule", "data.flip", "data.shift", "data.balanced"),
        "both sides train every epoch on the same plain batches at a constant rate",
    ),
    "train.init_from": "both sides start from the same random weights",
    "train.freeze": "both sides train every layer",
}


def check_command_line(argv: list[str]) -> str | None:
    """Why the command line cannot run, said before Hydra reads it: an override of no setting
    (batch_sizes=[64] for bench.batch_sizes), or one value for a list (bench.batch_sizes=128);
    else None."""
    return unknown_override(argv, BenchConfig) or single_for_list(argv, BenchConfig)


register()


def _memory_window(torch: Any, torch_gpu: bool) -> Callable[[], float | None]:
    """Open a peak-memory window for one side: returns a function giving the most memory held
    since, above what was held at the start (the data, both sides' weights), in MB. Memory that
    what ran before freed and kept for reuse is handed back first, so that it counts for
    neither side: a pool's cache, glibc's heap (kept by backend.recycle_host_memory). On the
    CPU the resident set, and None where its peak cannot be reset (off Linux and glibc)."""
    if torch_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_reserved()
        return lambda: (torch.cuda.max_memory_reserved() - start) / 2**20
    if backend.active().is_gpu:
        backend.release()
        pool = backend.xp().get_default_memory_pool()
        start = pool.total_bytes()  # the pool keeps what it took: its size at the end is its peak
        return lambda: (pool.total_bytes() - start) / 2**20
    try:  # Linux: writing 5 resets the process's peak resident set (VmHWM) to the current one
        reset = backend.return_host_memory() and Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        reset = False
    rss = _resident_mb("VmRSS") if reset else None
    if rss is None:
        return lambda: None
    return lambda: _resident_mb("VmHWM") - rss


def _resident_mb(field: str) -> float | None:
    """A line of /proc/self/status (VmRSS: now, VmHWM: the peak) in MB; None without it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class _Ours:
    """gpucnn's side: the configured model, its optimiser and its step function."""

    def __init__(self, cfg: DictConfig, splits: data.Prepared, batch_size: int) -> None:
        backend.set_seed(cfg.train.seed)
        self.cfg, self.splits, self.batch_size = cfg, splits, batch_size
        self.model = build_model(cfg.model, splits.input_shape, splits.n_outputs)
        self.initial = self.model.state_dict()
        self.loss = for_outputs(splits.n_outputs, cfg.train.label_smoothing)
        self.opt = build_optimizer(cfg.optimizer)
        with config_group("train"):
            self.batches = data.Batches(splits.train, batch_size, seed=cfg.train.seed)
            check_batches(self.model, self.batches)
        t = cfg.train
        self.step = make_step(self.model, self.loss, self.opt, t.threads, t.micro_batch)

    def epoch(self, epoch: int, limit: int | None = None) -> float:
        """Train one epoch (at most ``limit`` batches, or bench.max_batches); returns its
        seconds."""
        limit = limit or self.cfg.bench.max_batches
        backend.synchronize()
        start = time.perf_counter()
        for i, (x, y) in enumerate(self.batches.epoch(epoch)):
            if limit is not None and i >= limit:
                break
            self.step(x, y)
        backend.synchronize()
        return time.perf_counter() - start

    def accuracy(self) -> float:
        return evaluate(self.model, self.loss, self.splits.test.x, self.splits.test.y)[1]

    def profile(self) -> str:
        """The profile table, after a line saying how it was taken: piece by piece, each
        between two synchronisations, which is not how training runs the step."""
        steps, batches = self.cfg.bench.profile_steps, self.batches.epoch(0)
        if hasattr(self.step, "profile"):  # the GPU's static step: its own operations
            how = "its kernels launched one by one (training replays them as one CUDA graph)"
            return f"{how}\n{profile.table(self.step.profile(batches, steps))}"
        how = "the whole batch through each layer in turn"
        if isinstance(self.step, MicroBatchStep) and self.step.chunk is None:
            how += f" (training gives each of {self.step.threads} threads a share of the batch)"
        elif isinstance(self.step, MicroBatchStep):
            how += (
                f" (training splits the batch into micro-batches of {self.step.chunk} over "
                f"{self.step.threads} threads)"
            )
        table = profile.table(profile.profile(self.model, self.loss, self.opt, batches, steps))
        return f"{how}\n{table}"


class _Peer:
    """PyTorch's side: the twin of our initial model, trained on the same batch orders."""

    def __init__(self, torch: Any, ours: _Ours, compile_: bool) -> None:
        model = build_model(ours.cfg.model, ours.splits.input_shape, ours.splits.n_outputs)
        model.load_state_dict(ours.initial)
        opt = build_optimizer(ours.cfg.optimizer)
        self.ours = ours
        self.trainer = PeerTrainer(torch, model, opt, ours.loss, compile_)

    def epoch(self, epoch: int, limit: int | None = None) -> float:
        o = self.ours
        order = data.epoch_order(len(o.splits.train), o.cfg.train.seed, epoch)
        limit = limit or o.cfg.bench.max_batches
        return self.trainer.epoch(o.splits.train.x, o.splits.train.y, order, o.batch_size, limit)

    def accuracy(self) -> float:
        return self.trainer.accuracy(self.ours.splits.test.x, self.ours.splits.test.y)


def _prime(cfg: DictConfig, splits: data.Prepared, torch: Any) -> None:
    """Train each side (torch.compile's aside: it compiles anew for every model) for two
    steps before any peak-memory window opens, then drop them: what a process takes once
    (thread pools, BLAS buffers, library code read in at its first use) would otherwise count
    in the first batch size's peaks only."""
    ours = _Ours(cfg, splits, cfg.bench.batch_sizes[0])
    runners = [ours] + ([_Peer(torch, ours, compile_=False)] if torch is not None else [])
    for runner in runners:
        runner.epoch(0, limit=2)
    ours.step.close()


def _measure(runners: dict[str, Any], b: DictConfig, torch: Any) -> dict[str, dict[str, float]]:
    """Warm each side up alone (reading its peak memory meanwhile: none without warm-up
    epochs), then run the timed epochs interleaved, so that both sides meet the same conditions
    on a busy machine."""
    peaks = {}
    for name, runner in runners.items():
        peak = _memory_window(torch, name != "ours" and backend.active().is_gpu)
        for epoch in range(b.warmup_epochs):
            runner.epoch(epoch)
        peaks[name] = peak() if b.warmup_epochs else None
    times: dict[str, list[float]] = {name: [] for name in runners}
    for epoch in range(b.warmup_epochs, b.warmup_epochs + b.epochs):
        for name, runner in runners.items():
            times[name].append(runner.epoch(epoch))
    return {
        name: {
            "epoch_s": statistics.median(times[name]),
            "peak_mb": peaks[name],
            "acc": runner.accuracy(),
        }
        for name, runner in runners.items()
    }


def _threads(torch, threads: int | None) -> int:
    """Give PyTorch as many threads as our CPU step uses (train.threads, else every core)."""
    count = threads or backend.available_cores()
    if torch is not None:
        torch.set_num_threads(count)
    return count


def _row(batch_size: int, m: dict, n_train: int, max_batches: int | None) -> dict[str, Any]:
    """One line of bench.json's results."""
    n = n_train if max_batches is None else min(n_train, max_batches * batch_size)
    o = m["ours"]
    row = {
        "batch_size": batch_size,
        "ours_epoch_s": o["epoch_s"],
        "ours_images_per_s": n / o["epoch_s"],
        "ours_peak_mb": o["peak_mb"],
        "ours_acc": o["acc"],
    }
    if "peer" in m:
        p = m["peer"]
        row.update(
            peer_epoch_s=p["epoch_s"],
            peer_images_per_s=n / p["epoch_s"],
            peer_peak_mb=p["peak_mb"],
            peer_acc=p["acc"],
            ratio=o["epoch_s"] / p["epoch_s"],
        )
    if "peer_compile" in m:
        p = m["peer_compile"]
        row.update(
            peer_compile_epoch_s=p["epoch_s"],
            peer_compile_acc=p["acc"],
            ratio_compile=o["epoch_s"] / p["epoch_s"],
        )
    return row


def peer_tf32(torch: Any) -> dict[str, bool]:
    """Which of the GPU peer's float32 products run in TF32 (tensor cores, inputs rounded to a
    10-bit mantissa), as PyTorch is set: by default cuDNN's convolutions do and its matrix
    products do not. gpucnn's kernels multiply in full float32."""
    return {
        "convolutions": bool(torch.backends.cudnn.allow_tf32),
        "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
    }


def bench(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    validate(cfg, BenchConfig)
    check_overrides_read(cfg, overrides)
    refuse_unread(overrides, NOT_BENCHED, "the benchmark")
    b = cfg.bench
    if not b.batch_sizes or min(b.batch_sizes) < 1:
        raise ConfigError(f"bench.batch_sizes={list(b.batch_sizes)}: list positive batch sizes")
    if b.warmup_epochs < 0:
        raise ConfigError(f"bench.warmup_epochs={b.warmup_epochs} must be >= 0")
    for key in ("epochs", "max_batches", "profile_steps"):
        if b[key] is not None and b[key] < 1:
            raise ConfigError(f"bench.{key}={b[key]} must be >= 1")
    c = cfg.backend
    active = backend.use(c.name, c.dtype, cfg.train.seed, kernels=c.kernels, tf32=c.tf32)
    if not active.is_gpu:
        backend.recycle_host_memory()
    torch, why = import_torch() if b.peer else (None, "bench.peer=false")
    if torch is not None and active.is_gpu:
        torch.backends.cudnn.benchmark = True
    compile_ = bool(b.peer_compile and torch is not None and active.is_gpu)
    no_compile = None
    if b.peer_compile and not compile_:
        no_compile = "no PyTorch" if torch is None else "it is timed on the GPU only"
        log.warning("bench.peer_compile=true: no torch.compile column, %s", no_compile)
    splits = load_splits(cfg)
    too_big = [size for size in b.batch_sizes if size > len(splits.train)]
    if too_big:
        raise ConfigError(
            f"bench.batch_sizes {too_big} larger than the {len(splits.train)} training images: "
            "lower them (or use more data, e.g. data=fashion_mnist)"
        )
    report: dict[str, Any] = {
        "backend": active.name,
        "device": active.device,
        "threads": _threads(torch, cfg.train.threads),
        "model": cfg.model.name,
        "data": cfg.data.name,
        "task": cfg.data.task,
        "train_images": len(splits.train),
        "optimizer": cfg.optimizer.name,
        "peer": f"PyTorch {torch.__version__}" if torch is not None else None,
        "peer_missing": why or None,
        "tf32": active.tf32,
        "peer_tf32": peer_tf32(torch) if torch is not None and active.is_gpu else None,
        "peer_compile_missing": no_compile,
        "versions": backend.versions(),
        "results": [],
    }
    if b.warmup_epochs:
        _prime(cfg, splits, torch)
    for batch_size in b.batch_sizes:
        ours = _Ours(cfg, splits, batch_size)
        runners: dict[str, Any] = {"ours": ours}
        if torch is not None:
            runners["peer"] = _Peer(torch, ours, compile_=False)
        if compile_:
            runners["peer_compile"] = _Peer(torch, ours, compile_=True)
        m = _measure(runners, b, torch)
        if b.profile:
            print(f"\nprofile of one training step, batch {batch_size} ({active.name}):")
            print(ours.profile())
        ours.step.close()
        report["results"].append(_row(batch_size, m, len(splits.train), b.max_batches))
        log.info("batch %d done", batch_size)
    report["config"] = OmegaConf.to_container(cfg, resolve=True)
    write_json(run_dir / "bench.json", report)
    return report


def table(report: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    peer = report["peer"] is not None
    head = ["batch", "ours s/epoch", "ours img/s", "ours peak MB", "ours acc"]
    if peer:
        head += ["peer s/epoch", "peer img/s", "peer peak MB", "peer acc", "ratio"]
    if any("ratio_compile" in r for r in report["results"]):
        head += ["compiled s/epoch", "ratio compiled"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["results"]:
        cells = [
            str(r["batch_size"]),
            f"{r['ours_epoch_s']:.3f}",
            f"{r['ours_images_per_s']:,.0f}",
            _mb(r["ours_peak_mb"]),
            f"{r['ours_acc']:.4f}",
        ]
        if peer:
            cells += [
                f"{r['peer_epoch_s']:.3f}",
                f"{r['peer_images_per_s']:,.0f}",
                _mb(r["peer_peak_mb"]),
                f"{r['peer_acc']:.4f}",
                f"{r['ratio']:.2f}",
            ]
        if "ratio_compile" in r:
            cells += [f"{r['peer_compile_epoch_s']:.3f}", f"{r['ratio_compile']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    title = (
        f"gpucnn ({report['backend']}) vs {report['peer'] or 'no peer'} on {report['device']}, "
        f"{report['threads']} threads; {report['model']}, {report['data']} "
        f"{report['task']} ({report['train_images']} training images), {report['optimizer']}"
    )
    note = f"\n(no peer: {report['peer_missing']})" if not peer else ""
    if report.get("peer_compile_missing"):
        note += f"\n(no torch.compile column: {report['peer_compile_missing']})"
    if any(r["ours_peak_mb"] is not None for r in report["results"]):
        note += (
            "\n(peak MB: the most memory a side's warm-up held above what was held before it,"
            " so not the data or the weights)"
        )
    else:
        note += "\n(no peak memory: it is read during warm-up epochs, on Linux)"
    tf32 = [name for name, on in (report.get("peer_tf32") or {}).items() if on]
    if tf32 or report.get("tf32"):
        peer = f"its {' and '.join(tf32)} in TF32" if tf32 else "in full float32"
        ours = "its larger products in TF32" if report.get("tf32") else "in full float32"
        note += f"\n(PyTorch runs {peer}; gpucnn {ours})"
    return f"{title}\n\n" + "\n".join(lines) + note


def _mb(peak: float | None) -> str:
    """A peak in MB for the table: "-" where none was read (no warm-up, or off Linux)."""
    return "-" if peak is None else f"{peak:,.0f}"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="bench")
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        report = bench(cfg, run_dir, list(hc.overrides.task))
    except Exception as exc:  # a data error, memory, a full disk: one line and its exit code
        fail(exc, log, hc.mode == RunMode.MULTIRUN)
        return
    print(table(report))
    print(f"\nwritten: {run_dir / 'bench.json'}")
