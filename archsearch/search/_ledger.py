"""The trial ledger: the rules of a trial, the same for every backend.

The in-process loop, the PostgreSQL workers and the Ray searcher all keep their trials in an
Optuna study and follow these rules through :class:`Ledger`:

* **Outcomes.** Every finished trial carries the user attribute ``outcome``: ``complete``,
  ``early-stopped``, ``failed`` (these three *evaluated* the architecture and count towards the
  budget), ``duplicate``, ``rejected``, ``skipped`` (workers: the budget was held by others) or
  ``interrupted``. Optuna states follow from the outcome: COMPLETE for ``complete`` only, FAIL for
  ``failed`` and ``interrupted``, PRUNED for everything else.
* **Spec-hash index.** Each evaluated trial is indexed by its spec hash; the first one wins, except
  that a failed trial gives way to a later evaluation of the same architecture (after an
  interrupted run, say). A candidate whose hash is indexed is never evaluated again.
* **Duplicates never consume the budget** (:func:`duplicate_record`, :meth:`Ledger.tell`). A
  proposal whose spec hash is known is stored PRUNED with ``duplicate_of`` and the reason "the same
  architecture as trial N (its outcome)", never as a COMPLETE copy, so Optuna's own tools and the
  reports see each architecture once and the study counts the duplicate proposals (the
  ``duplicate`` outcome). The ledger then draws again: it mutates the duplicate (:func:`._mutate.redraw`,
  at most :data:`._mutate.MAX_REDRAWS` tries) into a member that passes the space's checks and is
  not known, and queues it (``redraw_of``) as the next trial, so the next evaluation is a new
  member. Samplers still learn from what they proposed: :func:`sampler_trials` shows them a
  duplicate of a complete trial as COMPLETE with that trial's values.
* **One evaluator at a time.** After a forced evaluator change (``--allow-changed-evaluator``,
  recorded in the study's ``evaluator_changes`` by :mod:`._resume`), the index holds only the trials
  scored under the current evaluator (from the last change's ``from_trial`` on,
  :func:`evaluator_since`): an architecture evaluated before is evaluated again, not passed off as a
  duplicate of values another evaluator measured; its old trial stays in the study and in the
  budget's count. The learning curves early stopping compares and the points already proposed
  start afresh the same way.
* **Rejected candidates** (invalid shapes, over a constraint) are PRUNED with the reason, never built
  (:meth:`Ledger.rejection`). Each is indexed by its point (its parameters) and the space it was
  checked against (``space_digest``, :func:`space_digest`): the same point proposed again under the
  same space is a duplicate of the stored rejection (``duplicate_of``, "the same architecture as
  trial N (rejected)"), answered from the ledger and redrawn like any duplicate; after a change of
  the space (looser constraints, another input size) it is checked afresh. One over the space's
  constraints carries its MACs, params and ``constraints`` (Optuna's constraint values, <= 0 when
  met; every checked candidate carries them, :meth:`Ledger.label`), and :func:`sampler_trials`
  shows it to the samplers as an infeasible COMPLETE trial with the worst values evaluated so far,
  so that constrained samplers (``gp``, ``nsga2``, ``tpe``) learn where the limits lie.
* **Interrupted trials.** A trial left RUNNING by a run that stopped (a file storage has one
  owner at a time, the run holding its lock (:mod:`._lock`), so whatever it finds RUNNING was left
  by a run that is gone; Ray: a trial the driver asked for and Ray never recorded) is set FAIL with outcome
  ``interrupted`` by :meth:`Ledger.recover`, which queues its params again as a new trial with
  ``retry_of``; so is a trial interrupted with Ctrl-C. Workers find dead workers' trials by
  heartbeats (:mod:`._shared`) and queue them the same way.
* **Streak.** After :data:`MAX_UNEVALUATED_STREAK` candidates in a row that were rejected or
  duplicates, the search stops with a :class:`~archsearch.SearchError` (the space is exhausted or
  its constraints too tight); at once, after the first such candidate, when every point of the
  space has been proposed (a budget larger than a small space), so the study is not filled with
  hundreds of duplicates before the error.
* **Counts** (:func:`count_trials`): one definition, used by the progress line, the closing
  summary, ``archsearch trials`` and the reports.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from ..pareto import pareto_mask
from ..space import SearchSpace, size_text
from ._candidate import Checked, Rejected
from ._early_stop import Curve
from ._evaluate import cost_vector
from ._experiment import Experiment
from ._mutate import redraw

__all__ = [
    "CHANGES",
    "CLAIM",
    "EVALUATED",
    "HIDDEN_ATTRS",
    "MAX_UNEVALUATED_STREAK",
    "OUTCOMES",
    "Ledger",
    "Record",
    "TrialCounts",
    "count_trials",
    "duplicate_record",
    "evaluator_settings",
    "evaluator_since",
    "outcome_of",
    "rejected_record",
    "sampler_trials",
    "space_digest",
    "study_meta",
]

#: Outcomes that spent an evaluation (they count towards the trial budget).
EVALUATED = ("complete", "early-stopped", "failed")
#: Every outcome a finished trial may carry.
OUTCOMES = (*EVALUATED, "duplicate", "rejected", "skipped", "interrupted")
#: The user attribute a worker claims its budget slot with (``host:pid``).
CLAIM = "worker"
#: Attributes of a trial that a duplicate does not copy (they describe that trial, not the architecture).
HIDDEN_ATTRS = frozenset(
    {"outcome", "reason", "retry_of", CLAIM, "spec", "spec_hash", "ray_trial_id", "ray_node_id", "traceback"}
)
#: Candidates in a row that may be rejected or duplicates before the search gives up.
MAX_UNEVALUATED_STREAK = 500

_STATE_OUTCOME = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "early-stopped",
    TrialState.FAIL: "failed",
}


def outcome_of(t: FrozenTrial) -> str:
    """A trial's outcome: its ``outcome`` attribute once finished (a trial stored by another tool
    gets the outcome of its state), ``running`` or ``waiting`` before (a running trial may carry,
    in advance, the outcome it keeps if its worker dies)."""
    if not t.state.is_finished():
        return t.state.name.lower()
    outcome = t.user_attrs.get("outcome")
    return str(outcome) if outcome else _STATE_OUTCOME.get(t.state, t.state.name.lower())


@dataclass(frozen=True)
class TrialCounts:
    """The trials of a study by outcome (see the module docstring)."""

    evaluated: int = 0
    """complete + early-stopped + failed: the trials that count towards the budget."""
    complete: int = 0
    early_stopped: int = 0
    """Stopped while training (Optuna's pruners, dominance, Pareto ASHA): Optuna's PRUNED evaluations."""
    failed: int = 0
    duplicate: int = 0
    rejected: int = 0
    skipped: int = 0
    interrupted: int = 0
    running: int = 0
    """Not finished: running, or queued (WAITING) retries."""
    front: int = 0
    """Complete trials (never duplicates) with finite values that no other complete trial dominates."""

    @property
    def total(self) -> int:
        return (
            self.evaluated + self.duplicate + self.rejected + self.skipped + self.interrupted + self.running
        )

    def as_dict(self) -> dict[str, int]:
        """Every count by its outcome's name (``early-stopped``), plus ``evaluated`` and ``front``."""
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}

    def line(self) -> str:
        """``"5 evaluated (3 complete, 1 early-stopped, 1 failed), 2 duplicate, 1 rejected; 2 on the
        front"``: the non-zero counts, in one line."""
        parts = [f"{self.evaluated} evaluated"]
        inner = [(self.complete, "complete"), (self.early_stopped, "early-stopped"), (self.failed, "failed")]
        shown = [f"{n} {name}" for n, name in inner if n]
        if shown:
            parts[0] += f" ({', '.join(shown)})"
        others = [
            (self.duplicate, "duplicate"),
            (self.rejected, "rejected"),
            (self.skipped, "skipped"),
            (self.interrupted, "interrupted"),
            (self.running, "running"),
        ]
        parts += [f"{n} {name}" for n, name in others if n]
        return ", ".join(parts) + f"; {self.front} on the front"


def _front(values: Sequence[Sequence[float]], directions: Sequence[str]) -> int:
    finite = [v for v in values if all(math.isfinite(x) for x in v)]
    if not finite:
        return 0
    return int(pareto_mask(finite, list(directions)).sum())  # type: ignore[arg-type]


def count_trials(trials: Iterable[FrozenTrial], directions: Sequence[str]) -> TrialCounts:
    """The one definition of every count, over a study's ``trials`` (``directions``: one
    ``"minimize"``/``"maximize"`` per objective, for the front)."""
    n: dict[str, int] = {}
    complete: list[list[float]] = []
    for t in trials:
        outcome = outcome_of(t)
        n[outcome] = n.get(outcome, 0) + 1
        if outcome == "complete" and t.values is not None:
            complete.append(list(t.values))
    return TrialCounts(
        evaluated=sum(n.get(o, 0) for o in EVALUATED),
        complete=n.get("complete", 0),
        early_stopped=n.get("early-stopped", 0),
        failed=n.get("failed", 0),
        duplicate=n.get("duplicate", 0),
        rejected=n.get("rejected", 0),
        skipped=n.get("skipped", 0),
        interrupted=n.get("interrupted", 0),
        running=n.get("running", 0) + n.get("waiting", 0),
        front=_front(complete, directions),
    )


@dataclass(frozen=True)
class Record:
    """How to tell a trial: its outcome, Optuna state, values (COMPLETE only) and user attributes."""

    outcome: str
    state: TrialState
    values: list[float] | None = None
    attrs: dict[str, Any] | None = None


#: The study attribute listing the evaluator changes that a run was told to accept (:mod:`._resume`).
CHANGES = "evaluator_changes"


def evaluator_since(study: optuna.Study) -> int:
    """The number of the first trial scored by the study's current evaluator: the ``from_trial``
    of the last evaluator change recorded in its ``evaluator_changes`` (0 when there is none)."""
    records = study.user_attrs.get(CHANGES) or []
    return max((int(r.get("from_trial", 0)) for r in records if isinstance(r, dict)), default=0)


def duplicate_record(seen: FrozenTrial) -> Record:
    """The record of a candidate with the same spec hash as ``seen`` (or, ``seen`` rejected, the same
    point): PRUNED, never a COMPLETE copy (the rule of the module docstring). A duplicate of a
    rejection over the constraints carries its constraint values (the samplers see it infeasible)."""
    status = "running" if seen.state == TrialState.RUNNING else outcome_of(seen)
    reason = f"the same architecture as trial {seen.number} ({status})"
    attrs: dict[str, Any] = {"duplicate_of": seen.number, "reason": reason}
    if status == "rejected" and seen.user_attrs.get("constraints"):
        attrs["constraints"] = list(seen.user_attrs["constraints"])
    return Record("duplicate", TrialState.PRUNED, None, attrs)


def space_digest(space: SearchSpace) -> str:
    """A short digest of everything a space's checks read (its data after overrides: the choices,
    the fixed values, the constraints; and the bytes of a latency bound's table file): rejections
    are answered from the ledger only under the space that made them. A table re-measured, or one
    that gained pieces timed on demand, makes a resumed search check its rejections afresh."""
    digest = hashlib.sha256(
        json.dumps(space.raw, sort_keys=True, default=str, separators=(",", ":")).encode()
    )
    bound = space.constraints.latency_ms
    if bound is not None:
        file = bound.table_file(space.folder)
        digest.update(hashlib.sha256(file.read_bytes()).digest() if file.is_file() else b"no table")
    return digest.hexdigest()[:16]


def _point(params: dict[str, Any]) -> str:
    return repr(sorted(params.items()))


def rejected_record(reason: str, digest: str | None = None) -> Record:
    """The record of a candidate the space's checks refused (``reason``, a
    :class:`~._candidate.Rejected` over the constraints also carries its costs and constraint
    values), checked against the space of :func:`space_digest` ``digest``."""
    attrs: dict[str, Any] = {"reason": str(reason)}
    if digest is not None:
        attrs["space_digest"] = digest
    if isinstance(reason, Rejected) and reason.constraints is not None:
        attrs.update(macs=reason.macs, params=reason.params, constraints=list(reason.constraints))
    return Record("rejected", TrialState.PRUNED, None, attrs)


def _shown_as(t: FrozenTrial, values: Sequence[float]) -> FrozenTrial:
    shown = copy.copy(t)
    shown.state = TrialState.COMPLETE
    shown.values = list(values)
    return shown


def sampler_trials(trials: Sequence[FrozenTrial], directions: Sequence[str]) -> list[FrozenTrial]:
    """``trials`` as the samplers see them (the rule of the module docstring): a duplicate of a
    complete trial is COMPLETE with that trial's values; a candidate rejected over the constraints
    after at least one complete trial is COMPLETE with the worst value of each objective over the
    complete trials before it (and its constraint values, which make it infeasible); every other
    trial as stored (a duplicate of a rejected candidate as that candidate). What a trial is
    shown as depends on the trials before it only, so it never changes once a sampler has seen it
    finished (Optuna's intersection search space reads each finished trial once). The trials
    shown are copies: the storage is not changed."""
    by_number = {t.number: t for t in trials}
    worst: list[float] | None = None
    out = []
    for t in sorted(trials, key=lambda t: t.number):
        outcome = t.user_attrs.get("outcome") if t.state == TrialState.PRUNED else None
        if outcome == "duplicate":
            seen = by_number.get(t.user_attrs.get("duplicate_of", -1))
            if seen is not None and seen.state == TrialState.COMPLETE and seen.values is not None:
                t = _shown_as(t, seen.values)
            elif seen is not None and outcome_of(seen) == "rejected":
                outcome = "rejected"  # a rejection proposed again: shown as its original is
        if outcome == "rejected" and worst is not None and t.user_attrs.get("constraints"):
            t = _shown_as(t, worst)
        elif t.state == TrialState.COMPLETE and t.values is not None:
            worst = [
                min(w, v) if d == "maximize" else max(w, v)
                for w, v, d in zip(worst or t.values, t.values, directions, strict=True)
            ]
        out.append(t)
    return out


def tell(study: optuna.Study, trial: optuna.Trial | int, record: Record, **attrs: Any) -> FrozenTrial:
    """Write ``record`` (and ``attrs``; None values are not written, except ``reason``) and tell
    Optuna the trial's end."""
    if isinstance(trial, int):
        trial = optuna.Trial(study, trial)
    # the outcome goes last, just before the state: a reader never sees a finished outcome on a
    # trial that has been RUNNING for long
    merged = {**(record.attrs or {}), **attrs, "outcome": record.outcome}
    for key, value in merged.items():
        if value is not None or key == "reason":
            trial.set_user_attr(key, value)
    values = record.values if record.state == TrialState.COMPLETE else None
    return study.tell(trial, values, state=None if values is not None else record.state)


def evaluator_settings(experiment: Experiment) -> dict[str, Any]:
    """The experiment's evaluator as its study records it (JSON values; see :mod:`._resume`)."""
    return experiment.evaluator.model_dump(mode="json")


def study_meta(
    experiment: Experiment, space_name: str, dataset: Any, backend: str | None = None
) -> dict[str, Any]:
    """What a study records about its search, so reports need nothing but the storage."""
    meta: dict[str, Any] = {
        "name": experiment.name,
        "space": space_name,
        "dataset": dataset.name,
        "input_size": list(dataset.input_size),
        "channels": dataset.channels,
        "num_classes": dataset.num_classes,
        "evaluator": evaluator_settings(experiment),  # a resume must score alike (._resume)
    }
    if backend is not None:
        meta["backend"] = backend
    return meta


class Ledger:
    """One study's trials as a backend sees them: the spec-hash index, the evaluated count, the
    learning curves (for early stopping by dominance), the outcomes of this run and the streak."""

    def __init__(self, experiment: Experiment, study: optuna.Study, space: SearchSpace | None = None):
        self.experiment, self.study, self.space = experiment, study, space
        self.by_hash: dict[str, FrozenTrial] = {}
        self.curves: list[Curve] = []
        self.evaluated = 0
        self.outcomes: dict[str, int] = {}
        """What this process told, by outcome."""
        self.streak = 0
        self.points: dict[str, bool] = {}
        """Each point of the space proposed so far (its params) -> whether it was rejected; a point
        that ended otherwise (evaluated, or a duplicate of an evaluated one) will never be new again."""
        self.since = evaluator_since(study)
        """The first trial scored by the current evaluator: earlier ones are counted, not indexed."""
        self.digest = None if space is None else space_digest(space)
        self.rejections: dict[str, FrozenTrial] = {}
        """Each point rejected under this space (its params) -> the first trial that stored it."""

    # ------------------------------------------------------------------ the index

    def reindex(self, trials: Iterable[FrozenTrial] | None = None) -> None:
        """Index ``trials`` (default: the study's) afresh."""
        self.by_hash, self.curves, self.evaluated, self.points, self.rejections = {}, [], 0, {}, {}
        self.since = evaluator_since(self.study)
        for t in self.study.get_trials(deepcopy=False) if trials is None else trials:
            if t.state.is_finished():
                self.index(t)

    def index(self, t: FrozenTrial) -> None:
        """Add a finished trial to the index (one scored by an earlier evaluator only to the
        evaluated count: see "One evaluator at a time")."""
        outcome = t.user_attrs.get("outcome")
        if outcome in EVALUATED:
            self.evaluated += 1
        if t.number < self.since:
            return
        if outcome in EVALUATED:
            h = t.user_attrs.get("spec_hash")
            if h and (outcome != "failed" or h not in self.by_hash):
                self.by_hash.setdefault(h, t)
        point = _point(t.params)
        if outcome == "rejected" and self.digest and t.user_attrs.get("space_digest") == self.digest:
            self.rejections.setdefault(point, t)
        if outcome == "duplicate" and point in self.points:
            pass  # the point's first outcome stands (a rejection proposed again stays rejected)
        elif outcome in (*EVALUATED, "duplicate", "rejected"):  # not interrupted (retried) or skipped
            self.points[point] = outcome == "rejected"
        if outcome == "complete" and t.user_attrs.get("curve"):
            costs = tuple(cost_vector(self.experiment, t.user_attrs))
            self.curves.append(Curve(t.number, costs, tuple(t.user_attrs["curve"])))

    def seen(self, spec_hash: str) -> FrozenTrial | None:
        """The evaluated trial of this architecture, if any."""
        return self.by_hash.get(spec_hash)

    def rejection(self, params: dict[str, Any], reason: str) -> Record:
        """The record of a candidate the space's checks refused (``params``: its point, ``reason``:
        why): a duplicate of the rejection stored for the same point under this space, if any, else
        a new rejection (:func:`rejected_record`)."""
        stored = self.rejections.get(_point(params))
        return rejected_record(reason, self.digest) if stored is None else duplicate_record(stored)

    def counts(self) -> TrialCounts:
        return count_trials(self.study.get_trials(deepcopy=False), self.experiment.directions)

    # ------------------------------------------------------------------ recovery

    def recover(self, *, left_running: Literal["all", "none"] | set[int] = "all") -> None:
        """Fail the trials a stopped run left RUNNING as interrupted (``left_running``: all of them
        on a file storage, none on a shared one, else those trial ids), queue every interrupted
        trial not yet retried again with ``retry_of``, and index the study."""
        study = self.study
        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        for t in trials:
            if t.state == TrialState.RUNNING and (
                left_running == "all" or (isinstance(left_running, set) and t._trial_id in left_running)
            ):
                study._storage.set_trial_user_attr(t._trial_id, "outcome", "interrupted")
                study._storage.set_trial_user_attr(
                    t._trial_id, "reason", "left running by a run that stopped"
                )
                study.tell(t.number, state=TrialState.FAIL)
                interrupted = True
            else:
                interrupted = t.state.is_finished() and t.user_attrs.get("outcome") == "interrupted"
            if interrupted and t.number not in retried and t.params:
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        self.reindex()

    # ------------------------------------------------------------------ telling

    def label(self, trial: optuna.Trial, checked: Checked) -> None:
        """Write a checked candidate's ``spec_hash``, ``spec`` and, where the space has limits,
        its ``constraints`` values on ``trial``, before anything is decided about it."""
        trial.set_user_attr("spec_hash", checked.spec_hash)
        trial.set_user_attr("spec", checked.spec_json())
        if checked.constraints is not None:
            trial.set_user_attr("constraints", list(checked.constraints))

    def tell(self, trial: optuna.Trial | int, record: Record, **attrs: Any) -> FrozenTrial:
        """Tell the study how a trial ended, index it and count its outcome; after a duplicate,
        queue a new member near it (:meth:`redraw`)."""
        frozen = tell(self.study, trial, record, **attrs)
        self.outcomes[record.outcome] = self.outcomes.get(record.outcome, 0) + 1
        self.index(frozen)
        if record.outcome == "duplicate":
            self.redraw(frozen)
        return frozen

    def redraw(self, duplicate: FrozenTrial) -> Checked | None:
        """Queue a mutant of ``duplicate``'s parameters that passes the space's checks and is not
        evaluated yet (:func:`._mutate.redraw`, seeded by the sampler's seed and the trial's
        number) as the next trial, with ``redraw_of``; the member queued, or None (no space given,
        no parameters, trials already queued, or no new member found within the tries)."""
        if self.space is None or not duplicate.params:
            return None
        if self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return None  # the queue already holds the next proposals (retries, enqueued members)
        rng = np.random.default_rng([self.experiment.sampler.seed, duplicate.number])
        name = f"{self.experiment.study_name}-redraw"
        found = redraw(self.space, duplicate.params, lambda h: h in self.by_hash, rng, name=name)
        if found is None:
            return None
        with warnings.catch_warnings():  # user_attrs of enqueue_trial: "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.enqueue_trial(found.params, user_attrs={"redraw_of": duplicate.number})
        return found

    def count_streak(self, spent: bool, space_size: float) -> str | None:
        """Record whether a candidate spent an evaluation; the error message once
        :data:`MAX_UNEVALUATED_STREAK` candidates in a row did not, or at once when one did not and
        every point of the space (``space_size``: members) has been proposed, so none is new."""
        self.streak = 0 if spent else self.streak + 1
        if self.streak and len(self.points) >= space_size:
            rejected = sum(self.points.values())
            return (
                f"all {int(space_size):,} members of the space have been proposed "
                f"({len(self.points) - rejected} evaluated, {rejected} rejected), so none is left to "
                "evaluate: lower `trials` or widen the space (or its constraints)"
            )
        if self.streak < MAX_UNEVALUATED_STREAK:
            return None
        return (
            f"the last {self.streak} candidates were all rejected or already evaluated: the space may be "
            f"exhausted ({size_text(space_size)} members) or its constraints too tight"
        )
