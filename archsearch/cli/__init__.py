"""The ``archsearch`` command line: ``app`` (typer) and ``main``.

The commands live in :mod:`._spec` (validate, compile, zoo, profile, schema, report),
:mod:`._search` (space, search, worker, trials), :mod:`._export` (export), :mod:`._latency`
(latency-table), :mod:`._oneshot` (supernet) and :mod:`._train` (train); each registers on
the one app of :mod:`._app`.
"""

from __future__ import annotations

import sys

from . import _export, _latency, _oneshot, _search, _space, _spec, _train  # noqa: F401  (register their commands)
from ._app import app, err, out

__all__ = ["app", "err", "main", "out"]


def main() -> None:
    """The console script: run the app; Ctrl-C ends with status 130, a SIGTERM a search turned into
    an interrupt (``archsearch.search.Terminated``) with 143."""
    try:
        app()
    except KeyboardInterrupt as exc:  # pragma: no cover
        by = getattr(exc, "signal_name", None)
        err.print(f"stopped by {by}" if by else "interrupted")
        sys.exit(143 if by == "SIGTERM" else 130)
