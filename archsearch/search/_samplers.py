"""The samplers an experiment may name, and the view of the study they learn from.

``sampler.kind`` (:class:`~._experiment.Sampler`):

* ``gp`` -- Optuna's ``GPSampler`` (Gaussian-process Bayesian optimisation; log expected
  hypervolume improvement with several objectives), with the space's limits as constraints;
* ``evolution`` -- regularized (aging) evolution, Real et al. 2019 (:mod:`._evolution`);
* ``nsga2`` -- Optuna's ``NSGAIISampler`` (Deb et al. 2002), with the space's limits as constraints;
* ``tpe`` -- Optuna's multivariate ``TPESampler``, with the space's limits as constraints;
* ``random`` -- uniform draws;
* ``auto`` -- one of those by the space's size and the budget (:func:`auto_kind`, from the ranking
  of ``benchmarks/search_quality.py``).

Every sampler is wrapped in :class:`LedgerSampler`, which shows it the study's trials as the trial
ledger says (:func:`~._ledger.sampler_trials`): a duplicate proposal as the values it repeats, a
candidate rejected over the space's limits as an infeasible trial. The limits reach Optuna as
``constraints_func`` values (``Constraints.values``: ``<= 0`` when met) that every checked
candidate carries (the ``constraints`` user attribute).
"""

from __future__ import annotations

import copy
import math
import warnings
import zlib
from collections.abc import Callable, Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from ..errors import SpecError
from ..space import load_space
from ._evolution import EvolutionSampler
from ._experiment import Experiment
from ._ledger import sampler_trials

__all__ = ["SAMPLER_KINDS", "LedgerSampler", "auto_kind", "sampler_for"]

#: Every ``sampler.kind`` (``auto`` picks one of the others).
SAMPLER_KINDS = ("auto", "gp", "evolution", "nsga2", "tpe", "random")


def auto_kind(space_size: float, budget: int, objectives: int) -> str:
    """The sampler ``auto`` runs for a space of ``space_size`` members searched with ``budget``
    evaluations and ``objectives`` objectives.

    ``benchmarks/search_quality.py`` ranks TPE first at 100 evaluations over its three problems
    (first on two, second on the third; spaces of 10^6 to 10^8 members, two objectives, one with
    limits that reject most of the space, every member's score measured; README, "Samplers"), so
    ``tpe``; where the budget covers the whole space
    there is nothing to model (every member is evaluated once whatever the order: duplicates are
    redrawn), so ``random``."""
    if space_size <= budget:
        return "random"
    return "tpe"


class _StudyView:
    """A study whose trials read as :func:`~._ledger.sampler_trials` shows them; everything else
    (storage, directions, system attributes) is the study's own."""

    def __init__(self, study: Study):
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=False, use_cache=use_cache)
        shown = sampler_trials(trials, [d.name.lower() for d in self._study.directions])
        if states is not None:
            shown = [t for t in shown if t.state in states]
        return copy.deepcopy(shown) if deepcopy else shown

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class LedgerSampler(BaseSampler):
    """An Optuna sampler made on first use by ``make(constraints_func, space_size)`` and shown
    the study through :class:`_StudyView` (see the module docstring).

    ``make`` receives the constraint function (None when the space sets no limits) and the space's
    size; ``limits`` says how many constraint values a trial carries and ``space_size`` how many
    members the space has (both read from the space on first use when not given)."""

    def __init__(
        self,
        make: Callable[[Callable[[FrozenTrial], Sequence[float]] | None, float], BaseSampler],
        experiment: Experiment,
    ):
        self._make, self._experiment = make, experiment
        self._inner: BaseSampler | None = None

    @property
    def inner(self) -> BaseSampler:
        """The wrapped sampler (made on first use)."""
        if self._inner is None:
            limits, size = _space_facts(self._experiment)
            func = None
            if limits:

                def func(t: FrozenTrial) -> Sequence[float]:
                    values = t.user_attrs.get("constraints")
                    return list(values) if values and len(values) == limits else [0.0] * limits

            with warnings.catch_warnings():  # constraints_func: "experimental" (TPE, Optuna 4),
                # "deprecated" (Optuna 5, for Trial.set_constraint, which Optuna 4 lacks)
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", FutureWarning)
                self._inner = self._make(func, size)
        return self._inner

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(_StudyView(study), trial)  # type: ignore[arg-type]

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(_StudyView(study), trial, search_space)  # type: ignore[arg-type]

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        view = _StudyView(study)
        return self.inner.sample_independent(view, trial, param_name, param_distribution)  # type: ignore[arg-type]

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(_StudyView(study), trial)  # type: ignore[arg-type]

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self.inner.after_trial(_StudyView(study), trial, state, values)  # type: ignore[arg-type]

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def _space_facts(experiment: Experiment) -> tuple[int, float]:
    """How many constraint values the experiment's space sets, and its size (0 and ``inf`` when
    the space cannot be read: a search has read it before it asks for a trial)."""
    override = {"input_size": experiment.input_size} if experiment.input_size else {}
    try:
        space = load_space(experiment.space_source(), **override)
    except (SpecError, OSError):
        return 0, math.inf
    limits = len(space.constraints.values(_ZERO_COSTS)) if space.constraints.limited else 0
    return limits, float(space.size())


class _ZeroCosts:
    macs = 0
    params = 0


_ZERO_COSTS: Any = _ZeroCosts()


def sampler_for(experiment: Experiment, worker: str | None = None) -> BaseSampler:
    """The experiment's sampler (see the module docstring); a ``worker``'s is seeded by the seed
    and its name, or every worker would suggest the same architectures in the random phases."""
    cfg = experiment.sampler
    seed = cfg.seed if worker is None else zlib.crc32(f"{cfg.seed}:{worker}".encode())
    objectives = len(experiment.objectives)

    def make(constraints: Callable[[FrozenTrial], Sequence[float]] | None, size: float) -> BaseSampler:
        kind: str = cfg.kind or ("nsga2" if objectives > 1 else "tpe")
        if kind == "auto":
            kind = auto_kind(size, experiment.trials, objectives)
        if kind == "gp":
            return optuna.samplers.GPSampler(
                seed=seed,
                n_startup_trials=cfg.startup_trials,
                constraints_func=constraints,
                warn_independent_sampling=False,
            )
        if kind == "evolution":
            population = cfg.population(kind)
            return EvolutionSampler(
                population_size=population, sample_size=min(cfg.sample_size, population), seed=seed
            )
        if kind == "nsga2":
            return optuna.samplers.NSGAIISampler(
                population_size=cfg.population(kind), seed=seed, constraints_func=constraints
            )
        if kind == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=cfg.startup_trials,
                multivariate=True,
                constraints_func=constraints,
            )
        return optuna.samplers.RandomSampler(seed=seed)

    return LedgerSampler(make, experiment)
