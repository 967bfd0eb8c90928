"""The Ray backend (``backend: {kind: ray}``); Ray itself is imported lazily.

The work is in :mod:`._ray_driver` (the Tuner), :mod:`._ray_searcher` (the searcher on the Optuna
study), :mod:`._ray_trainable` (the trainable and the latency actor) and :mod:`._pareto_asha` (the
multi-objective ASHA), which import Ray.
"""

from __future__ import annotations

from typing import Any

from ..cost import LatencyCache
from ..errors import SearchError
from ._backend import Backend, SearchProgress, SearchSummary
from ._experiment import Experiment
from ._shared import Heartbeats

__all__ = ["RayTuneBackend"]


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


class RayTuneBackend(Backend):
    """Ray Tune on a Ray cluster, or a local Ray (``backend: {kind: ray}``)."""

    kind = "ray"

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
        """Latency is timed by the search's latency actor, so ``latency_cache`` is not used;
        Ray retries dead trials itself, so ``heartbeats`` are not either."""
        _import_ray()
        from ._ray_driver import run

        return run(experiment, trials=trials, fresh=fresh, resume_only=resume_only, progress=progress)
