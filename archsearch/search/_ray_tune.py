"""The Ray backend: the same search as the Optuna backend, run by Ray Tune (imports Ray).

Who does what:

* :class:`OptunaSpaceSearcher` (a ``ray.tune.search.Searcher``, in the driver) wraps the
  experiment's Optuna study on its journal file. For each Ray trial it asks Optuna, samples the
  space through :class:`~archsearch.space.OptunaSuggest`, and applies the Optuna backend's
  rejection (invalid shapes, constraints) and dedup by spec hash *before* anything is
  dispatched: rejected and duplicate candidates are told to Optuna at once and never reach Ray
  (a duplicate of a trial still running waits for it and takes its values). When a Ray trial
  ends it tells Optuna every objective value, with the user attributes the Optuna backend
  writes (``outcome``, ``reason``, ``spec``, ``spec_hash``, the metrics, ``curve``, ...), so
  :func:`~archsearch.search.trials_table` and the reports read both backends alike. (Ray's own
  ``OptunaSearch`` is not used: it drops intermediate results of multi-objective studies and
  never passes constraints.)
* :func:`_trainable` (run by Ray with ``cpus_per_trial``/``gpus_per_trial``; torch uses as many
  threads as CPUs reserved) rebuilds the spec from the trial's parameters, measures its costs,
  trains with one ``ray.tune.report`` and checkpoint per epoch, and ends with a final report
  carrying every metric. The architecture's own errors (a diverged loss, an invalid model) end
  it as a failed trial at once; anything else (a dead worker or node) makes Ray retry it up to
  ``max_failures`` times. A retried trial takes the costs it measured (and, if it had finished,
  its result) from its last checkpoint; training restarts from epoch 1, which gives the same
  curve because training is seeded.
* :class:`~archsearch.search._pareto_asha.ParetoASHA` stops trials at ASHA rungs by
  non-dominated rank over accuracy and the cost objectives.
* Latency, when it is an objective, is timed by one actor (:class:`_LatencyMeter`) that holds the
  custom resource ``archsearch_latency`` plus ``threads`` CPUs (and a whole GPU for CUDA
  timing). Ray hands out CPUs and GPUs by reservation, so while the search runs, the cores (and
  the GPU) the meter times on are never reserved by a trial of this search: a timing does not
  share its cores with co-scheduled training, and every architecture is timed by the same
  process with the same threads, one at a time. (Reservations are bookkeeping: work outside Ray
  on that node can still disturb it; give the resource to a node that runs nothing else.)
* Resume: the study journal keeps every finished trial; Ray's experiment directory
  (``storage_path/<study>``) keeps the unfinished ones with their checkpoints. Running the
  search again restores it with ``Tuner.restore(..., resume_errored=True)``; Optuna trials the
  driver had asked for but Ray had not recorded are failed as *interrupted* and re-queued.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
import torch
from optuna.trial import FrozenTrial, TrialState
from ray import tune
from ray.tune.search import Searcher

from .._errors import Issue, SpecError
from ..compiler import build
from ..cost import measure_latency
from ..data import load_dataset
from ..evaluate import TrainConfig, TrainingDiverged
from ..space import FixedSuggest, OptunaSuggest, SearchSpace
from ..spec import Spec, spec_hash
from ._evaluate import Evaluator, cost_vector, objective_values
from ._experiment import Experiment, RayBackend
from ._optuna import (
    EVALUATED,
    MAX_UNEVALUATED_STREAK,
    SearchError,
    SearchProgress,
    SearchSummary,
    _fresh,
    _plain,
    _reason,
    _stopping_kind,
    open_study,
    prepare,
    study_meta,
)
from ._pareto_asha import STOP_REASONS, ParetoASHA

__all__ = ["OptunaSpaceSearcher", "run"]

NAMESPACE = "archsearch"
#: The custom resource the latency actor holds (a local Ray started by archsearch offers one).
LATENCY_RESOURCE = "archsearch_latency"
#: ASHA's reduction factor: a third of the trials at a rung go on.
ETA = 3


@dataclass
class _Driver:
    """What the search in this process shares with its searcher (which Tune pickles and restores)."""

    budget: int
    deadline: float | None
    progress: SearchProgress | None
    experiment_dir: str
    max_failures: int
    outcomes: dict[str, int] = field(default_factory=dict)
    error: str | None = None


#: The search running in this driver, by study name.
_DRIVERS: dict[str, _Driver] = {}


# ---------------------------------------------------------------------------------------- searcher


@dataclass
class _Live:
    optuna_id: int
    number: int
    spec_hash: str
    stale: bool = False  # finished in the study before a restore: Ray's re-run of it is ignored


class OptunaSpaceSearcher(Searcher):
    """A Tune searcher over an archsearch space, backed by the experiment's Optuna study.

    Tune pickles it with the Tuner and saves :meth:`save` snapshots with its experiment state;
    the study is opened lazily in the driver, never pickled.
    """

    def __init__(self, experiment: Experiment, space: SearchSpace):
        super().__init__(metric=None, mode=None)
        self.experiment, self.space = experiment, space
        self.live: dict[str, _Live] = {}
        self._study: optuna.Study | None = None
        self._by_hash: dict[str, FrozenTrial] = {}
        self._waiting: dict[str, list[int]] = {}  # spec hash -> Optuna trial ids of waiting duplicates
        self._evaluated = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_study=None, _by_hash={}, _waiting={}, _evaluated=0)
        return state

    # ------------------------------------------------------------------ Tune's save / restore

    def save(self, checkpoint_path: str) -> None:
        live = {k: [v.optuna_id, v.number, v.spec_hash] for k, v in self.live.items() if not v.stale}
        Path(checkpoint_path).write_text(json.dumps({"live": live}))

    def restore(self, checkpoint_path: str) -> None:
        data = json.loads(Path(checkpoint_path).read_text())
        self.live = {k: _Live(int(i), int(n), str(h)) for k, (i, n, h) in data["live"].items()}
        self._study = None  # reconciled with the journal on first use

    # ------------------------------------------------------------------ the study

    @property
    def driver(self) -> _Driver:
        return _DRIVERS[self.experiment.study_name]

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._open()
        assert self._study is not None
        return self._study

    def _open(self) -> None:
        """Open the study; index finished trials; settle the trials a dead driver left RUNNING."""
        study = open_study(self.experiment, create=True)
        self._study = study
        live_ids = {v.optuna_id: k for k, v in self.live.items()}
        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        for t in trials:
            if t.state == TrialState.RUNNING and t._trial_id not in live_ids:
                # asked by a driver that died before Ray recorded the trial: run it again
                attrs = {"outcome": "interrupted", "reason": "left running by a run that stopped"}
                for key, value in attrs.items():
                    study._storage.set_trial_user_attr(t._trial_id, key, value)
                study.tell(t.number, state=TrialState.FAIL)
                if t.params and t.number not in retried:
                    study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            elif t.state != TrialState.RUNNING and t._trial_id in live_ids:
                self.live[live_ids[t._trial_id]].stale = True
        for t in study.get_trials(deepcopy=False):
            self._index(t)

    def _index(self, t: FrozenTrial) -> None:
        outcome = t.user_attrs.get("outcome")
        if outcome in EVALUATED:
            self._evaluated += 1
            h = t.user_attrs.get("spec_hash")
            if h and (outcome != "failed" or h not in self._by_hash):
                self._by_hash.setdefault(h, t)

    def _running(self) -> int:
        return sum(not v.stale for v in self.live.values())

    def _finish(
        self,
        optuna_id: int,
        outcome: str,
        *,
        values: list[float] | None = None,
        state: TrialState = TrialState.COMPLETE,
        **attrs: Any,
    ) -> FrozenTrial:
        trial = optuna.Trial(self.study, optuna_id)
        for key, value in {"outcome": outcome, **attrs}.items():
            if value is not None:
                trial.set_user_attr(key, value)
        frozen = self.study.tell(trial, values, state=state if values is None else None)
        driver = _DRIVERS.get(self.experiment.study_name)
        self._index(frozen)
        if driver is not None:
            driver.outcomes[outcome] = driver.outcomes.get(outcome, 0) + 1
            if driver.progress:
                driver.progress.trial_finished(frozen, self._evaluated)
        return frozen

    # ------------------------------------------------------------------ asking

    def suggest(self, trial_id: str) -> dict[Any, Any] | None:  # or Searcher.FINISHED
        study, driver = self.study, self.driver
        streak = 0
        while True:
            out_of_time = driver.deadline is not None and time.monotonic() > driver.deadline
            if out_of_time or driver.error or self._evaluated + self._running() >= driver.budget:
                return Searcher.FINISHED if self._running() == 0 else None  # type: ignore[return-value]
            trial = study.ask()
            candidate = self.space.candidate(OptunaSuggest(trial))
            if candidate.rejected is not None or candidate.spec is None:
                self._finish(trial._trial_id, "rejected", state=TrialState.PRUNED, reason=candidate.rejected)
            else:
                h = spec_hash(candidate.spec)
                trial.set_user_attr("spec_hash", h)
                data = {**candidate.sample.data, "name": f"{self.experiment.study_name}-t{trial.number}"}
                trial.set_user_attr("spec", json.dumps(data, separators=(",", ":")))
                seen = self._by_hash.get(h)
                if seen is not None:
                    self._duplicate(trial._trial_id, seen)
                elif any(v.spec_hash == h and not v.stale for v in self.live.values()):
                    self._waiting.setdefault(h, []).append(trial._trial_id)
                else:
                    trial.set_user_attr("ray_trial_id", trial_id)
                    self.live[trial_id] = _Live(trial._trial_id, trial.number, h)
                    if driver.progress:
                        driver.progress.trial_started(trial.number, dict(trial.params), {})
                    return {"trial": trial.number, "params": dict(trial.params), "spec_hash": h}
            streak += 1
            if streak >= MAX_UNEVALUATED_STREAK:
                driver.error = (
                    f"the last {streak} candidates were all rejected or already evaluated: the space may "
                    f"be exhausted ({self.space.size():,} members) or its constraints too tight"
                )

    def _duplicate(self, optuna_id: int, seen: FrozenTrial) -> None:
        """Store a candidate evaluated before as a duplicate of ``seen`` (as the Optuna backend)."""
        if seen.state == TrialState.COMPLETE and seen.values is not None:
            skip = ("outcome", "reason", "retry_of", "spec", "spec_hash", "ray_trial_id", "ray_node_id")
            metrics = {k: v for k, v in seen.user_attrs.items() if k not in skip}
            self._finish(
                optuna_id, "duplicate", values=list(seen.values), duplicate_of=seen.number, **metrics
            )
        else:
            self._finish(
                optuna_id,
                "duplicate",
                state=TrialState.PRUNED if seen.state == TrialState.PRUNED else TrialState.FAIL,
                duplicate_of=seen.number,
                reason=f"the same architecture as trial {seen.number} ({seen.user_attrs.get('outcome')})",
            )

    # ------------------------------------------------------------------ results

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        driver = _DRIVERS.get(self.experiment.study_name)
        live = self.live.get(trial_id)
        if driver and driver.progress and live and "epoch" in result and "accuracy" in result:
            driver.progress.epoch(live.number, int(result["epoch"]), float(result["accuracy"]))

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.study  # noqa: B018 (opens and reconciles the study first)
        live = self.live.pop(trial_id, None)
        if live is None or live.stale:
            return
        payload = json.loads(result["archsearch"]) if result and "archsearch" in result else {}
        metrics = _plain(payload.get("metrics", {}))
        attrs: dict[str, Any] = {"ray_node_id": payload.get("node_id"), "eval_s": payload.get("eval_s")}
        stop_reason = STOP_REASONS.pop(trial_id, None)
        if error:
            driver = _DRIVERS.get(self.experiment.study_name)
            retries = driver.max_failures if driver else "its"
            where = f" (Ray's error.txt under {driver.experiment_dir})" if driver else ""
            frozen = self._finish(
                live.optuna_id,
                "failed",
                state=TrialState.FAIL,
                reason=f"the Ray trial failed after {retries} retries{where}",
                **attrs,
                **metrics,
            )
        elif payload.get("failed"):
            frozen = self._finish(
                live.optuna_id, "failed", state=TrialState.FAIL, reason=payload["failed"], **attrs, **metrics
            )
        elif payload.get("final"):
            values = objective_values(self.experiment, metrics)
            if all(math.isfinite(v) for v in values):
                frozen = self._finish(live.optuna_id, "complete", values=values, **attrs, **metrics)
            else:
                frozen = self._finish(
                    live.optuna_id,
                    "failed",
                    state=TrialState.FAIL,
                    reason=f"non-finite objective values {values}",
                    **attrs,
                    **metrics,
                )
        else:  # stopped by the scheduler after an epoch
            curve = list(payload.get("curve", []))
            metrics.update(curve=curve, epochs=len(curve), accuracy=curve[-1] if curve else math.nan)
            frozen = self._finish(
                live.optuna_id,
                "early-stopped",
                state=TrialState.PRUNED,
                reason=stop_reason or "stopped by Ray Tune",
                **attrs,
                **metrics,
            )
        for waiting in self._waiting.pop(live.spec_hash, []):
            self._duplicate(waiting, frozen)


# ---------------------------------------------------------------------------------------- trainable


@dataclass(frozen=True)
class _Setup:
    """What every trial needs besides its parameters (shipped once through Ray's object store)."""

    experiment: Experiment
    space: SearchSpace
    input_size: tuple[int, int]
    channels: int
    threads: int
    latency_actor: str | None


class _RayEvaluator(Evaluator):
    """The Optuna backend's evaluator, with latency timed by the search's latency actor."""

    def __init__(self, experiment: Experiment, dataset: Any, actor: str | None):
        super().__init__(experiment, dataset)
        self.actor = actor

    def _latency(self, spec: Spec, spec_hash: str, model: torch.nn.Module) -> float:
        if self.actor is None:
            return super()._latency(spec, spec_hash, model)
        assert self.latency is not None
        o = self.latency
        size = spec.input.size
        h, w = (size, size) if isinstance(size, int) else size
        meter = ray.get_actor(self.actor, namespace=NAMESPACE)
        shape = (o.batch, spec.input.channels, h, w)
        milliseconds: Any = ray.get(meter.measure.remote(spec, shape, o.device, o.runs))
        return float(milliseconds)


class _LatencyMeter:
    """Times forward passes, one at a time, on CPUs (and a GPU) no trial of the search holds."""

    def __init__(self, threads: int):
        self.threads = threads

    def measure(self, spec: Spec, shape: tuple[int, ...], device: str, runs: int) -> float:
        torch.manual_seed(0)
        model = build(spec)
        return measure_latency(model, shape, device=device, runs=runs, threads=self.threads).median_ms


def _checkpoint(state: dict[str, Any]) -> Any:
    folder = tempfile.mkdtemp(prefix="archsearch-ckpt-")
    Path(folder, "state.json").write_text(json.dumps(state))
    return tune.Checkpoint.from_directory(folder)


def _restored() -> dict[str, Any]:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as folder:
        path = Path(folder, "state.json")
        return json.loads(path.read_text()) if path.exists() else {}


def _trainable(config: dict[str, Any], setup: _Setup) -> None:
    """One Ray trial: costs, then per-epoch training reports, then a final report."""
    t0 = time.perf_counter()
    torch.set_num_threads(setup.threads)
    experiment = setup.experiment
    base = {"trial": config["trial"], "node_id": ray.get_runtime_context().get_node_id()}
    saved = _restored()
    if "final" in saved:  # finished before its worker died: report it again
        tune.report({"archsearch": json.dumps(saved["final"]), "final": True, **base})
        return
    metrics: dict[str, Any] = dict(saved.get("costs", {}))  # kept from before a retry
    curve: list[float] = []

    def report(payload: dict[str, Any], **extra: Any) -> None:
        payload = {**base, **payload, "eval_s": time.perf_counter() - t0}
        state = {"final": payload} if payload.get("final") else {"costs": costs_only}
        tune.report({"archsearch": json.dumps(payload), **base, **extra}, checkpoint=_checkpoint(state))

    costs_only: dict[str, Any] = {}
    try:
        dataset = load_dataset(experiment.data, input_size=setup.input_size, channels=setup.channels)
        evaluator = _RayEvaluator(experiment, dataset, setup.latency_actor)
        candidate = setup.space.candidate(FixedSuggest(config["params"]))
        if candidate.spec is None or candidate.costs is None:  # the searcher rejects these first
            raise SpecError(Issue((), f"rejected: {candidate.rejected}"))
        model = evaluator.build(candidate.spec)
        if not metrics:
            metrics = dict(evaluator.costs(candidate.spec, candidate.costs, config["spec_hash"], model))
        costs_only = dict(metrics)
        costs = {f"cost_{i}": c for i, c in enumerate(cost_vector(experiment, metrics))}

        def on_epoch(epoch: int, accuracy: float) -> None:
            curve.append(accuracy)
            report(
                {"metrics": _plain(metrics), "curve": curve, "epoch": epoch},
                epoch=epoch,
                accuracy=accuracy,
                **costs,
            )

        result = evaluator.evaluate(model, on_epoch)
    except (TrainingDiverged, SpecError) as exc:  # the architecture's fault: retrying cannot help
        report({"final": True, "failed": _reason(exc), "metrics": _plain(metrics)}, final=True)
        return
    metrics.update(result.metrics)
    metrics.update(curve=result.curve or curve, epochs=result.epochs)
    report({"final": True, "metrics": _plain(metrics)}, final=True)


# ---------------------------------------------------------------------------------------- driver


def _init_ray(backend: RayBackend) -> bool:
    """Connect to (or start) Ray; whether this call started it."""
    if ray.is_initialized():
        return False
    if backend.address is None:
        ray.init(
            namespace=NAMESPACE,
            resources={LATENCY_RESOURCE: 1},
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    else:
        ray.init(address=backend.address, namespace=NAMESPACE, log_to_driver=False, configure_logging=False)
    return True


def _latency_actor(experiment: Experiment, backend: RayBackend) -> tuple[str | None, Any]:
    objective = next((o for o in experiment.objectives if o.metric == "latency_ms"), None)
    if objective is None:
        return None, None
    if ray.cluster_resources().get(LATENCY_RESOURCE, 0) < 1:
        raise SearchError(
            f"latency_ms on Ray is timed on a node offering the resource {LATENCY_RESOURCE!r}, and this "
            "cluster has none: start one node with "
            f"`ray start ... --resources='{{\"{LATENCY_RESOURCE}\": 1}}'` (its timing cores are then kept "
            "free of trials)"
        )
    threads = objective.threads or max(1, int(backend.cpus_per_trial))
    name = f"latency-{experiment.study_name}"
    gpus = 1 if objective.device.startswith("cuda") else 0
    actor = (
        ray.remote(_LatencyMeter)
        .options(
            name=name,
            namespace=NAMESPACE,
            num_cpus=threads,
            num_gpus=gpus,
            resources={LATENCY_RESOURCE: 1},
            get_if_exists=True,
        )
        .remote(threads)
    )
    return name, actor


def _scheduler(experiment: Experiment) -> Any:
    evaluator = experiment.evaluator
    if _stopping_kind(_as_multi(experiment)) == "none" or not isinstance(evaluator, TrainConfig):
        return None
    if evaluator.epochs is None:
        return None
    cfg = experiment.early_stopping
    return ParetoASHA(
        max_epochs=evaluator.epochs, grace_epochs=cfg.warmup_epochs, eta=ETA, min_trials=cfg.min_trials
    )


def _as_multi(experiment: Experiment) -> Experiment:
    """On Ray every early-stopping kind but ``none`` is the Pareto ASHA (Optuna's pruners are not
    used), so the check that rejects Optuna pruners for several objectives does not apply."""
    kind = experiment.early_stopping.kind
    if kind in ("median", "hyperband"):
        return experiment.model_copy(
            update={"early_stopping": experiment.early_stopping.model_copy(update={"kind": "dominance"})}
        )
    return experiment


def run(
    experiment: Experiment,
    *,
    trials: int | None = None,
    fresh: bool = False,
    resume_only: bool = False,
    progress: SearchProgress | None = None,
) -> SearchSummary:
    """Run (or resume) the experiment's search on Ray Tune (see the module docstring)."""
    start = time.perf_counter()
    backend = experiment.backend
    assert isinstance(backend, RayBackend)
    # one checkpoint kept per trial forces an experiment snapshot per epoch, which resume needs
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    budget = trials or experiment.trials
    storage = Path(backend.storage_path or experiment.run_path / "ray")
    storage = storage if "://" in str(backend.storage_path or "") else storage.resolve()
    experiment_dir = f"{storage}/{experiment.study_name}"
    if fresh:
        _fresh(experiment)
        if Path(experiment_dir).exists():
            Path(experiment_dir).rename(f"{experiment_dir}.{time.strftime('%Y%m%d-%H%M%S')}")

    space, dataset = prepare(experiment)
    study = open_study(_as_multi(experiment), create=not resume_only)
    study.set_user_attr("experiment", {**study_meta(experiment, space, dataset), "backend": "ray"})
    started = _init_ray(backend)
    summary = SearchSummary(study, experiment, space)
    driver = _Driver(
        budget=budget,
        deadline=time.monotonic() + backend.timeout_s if backend.timeout_s else None,
        progress=progress,
        experiment_dir=experiment_dir,
        max_failures=backend.max_failures,
    )
    _DRIVERS[experiment.study_name] = driver
    try:
        actor_name, actor = _latency_actor(experiment, backend)
        setup = _Setup(
            experiment=_as_multi(experiment),
            space=space,
            input_size=dataset.input_size,
            channels=dataset.channels,
            threads=max(1, int(backend.cpus_per_trial)),
            latency_actor=actor_name,
        )
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, setup=setup),
            {"cpu": backend.cpus_per_trial, "gpu": backend.gpus_per_trial},
        )
        if progress:
            evaluated = sum(
                t.user_attrs.get("outcome") in EVALUATED for t in study.get_trials(deepcopy=False)
            )
            progress.start(budget, min(evaluated, budget), study)
        if tune.Tuner.can_restore(experiment_dir):
            tuner = tune.Tuner.restore(experiment_dir, trainable=trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=OptunaSpaceSearcher(_as_multi(experiment), space),
                    scheduler=_scheduler(experiment),
                    num_samples=-1,
                    max_concurrent_trials=backend.max_concurrent,
                    reuse_actors=False,
                ),
                run_config=tune.RunConfig(
                    name=experiment.study_name,
                    storage_path=str(storage),
                    failure_config=tune.FailureConfig(max_failures=backend.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    verbose=0,
                ),
            )
        try:
            tuner.fit()
        except KeyboardInterrupt:
            summary.interrupted = True
        del actor
    finally:
        _DRIVERS.pop(experiment.study_name, None)
        if started:
            ray.shutdown()
    if driver.error:
        raise SearchError(driver.error)
    trials_now = study.get_trials(deepcopy=False)
    summary.outcomes = dict(driver.outcomes)
    summary.evaluated = sum(t.user_attrs.get("outcome") in EVALUATED for t in trials_now)
    summary.seconds = time.perf_counter() - start
    # trials overlap: the time inside evaluation is the busiest single trial's share at most
    this_run = [
        float(t.user_attrs.get("eval_s", 0.0)) for t in trials_now if t.user_attrs.get("ray_trial_id")
    ]
    summary.eval_seconds = min(sum(this_run), summary.seconds)
    return summary
