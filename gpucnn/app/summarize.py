"""``python -m gpucnn.summarize <sweep dir> [...]``: summarise a sweep now (interrupted or running).

Writes sweep_summary.csv, sweep_summary.md and sweep.png into each directory, as the end of a
multirun does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .sweep import summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpucnn.summarize", description=__doc__)
    parser.add_argument("sweep_dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            print(f"error: {sweep_dir} is not a directory", file=sys.stderr)
            return 2
        rows = summarize(sweep_dir)
        print(f"{sweep_dir}: {len(rows)} jobs -> {sweep_dir / 'sweep_summary.md'}")
    return 0
