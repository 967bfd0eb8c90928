"""The embedded backend: an Optuna study in this process, on a file storage by default.

One process owns the study: trials a dead run left RUNNING are failed as interrupted and retried
when it resumes. The trial loop itself is :mod:`._loop`; the rules of a trial, :mod:`._ledger`.
"""

from __future__ import annotations

from ..cost import LatencyCache
from ._backend import Backend, SearchProgress, SearchSummary
from ._experiment import Experiment
from ._loop import run_loop
from ._shared import Heartbeats
from ._storage import fresh_storage

__all__ = ["InProcessBackend"]


class InProcessBackend(Backend):
    """Optuna in this process (``backend: {kind: optuna}`` on a file or SQLite storage)."""

    kind = "optuna"

    def run(
        self,
        experiment: Experiment,
        *,
        trials: int | None = None,
        fresh: bool = False,
        resume_only: bool = False,
        progress: SearchProgress | None = None,
        latency_cache: LatencyCache | None = None,
        heartbeats: Heartbeats | None = None,
    ) -> SearchSummary:
        if fresh:
            fresh_storage(experiment, progress.note if progress else None)
        return run_loop(
            experiment,
            budget=trials or experiment.trials,
            resume_only=resume_only,
            progress=progress,
            latency_cache=latency_cache,
            heartbeats=None,
        )
