"""The embedded backend: an Optuna study in this process, on a file storage by default.

One loop, ask -> check -> evaluate -> tell:

1. ask Optuna for a trial and sample the space through it;
2. validate the candidate's shapes and check the constraints with the analytic cost model: a
   candidate that fails is stored as *rejected* (state PRUNED, with the reason) and never built;
3. a candidate whose spec hash was evaluated before is not trained again: it is stored with the
   first one's values as a *duplicate*;
4. measure the costs, train (or score), and tell Optuna the objective values. An exception is
   stored as a FAIL with its reason and the study goes on; Ctrl-C stores the running trial as
   *interrupted* (retried on resume) and stops with every completed trial kept.

On a file storage one process owns the study, and trials a dead run left RUNNING are failed as
interrupted and retried when it resumes. On a ``postgresql://`` storage several workers share the
study: a candidate claims a budget slot before it is evaluated, and dead workers are found by
heartbeats (:mod:`._shared` has the rules).

Every trial carries user attributes: ``outcome`` (complete, early-stopped, rejected, duplicate,
failed, interrupted, and with workers skipped), ``reason``, ``spec`` (the concrete spec as JSON),
``spec_hash``, the metrics (``macs``, ``params``, ``memory_mb``, ``latency_ms``, ``accuracy``,
proxy scores), ``curve`` (validation accuracy per epoch), ``epochs``, ``eval_s``; with workers,
``worker`` (who evaluated it) and ``retry_of`` (the interrupted trial a retry repeats).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import math
import time
import traceback
import warnings
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from .._errors import SearchError, SpecError
from ..cost import LatencyCache
from ..data import Dataset, load_dataset
from ..evaluate import TrainingDiverged
from ..space import OptunaSuggest, SearchSpace, load_space
from ..spec import Spec, spec_hash
from ._early_stop import Curve, dominated_at
from ._evaluate import Evaluator, cost_vector, objective_values
from ._experiment import Experiment
from ._shared import (
    CLAIM,
    EVALUATED,
    Heartbeats,
    RetryStale,
    SharedStudy,
    Slots,
    count_slots,
    decide,
    is_shared,
    sqlalchemy_url,
)

__all__ = [
    "SearchError",
    "SearchProgress",
    "SearchSummary",
    "open_storage",
    "open_study",
    "run_search",
]

#: Candidates in a row that may be rejected or duplicates before the search gives up.
MAX_UNEVALUATED_STREAK = 500


class SearchProgress(Protocol):
    """What a search reports as it goes (the CLI draws it with rich)."""

    def start(self, total: int, done: int, study: optuna.Study) -> None: ...

    def trial_started(self, number: int, params: dict[str, Any], costs: dict[str, float]) -> None: ...

    def epoch(self, number: int, epoch: int, accuracy: float) -> None: ...

    def trial_finished(self, trial: FrozenTrial, evaluated: int) -> None: ...

    def waiting(self, taken: int, budget: int) -> None:
        """Other workers hold the last budget slots: this one waits for them to end."""


@dataclass
class SearchSummary:
    """How a call to :func:`run_search` went."""

    study: optuna.Study
    experiment: Experiment
    space: SearchSpace
    outcomes: dict[str, int] = field(default_factory=dict)
    evaluated: int = 0
    seconds: float = 0.0
    eval_seconds: float = 0.0
    interrupted: bool = False

    @property
    def overhead_fraction(self) -> float:
        """Wall time spent outside evaluation (sampling, checks, storage), as a fraction."""
        return 1.0 - self.eval_seconds / self.seconds if self.seconds else 0.0


class _Stop(Exception):
    """Raised from the epoch callback to stop a trial early."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


#: RDBStorage's keyword for the stale-trial callback (renamed in Optuna 4.9).
_STALE_CALLBACK = (
    "heartbeat_stale_trial_callback"
    if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
    else "failed_trial_callback"
)


def open_storage(url: str, *, heartbeats: Heartbeats | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage from an URL (``sqlite:///...``, ``postgresql://...``) or ``journal:PATH``.

    PostgreSQL goes through psycopg2 with ``pool_pre_ping``; ``heartbeats`` (for a worker) turns on
    Optuna's heartbeats, with :class:`~._shared.RetryStale` as the stale-trial callback."""
    if is_shared(url):
        if importlib.util.find_spec("psycopg2") is None:
            raise SearchError(
                "a postgresql:// storage needs the psycopg2 driver: pip install 'archsearch[cluster]'"
            )
        kwargs: dict[str, Any] = {"engine_kwargs": {"pool_pre_ping": True}}
        if heartbeats is not None:
            kwargs.update(
                heartbeat_interval=heartbeats.interval_s,
                grace_period=heartbeats.grace_s,
                **{_STALE_CALLBACK: RetryStale(heartbeats.max_retry)},
            )
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(sqlalchemy_url(url), **kwargs)
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120)


def _sampler(experiment: Experiment, worker: str | None = None) -> optuna.samplers.BaseSampler:
    """The experiment's sampler; a ``worker``'s is seeded by the seed and its name, or every worker
    would suggest the same architectures (duplicates) in the random phases."""
    cfg = experiment.sampler
    kind = cfg.kind or ("nsga2" if len(experiment.objectives) > 1 else "tpe")
    seed = cfg.seed
    if worker is not None:
        seed = zlib.crc32(f"{cfg.seed}:{worker}".encode())
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=cfg.population_size, seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.startup_trials, multivariate=True)
    return optuna.samplers.RandomSampler(seed=seed)


def _stopping_kind(experiment: Experiment) -> str:
    kind = experiment.early_stopping.kind
    if kind is None:
        kind = "dominance" if len(experiment.objectives) > 1 else "median"
    metrics = [o.metric for o in experiment.objectives]
    if experiment.evaluator.kind != "train" or "accuracy" not in metrics:
        return "none"  # nothing is learned epoch by epoch to judge
    if len(metrics) > 1 and kind in ("median", "hyperband"):
        raise SearchError(
            f"early_stopping {kind!r} is one of Optuna's pruners, which cannot stop "
            "multi-objective trials; use 'dominance' or 'none'"
        )
    return kind


def _pruner(experiment: Experiment, kind: str) -> optuna.pruners.BasePruner:
    cfg = experiment.early_stopping
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.min_trials, n_warmup_steps=cfg.warmup_epochs)
    if kind == "hyperband":
        epochs = getattr(experiment.evaluator, "epochs", None) or 10
        return optuna.pruners.HyperbandPruner(min_resource=max(cfg.warmup_epochs, 1), max_resource=epochs)
    return optuna.pruners.NopPruner()


def open_study(
    experiment: Experiment, *, create: bool = True, storage: optuna.storages.BaseStorage | None = None
) -> optuna.Study:
    """The experiment's study in its storage (created if ``create``); its objectives must match."""
    storage = storage or open_storage(experiment.storage_url)
    name = experiment.study_name
    try:
        study = optuna.load_study(
            study_name=name,
            storage=storage,
            sampler=_sampler(experiment),
            pruner=_pruner(experiment, _stopping_kind(experiment)),
        )
    except KeyError:
        if not create:
            raise SearchError(f"no study named {name!r} in {experiment.storage_url}") from None
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            directions=experiment.directions,
            sampler=_sampler(experiment),
            pruner=_pruner(experiment, _stopping_kind(experiment)),
        )
        study.set_user_attr("objectives", [o.model_dump(mode="json") for o in experiment.objectives])
        return study
    stored = [d.name.lower() for d in study.directions]
    metrics = [o["metric"] for o in study.user_attrs.get("objectives", [])]
    if stored != experiment.directions or metrics != [o.metric for o in experiment.objectives]:
        raise SearchError(
            f"study {name!r} in {experiment.storage_url} has objectives {metrics} "
            f"({', '.join(stored)}); the experiment asks for {[o.metric for o in experiment.objectives]} "
            f"({', '.join(experiment.directions)}): give it another name or storage, "
            "or start afresh with --fresh"
        )
    return study


def _fresh(experiment: Experiment) -> None:
    """Move an existing file storage aside, never deleting data (``study.journal`` ->
    ``study.<time>.journal``); a database storage is never touched."""
    url = experiment.storage_url
    if not url.startswith(("sqlite:///", "journal:")):
        raise SearchError(
            "--fresh moves a study file aside; with a database storage, give the experiment "
            "another backend.study_name instead (nothing stored is deleted)"
        )
    path = Path(url.removeprefix("sqlite:///").removeprefix("journal:"))
    if path.exists():
        path.rename(path.with_name(f"{path.stem}.{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}"))


def run_search(
    experiment: Experiment,
    *,
    trials: int | None = None,
    fresh: bool = False,
    resume_only: bool = False,
    progress: SearchProgress | None = None,
    latency_cache: LatencyCache | None = None,
    heartbeats: Heartbeats | None = None,
) -> SearchSummary:
    """Run (or resume) the experiment's search until ``trials`` architectures are evaluated
    (on Ray Tune when the experiment's backend is ``ray``).

    On a ``postgresql://`` storage this process is one of the study's workers: the budget counts
    every worker's evaluations, and ``heartbeats`` (default :class:`~._shared.Heartbeats`) sets
    how a dead worker's trial is found and retried."""
    if experiment.backend.kind == "ray":
        from ._ray import run_ray_search

        return run_ray_search(
            experiment, trials=trials, fresh=fresh, resume_only=resume_only, progress=progress
        )
    start = time.perf_counter()
    budget = trials or experiment.trials
    if fresh:
        _fresh(experiment)
    space, dataset = prepare(experiment)
    url = experiment.storage_url
    shared = storage = None
    if is_shared(url):
        heartbeats = heartbeats or Heartbeats()
        storage = open_storage(url, heartbeats=heartbeats)
        shared = SharedStudy(url, experiment.study_name, heartbeats)
    # workers starting together: one creates the study and labels it, the others then load it
    with shared.lock() if shared else nullcontext():
        study = open_study(experiment, create=not resume_only, storage=storage)
        meta = study_meta(experiment, space, dataset)
        if study.user_attrs.get("experiment") != meta:
            study.set_user_attr("experiment", meta)
    if shared is not None:
        study.sampler = _sampler(experiment, shared.worker)
    evaluator = Evaluator(experiment, dataset, latency_cache=latency_cache)
    loop = _Loop(experiment, study, space, evaluator, progress, _stopping_kind(experiment), shared)
    summary = SearchSummary(study, experiment, space)
    try:
        loop.run(budget, experiment.backend.timeout_s)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if shared:
            shared.close()
    summary.outcomes = dict(loop.outcomes)
    summary.evaluated = loop.evaluated
    summary.eval_seconds = loop.eval_seconds
    summary.seconds = time.perf_counter() - start
    return summary


def prepare(experiment: Experiment) -> tuple[SearchSpace, Dataset]:
    """The experiment's space and dataset: the data at the space's input size and channels, and
    the space's head sized to the data's classes."""
    space = load_space(experiment.space_source(), **_size_override(experiment))
    first = space.default().data.get("input", {})
    size = first.get("size", 224)
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    dataset = load_dataset(experiment.data, input_size=hw, channels=int(first.get("channels", 3)))
    return load_space(space, num_classes=dataset.num_classes), dataset


def study_meta(experiment: Experiment, space: SearchSpace, dataset: Dataset) -> dict[str, Any]:
    """What a study records about its search, so reports need nothing but the storage."""
    return {
        "name": experiment.name,
        "space": space.name,
        "dataset": dataset.name,
        "input_size": list(dataset.input_size),
        "channels": dataset.channels,
        "num_classes": dataset.num_classes,
    }


def _size_override(experiment: Experiment) -> dict[str, Any]:
    return {"input_size": experiment.input_size} if experiment.input_size else {}


class _Loop:
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
        self.outcomes: dict[str, int] = {}
        self.eval_seconds = 0.0
        self.by_hash: dict[str, FrozenTrial] = {}
        self.curves: list[Curve] = []
        self.evaluated = 0
        self.budget = experiment.trials
        if shared is None:
            self._recover()
        else:  # the other workers' trials are read again before every trial
            self._reindex(self.study.get_trials(deepcopy=False))

    # ------------------------------------------------------------------ resume

    def _recover(self) -> None:
        """Index the stored trials; fail and re-queue trials a dead run left RUNNING."""
        trials = self.study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        local = self.experiment.storage_url.startswith(("sqlite:///", "journal:"))
        for t in trials:
            if t.state == TrialState.RUNNING and local:  # one process owns a file storage
                self.study._storage.set_trial_user_attr(t._trial_id, "outcome", "interrupted")
                self.study._storage.set_trial_user_attr(
                    t._trial_id, "reason", "left running by a run that stopped"
                )
                self.study.tell(t.number, state=TrialState.FAIL)
                outcome = "interrupted"
            else:
                outcome = t.user_attrs.get("outcome", "")
            if outcome == "interrupted" and t.number not in retried and t.params:
                self.study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        for t in self.study.get_trials(deepcopy=False):
            self._index(t)

    def _reindex(self, trials: list[FrozenTrial]) -> None:
        self.by_hash, self.curves, self.evaluated = {}, [], 0
        for t in trials:
            if t.state.is_finished():
                self._index(t)

    def _index(self, t: FrozenTrial) -> None:
        outcome = t.user_attrs.get("outcome")
        if outcome in EVALUATED:
            self.evaluated += 1
            h = t.user_attrs.get("spec_hash")
            if h and (outcome != "failed" or h not in self.by_hash):
                self.by_hash.setdefault(h, t)
        if outcome == "complete" and t.user_attrs.get("curve"):
            self.curves.append(
                Curve(
                    t.number, tuple(cost_vector(self.experiment, t.user_attrs)), tuple(t.user_attrs["curve"])
                )
            )

    # ------------------------------------------------------------------ the loop

    def run(self, budget: int, timeout_s: float | None) -> None:
        self.budget = budget
        if self.shared is not None:
            self._slots()
        if self.progress:
            self.progress.start(budget, min(self.evaluated, budget), self.study)
        started = time.monotonic()
        streak = 0
        waited = False
        while self.evaluated < budget:
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                break
            room = self.shared is None or self._room(budget)
            if self.evaluated >= budget:
                break
            if not room:
                assert self.shared is not None
                if self.progress and not waited:
                    self.progress.waiting(budget - self.evaluated, budget)
                waited = True
                time.sleep(self.shared.heartbeats.poll_s)
                continue
            waited = False
            spent = self._trial()
            streak = 0 if spent else streak + 1
            if streak >= MAX_UNEVALUATED_STREAK:
                raise SearchError(
                    f"the last {streak} candidates were all rejected or already evaluated: the space may be "
                    f"exhausted ({self.space.size():,} members) or its constraints too tight"
                )

    # ------------------------------------------------------------------ workers

    def _slots(self) -> Slots:
        """Fail stale trials (queueing their retries), read the study again; the slots taken."""
        assert self.shared is not None
        with self.shared.lock():
            self.shared.fail_stale(self.study)
            trials = self.study.get_trials(deepcopy=False)
        self._reindex(trials)
        return count_slots(trials)

    def _room(self, budget: int) -> bool:
        """Whether asking for a trial may get a slot: a queued retry, or a slot nobody holds."""
        slots = self._slots()
        return slots.waiting > 0 or slots.taken < budget

    def _finish(
        self,
        trial: optuna.Trial,
        outcome: str,
        *,
        values: list[float] | None = None,
        state: TrialState = TrialState.COMPLETE,
        **attrs: Any,
    ) -> FrozenTrial:
        if self.shared is not None:
            attrs.setdefault("reason", None)  # replaces the reason a claimed trial carries in advance
        for key, value in {"outcome": outcome, **attrs}.items():
            trial.set_user_attr(key, value)
        frozen = self.study.tell(trial, values, state=state if values is None else None)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self._index(frozen)
        if self.progress:
            self.progress.trial_finished(frozen, self.evaluated)
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
        candidate = self.space.candidate(OptunaSuggest(trial))
        if candidate.rejected is not None or candidate.spec is None:
            self._finish(trial, "rejected", state=TrialState.PRUNED, reason=candidate.rejected)
            return False
        spec = candidate.spec
        h = spec_hash(spec)
        trial.set_user_attr("spec_hash", h)
        data = {**candidate.sample.data, "name": f"{self.experiment.study_name}-t{trial.number}"}
        trial.set_user_attr("spec", json.dumps(data, separators=(",", ":")))
        seen = self.by_hash.get(h) if self.shared is None else self._claim(trial, h)
        if seen == "skipped":
            self._finish(
                trial,
                "skipped",
                state=TrialState.PRUNED,
                reason=f"the budget of {self.budget} evaluations is held by other workers' trials",
            )
            return False
        if isinstance(seen, FrozenTrial):
            self._duplicate(trial, seen)
            return False
        self._evaluate(trial, spec, candidate.costs)
        return True

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
        self._reindex(trials)
        if verdict.kind == "skipped":
            return "skipped"
        return verdict.other

    def _duplicate(self, trial: optuna.Trial, seen: FrozenTrial) -> None:
        """Store ``trial`` as the same architecture as ``seen``, with its values where it has them."""
        hidden = ("outcome", "reason", "retry_of", CLAIM)
        metrics = {k: v for k, v in seen.user_attrs.items() if k not in hidden}
        if seen.state == TrialState.COMPLETE and seen.values is not None:
            self._finish(
                trial,
                "duplicate",
                values=list(seen.values),
                duplicate_of=seen.number,
                **{k: v for k, v in metrics.items() if k not in ("spec", "spec_hash")},
            )
            return
        status = "running" if seen.state == TrialState.RUNNING else seen.user_attrs.get("outcome")
        self._finish(
            trial,
            "duplicate",
            state=TrialState.FAIL if seen.state == TrialState.FAIL else TrialState.PRUNED,
            duplicate_of=seen.number,
            reason=f"the same architecture as trial {seen.number} ({status})",
        )

    def _evaluate(self, trial: optuna.Trial, spec: Spec, costs: Any) -> None:
        t0 = time.perf_counter()
        metrics: dict[str, Any] = {}
        curve: list[float] = []
        try:
            model = self.evaluator.build(spec)
            metrics.update(self.evaluator.costs(spec, costs, trial.user_attrs["spec_hash"], model))
            for key, value in metrics.items():
                trial.set_user_attr(key, value)
            if self.progress:
                self.progress.trial_started(trial.number, dict(trial.params), dict(metrics))
            result = self.evaluator.evaluate(model, self._on_epoch(trial, metrics, curve))
            metrics.update(result.metrics)
            metrics.update(curve=result.curve or curve, epochs=result.epochs)
        except _Stop as stop:
            self.eval_seconds += time.perf_counter() - t0
            metrics.update(curve=curve, epochs=len(curve), accuracy=curve[-1] if curve else math.nan)
            self._finish(
                trial,
                "early-stopped",
                state=TrialState.PRUNED,
                reason=stop.reason,
                eval_s=time.perf_counter() - t0,
                **metrics,
            )
            return
        except KeyboardInterrupt:
            self.eval_seconds += time.perf_counter() - t0
            frozen = self._finish(
                trial,
                "interrupted",
                state=TrialState.FAIL,
                reason="interrupted (Ctrl-C); retried on resume"
                if self.shared is None
                else f"interrupted (Ctrl-C) on worker {self.shared.worker}; retried by the next worker",
                **_plain(metrics),
            )
            if self.shared is not None:  # no resume comes to retry it: queue it for the other workers
                with self.shared.lock():
                    RetryStale(self.shared.heartbeats.max_retry)(self.study, frozen)
            raise
        except Exception as exc:  # a crashed trial is data, not the end of the search
            self.eval_seconds += time.perf_counter() - t0
            reason = _reason(exc)
            self._finish(
                trial,
                "failed",
                state=TrialState.FAIL,
                reason=reason,
                traceback=traceback.format_exc(limit=8)[-4000:],
                eval_s=time.perf_counter() - t0,
                **_plain(metrics),
            )
            return
        self.eval_seconds += time.perf_counter() - t0
        values = objective_values(self.experiment, metrics)
        if not all(math.isfinite(v) for v in values):
            self._finish(
                trial,
                "failed",
                state=TrialState.FAIL,
                reason=f"non-finite objective values {values}",
                eval_s=time.perf_counter() - t0,
                **_plain(metrics),
            )
            return
        self._finish(trial, "complete", values=values, eval_s=time.perf_counter() - t0, **_plain(metrics))

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
                    self.curves,
                    warmup_epochs=cfg.warmup_epochs,
                    min_trials=cfg.min_trials,
                    margin=cfg.margin,
                )
                if hit is not None:
                    other, theirs = hit
                    raise _Stop(
                        f"dominated at epoch {epoch}: trial {other.number} had accuracy {theirs:.4f} "
                        f">= {accuracy:.4f} at no greater cost"
                    )

        return on_epoch


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | list | bool)}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TrainingDiverged):
        return f"diverged: {exc}"
    if isinstance(exc, SpecError):
        return f"invalid: {exc}"
    if "out of memory" in str(exc).lower():
        return f"out of memory: {str(exc).splitlines()[0][:300]}"
    text = str(exc).splitlines()[0][:500] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
