"""The entry point of the Ray backend (``backend: {kind: ray}``); Ray itself is imported lazily.

The work is in :mod:`archsearch.search._ray_tune` (the searcher, the trainable, the latency
actor) and :mod:`archsearch.search._pareto_asha` (the multi-objective ASHA), which import Ray.
"""

from __future__ import annotations

from typing import Any

from ._experiment import Experiment
from ._optuna import SearchError, SearchProgress, SearchSummary

__all__ = ["run_ray_search"]


def _import_ray() -> Any:
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError as exc:
        raise SearchError(
            "backend kind 'ray' needs Ray Tune, which is not installed: "
            "pip install 'archsearch[ray]' (or 'ray[tune]>=2.9')"
        ) from exc
    return ray


def run_ray_search(
    experiment: Experiment,
    *,
    trials: int | None = None,
    fresh: bool = False,
    resume_only: bool = False,
    progress: SearchProgress | None = None,
) -> SearchSummary:
    """Run (or resume) the experiment's search on Ray Tune until ``trials`` are evaluated."""
    _import_ray()
    from ._ray_tune import run

    return run(experiment, trials=trials, fresh=fresh, resume_only=resume_only, progress=progress)
