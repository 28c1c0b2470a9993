"""The exit codes of ``python -m gpucnn.run`` (the README's "When things go wrong" lists them
with what each failure leaves behind)."""

import errno
import re
import sys
from collections.abc import Callable
from typing import Any

OK = 0
BUG = 1  # an unexpected error: a traceback, to be reported
INVALID_CONFIG = 2  # a setting, architecture or backend that cannot work here
DIVERGED = 3  # the training loss became NaN or infinite
OUT_OF_MEMORY = 4  # ran out of memory, or would have (refused up front)
DATA_ERROR = 5  # data missing, unreadable or not what it claims to be
RUN_DIR_REFUSED = 6  # the run directory is in use, holds another run's results or no usable
# checkpoint
FILE_SYSTEM = 7  # a full disk, or a folder that is read-only or not ours
SOME_JOBS_FAILED = 8  # a sweep ran to its end, but not every job ended ok
SIGNAL_BASE = 128  # + the signal's number: interrupted (SIGINT, SIGTERM, SIGHUP)

FILE_SYSTEM_ERROR = "file system error"  # the word FILE_SYSTEM's line starts with
_ELSEWHERE = "or point hydra.run.dir (hydra.sweep.dir) at another folder"
# The OSErrors that are the storage's, not a bug: errno -> what to do
STORAGE_HINTS = {
    **dict.fromkeys((errno.ENOSPC, errno.EDQUOT), f"free some space, {_ELSEWHERE}"),
    **dict.fromkeys((errno.EROFS, errno.EACCES, errno.EPERM), f"fix the permissions, {_ELSEWHERE}"),
    **dict.fromkeys(
        (errno.EISDIR, errno.ENOTDIR, errno.EEXIST),
        f"a file and a folder are in each other's way: move the one in the way, {_ELSEWHERE}",
    ),
}


def storage_message(exc: OSError) -> str:
    """What went wrong, on which file, and what to do, for an OSError whose errno is in
    STORAGE_HINTS."""
    path = exc.filename2 or exc.filename  # a rename's target is what is in the way
    where = f": {path}" if path else ""
    return f"{exc.strerror}{where}: {STORAGE_HINTS[exc.errno]}"


def run_hydra(
    main: Callable[[], Any], check: Callable[[list[str]], str | None] | None = None
) -> None:
    """``main()``, a Hydra app, but exit code INVALID_CONFIG where Hydra exits with its 1
    because it cannot compose the command line's config: an unknown key, a value of the wrong
    type, a config group option that does not exist (Hydra prints which); and FILE_SYSTEM,
    with one line, where a full disk or read-only folder failed Hydra's own writes (a job's
    .hydra/ files). Its 1 for anything else, a bug in a job included, stays. Before Hydra reads
    the command line, ``check(argv)`` and ``unexpanded_home`` may refuse it: the reason in one
    line, and INVALID_CONFIG; and an override Hydra could not apply (from a preset) gets the
    reason ``check`` gives for it. Output whose reader goes away is dropped
    (console.survive_closed_output)."""
    from hydra.errors import ConfigCompositionException, OverrideParseException

    from .console import survive_closed_output

    survive_closed_output()
    argv = sys.argv[1:]
    for why in (check(argv) if check else None, unexpanded_home(argv)):
        if why:
            print(f"error: {why}", file=sys.stderr)
            raise SystemExit(INVALID_CONFIG)
    try:
        main()
    except SystemExit as exc:  # Hydra exits while handling the error: it is the context
        failed = exc.__context__
        if exc.code == BUG and isinstance(failed, OSError) and failed.errno in STORAGE_HINTS:
            # Hydra's own writes (a job's .hydra/ files) on a full disk: no bug to report
            print(f"error: {FILE_SYSTEM_ERROR}: {storage_message(failed)}", file=sys.stderr)
            raise SystemExit(FILE_SYSTEM) from None
        composing = (ConfigCompositionException, OverrideParseException)
        if exc.code == BUG and isinstance(failed, composing):
            # An override Hydra could not apply that the check would have refused (one in a
            # preset's sweep): Hydra's last words suggest +key, so the check's reason follows.
            key = re.match(r"Could not override '([^']+)'", str(failed))
            why = check([f"{key[1]}=0"]) if check and key else None
            if why:
                print(f"error: {why}", file=sys.stderr)
            raise SystemExit(INVALID_CONFIG) from None
        raise


def unexpanded_home(argv: list[str]) -> str | None:
    """Why the command line cannot be read as meant, or None: a home folder written ``~``
    after ``key=``, which the shell leaves as it is (``key`` is no variable name) and Hydra's
    override parser cannot read."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if value == "~" or value.startswith("~/"):
            return (
                f"{arg}: the shell leaves ~ as it is after {key}= (not a variable name): "
                f"write {key}=$HOME{value[1:]}, or quote it: '{key}=\"{value}\"'"
            )
    return None
