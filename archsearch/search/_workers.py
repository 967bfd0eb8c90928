"""Optuna workers on PostgreSQL: each ``archsearch worker`` (or ``archsearch search`` on a
``postgresql://`` storage) runs the trial loop of :mod:`._loop` as one of the study's workers.

The budget counts every worker's evaluations; a candidate claims a budget slot before it is
evaluated, and dead workers are found by heartbeats (:mod:`._shared` has the rules).
"""

from __future__ import annotations

from ..cost import LatencyCache
from ._backend import Backend, SearchProgress, SearchSummary
from ._experiment import Experiment
from ._loop import run_loop
from ._shared import Heartbeats
from ._storage import fresh_storage

__all__ = ["WorkersBackend"]


class WorkersBackend(Backend):
    """One worker of a study shared on PostgreSQL (``backend: {storage: postgresql://...}``)."""

    kind = "workers"

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
        """``heartbeats`` (default :class:`~._shared.Heartbeats`) sets how a dead worker's trial is
        found and retried; ``fresh`` is refused (a database study is never moved aside)."""
        if fresh:
            fresh_storage(experiment)  # raises: nothing stored in a database is deleted
        return run_loop(
            experiment,
            budget=trials or experiment.trials,
            resume_only=resume_only,
            progress=progress,
            latency_cache=latency_cache,
            heartbeats=heartbeats or Heartbeats(),
        )
