"""The ``backend`` block of an experiment: Optuna in this process (or workers on a shared
storage), or Ray Tune. Part of the one experiment schema (:mod:`._experiment`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..core import StrictModel

__all__ = ["OptunaBackend", "RayBackend"]


class OptunaBackend(StrictModel):
    """Optuna in this process: a file storage by default (resumable, no services)."""

    kind: Literal["optuna"] = "optuna"
    storage: str | None = None
    """An Optuna storage URL (``sqlite:///path.db``, ``postgresql://...``) or a path: ``*.db``
    opens SQLite, anything else an append-only journal file. Default: ``study.journal`` in the
    run directory (a journal file: several times faster per trial than SQLite, and safe against
    a crash mid-write)."""
    study_name: str | None = None
    """Default: the experiment's name."""
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    """Stop starting new trials after this many seconds."""


class RayBackend(StrictModel):
    """Ray Tune on a Ray cluster (or a local Ray): Optuna's sampler inside Ray, trials as Ray tasks.

    The experiment stays the same from laptop to cluster; only this block changes. The Optuna
    study (every trial's values and attributes, what ``archsearch trials``/``report`` read) is a
    journal file in the run directory; Ray's own trial directories and checkpoints go to
    ``storage_path``. Latency objectives are timed by one Ray actor that holds the custom
    resource ``archsearch_latency`` and the CPUs (and, on CUDA, the whole GPU) it times on, so
    no trial of the search is scheduled on those cores while it measures.
    """

    kind: Literal["ray"]
    address: str | None = None
    """The cluster: ``auto`` (the one this machine belongs to), ``ray://host:10001`` (Ray
    client) or ``host:6379``. Default: start a local Ray with this machine's CPUs and GPUs."""
    cpus_per_trial: Annotated[float, Field(gt=0)] = 1
    """CPUs reserved per trial (torch in the trial uses as many threads, at least one)."""
    gpus_per_trial: Annotated[float, Field(ge=0)] = 0
    """GPUs per trial; fractions (``0.5``) put several trials on one GPU."""
    max_concurrent: Annotated[int, Field(gt=0)] | None = None
    """Trials running at once (default: as many as the resources allow)."""
    storage_path: str | None = None
    """Ray's results and checkpoints (a shared path or ``s3://...`` on a multi-node cluster).
    Default: ``ray/`` in the run directory."""
    max_failures: Annotated[int, Field(ge=0)] = 2
    """Retries of a trial whose worker or node died (a crash of the trial's own code is stored
    as a failed trial without retry)."""
    study_storage: str | None = None
    """The Optuna storage, as ``backend.storage`` of the optuna backend. Default:
    ``study.journal`` in the run directory."""
    study_name: str | None = None
    """Default: the experiment's name (it also names Ray's experiment directory)."""
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    """Stop starting new trials after this many seconds."""

    @property
    def storage(self) -> str | None:
        return self.study_storage
