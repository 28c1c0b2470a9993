"""The runs a report reads: each run directory's summary, metrics and diagnostics, its
settings and seed, and which runs count (one per setting and seed)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..config import unread
from ..diagnostics import COLUMNS as DIAGNOSTICS
from ..document import Block
from ..groups import SEED, TEST_SET
from ..results import METRICS, flat, read_summary, run_dirs, setting_text
from ..rundir import identity
from ..stats import estimate

# Config keys that change how a run is saved, spread over cores or where its data is read from,
# not what it trains (up to the order of sums), beyond those that rundir.identity leaves out:
# runs that differ only in these are the same setting.
INERT = ("train.threads", "train.micro_batch", "train.save_model", "diagnostics.", "data.root",
         "data.download", "data.url")  # fmt: skip
# data.root is where a named set's files are read from, but with data=folder it is the data.
THE_DATA = {"folder": "data.root"}


@dataclass
class Run:
    """One run directory's results."""

    path: Path
    summary: dict[str, Any]
    metrics: list[dict[str, float]] = field(default_factory=list)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # why a CSV of the run was left out
    name: str = ""  # what the report calls it: its folder, with parents where they tell apart

    @property
    def model_cfg(self) -> dict[str, Any]:
        return self.summary.get("config", {}).get("model", {})

    @cached_property
    def config(self) -> dict[str, Any]:
        """The run's config as dotted keys (``model.filter_size``, ``optimizer.lr``), but
        those that do not make a run what it is (rundir.identity)."""
        return flat(identity(self.summary.get("config") or {}))

    @property
    def settings(self) -> dict[str, Any]:
        """What the run trained: its config but the seed, the INERT keys (THE_DATA's key kept
        where it names the data itself) and the keys its choices do not read (an MLP's
        filter_size: config.unread)."""
        data = THE_DATA.get(self.config.get("data.name"))
        unread_keys = unread(self.config)
        return {
            k: v
            for k, v in self.config.items()
            if k != SEED and (k == data or not k.startswith(INERT)) and k not in unread_keys
        }

    @property
    def test_set(self) -> tuple[tuple[str, str], ...]:
        """Its settings (of TEST_SET, those it reads) that say which images it was tested on."""
        return tuple((k, setting_text(self.settings[k])) for k in TEST_SET if k in self.settings)

    @property
    def seed(self) -> Any:
        return self.config.get(SEED, self.summary.get("seed"))

    @property
    def conv_layers(self) -> int:
        return sum(
            1 for layer in self.summary.get("layers", []) if layer["layer"].startswith("Conv")
        )

    @property
    def block_kind(self) -> str:
        """The layer each block of the model is built around: Conv, or Dense in a model
        without convolutions (an MLP)."""
        return "Conv" if self.conv_layers else "Dense"

    @property
    def depth(self) -> int:
        """How many layers of ``block_kind`` the model has."""
        layers = self.summary.get("layers", [])
        return sum(1 for layer in layers if layer["layer"].startswith(self.block_kind))

    @property
    def label(self) -> str:
        kind = "conv" if self.block_kind == "Conv" else "dense"
        return f"{self.model_cfg.get('activation', '?')}, {self.depth} {kind} layers"


def _read_csv(path: Path, columns: tuple[str, ...], text: tuple[str, ...] = ()) -> list[dict]:
    """The rows of a run's CSV with ``columns``, numbers as floats (empty cells None, the
    ``text`` columns as they are); [] if there is none. ValueError, naming the file and line,
    if it is damaged: not text, a column missing, a row cut short or too long, a number
    unreadable."""
    if not path.is_file():
        return []
    rows: list[dict] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        try:
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"no column {', '.join(missing)}")
            for row in reader:
                if None in row or None in row.values():
                    raise ValueError(f"line {reader.line_num}: {len(columns)} fields expected")
                try:
                    rows.append({k: v if k in text else _number(v) for k, v in row.items()})
                except ValueError as exc:
                    raise ValueError(f"line {reader.line_num}: {exc}") from None
        except csv.Error as exc:  # raised while reading the line after line_num
            raise ValueError(f"{path}: line {reader.line_num + 1}: {exc}") from None
        except ValueError as exc:  # UnicodeDecodeError too
            raise ValueError(f"{path}: {exc}") from None
    return rows


def _number(value: str) -> float | None:
    return float(value) if value != "" else None


def collect(paths: list[Path]) -> list[Run]:
    """The runs in ``paths``: each a run directory, or a sweep directory holding them; a run
    named twice (a sweep and one of its jobs, say) counts once. A damaged CSV is left out of
    its run, and the run says why (``damaged``)."""
    runs, seen = [], set()
    for path in paths:
        for run_dir in run_dirs(path):
            summary = read_summary(run_dir)
            if summary is None or run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            run = Run(run_dir, summary)
            for name, columns, text in (
                ("metrics", METRICS, ()),
                ("diagnostics", tuple(DIAGNOSTICS), ("layer", "kind")),
            ):
                try:
                    setattr(run, name, _read_csv(run_dir / f"{name}.csv", columns, text))
                except (OSError, ValueError) as exc:
                    run.damaged.append(str(exc))
            runs.append(run)
    _name(runs)
    return runs


def _name(runs: list[Run]) -> None:
    """Name each run by its folder's name, with as many of the folders above it as it takes
    to tell the runs apart (job 0 of two sweeps: ``<sweep>/0``)."""
    parts = [run.path.parts for run in runs]
    depth = 1
    while len({p[-depth:] for p in parts}) < len(parts) and depth < max(map(len, parts)):
        depth += 1
    for run, p in zip(runs, parts):
        run.name = "/".join(p[-depth:])


def distinct(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(runs, repeats): of runs with the same settings and seed, which train the same network
    (a sweep run twice, say), one is kept: the newest finished one, else the newest. Counted
    as separate seeds, repeats would narrow every interval without adding information."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        same = [run.settings, run.seed]
        key = json.dumps(same, sort_keys=True, default=str) if run.settings else str(run.path)
        groups[key].append(run)
    kept, repeats = [], []
    for group in groups.values():
        best = max(group, key=lambda r: (r.summary.get("status") == "ok", _mtime(r.path)))
        kept.append(best)
        repeats += [r for r in group if r is not best]
    return [r for r in runs if r in kept], repeats


def _mtime(run_dir: Path) -> float:
    try:
        return (run_dir / "summary.json").stat().st_mtime
    except OSError:
        return 0.0


def per_test_set(runs: list[Run], answer: Callable[[list[Run], str], list[Block]]) -> list[Block]:
    """``answer(runs, "")``, or where the runs were tested on several test sets, a paragraph
    saying so and ``answer(group, "_<n>")`` for the runs of each, under a heading naming it (the
    suffix keeps each answer's figure files apart)."""
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.test_set].append(run)
    if len(groups) < 2:
        return answer(runs, "")
    # what tells the test sets apart: a key read by some only (data.positive) follows another
    sets = [dict(test_set) for test_set in groups]
    differ = [k for k in TEST_SET if len({s[k] for s in sets if k in s}) > 1]
    blocks: list[Block] = [
        (
            "p",
            f"These runs were tested on {len(groups)} different test sets ({', '.join(differ)} "
            f"{'differs' if len(differ) == 1 else 'differ'}): numbers from other images do not "
            "compare, so the runs of each test set are compared among themselves.",
        )
    ]
    for number, (test_set, group) in enumerate(groups.items(), 1):
        named = ", ".join(f"{k}={v}" for k, v in test_set if k in differ)
        blocks.append(("h3", f"Tested on {named}"))
        blocks += answer(group, f"_{number}")
    return blocks


def accuracy_text(runs: list[Run], column: str = "test_accuracy") -> str:
    """``0.842 ± 0.010 (95% interval, 3 seeds)``, or the one run's accuracy (``column`` of
    their summaries)."""
    e = estimate([r.summary[column] for r in runs])
    if e.n < 2:
        return f"{e.mean:.3f} (one run)"
    return f"{e.mean:.3f} ± {e.half_width:.3f} (95% interval, {e.n} seeds)"
