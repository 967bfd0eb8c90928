"""The search backend interface: every backend runs an experiment's search and says how it went.

Like Optuna's ``BaseSampler``: an abstract base here, each backend in its own private module, and
one table (:data:`archsearch.search.BACKENDS`) from the experiment's backend to its class. The
trial rules every backend follows live in :mod:`._ledger`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import optuna
from optuna.trial import FrozenTrial

from ._experiment import Experiment
from ._ledger import TrialCounts

if TYPE_CHECKING:
    from ..cost import LatencyCache
    from ..space import SearchSpace
    from ._shared import Heartbeats

__all__ = ["Backend", "NothingRun", "SearchProgress", "SearchSummary"]


class SearchProgress(Protocol):
    """What a search reports as it goes (the CLI draws it with rich). ``counts`` are the study's
    (:func:`~archsearch.search.count_trials`), after the event."""

    def start(self, total: int, counts: TrialCounts, study: optuna.Study) -> None: ...

    def trial_started(self, number: int, params: dict[str, Any], costs: dict[str, float]) -> None: ...

    def epoch(self, number: int, epoch: int, accuracy: float) -> None: ...

    def trial_finished(self, trial: FrozenTrial, counts: TrialCounts) -> None: ...

    def waiting(self, taken: int, budget: int) -> None:
        """Other workers hold the last budget slots: this one waits for them to end."""

    def note(self, text: str) -> None:
        """A line to show at once, before the search starts (``--fresh``: where the old study went)."""


class NothingRun(UserWarning):
    """``run_search`` on a study that already holds its budget of evaluations: nothing was run."""


@dataclass
class SearchSummary:
    """How a call to :func:`~archsearch.search.run_search` went."""

    study: optuna.Study
    experiment: Experiment
    space: SearchSpace
    outcomes: dict[str, int] = field(default_factory=dict)
    """What this run (this worker) told, by outcome."""
    counts: TrialCounts = field(default_factory=TrialCounts)
    """The whole study's trials, by outcome, at the end."""
    seconds: float = 0.0
    eval_seconds: float = 0.0
    interrupted: bool = False
    stopped_by: str = "Ctrl-C"
    """What stopped an ``interrupted`` run: ``Ctrl-C`` or ``SIGTERM``."""
    latency_calibration: dict[str, Any] | None = None
    """With predicted latency: the factor predictions were scaled by to the machine's speed (the
    study's ``latency_calibration``; ``reused`` when kept from its first start)."""
    budget: int = 0
    """The evaluations the run was to reach (``trials``, else the experiment's); 0: not known."""

    @property
    def nothing_run(self) -> bool:
        """Whether the study already held its budget of evaluations, so this run evaluated nothing
        (``run_search`` then warns with :class:`NothingRun`)."""
        return (
            bool(self.budget) and not self.outcomes and self.evaluated >= self.budget and not self.interrupted
        )

    def nothing_run_reason(self, raise_budget: str) -> str:
        """Why nothing was run and how to run more; ``raise_budget`` shows a budget, e.g.
        ``'run_search(experiment, trials={})'``: ``the study already has 20 evaluated trials (the
        budget: 5), so nothing was run; to evaluate more, raise the budget:
        run_search(experiment, trials=25)``."""
        have = self.evaluated
        held = (
            f"its {have} evaluated trials"
            if have == self.budget
            else f"{have} evaluated trials (the budget: {self.budget})"
        )
        more = raise_budget.format(have + self.budget)
        return f"the study already has {held}, so nothing was run; to evaluate more, raise the budget: {more}"

    @property
    def evaluated(self) -> int:
        """Trials of the study that spent an evaluation (complete, early-stopped, failed)."""
        return self.counts.evaluated

    @property
    def overhead_fraction(self) -> float:
        """Wall time spent outside evaluation (sampling, checks, storage), as a fraction."""
        return 1.0 - self.eval_seconds / self.seconds if self.seconds else 0.0


class Backend(abc.ABC):
    """Runs (or resumes) an experiment's search until its budget of evaluations is met."""

    kind: ClassVar[str]
    """The name :data:`~archsearch.search.BACKENDS` knows it by."""

    @abc.abstractmethod
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
        """Run the search until ``trials`` (default: the experiment's) architectures are evaluated.

        ``fresh`` moves an old study file aside first; ``resume_only`` refuses to create a study;
        ``progress`` is told what happens; ``latency_cache`` keeps measured latencies across runs
        (backends that time latency elsewhere ignore it); ``heartbeats`` set how workers find a dead
        worker's trial (others ignore it). Raises :class:`~archsearch.SearchError` when the study
        cannot be used or the space is exhausted; Ctrl-C ends the run with ``interrupted`` set."""
