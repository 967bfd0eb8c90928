"""The samplers an experiment may name, and the view of the study they learn from.

``sampler.kind`` (:class:`~._experiment.Sampler`):

* ``gp`` -- Optuna's ``GPSampler`` (Gaussian-process Bayesian optimisation; log expected
  hypervolume improvement with several objectives), with the space's limits as constraints;
* ``evolution`` -- regularized (aging) evolution, Real et al. 2019 (:mod:`._evolution`);
* ``nsga2`` -- Optuna's ``NSGAIISampler`` (Deb et al. 2002), with the space's limits as constraints;
* ``tpe`` -- Optuna's multivariate ``TPESampler``, with the space's limits as constraints;
* ``random`` -- uniform draws;
* ``auto`` (the default) -- the one ``benchmarks/search_quality.py`` ranks best for the search's
  setting: its kind of space, its budget, and per trial or at equal wall time by the evaluator's
  cost (:func:`auto_kind`).

Every sampler is wrapped in :class:`LedgerSampler`, which shows it the study's trials as the trial
ledger says (:func:`~._ledger.sampler_trials`): a duplicate proposal as the values it repeats, a
candidate rejected over the space's limits as an infeasible trial. The limits reach Optuna as
``constraints_func`` values (``Constraints.values``: ``<= 0`` when met) that every checked
candidate carries (the ``constraints`` user attribute).

The seed: a fresh study's sampler takes ``sampler.seed`` as it is (a rerun proposes the same
sequence); a resumed study's takes a seed drawn from ``sampler.seed`` and the number of the first
trial it proposes (:func:`resumed_seed`), so a resume does not replay the first run's proposals
(``evolution`` seeds each trial by its number and continues its sequence as it is).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import warnings
import zlib
from collections.abc import Callable, Container, Sequence
from pathlib import Path
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
    "CHEAP_EVALUATORS",
    "GP_MAX_BUDGET",
    "LARGE_SPACE",
    "RANKINGS_FILE",
    "SAMPLER_KINDS",
    "SMALL_SPACE",
    "LedgerSampler",
    "auto_kind",
    "auto_setting",
    "benchmark_problem",
    "benchmark_rankings",
    "gp_pays",
    "ranking_column",
    "resumed_seed",
    "sampler_for",
    "sampler_kind",
]

#: Every ``sampler.kind`` (``auto`` picks one of the others).
SAMPLER_KINDS = ("auto", "gp", "evolution", "nsga2", "tpe", "random")


#: Where :func:`benchmark_rankings` reads the benchmark's rankings (written by
#: ``benchmarks/search_quality.py`` from its stored results; ``tests/test_samplers.py`` checks the
#: file against ``benchmarks/results/search_quality.json``).
RANKINGS_FILE = Path(__file__).with_name("sampler_rankings.json")

#: Spaces below this many members are of ``hybrid_small``'s kind (1.3e6 members), those from it
#: below :data:`LARGE_SPACE` of ``hybrid_stages``'s (2.6e6), larger ones of ``cvt13``'s (6.7e7).
SMALL_SPACE = 2 * 10**6

#: See :data:`SMALL_SPACE`.
LARGE_SPACE = 10**7

#: Evaluators whose evaluation costs less than a GP proposal: a member's inherited accuracy
#: (``supernet``: a BatchNorm recalibration and one validation pass) took a median 0.16 s of CPU on
#: hybrid_small (806 members measured by the benchmark: ``evaluation_cpu`` in its results), GP's
#: proposals 0.9-1.2 s from 20 to 100 trials. ``auto`` ranks samplers for them at equal wall time.
CHEAP_EVALUATORS = ("supernet",)

#: The largest budget for which ``auto`` gives GP a per-trial ranking's first place (see
#: :func:`gp_pays`).
GP_MAX_BUDGET = 500


@functools.cache
def benchmark_rankings() -> dict[str, dict[str, dict[str, list[str]]]]:
    """The samplers best first, as ``benchmarks/search_quality.py`` stored them:
    ``{problem: {view: {budget: [kind, ...]}}}``, ``view`` ``trial`` (median hypervolume over seeds
    after ``budget`` evaluations) or ``wall`` (at the wall time ``budget`` evaluations take with the
    sampler that spends least on them, each sampler's measured proposal CPU time included).
    Raises :class:`OSError` or :class:`ValueError` when :data:`RANKINGS_FILE` is missing or broken
    (the package is incomplete)."""
    data = json.loads(RANKINGS_FILE.read_text())
    problems: dict[str, dict[str, dict[str, list[str]]]] = data["problems"]
    return problems


def benchmark_problem(space_size: float, evaluator: str = "train") -> str:
    """The problem of ``benchmarks/search_quality.py`` that a search is of the kind of:
    ``hybrid_small`` (the one-shot problem) for a ``supernet`` evaluator or a space of fewer than
    :data:`SMALL_SPACE` members, else ``hybrid_stages`` below :data:`LARGE_SPACE` members, else
    ``cvt13``."""
    if evaluator == "supernet" or space_size < SMALL_SPACE:
        return "hybrid_small"
    return "hybrid_stages" if space_size < LARGE_SPACE else "cvt13"


def auto_setting(space_size: float, evaluator: str = "train") -> tuple[str, str]:
    """The setting of ``benchmarks/search_quality.py`` whose ranking ``auto`` follows for a search
    over ``space_size`` members by an ``evaluator`` of that kind: the
    benchmark problem (:func:`benchmark_problem`) and the view: ``wall`` (hypervolume at equal
    wall time, proposals included) for evaluators cheaper than a proposal
    (:data:`CHEAP_EVALUATORS`), where the sampler's own CPU time decides how many members a run
    evaluates; else ``trial`` (hypervolume per evaluation: ``train`` and ``zero_cost``, taken to
    cost more than a proposal, a short training far more). The budget is not part of the setting:
    it picks the column of the setting's ranking (:func:`ranking_column`)."""
    view = "wall" if evaluator in CHEAP_EVALUATORS else "trial"
    return benchmark_problem(space_size, evaluator), view


def ranking_column(budgets: Sequence[int], budget: int) -> int:
    """The stored budget whose ranking stands for ``budget``: the nearest on a log scale (the
    smaller of two as near). Raises :class:`ValueError` when ``budgets`` is empty."""
    if not budgets:
        raise ValueError("no stored budget to rank at")
    return min(sorted(budgets), key=lambda n: abs(math.log(n / max(budget, 1))))


def gp_pays(budget: int, evaluator: str) -> bool:
    """Whether a per-trial ranking may put GP first: its proposals stay below an evaluation. Not
    for :data:`CHEAP_EVALUATORS` (ranked at equal wall time instead), nor beyond
    :data:`GP_MAX_BUDGET` evaluations, where a proposal (1.3 s of CPU after 100 trials, 2.0 s
    after 300, 12.8 s after 1000) costs about a short proxy training."""
    return evaluator not in CHEAP_EVALUATORS and budget <= GP_MAX_BUDGET


def auto_kind(space_size: float, budget: int, objectives: int, *, evaluator: str = "train") -> str:
    """The sampler ``auto`` runs for a space of ``space_size`` members searched with ``budget``
    evaluations of ``objectives`` objectives by an ``evaluator`` of that kind (``train``,
    ``zero_cost``, ``supernet``). README, "Samplers", shows the rankings it reads.

    1. ``budget >= space_size``: ``random`` (every member is evaluated once whatever the order:
       duplicates are redrawn, so there is nothing to model).
    2. Otherwise the first of the stored ranking (:func:`benchmark_rankings`) of the search's
       setting (:func:`auto_setting`: the benchmark problem, and per trial or at equal wall time)
       at the stored budget nearest ``budget`` (:func:`ranking_column`); in the per-trial view GP
       is passed over where it does not pay (:func:`gp_pays`).

    ``objectives`` is not read: every problem of the benchmark has two.
    """
    del objectives
    if space_size <= budget:
        return "random"
    problem, view = auto_setting(space_size, evaluator)
    views = benchmark_rankings()[problem]
    if not views.get(view):  # no such view stored: per trial, GP passed over where it does not pay
        view = "trial"
    columns = views[view]
    ranking = columns[str(ranking_column([int(n) for n in columns], budget))]
    return next(k for k in ranking if k != "gp" or view == "wall" or gp_pays(budget, evaluator))


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

    ``make`` receives the constraint function (None when the space sets no limits), the space's
    size (both read from the space on first use) and the number of the first trial the sampler is
    asked about (0 in a fresh study; the trials stored before it in a resumed one)."""

    def __init__(
        self,
        make: Callable[[Callable[[FrozenTrial], Sequence[float]] | None, float, int], BaseSampler],
        experiment: Experiment,
    ):
        self._make, self._experiment = make, experiment
        self._inner: BaseSampler | None = None

    @property
    def inner(self) -> BaseSampler:
        """The wrapped sampler (made on first use)."""
        return self._sampler(None)

    def _sampler(self, trial: FrozenTrial | None) -> BaseSampler:
        """The wrapped sampler, made on first use for ``trial`` (its number: the trials before it)."""
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
                self._inner = self._make(func, size, 0 if trial is None else trial.number)
        return self._inner

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._sampler(trial).infer_relative_search_space(_StudyView(study), trial)  # type: ignore[arg-type]

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._sampler(trial).sample_relative(_StudyView(study), trial, search_space)  # type: ignore[arg-type]

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        view = _StudyView(study)
        return self._sampler(trial).sample_independent(view, trial, param_name, param_distribution)  # type: ignore[arg-type]

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._sampler(trial).before_trial(_StudyView(study), trial)  # type: ignore[arg-type]

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._sampler(trial).after_trial(_StudyView(study), trial, state, values)  # type: ignore[arg-type]

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


def resumed_seed(seed: int, first_trial: int) -> int:
    """The seed of a sampler whose first proposal is trial ``first_trial``: ``seed`` itself in a
    fresh study (``first_trial`` 0, so a seed reproduces a run), else a seed drawn from both (a
    resumed study: the sampler's sequence does not restart and replay the proposals stored)."""
    return seed if first_trial == 0 else zlib.crc32(f"{seed}:resume:{first_trial}".encode())


def sampler_for(experiment: Experiment, worker: str | None = None) -> BaseSampler:
    """The experiment's sampler (see the module docstring); a ``worker``'s is seeded by the seed
    and its name, or every worker would suggest the same architectures in the random phases; a
    resumed study's by :func:`resumed_seed`."""
    cfg = experiment.sampler
    base = cfg.seed if worker is None else zlib.crc32(f"{cfg.seed}:{worker}".encode())

    def make(
        constraints: Callable[[FrozenTrial], Sequence[float]] | None, size: float, first_trial: int
    ) -> BaseSampler:
        kind: str = cfg.kind
        if kind == "auto":
            kind = _resolve_auto(experiment, size)
        # evolution seeds each trial by its number: a resume continues its sequence as it is
        seed = base if kind == "evolution" else resumed_seed(base, first_trial)
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
