"""The commands' standard output and error when whatever reads them goes away.

``python -m gpucnn.predict RUN *.png | head`` closes the pipe after ten lines, and the next
write raises BrokenPipeError: in a print, a traceback; in a log line, a traceback from every
log call after it, while a training run goes on. Each command's output streams are wrapped so
that from the first broken write on what they print is dropped (the stream is pointed at
/dev/null) and the command carries on: a run keeps training and logging to its run.log, and
ends as it would have.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO


class _Unbreakable:
    """A text stream whose writes and flushes go to /dev/null once its reader has gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        """Point the stream's file descriptor at /dev/null: what it still buffers and writes
        later (the interpreter's flush at exit included) is dropped without an error."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def survive_closed_output() -> None:
    """Wrap sys.stdout and sys.stderr (once) so that a reader going away drops the output
    instead of raising BrokenPipeError, and point the log handlers made before at the wrapped
    streams (in a launcher's worker process, Hydra sets up a job's logging before the job)."""
    wrapped = {}
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _Unbreakable):
            wrapped[id(stream)] = _Unbreakable(stream)
            setattr(sys, name, wrapped[id(stream)])
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and id(handler.stream) in wrapped:
            handler.setStream(wrapped[id(handler.stream)])
