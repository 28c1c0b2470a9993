"""Sweep summaries: one row per job, best first, as CSV, Markdown and a labelled plot.

Written by a Hydra callback at the end of every multirun, and by ``python -m gpucnn.summarize``
for a sweep that was interrupted or is still running.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..fileio import write_text
from . import exits
from .results import (
    JOBS,
    finite,
    parse_overrides,
    pyplot,
    read_overrides,
    read_summary,
    run_dirs,
    save_figure,
    write_csv,
)

FIXED = ["job", "status", "test_accuracy", "val_accuracy", "weights", "seconds_per_epoch", "reason"]


def collect(sweep_dir: str | Path) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """One row per job, best test accuracy first (jobs a cluster has not started yet, listed in
    jobs.json, included); the keys whose values differ between jobs, in order of appearance;
    and the overrides all jobs share."""
    rows, keys = [], []
    submitted = _submitted(Path(sweep_dir))
    for job_dir in run_dirs(sweep_dir):
        summary = read_summary(job_dir) or {"status": "running"}
        slurm = submitted.pop(job_dir.name, {}).get("state")
        if slurm in ("pending", "running") and summary["status"] == "stopped":
            summary = {**summary, "status": slurm}  # requeued, or on a node whose lock we miss
        swept = parse_overrides(read_overrides(job_dir))
        keys += [k for k in swept if k not in keys]
        row = {"job": job_dir.name, **swept}
        row.update({k: summary.get(k) for k in FIXED[1:]})
        rows.append(row)
    for name, job in submitted.items():  # submitted, no directory yet
        swept = parse_overrides(job["overrides"])
        keys += [k for k in swept if k not in keys]
        rows.append({"job": name, **swept, "status": job.get("state") or "not started"})

    def rank(row):
        acc = row.get("test_accuracy")
        return (row["status"] != "ok", -(acc if finite(acc) else -1.0))  # NaN is never best

    rows.sort(key=rank)
    varying = [k for k in keys if len({str(r.get(k)) for r in rows}) > 1]
    common = {k: rows[0][k] for k in keys if k not in varying and rows}
    for row in rows:
        for k in common:
            del row[k]
    return rows, varying, common


def _submitted(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """The jobs a cluster launcher submitted (jobs.json), by job number, each with its Slurm
    state ("pending", "running", ...) while squeue still lists it."""
    try:
        jobs = {str(j["job"]): j for j in json.loads((sweep_dir / JOBS).read_text())}
    except (OSError, ValueError, TypeError, KeyError):
        return {}
    states = slurm_states([j["slurm_id"] for j in jobs.values()])
    for job in jobs.values():
        job["state"] = states.get(job["slurm_id"])
    return jobs


def slurm_states(ids: list[str]) -> dict[str, str]:
    """{job id: state in lower case} of the jobs squeue lists ({} without Slurm)."""
    if not ids:
        return {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(ids)],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    pairs = (line.split() for line in out.splitlines())
    return {p[0]: p[1].lower() for p in pairs if len(p) == 2}


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(
    rows: list[dict[str, Any]], keys: list[str], common: dict[str, str], title: str
) -> str:
    cols = ["job", *keys, *FIXED[1:]]
    shared = ", ".join(f"`{k}={v}`" for k, v in common.items()) or "none"
    lines = [
        f"# {title}",
        "",
        f"{len(rows)} jobs, best test accuracy first. Overrides every job shares: {shared}.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(path: Path, rows: list[dict[str, Any]], keys: list[str], title: str) -> None:
    """Test accuracy against weight count, one labelled point per finished job (that has both
    numbers)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 6))
    done = [
        r
        for r in rows
        if r["status"] == "ok" and finite(r.get("weights")) and finite(r.get("test_accuracy"))
    ]
    ax.scatter(
        [r["weights"] for r in done],
        [r["test_accuracy"] for r in done],
        color="C0",
        label="finished job",
    )
    for r in done:
        label = ", ".join(f"{k.split('.')[-1]}={r[k]}" for k in keys)
        ax.annotate(
            label,
            (r["weights"], r["test_accuracy"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("learnable weights (log scale)")
    ax.set_ylabel("test accuracy (fraction)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def summarize(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Write sweep_summary.csv, sweep_summary.md and sweep.png into ``sweep_dir``."""
    sweep_dir = Path(sweep_dir)
    rows, keys, common = collect(sweep_dir)
    title = f"sweep {sweep_dir.name}"
    write_csv(sweep_dir / "sweep_summary.csv", rows, ["job", *keys, *FIXED[1:]])
    write_text(sweep_dir / "sweep_summary.md", markdown(rows, keys, common, title))
    plot(sweep_dir / "sweep.png", rows, keys, title)
    return rows


class SweepSummaryCallback(Callback):
    """Hydra callback: summarise the sweep directory when a multirun ends; exit code 8 if not
    every job ended ok."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = summarize(sweep_dir)
        print(f"sweep summary ({len(rows)} jobs): {sweep_dir / 'sweep_summary.md'}")
        not_ok = Counter(r["status"] for r in rows if r["status"] != "ok")
        if not_ok:
            counts = ", ".join(f"{n} {status}" for status, n in not_ok.items())
            print(f"not every job ended ok ({counts}): see the reasons in that summary")
            raise SystemExit(exits.SOME_JOBS_FAILED)
