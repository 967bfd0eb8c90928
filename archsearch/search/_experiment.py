"""The experiment file: a space, a dataset, an evaluator, objectives, a sampler, a budget, a backend.

Like the spec grammar, it is strict (unknown keys are errors listing the allowed ones), and every
default is documented here, where ``archsearch schema --experiment`` reads it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from ..core import (
    MAX_INPUT_SIDE,
    MAX_TRIALS,
    MAX_WIDTH,
    SourceMap,
    StrictModel,
    read_yaml_file,
    validation_issues,
)
from ..data import DataConfig, DigitsData
from ..errors import Issue, SpecError
from ..evaluate import EvaluatorConfig, TrainConfig

__all__ = [
    "COST_METRICS",
    "METRICS",
    "EarlyStopping",
    "Experiment",
    "Objective",
    "OptunaBackend",
    "RayBackend",
    "Sampler",
    "load_experiment",
]

#: Metrics an objective may name, with the direction they take by default.
METRICS: dict[str, Literal["minimize", "maximize"]] = {
    "accuracy": "maximize",
    "macs": "minimize",
    "params": "minimize",
    "latency_ms": "minimize",
    "memory_mb": "minimize",
    "synflow": "maximize",
    "naswot": "maximize",
    "grad_norm": "maximize",
}
#: Metrics known before an architecture is trained (they cost no evaluation).
COST_METRICS = ("macs", "params", "latency_ms", "memory_mb")
ZERO_COST_METRICS = ("synflow", "naswot", "grad_norm")


class Objective(StrictModel):
    """One objective: a metric and a direction (``latency_ms`` also where and how it is timed)."""

    metric: Literal["accuracy", "macs", "params", "latency_ms", "memory_mb", "synflow", "naswot", "grad_norm"]
    """``accuracy`` (validation top-1, a fraction), ``macs`` (multiply-accumulates at batch 1, what
    papers call FLOPs), ``params``, ``latency_ms`` (median forward time), ``memory_mb`` (training
    memory estimate: 16 bytes per parameter for weights, gradients and AdamW state, plus the
    activations kept for the backward pass at the training batch size), or a zero-cost proxy score
    (``synflow``, ``naswot``, ``grad_norm``)."""
    direction: Literal["minimize", "maximize", "min", "max"] | None = None
    """Default: maximize accuracy and the proxies, minimize the costs."""
    device: str = "cpu"
    """``latency_ms`` only: where to time the forward pass (``cpu``, ``cuda``, ``cuda:1``)."""
    batch: Annotated[int, Field(gt=0, le=MAX_WIDTH)] = 1
    """``latency_ms`` only: the batch size timed."""
    threads: Annotated[int, Field(gt=0)] | None = None
    """``latency_ms`` on CPU only: threads used while timing (default: all of torch's threads)."""
    runs: Annotated[int, Field(ge=4, le=MAX_TRIALS)] = 20
    """``latency_ms`` only: timed runs after warm-up; the median is the objective."""

    @property
    def sense(self) -> Literal["minimize", "maximize"]:
        if self.direction is None:
            return METRICS[self.metric]
        return {"min": "minimize", "max": "maximize"}.get(self.direction, self.direction)  # type: ignore[return-value]


class Sampler(StrictModel):
    """How the next architecture is chosen."""

    kind: Literal["nsga2", "tpe", "random"] | None = None
    """``nsga2`` (default with several objectives), ``tpe`` (default with one), ``random``."""
    seed: int = 0
    """Seeds the sampler: the same seed suggests the same sequence of architectures."""
    population_size: Annotated[int, Field(ge=2, le=MAX_TRIALS)] = 10
    """NSGA-II's population (its first generation is random)."""
    startup_trials: Annotated[int, Field(ge=0, le=MAX_TRIALS)] = 10
    """TPE's random trials before it models the space."""


class EarlyStopping(StrictModel):
    """Stopping unpromising trials while they train (needs the ``train`` evaluator).

    ``dominance`` (the default with several objectives; Optuna cannot prune those): after
    ``warmup_epochs`` epochs, a trial stops when some completed trial had, at the same epoch, an
    accuracy at least ``margin`` higher while costing no more on every cost objective (MACs,
    params, latency, memory: all known before training). ``median`` and ``hyperband`` are
    Optuna's pruners for single-objective studies; ``none`` trains every trial to its budget.
    """

    kind: Literal["dominance", "median", "hyperband", "none"] | None = None
    """Default: ``dominance`` with several objectives, ``median`` with one."""
    warmup_epochs: Annotated[int, Field(ge=0)] = 1
    """Epochs every trial trains before it may be stopped."""
    min_trials: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 3
    """Completed trials needed before any trial is stopped."""
    margin: Annotated[float, Field(ge=0)] = 0.0
    """``dominance``: how much higher (accuracy fraction) the dominating trial must be."""


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


class Experiment(StrictModel):
    """A search: what to search, on what data, judged how, for how long, and where it is kept."""

    name: str | None = None
    """The study's name (default: the experiment file's name)."""
    space: str | dict[str, Any]
    """A search-space YAML file (relative to this file) or the space itself."""
    input_size: Annotated[int, Field(gt=0, le=MAX_INPUT_SIDE)] | None = None
    """Overrides the space's input size (e.g. to search a 224-pixel space at 64 pixels)."""
    data: DataConfig = DigitsData()
    """The dataset; its classes set every candidate's ``num_classes``."""
    evaluator: EvaluatorConfig = TrainConfig()
    """``train`` (proxy training) or ``zero_cost`` (training-free scores)."""
    objectives: Annotated[list[Objective], Field(min_length=1)]
    """What to optimise; several objectives make a multi-objective (Pareto) study."""
    sampler: Sampler = Sampler()
    """How architectures are suggested."""
    early_stopping: EarlyStopping = EarlyStopping()
    """Stopping unpromising trials early."""
    trials: Annotated[int, Field(gt=0, le=MAX_TRIALS)] = 20
    """Architectures to evaluate: trained to the end, stopped early or failed (rejected and duplicate
    candidates do not count)."""
    backend: Annotated[OptunaBackend | RayBackend, Field(discriminator="kind")] = OptunaBackend()
    """Where the search runs and its trials are stored: ``optuna`` (this process) or ``ray``."""
    run_dir: str | None = None
    """Directory for the study's files (default ``runs/<name>`` under the working directory)."""
    report: str | None = None
    """Directory for the report written at the end (default ``reports/<name>``)."""

    _file: Path | None = None
    _source: SourceMap | None = None

    @model_validator(mode="before")
    @classmethod
    def _backend_kind(cls, data: Any) -> Any:
        """``backend: {storage: ...}`` without a kind is the default (optuna) backend."""
        if isinstance(data, dict) and isinstance(data.get("backend"), dict) and "kind" not in data["backend"]:
            data = {**data, "backend": {"kind": "optuna", **data["backend"]}}
        return data

    @field_validator("objectives")
    @classmethod
    def _objectives_fit(cls, objectives: list[Objective], info: ValidationInfo) -> list[Objective]:
        """Each metric once, and each one the evaluator can give (a field check, so that an error
        names the ``objectives`` key and its line)."""
        metrics = [o.metric for o in objectives]
        twice = sorted({m for m in metrics if metrics.count(m) > 1})
        if twice:
            raise ValueError(f"each metric may be an objective once, but {twice} appear twice")
        evaluator = info.data.get("evaluator")  # absent when the evaluator itself is wrong
        kind = getattr(evaluator, "kind", None)
        if kind == "zero_cost":
            proxies = set(evaluator.proxies)  # type: ignore[union-attr]
            if "accuracy" in metrics:
                raise ValueError("the accuracy objective needs the train evaluator, not zero_cost")
            missing = sorted({m for m in metrics if m in ZERO_COST_METRICS} - proxies)
            if missing:
                raise ValueError(
                    f"objectives {missing} are not among the evaluator's proxies {sorted(proxies)}"
                )
        elif kind is not None and any(m in ZERO_COST_METRICS for m in metrics):
            raise ValueError("a zero-cost objective needs `evaluator: {kind: zero_cost, proxies: [...]}`")
        return objectives

    @field_validator("early_stopping")
    @classmethod
    def _stopping_fits(cls, stopping: EarlyStopping, info: ValidationInfo) -> EarlyStopping:
        """Optuna's pruners judge one objective: ``median`` and ``hyperband`` cannot stop a
        multi-objective trial that trains for accuracy (:func:`stopping_kind` says the same at run
        time; here the error names the line)."""
        metrics = [o.metric for o in info.data.get("objectives") or []]
        trains = getattr(info.data.get("evaluator"), "kind", None) == "train"
        if stopping.kind in ("median", "hyperband") and len(metrics) > 1 and trains and "accuracy" in metrics:
            raise ValueError(
                f"{stopping.kind!r} is one of Optuna's pruners, which cannot stop multi-objective "
                "trials; use 'dominance' or 'none'"
            )
        return stopping

    # ------------------------------------------------------------------ resolved values

    @property
    def study_name(self) -> str:
        return self.backend.study_name or self.name or "study"

    @property
    def directions(self) -> list[Literal["minimize", "maximize"]]:
        return [o.sense for o in self.objectives]

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path("runs") / (self.name or "study")

    @property
    def report_path(self) -> Path:
        return Path(self.report) if self.report else Path("reports") / (self.name or "study")

    @property
    def storage_url(self) -> str:
        """The storage as an Optuna URL, or a journal path prefixed ``journal:``."""
        storage = self.backend.storage
        if storage is None:
            return f"journal:{self.run_path / 'study.journal'}"
        if "://" in storage:
            return storage
        path = (
            Path(storage)
            if Path(storage).is_absolute() or self._file is None
            else self._file.parent / storage
        )
        return f"sqlite:///{path}" if path.suffix == ".db" else f"journal:{path}"

    def locate(self, issue: Issue, under: tuple[str | int, ...] = ()) -> Issue:
        """``issue`` placed in this experiment's file at ``under`` + its path (``("space",)`` for
        an issue of the space written inline), unless it already names a file."""
        if issue.file is not None:
            return issue
        path = (*under, *issue.path)
        source = self._source or SourceMap(file=None if self._file is None else str(self._file))
        return replace(issue, path=path, file=source.file, line=source.line_of(path))

    def space_source(self) -> str | dict[str, Any]:
        """The space as a path to load (relative to the experiment file) or a mapping."""
        if isinstance(self.space, dict):
            return self.space
        path = Path(self.space)
        if path.is_absolute() or self._file is None:
            return str(path)
        beside = self._file.parent / path  # relative to the experiment file, else to the working directory
        return str(beside if beside.exists() or not path.exists() else path)


def load_experiment(source: str | os.PathLike[str] | dict[str, Any]) -> Experiment:
    """Read and validate an experiment file; errors name the file, line and key."""
    if isinstance(source, dict):
        data, smap, file = dict(source), SourceMap(), None
    else:
        file = Path(source)
        data, smap = read_yaml_file(source, "experiment", "an experiment", needs="'space' and 'objectives'")
        if isinstance(data, dict):
            data.setdefault("name", file.stem)
    if not isinstance(data, dict):
        raise smap.error(
            (), "an experiment is a mapping (space, data, evaluator, objectives, ...)", value=data
        )
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        raise SpecError(validation_issues(exc, data, smap, Experiment)) from None
    experiment._file, experiment._source = file, smap
    return experiment
