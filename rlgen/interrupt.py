"""SIGTERM as Ctrl-C: one handler for the command line and the benchmark runner."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM (``kill``, a scheduler's stop) raises KeyboardInterrupt in the main thread, as
    Ctrl-C does: a run stops where a resume can pick it up and says so, instead of dying without a word.
    Processes forked inside keep the default (they die at once); the old handler is back afterwards. Outside the
    main thread, where signals cannot be handled, the block runs unchanged."""
    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
