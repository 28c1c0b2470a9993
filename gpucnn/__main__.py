"""``python -m gpucnn``: the commands there are, each with what it does (from its docstring)."""

from __future__ import annotations

import ast
import shlex
import sys
from importlib.util import find_spec
from pathlib import Path

from . import __version__
from .app.console import survive_closed_output
from .app.exits import INVALID_CONFIG

COMMANDS = (
    "run",
    "lr_find",
    "describe",
    "bench",
    "evaluate",
    "predict",
    "visualize",
    "report",
    "summarize",
    "check",
)


def purpose(command: str) -> str:
    """The first line of the command module's docstring (read without importing it, so that
    the list is quick), as plain text."""
    source = Path(find_spec(f"gpucnn.{command}").origin).read_text(encoding="utf-8")
    return ast.get_docstring(ast.parse(source)).splitlines()[0].replace("``", "")


def main(argv: list[str]) -> int:
    if argv == ["--version"]:
        print(f"gpucnn {__version__}")
        return 0
    if argv and argv[0] not in ("-h", "--help"):  # a command's name and arguments, say
        name = argv[0] if argv[0] in COMMANDS else "COMMAND"
        line = shlex.join([f"gpucnn.{name}", *argv[1:]])
        commands = "" if name in COMMANDS else f" (a COMMAND: {', '.join(COMMANDS)})"
        print(
            f"error: python -m gpucnn takes no arguments: run python -m {line}{commands}",
            file=sys.stderr,
        )
        return INVALID_CONFIG
    print(f"gpucnn {__version__}: each command takes --help")
    for command in COMMANDS:
        print(f"  {purpose(command)}")
    return 0


if __name__ == "__main__":
    survive_closed_output()
    sys.exit(main(sys.argv[1:]))
