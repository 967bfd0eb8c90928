"""The ``archsearch`` command line: ``app`` (typer) and ``main``.

The commands live in :mod:`._spec` (validate, compile, zoo, profile, schema, report),
:mod:`._search` (space, search, worker, trials), :mod:`._export` (export), :mod:`._latency`
(latency-table), :mod:`._oneshot` (supernet) and :mod:`._train` (train); each registers on
the one app of :mod:`._app`.
"""

from __future__ import annotations

import sys

from . import _export, _latency, _oneshot, _search, _spec, _train  # noqa: F401  (register their commands)
from ._app import app, err, out

__all__ = ["app", "err", "main", "out"]


def main() -> None:
    """The console script: run the app; Ctrl-C ends with status 130."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        err.print("interrupted")
        sys.exit(130)
