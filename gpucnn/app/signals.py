"""SIGINT, SIGTERM and SIGHUP during a job (SIGHUP: the terminal went away).

Before training starts there is nothing to save, and once it ends its last checkpoint is
written, so then a signal stops the job at once (Interrupted is raised where the program is,
saying which). While training, a signal only sets a flag that the trainer checks after every
step, so that it can finish the step and write a checkpoint first; a second SIGINT then stops
at once. Only the main thread can install handlers; elsewhere (a thread of a parallel
launcher) signals act as they always do.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import exits
from .console import survive_closed_output

log = logging.getLogger(__name__)

STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A stop signal arrived; ``checkpointed`` says whether a checkpoint was written first.

    Not an Exception, as KeyboardInterrupt is not: raised where the program happens to be, it
    must pass through code that catches Exception. OmegaConf, for one, re-raises what it
    catches as a new exception of the same type made from a message, which lost the signal.
    """

    def __init__(self, signum: int, checkpointed: bool = True, step_dropped: bool = False) -> None:
        name = signal.Signals(signum).name
        if step_dropped:  # a second signal, in the middle of a step
            kept = "the last checkpoint stays" if checkpointed else "no checkpoint was written yet"
            text = f"stopped by a second {name} in the middle of a step, which was dropped; {kept}"
        else:
            done = "a checkpoint was written" if checkpointed else "before training started"
            text = f"stopped by {name}; {done}"
        super().__init__(text)
        self.signum = signum
        # what to run next: a run stopped before its first checkpoint starts over either way
        self.next_step = (
            "resume with train.resume=true" if checkpointed else "nothing to resume yet"
        )


class Stops:
    """The stop signals of one job: raise at once, or (inside ``deferred``) remember them.
    ``checkpointed``: whether the job has written a checkpoint (the trainer sets it), which
    the message of a signal outside ``deferred`` tells (before training, or after it)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.checkpointed = False
        self._defer = False

    def handle(self, signum: int, frame: object) -> None:
        if not self._defer:
            raise Interrupted(signum, self.checkpointed)
        if self.received is not None and signum == signal.SIGINT:
            raise Interrupted(signum, self.checkpointed, step_dropped=True)
        self.received = signum
        log.warning("%s: stopping after this step", signal.Signals(signum).name)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block, a signal is only recorded in ``received``."""
        self._defer = True
        try:
            yield
        finally:
            self._defer = False


@contextmanager
def caught() -> Iterator[Stops]:
    """Install the stop-signal handlers for the block (main thread only); yields the Stops."""
    stops = Stops()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return
    previous = {s: signal.signal(s, stops.handle) for s in STOPS}
    try:
        yield stops
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def interruptible(main: Callable[[], int]) -> int:
    """``main()``'s exit code, or 130 and one line when Ctrl-C stops it (the commands that
    are not training runs: their files are written atomically, so none is left half-written).
    Output whose reader goes away is dropped (console.survive_closed_output)."""
    survive_closed_output()
    try:
        return main()
    except KeyboardInterrupt:
        print("interrupted (SIGINT): no file was left half-written", file=sys.stderr)
        return exits.SIGNAL_BASE + signal.SIGINT
