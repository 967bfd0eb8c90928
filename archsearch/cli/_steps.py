"""A transient progress line for commands that work in steps (``profile``, ``report``, ``export``)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.status import Status
from rich.text import Text

from ._app import err

__all__ = ["DELAY_S", "steps"]

#: Seconds a command runs before its progress line appears (quick commands show none).
DELAY_S = 1.0
#: Redraws per second: few, so the line costs next to nothing while latency is measured.
_REFRESH_HZ = 2.0


class _Line:
    """``LABEL: STEP (N s)``, drawn afresh at each refresh so the seconds move between steps."""

    def __init__(self, label: str):
        self.label, self.text, self.start = label, "starting", time.monotonic()

    def __rich__(self) -> Text:
        line = Text(f"{self.label}: {self.text} ")
        line.append(f"({time.monotonic() - self.start:.0f} s)", style="dim")
        return line


@contextlib.contextmanager
def steps(
    label: str, *, console: Console | None = None, delay: float = DELAY_S
) -> Iterator[Callable[[str], None]]:
    """Yield ``step(text)``: a spinner line ``LABEL: TEXT (N s)`` on stderr, shown only on a
    terminal and only once the block has run ``delay`` seconds, updated by each ``step`` call
    and erased when the block ends, so the command's own output (tables, ``--json``) is never
    mixed with it. Off a terminal (a pipe, a log file, CI) it prints nothing."""
    console = console or err
    line = _Line(label)
    status = Status(line, console=console, spinner="dots", refresh_per_second=_REFRESH_HZ)
    lock = threading.Lock()
    state = {"shown": False, "done": False}

    def show() -> None:
        with lock:
            if not state["done"] and console.is_terminal:
                state["shown"] = True
                status.start()

    def step(text: str) -> None:
        line.text = text

    timer = threading.Timer(delay, show)
    timer.daemon = True
    timer.start()
    try:
        yield step
    finally:
        timer.cancel()
        with lock:
            state["done"] = True
            if state["shown"]:
                status.stop()
