"""SIGTERM handled as Ctrl-C is, while a search runs.

``kill PID`` (SIGTERM, what ``timeout``, systemd, Slurm and ``docker stop`` send) used to end a
search at once with status 143 and no message, its running trial left RUNNING until the next
run. Inside :func:`sigterm_as_interrupt` it raises :class:`Terminated`, a ``KeyboardInterrupt``,
so the trial loop stores the running trial as *interrupted* (retried on resume) and the run stops
with every completed trial kept, as after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Terminated", "sigterm_as_interrupt", "stopped_by"]


class Terminated(KeyboardInterrupt):
    """A search stopped by a signal (``signal_name``: ``"SIGTERM"``), handled as Ctrl-C is."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


def stopped_by(exc: BaseException) -> str:
    """What stopped a run, for messages: ``"SIGTERM"`` for :class:`Terminated`, else ``"Ctrl-C"``."""
    return exc.signal_name if isinstance(exc, Terminated) else "Ctrl-C"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, the first SIGTERM raises :class:`Terminated` in the main thread (later ones, while
    the run stores what it has, are ignored); the previous handler is restored on the way out. Off
    the main thread (where Python cannot set handlers) or without SIGTERM it does nothing."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    fired = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
