"""The trial loop of the Optuna backends (in process, and each PostgreSQL worker): ask -> check ->
evaluate -> tell.

1. ask Optuna for a trial and sample the space through it;
2. validate the candidate's shapes and check the constraints with the analytic cost model: a
   candidate that fails is stored as *rejected* and never built (a point rejected before, under
   the same space, as a *duplicate* of that rejection);
3. a candidate whose spec hash was evaluated before is not trained again: it is stored as a
   *duplicate* (the ledger's rule, :mod:`._ledger`);
4. measure the costs, train (or score), and tell Optuna the objective values. An exception is
   stored as a FAIL with its reason and the study goes on; Ctrl-C (or SIGTERM, inside
   :func:`~._signals.sigterm_as_interrupt`) stores the running trial as
   *interrupted* (retried on resume, or by another worker) and stops with every completed trial kept.

With a :class:`~._shared.SharedStudy` (workers) a candidate claims a budget slot before it is
evaluated, and the other workers' trials are read again before every trial (:mod:`._shared`).

Every trial carries user attributes: ``outcome``, ``reason``, ``spec`` (the concrete spec as JSON),
``spec_hash``, the metrics (``macs``, ``params``, ``memory_mb``, ``latency_ms``, ``accuracy``,
proxy scores), ``curve`` (validation accuracy per epoch), ``epochs``, ``eval_s``; with workers,
``worker`` (who evaluated it) and ``retry_of`` (the interrupted trial a retry repeats).
"""

from __future__ import annotations

import math
import time
import traceback
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..cost import LatencyCache
from ..errors import SearchError
from ..space import OptunaSuggest, SearchSpace
from ._backend import SearchProgress, SearchSummary
from ._candidate import Checked, check_candidate, prepare
from ._early_stop import dominated_at
from ._evaluate import (
    Evaluator,
    calibrate_latency,
    cost_vector,
    failure_reason,
    objective_values,
    plain_attrs,
)
from ._experiment import Experiment
from ._ledger import CLAIM, Ledger, Record, duplicate_record, study_meta
from ._resume import check_space
from ._shared import Heartbeats, RetryStale, SharedStudy, Slots, count_slots, decide
from ._signals import stopped_by
from ._storage import open_storage, open_study, sampler_for, stopping_kind

__all__ = ["TrialLoop", "run_loop"]


class _Stop(Exception):
    """Raised from the epoch callback to stop a trial early."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TrialLoop:
    """Asks, checks, evaluates and tells trials of one study until the budget is evaluated."""

    def __init__(
        self,
        experiment: Experiment,
        study: optuna.Study,
        space: SearchSpace,
        evaluator: Evaluator,
        progress: SearchProgress | None,
        stopping: str,
        shared: SharedStudy | None = None,
    ):
        self.experiment, self.study, self.space, self.evaluator = experiment, study, space, evaluator
        self.progress, self.stopping, self.shared = progress, stopping, shared
        self.ledger = Ledger(experiment, study, space)
        self.eval_seconds = 0.0
        self.budget = experiment.trials
        if shared is None:  # one process owns a file storage: what is left running is dead
            local = experiment.storage_url.startswith(("sqlite:///", "journal:"))
            self.ledger.recover(left_running="all" if local else "none")
        else:  # the other workers' trials are read again before every trial
            self.ledger.reindex()

    # ------------------------------------------------------------------ the loop

    def run(self, budget: int, timeout_s: float | None) -> None:
        ledger = self.ledger
        self.budget = budget
        if self.shared is not None:
            self._slots()
        if self.progress:
            self.progress.start(budget, ledger.counts(), self.study)
        started = time.monotonic()
        waited = False
        while ledger.evaluated < budget:
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                break
            room = self.shared is None or self._room(budget)
            if ledger.evaluated >= budget:
                break
            if not room:
                assert self.shared is not None
                if self.progress and not waited:
                    self.progress.waiting(budget - ledger.evaluated, budget)
                waited = True
                time.sleep(self.shared.heartbeats.poll_s)
                continue
            waited = False
            error = ledger.count_streak(self._trial(), self.space.size())
            if error:
                raise SearchError(error)

    # ------------------------------------------------------------------ workers

    def _slots(self) -> Slots:
        """Fail stale trials (queueing their retries), read the study again; the slots taken."""
        assert self.shared is not None
        with self.shared.lock():
            self.shared.fail_stale(self.study)
            trials = self.study.get_trials(deepcopy=False)
        self.ledger.reindex(trials)
        return count_slots(trials)

    def _room(self, budget: int) -> bool:
        """Whether asking for a trial may get a slot: a queued retry, or a slot nobody holds."""
        slots = self._slots()
        return slots.waiting > 0 or slots.taken < budget

    def _claim(self, trial: optuna.Trial, h: str) -> FrozenTrial | str | None:
        """Claim a budget slot for ``trial`` among all workers' trials (the rule in :mod:`._shared`):
        None when claimed, the trial it duplicates, or ``"skipped"``."""
        assert self.shared is not None
        with self.shared.lock():
            trials = self.study.get_trials(deepcopy=False)
            me = next(t for t in trials if t.number == trial.number)
            verdict = decide(trials, me, h, self.budget)
            if verdict.kind == "claim":
                trial.set_user_attr(CLAIM, self.shared.worker)
                trial.set_user_attr("outcome", "interrupted")
                trial.set_user_attr("reason", self.shared.epitaph())
        self.ledger.reindex(trials)
        if verdict.kind == "skipped":
            return "skipped"
        return verdict.other

    # ------------------------------------------------------------------ one trial

    def _finish(self, trial: optuna.Trial, record: Record, **attrs: Any) -> FrozenTrial:
        frozen = self.ledger.tell(trial, record, **attrs)
        if self.progress:
            self.progress.trial_finished(frozen, self.ledger.counts())
        return frozen

    def _trial(self) -> bool:
        """One ask/tell cycle; whether it spent an evaluation."""
        with warnings.catch_warnings():  # "heartbeats are meant for Study.optimize": these are ours
            warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
            trial = self.study.ask()
        beating: AbstractContextManager[Any] = (
            self.shared.heartbeat(self.study._storage, trial._trial_id) if self.shared else nullcontext()
        )
        with beating:
            return self._sample_and_evaluate(trial)

    def _sample_and_evaluate(self, trial: optuna.Trial) -> bool:
        name = f"{self.experiment.study_name}-t{trial.number}"
        checked = check_candidate(self.space, OptunaSuggest(trial), name)
        if isinstance(checked, str):
            self._finish(trial, self.ledger.rejection(trial.params, checked))
            return False
        self.ledger.label(trial, checked)
        h = checked.spec_hash
        seen = self.ledger.seen(h) if self.shared is None else self._claim(trial, h)
        if seen == "skipped":
            reason = f"the budget of {self.budget} evaluations is held by other workers' trials"
            self._finish(trial, Record("skipped", TrialState.PRUNED), reason=reason)
            return False
        if isinstance(seen, FrozenTrial):
            self._finish(trial, duplicate_record(seen))
            return False
        self._evaluate(trial, checked)
        return True

    def _end(self, trial: optuna.Trial, record: Record, t0: float, **attrs: Any) -> FrozenTrial:
        self.eval_seconds += time.perf_counter() - t0
        if self.shared is not None:
            attrs.setdefault("reason", None)  # replaces the reason a claimed trial carries in advance
        return self._finish(trial, record, eval_s=time.perf_counter() - t0, **attrs)

    def _evaluate(self, trial: optuna.Trial, checked: Checked) -> None:
        t0 = time.perf_counter()
        metrics: dict[str, Any] = {}
        curve: list[float] = []
        try:
            model = self.evaluator.build(checked.plan)
            metrics.update(self.evaluator.costs(checked.plan, checked.costs, checked.spec_hash, model))
            for key, value in metrics.items():
                trial.set_user_attr(key, value)
            if self.progress:
                self.progress.trial_started(trial.number, dict(trial.params), dict(metrics))
            result = self.evaluator.evaluate(model, self._on_epoch(trial, metrics, curve))
            metrics.update(result.metrics)
            metrics.update(curve=result.curve or curve, epochs=result.epochs)
        except _Stop as stop:
            metrics.update(curve=curve, epochs=len(curve), accuracy=curve[-1] if curve else math.nan)
            self._end(trial, Record("early-stopped", TrialState.PRUNED), t0, reason=stop.reason, **metrics)
            return
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (._signals)
            by = stopped_by(exc)
            reason = (
                f"stopped by {by}; retried on resume"
                if self.shared is None
                else f"stopped by {by} on worker {self.shared.worker}; retried by the next worker"
            )
            self.eval_seconds += time.perf_counter() - t0
            frozen = self._finish(
                trial, Record("interrupted", TrialState.FAIL), reason=reason, **plain_attrs(metrics)
            )
            if self.shared is not None:  # no resume comes to retry it: queue it for the other workers
                with self.shared.lock():
                    RetryStale(self.shared.heartbeats.max_retry)(self.study, frozen)
            raise
        except Exception as exc:  # a crashed trial is data, not the end of the search
            self._end(
                trial,
                Record("failed", TrialState.FAIL),
                t0,
                reason=failure_reason(exc),
                traceback=traceback.format_exc(limit=8)[-4000:],
                **plain_attrs(metrics),
            )
            return
        values = objective_values(self.experiment, metrics)
        if not all(math.isfinite(v) for v in values):
            reason = f"non-finite objective values {values}"
            self._end(trial, Record("failed", TrialState.FAIL), t0, reason=reason, **plain_attrs(metrics))
            return
        self._end(trial, Record("complete", TrialState.COMPLETE, values), t0, **plain_attrs(metrics))

    def _on_epoch(
        self, trial: optuna.Trial, metrics: dict[str, Any], curve: list[float]
    ) -> Callable[[int, float], None]:
        costs = cost_vector(self.experiment, metrics)
        cfg = self.experiment.early_stopping

        def on_epoch(epoch: int, accuracy: float) -> None:
            curve.append(accuracy)
            trial.set_user_attr("curve", list(curve))
            if self.progress:
                self.progress.epoch(trial.number, epoch, accuracy)
            if self.stopping in ("median", "hyperband"):
                trial.report(accuracy, epoch)
                if trial.should_prune():
                    raise _Stop(
                        f"stopped by Optuna's {self.stopping} pruner at epoch {epoch} "
                        f"(accuracy {accuracy:.4f})"
                    )
            elif self.stopping == "dominance":
                hit = dominated_at(
                    epoch,
                    accuracy,
                    costs,
                    self.ledger.curves,
                    warmup_epochs=cfg.warmup_epochs,
                    min_trials=cfg.min_trials,
                    margin=cfg.margin,
                )
                if hit is not None:
                    other, theirs = hit
                    cheaper = any(o < c for o, c in zip(other.costs, costs, strict=True))
                    shown = ", ".join(f"{o:.4g} vs {c:.4g}" for o, c in zip(other.costs, costs, strict=True))
                    raise _Stop(
                        f"dominated at epoch {epoch}: trial {other.number} had accuracy {theirs:.4f} "
                        f">= {accuracy:.4f} at {'lower' if cheaper else 'no greater'} cost ({shown})"
                    )

        return on_epoch


def run_loop(
    experiment: Experiment,
    *,
    budget: int,
    resume_only: bool,
    progress: SearchProgress | None,
    latency_cache: LatencyCache | None,
    heartbeats: Heartbeats | None,
) -> SearchSummary:
    """Open (or create) the study, label it, and run :class:`TrialLoop` until ``budget`` trials are
    evaluated; as one of the study's workers when ``heartbeats`` is given (a PostgreSQL storage)."""
    start = time.perf_counter()
    url = experiment.storage_url
    # opened before the data is prepared: a storage that cannot be opened is reported at once
    storage = open_storage(url, heartbeats=heartbeats)
    space, dataset = prepare(experiment)
    shared = None
    if heartbeats is not None:
        shared = SharedStudy(url, experiment.study_name, heartbeats)
    # workers starting together: one creates the study and labels it, the others then load it
    with shared.lock() if shared else nullcontext():
        study = open_study(experiment, create=not resume_only, storage=storage)
        check_space(experiment, study, space)  # a changed choice list: refused before a trial is asked
        meta = study_meta(experiment, space.name, dataset)
        if study.user_attrs.get("experiment") != meta:
            study.set_user_attr("experiment", meta)
    if shared is not None:
        study.sampler = sampler_for(experiment, shared.worker)
    evaluator = Evaluator(experiment, dataset, latency_cache=latency_cache)
    calibration = calibrate_latency(evaluator.predictor, study)
    loop = TrialLoop(experiment, study, space, evaluator, progress, stopping_kind(experiment), shared)
    summary = SearchSummary(study, experiment, space, latency_calibration=calibration)
    try:
        loop.run(budget, experiment.backend.timeout_s)
    except KeyboardInterrupt as exc:
        summary.interrupted, summary.stopped_by = True, stopped_by(exc)
    finally:
        if shared:
            shared.close()
    summary.outcomes = dict(loop.ledger.outcomes)
    summary.counts = loop.ledger.counts()
    summary.eval_seconds = loop.eval_seconds
    summary.seconds = time.perf_counter() - start
    return summary
