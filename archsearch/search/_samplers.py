"""The samplers an experiment may name, and the view of the study they learn from.

``sampler.kind`` (:class:`~._experiment.Sampler`):

* ``gp`` -- Optuna's ``GPSampler`` (Gaussian-process Bayesian optimisation; log expected
  hypervolume improvement with several objectives), with the space's limits as constraints;
* ``evolution`` -- regularized (aging) evolution, Real et al. 2019 (:mod:`._evolution`);
* ``nsga2`` -- Optuna's ``NSGAIISampler`` (Deb et al. 2002), with the space's limits as constraints;
* ``tpe`` -- Optuna's multivariate ``TPESampler``, with the space's limits as constraints;
* ``random`` -- uniform draws;
* ``auto`` (the default) -- the one ``benchmarks/search_quality.py`` ranks best for the space's
  size, the budget and the evaluator (:func:`auto_kind`).

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

__all__ = [
    "BENCHMARK_RANKING",
    "CHEAP_EVALUATORS",
    "GP_MAX_BUDGET",
    "LARGE_SPACE",
    "SAMPLER_KINDS",
    "SMALL_SPACE",
    "LedgerSampler",
    "auto_kind",
    "benchmark_problem",
    "gp_pays",
    "sampler_for",
    "sampler_kind",
]

#: Every ``sampler.kind`` (``auto`` picks one of the others).
SAMPLER_KINDS = ("auto", "gp", "evolution", "nsga2", "tpe", "random")


#: The samplers of each problem of ``benchmarks/search_quality.py``, best first, by the median
#: hypervolume over seeds 0-4 at 100 evaluations (the order at 50 has the same first):
#: ``benchmarks/results/search_quality.{md,json}``, README "Samplers" (random search at 100 too).
#: ``tests/test_samplers.py`` reads the stored results and checks this table against them.
BENCHMARK_RANKING: dict[str, tuple[str, ...]] = {
    "cvt13": ("gp", "tpe", "evolution", "nsga2", "random"),
    "hybrid_small": ("gp", "nsga2", "tpe", "random", "evolution"),
    "hybrid_stages": ("gp", "tpe", "nsga2", "evolution", "random"),
}

#: Spaces below this many members are of ``hybrid_small``'s kind (1.3e6 members), those from it
#: below :data:`LARGE_SPACE` of ``hybrid_stages``'s (2.6e6), larger ones of ``cvt13``'s (6.7e7).
SMALL_SPACE = 2 * 10**6

#: See :data:`SMALL_SPACE`.
LARGE_SPACE = 10**7

#: Evaluators whose evaluation costs less than a GP proposal: a member's inherited accuracy
#: (``supernet``: a BatchNorm recalibration and one validation pass) took a median 0.34 s of CPU
#: on hybrid_small (8 random members, 0.19-3.1 s), against GP's 1.3 s per proposal at 100 trials.
CHEAP_EVALUATORS = ("supernet",)

#: The largest budget ``auto`` gives GP (see :func:`auto_kind`).
GP_MAX_BUDGET = 500


def benchmark_problem(space_size: float, evaluator: str = "train") -> str:
    """The problem of ``benchmarks/search_quality.py`` that a search is of the kind of:
    ``hybrid_small`` (the one-shot problem) for a ``supernet`` evaluator or a space of fewer than
    :data:`SMALL_SPACE` members, else ``hybrid_stages`` below :data:`LARGE_SPACE` members, else
    ``cvt13``."""
    if evaluator == "supernet" or space_size < SMALL_SPACE:
        return "hybrid_small"
    return "hybrid_stages" if space_size < LARGE_SPACE else "cvt13"


def gp_pays(budget: int, evaluator: str) -> bool:
    """Whether GP's overhead stays below the evaluations it saves (see :func:`auto_kind`)."""
    return evaluator not in CHEAP_EVALUATORS and budget <= GP_MAX_BUDGET


def auto_kind(space_size: float, budget: int, objectives: int, *, evaluator: str = "train") -> str:
    """The sampler ``auto`` runs for a space of ``space_size`` members searched with ``budget``
    evaluations of ``objectives`` objectives by an ``evaluator`` of that kind (``train``,
    ``zero_cost``, ``supernet``).

    The rule, from the figures of ``benchmarks/search_quality.py`` (two objectives; medians of the
    hypervolume over five seeds; README, "Samplers"):

    1. ``budget >= space_size``: ``random`` (every member is evaluated once whatever the order:
       duplicates are redrawn, so there is nothing to model).
    2. Otherwise ``gp``, first on every problem (medians at 50 and at 100 evaluations: cvt13
       4.44e10 and 4.61e10, TPE next with 3.87e10 and 4.09e10, GP at 50 beating every other sampler
       at 100; hybrid_stages 1.226e10 and 1.226e10, TPE 1.224e10 and 1.225e10; hybrid_small
       2.452e7 and 2.452e7, NSGA-II 2.428e7 and 2.451e7), where it pays (:func:`gp_pays`).
    3. Where it does not, the next of :data:`BENCHMARK_RANKING` for the benchmark problem of the
       search's kind (:func:`benchmark_problem`): ``nsga2`` for spaces under 2e6 members and
       one-shot searches (hybrid_small), ``tpe`` for larger spaces (cvt13, hybrid_stages).

    GP does not pay where it costs more than the evaluations it saves: the others reach its
    hypervolume at N only at 2N or later (cvt13, hybrid_stages), so GP pays while its overhead per
    proposal stays below one evaluation. Optuna's GPSampler (default settings) took 1.3 s of CPU
    per proposal after 100 trials, 2.0 s after 300 and 12.8 s after 1000 (hybrid_small's space;
    median of 3, measured under load), growing with the trials (its kernel fit is cubic in them):
    more than a one-shot evaluation (:data:`CHEAP_EVALUATORS`) from the start, and beyond
    :data:`GP_MAX_BUDGET` evaluations about a short proxy training (the quickstart's trials: about
    6 s each, 20 in 2 minutes).

    ``objectives`` is not read: every problem of the benchmark has two; the rule is the same for
    one or three.
    """
    if space_size <= budget:
        return "random"
    ranking = BENCHMARK_RANKING[benchmark_problem(space_size, evaluator)]
    pays = gp_pays(budget, evaluator)
    return next(kind for kind in ranking if kind != "gp" or pays)


def sampler_kind(experiment: Experiment) -> str:
    """The sampler the experiment runs: ``sampler.kind``, with ``auto`` resolved by
    :func:`auto_kind` from its space (read from its file), budget and evaluator."""
    kind: str = experiment.sampler.kind
    if kind != "auto":
        return kind
    return _resolve_auto(experiment, _space_facts(experiment)[1])


def _resolve_auto(experiment: Experiment, size: float) -> str:
    return auto_kind(size, experiment.trials, len(experiment.objectives), evaluator=experiment.evaluator.kind)


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

    def make(constraints: Callable[[FrozenTrial], Sequence[float]] | None, size: float) -> BaseSampler:
        kind: str = cfg.kind
        if kind == "auto":
            kind = _resolve_auto(experiment, size)
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
