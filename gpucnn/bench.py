"""``python -m gpucnn.bench``: gpucnn and PyTorch side by side, in one run, on the same device.

For each batch size in ``bench.batch_sizes`` both train the same architecture from the same
initial weights, on the same device arrays in the same batch order, with the same optimiser,
for ``bench.warmup_epochs`` untimed and ``bench.epochs`` timed epochs. Reported per batch size:
median seconds per epoch, images per second, peak memory and final test accuracy. Prints a
table and writes bench.json into the run directory; ``bench.profile=true`` also prints where
one of our training steps spends its time.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import backend, data, profile
from .config import build_model, build_optimizer, register, validate
from .errors import ConfigError
from .experiment import load_splits
from .fileio import write_json
from .losses import for_outputs
from .peer import PeerTrainer, import_torch
from .run import CONF_DIR
from .train import evaluate, train_step

log = logging.getLogger("gpucnn.bench")

register()


def _reset_peak() -> None:
    """Start a new peak-memory window (device pool on the GPU, resident set on the CPU)."""
    if backend.active().is_gpu:
        backend.release()
    else:
        try:  # Linux: writing 5 resets the process's peak resident set (VmHWM)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def _peak_mb() -> float:
    """Peak memory since _reset_peak, in MB: the GPU pool's size, or the CPU resident peak."""
    if backend.active().is_gpu:
        return backend.xp().get_default_memory_pool().total_bytes() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed_epochs(run_epoch: Callable[[int], float], b: DictConfig) -> list[float]:
    """Seconds of each timed epoch, after the warm-up epochs."""
    times = [run_epoch(e) for e in range(b.warmup_epochs + b.epochs)]
    return times[b.warmup_epochs :]


def _ours(cfg: DictConfig, splits: data.Prepared, batch_size: int) -> tuple[dict, Any, Any]:
    """Train gpucnn; returns (results, the initial weights, the model's optimiser)."""
    b = cfg.bench
    backend.set_seed(cfg.train.seed)
    model = build_model(cfg.model, cfg.data)
    initial = model.state_dict()
    loss, opt = for_outputs(splits.n_outputs), build_optimizer(cfg.optimizer)
    batches = data.Batches(splits.train, batch_size, seed=cfg.train.seed)

    def run_epoch(epoch: int) -> float:
        backend.synchronize()
        start = time.perf_counter()
        for i, (x, y) in enumerate(batches.epoch(epoch)):
            if b.max_batches is not None and i >= b.max_batches:
                break
            train_step(model, loss, opt, x, y)
        backend.synchronize()
        return time.perf_counter() - start

    _reset_peak()
    times = _timed_epochs(run_epoch, b)
    result = {
        "epoch_s": statistics.median(times),
        "peak_mb": _peak_mb(),
        "acc": evaluate(model, loss, splits.test.x, splits.test.y)[1],
    }
    if b.profile:
        ms = profile.profile(model, loss, opt, batches.epoch(0), b.profile_steps)
        print(f"\nprofile of one training step, batch {batch_size} ({backend.active().name}):")
        print(profile.table(ms))
    fresh = build_model(cfg.model, cfg.data)
    fresh.load_state_dict(initial)
    return result, fresh, build_optimizer(cfg.optimizer)


def _peer(torch, cfg, splits, batch_size, model, opt, compile_: bool) -> dict:
    b = cfg.bench
    trainer = PeerTrainer(torch, model, opt, splits.n_outputs, compile_)
    n = len(splits.train)

    def run_epoch(epoch: int) -> float:
        order = data.epoch_order(n, cfg.train.seed, epoch)
        return trainer.epoch(splits.train.x, splits.train.y, order, batch_size, b.max_batches)

    if trainer.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_peak()
    times = _timed_epochs(run_epoch, b)
    peak = torch.cuda.max_memory_reserved() / 2**20 if trainer.device == "cuda" else _peak_mb()
    return {
        "epoch_s": statistics.median(times),
        "peak_mb": peak,
        "acc": trainer.accuracy(splits.test.x, splits.test.y),
    }


def _threads(torch) -> int:
    """Use as many PyTorch threads as NumPy's BLAS uses (one per available core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if torch is not None:
        torch.set_num_threads(cores)
    return cores


def bench(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    validate(cfg)
    b = cfg.bench
    if not b.batch_sizes or min(b.batch_sizes) < 1 or b.epochs < 1 or b.warmup_epochs < 0:
        raise ConfigError(
            "bench.batch_sizes must list positive sizes, bench.epochs be >= 1 and "
            "bench.warmup_epochs >= 0"
        )
    active = backend.use(cfg.backend.name, cfg.backend.dtype, cfg.train.seed)
    torch, why = import_torch() if b.peer else (None, "bench.peer=false")
    if torch is not None and active.is_gpu:
        torch.backends.cudnn.benchmark = True
    compile_ = bool(b.peer_compile and torch is not None and active.is_gpu)
    splits = load_splits(cfg)
    report: dict[str, Any] = {
        "backend": active.name,
        "device": active.device,
        "threads": _threads(torch),
        "model": cfg.model.name,
        "data": cfg.data.name,
        "task": cfg.data.task,
        "train_images": len(splits.train),
        "optimizer": cfg.optimizer.name,
        "peer": f"PyTorch {torch.__version__}" if torch is not None else None,
        "peer_missing": why or None,
        "versions": backend.versions(),
        "results": [],
    }
    for batch_size in b.batch_sizes:
        ours, model, opt = _ours(cfg, splits, batch_size)
        n = (
            len(splits.train)
            if b.max_batches is None
            else min(len(splits.train), b.max_batches * batch_size)
        )
        row = {
            "batch_size": batch_size,
            "ours_epoch_s": ours["epoch_s"],
            "ours_images_per_s": n / ours["epoch_s"],
            "ours_peak_mb": ours["peak_mb"],
            "ours_acc": ours["acc"],
        }
        if torch is not None:
            peer = _peer(torch, cfg, splits, batch_size, model, opt, compile_=False)
            row.update(
                peer_epoch_s=peer["epoch_s"],
                peer_images_per_s=n / peer["epoch_s"],
                peer_peak_mb=peer["peak_mb"],
                peer_acc=peer["acc"],
                ratio=ours["epoch_s"] / peer["epoch_s"],
            )
        if compile_:
            peer = _peer(torch, cfg, splits, batch_size, model, opt, compile_=True)
            row.update(
                peer_compile_epoch_s=peer["epoch_s"],
                peer_compile_acc=peer["acc"],
                ratio_compile=ours["epoch_s"] / peer["epoch_s"],
            )
        report["results"].append(row)
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
            f"{r['ours_peak_mb']:,.0f}",
            f"{r['ours_acc']:.4f}",
        ]
        if peer:
            cells += [
                f"{r['peer_epoch_s']:.3f}",
                f"{r['peer_images_per_s']:,.0f}",
                f"{r['peer_peak_mb']:,.0f}",
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
    return f"{title}\n\n" + "\n".join(lines) + note


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="bench")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        report = bench(cfg, run_dir)
    except ConfigError as exc:
        log.error("invalid config: %s", exc)
        raise SystemExit(2) from None
    print(table(report))
    print(f"\nwritten: {run_dir / 'bench.json'}")


if __name__ == "__main__":
    main()
