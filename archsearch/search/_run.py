"""The table of backends, and :func:`run_search`, which picks one for an experiment."""

from __future__ import annotations

import warnings
from contextlib import nullcontext

from ..cost import LatencyCache
from ..evaluate import SupernetConfig
from ._backend import Backend, NothingRun, SearchProgress, SearchSummary
from ._devices import check_devices
from ._experiment import Experiment
from ._front_latency import measure_front_latency
from ._inprocess import InProcessBackend
from ._lock import StudyLock
from ._oneshot import retrain_front
from ._ray import RayTuneBackend
from ._resume import check_evaluator, describe_change
from ._shared import Heartbeats, is_shared
from ._signals import sigterm_as_interrupt
from ._storage import check_file_storage, removed_if_unused
from ._workers import WorkersBackend

__all__ = ["BACKENDS", "backend_for", "run_search"]

#: Every backend by name: ``optuna`` (in process), ``workers`` (Optuna workers on PostgreSQL),
#: ``ray`` (Ray Tune). An experiment's ``backend.kind`` names one; ``optuna`` on a
#: ``postgresql://`` storage is ``workers``.
BACKENDS: dict[str, type[Backend]] = {
    InProcessBackend.kind: InProcessBackend,
    WorkersBackend.kind: WorkersBackend,
    RayTuneBackend.kind: RayTuneBackend,
}


def backend_for(experiment: Experiment) -> Backend:
    """The backend that runs ``experiment``: ``BACKENDS[experiment.backend.kind]``, where the
    ``optuna`` kind on a shared (PostgreSQL) storage is ``workers``."""
    kind: str = experiment.backend.kind
    if kind == "optuna" and is_shared(experiment.storage_url):
        kind = "workers"
    return BACKENDS[kind]()


def run_search(
    experiment: Experiment,
    *,
    trials: int | None = None,
    fresh: bool = False,
    resume_only: bool = False,
    progress: SearchProgress | None = None,
    latency_cache: LatencyCache | None = None,
    heartbeats: Heartbeats | None = None,
    allow_changed_evaluator: bool = False,
) -> SearchSummary:
    """Run (or resume) the experiment's search until ``trials`` architectures are evaluated, on
    the backend :func:`backend_for` picks (see :meth:`Backend.run` for the arguments).

    On a ``postgresql://`` storage this process is one of the study's workers: the budget counts
    every worker's evaluations, and ``heartbeats`` (default :class:`~._shared.Heartbeats`) sets
    how a dead worker's trial is found and retried.

    On a file storage (a journal or SQLite file) one run at a time searches a study: the run holds
    :class:`~._lock.StudyLock` beside the file, and a second run raises
    :class:`~._lock.StudyInUse` (a :class:`~archsearch.SearchError` naming the first run's host,
    pid and start time) before it changes anything; a killed run's lock is free at once. A run
    that fails before storing a trial (data that will not load) removes the file storage it
    created (:func:`~._storage.removed_if_unused`).

    SIGTERM (``kill PID``) stops a run as Ctrl-C does (:func:`~._signals.sigterm_as_interrupt`,
    in the main thread; the previous handler is restored): the running trial is stored as
    *interrupted* and the summary is ``interrupted`` with ``stopped_by == "SIGTERM"``.

    With predicted latency (``latency_ms: {predict: true}``), the Pareto members are timed whole
    at the end (:func:`~._front_latency.measure_front_latency`), for the report.

    A study resumed with evaluator settings that score differently (``evaluator.epochs`` 5, then
    2) is refused with a :class:`~archsearch.SpecError` naming each changed field, unless
    ``allow_changed_evaluator`` (then a warning, and the study lists the change in its
    ``evaluator_changes``); see :func:`~._resume.check_evaluator`."""
    experiment.check_files()  # a missing space or data root: before anything is created
    check_devices(experiment)  # evaluated or timed on CUDA without CUDA: every trial would fail
    backend = backend_for(experiment)
    file = experiment.storage_file
    if file is not None:
        check_file_storage(experiment.storage_url)  # before the lock file is made beside it
    with (
        sigterm_as_interrupt(),  # SIGTERM stops the run as Ctrl-C does: the running trial is stored
        removed_if_unused(experiment.storage_url, file) if file is not None else nullcontext(),
        StudyLock(file, experiment.study_name) if file is not None else nullcontext(),
    ):
        change = None if fresh else check_evaluator(experiment, allow=allow_changed_evaluator)
        if change is not None:
            warnings.warn(describe_change(experiment.study_name, change), stacklevel=2)
        summary = backend.run(
            experiment,
            trials=trials,
            fresh=fresh,
            resume_only=resume_only,
            progress=progress,
            latency_cache=latency_cache,
            heartbeats=heartbeats,
        )
        summary.budget = trials or experiment.trials
        if summary.nothing_run:  # the CLI says so too (and filters this warning out)
            reason = summary.nothing_run_reason("run_search(experiment, trials={})")
            warnings.warn(NothingRun(f"{experiment.study_name}: {reason}"), stacklevel=2)
        if isinstance(experiment.evaluator, SupernetConfig) and not summary.interrupted:
            retrain_front(experiment, summary.study)  # one-shot: the best members from scratch
        if not summary.interrupted:  # predicted latency: the front timed whole, for the report
            try:
                measure_front_latency(experiment, summary.study)
            except (RuntimeError, ValueError, OSError) as exc:  # the search's results stand
                warnings.warn(f"the Pareto members could not be timed for the report: {exc}", stacklevel=2)
        return summary
