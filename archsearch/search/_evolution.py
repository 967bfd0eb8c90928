"""Regularized (aging) evolution as an Optuna sampler.

Real, Aggarwal, Huang and Le, "Regularized Evolution for Image Classifier Architecture Search"
(AAAI 2019), algorithm 1: the first ``population_size`` members are drawn at random; after that
each new member is a mutation of the winner of a tournament among ``sample_size`` members drawn
from the population, and the population is the ``population_size`` *most recent* evaluated members
(the oldest dies, whatever its fitness: aging). Here:

* **Several objectives**: the tournament's winner has the lowest non-dominated rank within the
  population, ties broken by the largest crowding distance (NSGA-II's order, Deb et al. 2002;
  :func:`archsearch.pareto.non_dominated_sort`, :func:`archsearch.pareto.crowding_distance`). One
  objective is the same order by its value.
* **Mutations** copy the parent and draw one of its parameters anew, to another value
  (:mod:`._mutate`): one block of a per-block choice, one nested option, and the draws a changed
  choice opens (a conditional branch, a deeper stage's blocks) at random.
* **Members** are the trials with outcome ``complete``: duplicates, rejected candidates (never
  evaluated: the constraints are respected by the ledger's check) and failed trials take no place.
* **Seeds**: every choice of a trial is drawn from a generator seeded by ``(seed, trial number)``,
  so the same seed suggests the same sequence, and a resumed study continues it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from ..pareto import crowding_distance, non_dominated_sort
from ._mutate import draw

__all__ = ["EvolutionSampler"]

_PARENT = "evolution:parent"


class _Plan:
    """What one trial draws: a parent's parameters with one name to flip, or nothing (random)."""

    def __init__(self, rng: np.random.Generator, parent: dict[str, Any] | None, flip: str | None):
        self.rng, self.parent, self.flip = rng, parent, flip


class EvolutionSampler(BaseSampler):
    """Regularized evolution (see the module docstring).

    Args:
        population_size: members alive at once (the first ``population_size`` are random), >= 2.
        sample_size: members in a tournament, ``2 <= sample_size <= population_size``.
        seed: seeds every draw together with the trial's number.

    Raises:
        ValueError: sizes out of range."""

    def __init__(self, *, population_size: int = 20, sample_size: int = 5, seed: int | None = None):
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError(
                "`2 <= population_size` and `1 <= sample_size <= population_size` must hold, but got "
                f"population_size={population_size}, sample_size={sample_size}"
            )
        self.population_size, self.sample_size = population_size, sample_size
        self.seed = 0 if seed is None else int(seed)
        self._plans: dict[int, _Plan] = {}

    def reseed_rng(self) -> None:
        """Nothing to do: every trial's generator is seeded by the seed and its number."""

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def population(self, study: Study) -> list[FrozenTrial]:
        """The members alive: the ``population_size`` most recent complete trials."""
        trials = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
        members = [
            t
            for t in trials
            if t.values is not None and t.user_attrs.get("outcome", "complete") == "complete"
        ]
        return sorted(members, key=lambda t: t.number)[-self.population_size :]

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        rng = np.random.default_rng([self.seed, trial.number])
        alive = self.population(study)
        if len(alive) < self.population_size:
            self._plans[trial._trial_id] = _Plan(rng, None, None)
            return
        parent = self._tournament(alive, [d.name.lower() for d in study.directions], rng)
        names = sorted(parent.params)
        flip = names[int(rng.integers(len(names)))] if names else None
        self._plans[trial._trial_id] = _Plan(rng, dict(parent.params), flip)
        study._storage.set_trial_system_attr(trial._trial_id, _PARENT, parent.number)

    def _tournament(
        self, alive: list[FrozenTrial], directions: Sequence[str], rng: np.random.Generator
    ) -> FrozenTrial:
        values = np.asarray([t.values for t in alive], dtype=float)
        ranks = non_dominated_sort(values, directions)  # type: ignore[arg-type]
        crowding = crowding_distance(values, directions, ranks)  # type: ignore[arg-type]
        picked = rng.choice(len(alive), size=min(self.sample_size, len(alive)), replace=False)
        best = min(picked, key=lambda i: (ranks[i], -crowding[i], i))
        return alive[int(best)]

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        plan = self._plans.get(trial._trial_id)
        if plan is None:  # asked without before_trial (never by Optuna's ask): a seeded random draw
            plan = self._plans[trial._trial_id] = _Plan(
                np.random.default_rng([self.seed, trial.number]), None, None
            )
        parent = plan.parent
        if parent is not None and param_name in parent and param_name != plan.flip:
            value = parent[param_name]
            if param_distribution._contains(param_distribution.to_internal_repr(value)):
                return value
        avoid = parent.get(param_name) if parent is not None else None
        return draw(param_distribution, plan.rng, avoid=avoid)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._plans.pop(trial._trial_id, None)
