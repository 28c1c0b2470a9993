"""``python -m gpucnn.report <run or sweep dirs...> [--out DIR]``: the lab's three questions,
answered from the user's own runs.

1. ReLU or sigmoid in the conv blocks? Gradient norm by layer depth, loss and accuracy curves,
   sparsity and saturation, time per step, and a conclusion in words made from the numbers
   (needs runs with diagnostics.enabled=true, e.g. ``-m experiment=relu_vs_sigmoid``).
2. Which filter size, channels, pool size? The runs side by side, accuracy against weights,
   multiply-adds per image and seconds per epoch, the effect of each swept setting across the
   rest with its 95% interval (gpucnn.app.effects: a difference is claimed only when the
   interval excludes zero), and the best setting on average with its cost. Every config key
   that differs between the runs is a setting (INERT ones aside), so runs pair only when all
   the others agree.
3. How many parameters, CNN against the fully connected networks? Per-layer counts (and
   multiply-adds) computed from the models, and what weight sharing saves and costs.

Writes report.md with PNG figures beside it, and report.html with the figures embedded. A
module per question (activations, architecture, parameters), on the runs that runs.py reads.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from ...fileio import write_text
from .. import command_parser
from ..document import Block, to_html, to_markdown
from ..results import cannot_write, counted, no_runs, run_dirs
from . import activations, architecture, parameters
from .runs import Run, collect, distinct


def build(paths: list[Path], out: Path) -> Path:
    """Write the report for the runs under ``paths`` into ``out``; returns report.md's path."""
    runs, repeats = distinct(collect(paths))
    out.mkdir(parents=True, exist_ok=True)
    title = "What the runs say"
    sources = ", ".join(f"`{p}`" for p in paths)
    blocks: list[Block] = [("h1", title), ("p", f"{counted(len(runs), 'run')} from {sources}.")]
    damaged = "; ".join(why for run in runs for why in run.damaged)
    if damaged:
        why = f"Left out, damaged (rerun those runs, or restore the files): {damaged}."
        blocks.append(("p", why))
    unfinished = _unfinished(runs)
    if unfinished:
        blocks.append(("p", f"Left out, did not end ok: {unfinished}."))
    if repeats:
        again = ", ".join(f"`{r.path}`" for r in repeats)
        why = f"Left out, the same config and seed as a run kept (a repeat, no new seed): {again}."
        blocks.append(("p", why))
    blocks += activations.section(runs, out)
    blocks += architecture.section(runs, out)
    blocks += parameters.section(runs)
    write_text(out / "report.md", to_markdown(blocks))
    write_text(out / "report.html", to_html(blocks, out, title))
    return out / "report.md"


def _unfinished(runs: list[Run]) -> str:
    """The runs that did not end ``ok`` (none of the questions uses them), grouped by how they
    ended: "2 runs, invalid_config (the reason): `a`, `b`"."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        status = run.summary.get("status", "unknown")
        if status != "ok":
            reason = str(run.summary.get("reason", "")).partition("\n")[0]
            groups[f"{status} ({reason})" if reason else status].append(run)
    return "; ".join(
        f"{counted(len(group), 'run')}, {how}: {', '.join(f'`{r.path}`' for r in group)}"
        for how, group in groups.items()
    )


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("report", __doc__)
    parser.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories")
    parser.add_argument(
        "--out", type=Path, help="report directory (default outputs/reports/<time>)"
    )
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    empty = [folder for folder in args.dirs if not run_dirs(folder)]
    if empty:
        print(f"error: {no_runs(empty[0], 'run or sweep directories')}", file=sys.stderr)
        return 2
    out = args.out or Path("outputs/reports") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file, not a directory: name a new folder", file=sys.stderr)
        return 2
    if (out / "report.md").exists():
        print(f"error: {out} already holds a report: name a new --out folder", file=sys.stderr)
        return 2
    try:
        path = build(args.dirs, out)
    except OSError as exc:  # the folder cannot be made or written
        return cannot_write(out, exc, ", or name another folder with --out")
    print(f"report: {path} and {path.with_suffix('.html')}")
    return 0
