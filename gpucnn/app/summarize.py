"""``python -m gpucnn.summarize <sweep dir> [...] [--runs]``: summarise a sweep now (interrupted
or running).

Writes sweep_summary.csv / .md (one row per setting, its seeds grouped), sweep_runs.csv / .md
(one row per job) and sweep.png into each directory, as the end of a multirun does, and prints
the table of settings (with ``--runs``, the table of jobs), how far the sweep has got
(``sweep: 12 of 36 jobs done, about 6 min left``, as a running sweep says after each job) and
the best run's folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import command_parser, exits, progress
from .results import JOBS, cannot_write, no_runs, run_dirs
from .sweep import best_run, summarize, tables


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("summarize", __doc__)
    parser.add_argument("sweep_dirs", nargs="+", type=Path)
    parser.add_argument("--runs", action="store_true", help="print one row per job")
    args = parser.parse_args(argv)
    code = exits.OK
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            print(f"error: {sweep_dir} is not a directory", file=sys.stderr)
            return 2
        runs = run_dirs(sweep_dir)
        if runs == [sweep_dir]:  # a run: its files are its own
            print(
                f"error: {sweep_dir} is one run, not a sweep: give the sweep's directory "
                "(outputs/multiruns/<time>), or see the run's summary.json and metrics.csv",
                file=sys.stderr,
            )
            return 2
        if not (runs or (sweep_dir / JOBS).is_file()):
            print(f"error: {no_runs(sweep_dir, 'a sweep directory')}", file=sys.stderr)
            return 2
        table = "sweep_runs.md" if args.runs else "sweep_summary.md"
        try:
            rows = summarize(sweep_dir)
            text = (sweep_dir / table).read_text()
        except OSError as exc:  # a sweep folder that is not ours to write: show it anyway
            code = cannot_write(sweep_dir, exc, "; the table, not saved, is below")
            rows, *_, texts = tables(sweep_dir)
            text = texts[table]
        print(text)
        print(progress.of_sweep(sweep_dir))
        best = best_run(sweep_dir, rows)
        if best:
            print(f"best run: {best}")
    return code
