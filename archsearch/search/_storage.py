"""Where a study lives and how it is opened: storages, the study itself, samplers and pruners.

Shared by every backend (the Ray searcher keeps its study on a journal file too)."""

from __future__ import annotations

import importlib.util
import inspect
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend

from ..errors import SearchError
from ._experiment import Experiment
from ._shared import Heartbeats, RetryStale, is_shared, sqlalchemy_url

__all__ = ["fresh_storage", "open_storage", "open_study", "sampler_for", "stopping_kind"]


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


def sampler_for(experiment: Experiment, worker: str | None = None) -> optuna.samplers.BaseSampler:
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


def stopping_kind(experiment: Experiment) -> str:
    """How trials stop early: ``median``, ``hyperband``, ``dominance`` or ``none`` (nothing is learned
    epoch by epoch to judge); raises :class:`SearchError` for an Optuna pruner with several objectives."""
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
    """Optuna's pruner for ``kind`` (a no-op one for ``dominance``, which the loop applies itself)."""
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
            sampler=sampler_for(experiment),
            pruner=_pruner(experiment, stopping_kind(experiment)),
        )
    except KeyError:
        if not create:
            raise SearchError(f"no study named {name!r} in {experiment.storage_url}") from None
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            directions=experiment.directions,
            sampler=sampler_for(experiment),
            pruner=_pruner(experiment, stopping_kind(experiment)),
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


def fresh_storage(experiment: Experiment) -> None:
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
