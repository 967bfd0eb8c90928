"""The Ray backend's driver: connect to Ray, start the latency actor, run (or restore) the Tuner.

Who does what: :class:`~._ray_searcher.OptunaSpaceSearcher` (in this process) asks Optuna and
checks each candidate; :func:`~._ray_trainable.trainable` (in Ray's workers) evaluates it;
:class:`~._pareto_asha.ParetoASHA` stops trials at ASHA rungs by non-dominated rank over accuracy
and the cost objectives. Resume: the study journal keeps every finished trial; Ray's experiment
directory (``storage_path/<study>``) keeps the unfinished ones with their checkpoints. Running the
search again restores it with ``Tuner.restore(..., resume_errored=True)``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune

from ..core import shown
from ..errors import SearchError
from ..evaluate import TrainConfig
from ._backend import SearchProgress, SearchSummary
from ._candidate import prepare
from ._experiment import Experiment, RayBackend
from ._ledger import count_trials, study_meta
from ._pareto_asha import ParetoASHA
from ._ray_searcher import DRIVERS, Driver, OptunaSpaceSearcher
from ._ray_trainable import NAMESPACE, LatencyMeter, Setup, trainable
from ._resume import check_space
from ._storage import fresh_storage, open_storage, open_study, stopping_kind

__all__ = ["run"]

#: The custom resource the latency actor holds (a local Ray started by archsearch offers one).
LATENCY_RESOURCE = "archsearch_latency"
#: ASHA's reduction factor: a third of the trials at a rung go on.
ETA = 3


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
    if objective is None or objective.predict:  # predicted in the trial from the table: no actor
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
        ray.remote(LatencyMeter)
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
    if stopping_kind(_as_multi(experiment)) == "none" or not isinstance(evaluator, TrainConfig):
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
        fresh_storage(experiment, progress.note if progress else None)
        if Path(experiment_dir).exists():
            aside = f"{experiment_dir}.{time.strftime('%Y%m%d-%H%M%S')}"
            Path(experiment_dir).rename(aside)
            if progress:
                progress.note(f"--fresh: moved the old Ray folder {shown(experiment_dir)} to {shown(aside)}")

    # opened before the data is prepared: a storage that cannot be opened is reported at once
    study_storage = open_storage(experiment.storage_url)
    space, dataset = prepare(experiment)
    study = open_study(_as_multi(experiment), create=not resume_only, storage=study_storage)
    check_space(experiment, study, space)  # a changed choice list: refused before a trial is asked
    study.set_user_attr("experiment", study_meta(experiment, space.name, dataset, backend="ray"))
    started = _init_ray(backend)
    summary = SearchSummary(study, experiment, space)
    driver = Driver(
        budget=budget,
        deadline=time.monotonic() + backend.timeout_s if backend.timeout_s else None,
        progress=progress,
        experiment_dir=experiment_dir,
        max_failures=backend.max_failures,
    )
    DRIVERS[experiment.study_name] = driver
    try:
        actor_name, actor = _latency_actor(experiment, backend)
        setup = Setup(
            experiment=_as_multi(experiment),
            input_size=dataset.input_size,
            channels=dataset.channels,
            threads=max(1, int(backend.cpus_per_trial)),
            latency_actor=actor_name,
        )
        runnable = tune.with_resources(
            tune.with_parameters(trainable, setup=setup),
            {"cpu": backend.cpus_per_trial, "gpu": backend.gpus_per_trial},
        )
        if progress:
            counts = count_trials(study.get_trials(deepcopy=False), experiment.directions)
            progress.start(budget, counts, study)
        if tune.Tuner.can_restore(experiment_dir):
            tuner = tune.Tuner.restore(experiment_dir, trainable=runnable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                runnable,
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
        DRIVERS.pop(experiment.study_name, None)
        if started:
            ray.shutdown()
    if driver.error:
        raise SearchError(driver.error)
    trials_now = study.get_trials(deepcopy=False)
    summary.outcomes = dict(driver.outcomes)
    summary.counts = count_trials(trials_now, experiment.directions)
    summary.seconds = time.perf_counter() - start
    # trials overlap: the time inside evaluation is the busiest single trial's share at most
    this_run = [
        float(t.user_attrs.get("eval_s", 0.0)) for t in trials_now if t.user_attrs.get("ray_trial_id")
    ]
    summary.eval_seconds = min(sum(this_run), summary.seconds)
    return summary
