"""The experiment file: a space, a dataset, an evaluator, objectives, a sampler, a budget, a backend.

Like the spec grammar, it is strict (unknown keys are errors listing the allowed ones), and every
default is documented here, where ``archsearch schema --experiment`` reads it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from ..core import (
    MAX_INPUT_SIDE,
    MAX_TRIALS,
    MAX_WIDTH,
    FieldIssue,
    SourceMap,
    StrictModel,
    apply_dotlist,
    command_line_issues,
    parse_override,
    read_yaml_file,
    validation_issues,
)
from ..cost import DEFAULT_STATISTIC, Statistic
from ..data import DataConfig, DigitsData
from ..errors import Issue, SpecError
from ..evaluate import EvaluatorConfig, TrainConfig
from ..spec import zoo_names
from ._backend_config import OptunaBackend, RayBackend
from ._paths import describe_document, project_folder, resolve_paths, shown

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
    """``latency_ms`` only: timed runs after warm-up; their ``statistic`` is the objective."""
    statistic: Statistic = DEFAULT_STATISTIC
    """``latency_ms`` only: which statistic of the timed runs is the latency
    (:data:`archsearch.cost.STATISTICS`): the ``median``, the ``min``, the 10th or 25th percentile,
    the mean of the fastest quarter of the runs (``fastest_quarter``, the default:
    :data:`archsearch.cost.DEFAULT_STATISTIC`) or the ``mean``.
    On a machine whose speed drifts the low ones reproduce better (README, "Latency tables"). With
    ``predict``, the table must hold the same statistic."""
    predict: bool = False
    """``latency_ms`` only: predict the latency from a per-device latency table (the sum of the
    candidate's pieces plus a fitted overhead: no candidate is timed) instead of timing each
    candidate. Pieces the table lacks are timed on demand and added. ``archsearch latency-table``
    fills a table beforehand."""
    table: str | None = None
    """``latency_ms`` with ``predict`` only: the latency table file (a relative path is read from
    this file's folder). Default: the table of this device setting in the cache
    (``$ARCHSEARCH_CACHE/latency-tables/``). A table measured in another setting is refused."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """``latency_ms`` only: the dtype timed."""
    cuda_graph: bool = False
    """``latency_ms`` on CUDA only: time the replay of the forward captured once as a CUDA graph
    (no Python or kernel-launch overhead: what a graph-captured deployment sees, and far steadier
    for models of many small kernels) instead of the eager forward."""
    measure_front: bool = True
    """``latency_ms`` with ``predict`` only: after the search, time the Pareto members whole, so
    the report shows predicted against measured latency (and the table's overhead fit learns from
    them); the search itself times no candidate."""

    @model_validator(mode="after")
    def _latency_fields(self) -> Objective:
        """``predict`` and ``table`` belong to ``latency_ms`` (a field check: the error names the key)."""
        if self.metric != "latency_ms":
            given = sorted(
                k
                for k in ("predict", "table", "dtype", "measure_front", "cuda_graph", "statistic")
                if k in self.model_fields_set
            )
            if given:
                verb = "applies" if len(given) == 1 else "apply"
                raise ValueError(
                    f"{', '.join(given)} {verb} to the latency_ms objective only, not {self.metric}"
                )
        elif self.table is not None and not self.predict:
            raise ValueError("`table` is read only when latency is predicted: add `predict: true`")
        elif self.cuda_graph and self.predict:
            raise ValueError("latency tables time their pieces eagerly: `cuda_graph` cannot be predicted")
        elif self.cuda_graph and not self.device.startswith("cuda"):
            raise ValueError(f"cuda_graph times a CUDA graph: set device: cuda (got device: {self.device})")
        return self

    @property
    def sense(self) -> Literal["minimize", "maximize"]:
        if self.direction is None:
            return METRICS[self.metric]
        return {"min": "minimize", "max": "maximize"}.get(self.direction, self.direction)  # type: ignore[return-value]


class Sampler(StrictModel):
    """How the next architecture is chosen (``README.md``, "Samplers", says when to use which)."""

    kind: Literal["auto", "gp", "evolution", "nsga2", "tpe", "random"] = "auto"
    """``gp`` (Optuna's Gaussian-process sampler), ``evolution`` (regularized evolution), ``nsga2``,
    ``tpe`` (multivariate), ``random``, or ``auto`` (the default: the one ``benchmarks/search_quality.py``
    ranks best for the space's size, the budget and the evaluator's cost, by the rule of
    :func:`~._samplers.auto_kind`). The space's limits (``constraints``) reach ``gp``, ``nsga2`` and
    ``tpe`` as Optuna constraints; every sampler only ever evaluates members within them."""
    seed: int = 0
    """Seeds the sampler: the same seed suggests the same sequence of architectures."""
    population_size: Annotated[int, Field(ge=2, le=MAX_TRIALS)] | None = None
    """``nsga2`` (default 10; its first generation is random) and ``evolution`` (default 20: the
    members alive, the first ones random)."""
    sample_size: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 5
    """``evolution`` only: members drawn for each tournament (at most ``population_size``)."""
    startup_trials: Annotated[int, Field(ge=0, le=MAX_TRIALS)] = 10
    """``tpe`` and ``gp``: random trials before they model the space."""

    @field_validator("population_size", "sample_size", "startup_trials")
    @classmethod
    def _applies(cls, value: Any, info: ValidationInfo) -> Any:
        """An option given for a sampler that takes no such option is an error (not ignored)."""
        kind = info.data.get("kind")
        takers = _SAMPLER_OPTIONS[str(info.field_name)]
        if kind is not None and kind not in takers:
            options = [k for k, kinds in _SAMPLER_OPTIONS.items() if kind in kinds]
            raise FieldIssue(
                f"sampler {kind!r} takes no {info.field_name!r}; it is an option of {', '.join(takers)}",
                value,
                ", ".join(["kind", "seed", *options]),
            )
        if info.field_name == "sample_size":
            population = info.data.get("population_size") or 20
            if value > population:
                raise FieldIssue(
                    "a tournament draws its members from the population", value, f"at most {population}"
                )
        return value

    def population(self, kind: str) -> int:
        """``population_size`` for ``kind`` (its default where not given)."""
        return self.population_size or (20 if kind == "evolution" else 10)


#: Which sampler kinds take each option (``auto`` takes them all: the kind it picks uses its own).
_SAMPLER_OPTIONS = {
    "population_size": ("nsga2", "evolution", "auto"),
    "sample_size": ("evolution", "auto"),
    "startup_trials": ("tpe", "gp", "auto"),
}


class EarlyStopping(StrictModel):
    """Stopping unpromising trials while they train (needs the ``train`` evaluator).

    ``dominance`` is on by default for multi-objective searches (Optuna cannot prune those;
    ``kind: none`` turns it off): after ``warmup_epochs`` epochs, once ``min_trials`` trials have
    completed, a trial stops when a completed trial had, at the same epoch, an accuracy at least
    ``margin`` higher while costing no more on every cost objective (MACs, params, latency,
    memory: all known before training). With ``margin: 0`` the other trial must be strictly
    better somewhere: strictly more accurate, or as accurate and strictly cheaper on a cost. A tie
    is not dominance: a trial with the same accuracy at the same costs goes on. ``median`` and
    ``hyperband`` are Optuna's pruners for single-objective studies (``median`` is the default
    there); ``none`` trains every trial to its budget.
    """

    kind: Literal["dominance", "median", "hyperband", "none"] | None = None
    """Default: ``dominance`` with several objectives, ``median`` with one."""
    warmup_epochs: Annotated[int, Field(ge=0)] = 1
    """Epochs every trial trains before it may be stopped."""
    min_trials: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 3
    """Completed trials needed before any trial is stopped."""
    margin: Annotated[float, Field(ge=0)] = 0.0
    """``dominance``: how much higher (accuracy fraction) the dominating trial must be; at 0,
    strictly higher, or equal at a strictly lower cost (a tie never stops a trial)."""


class Experiment(StrictModel):
    """A search: what to search, on what data, judged how, for how long, and where it is kept."""

    name: str | None = None
    """The study's name (default: the experiment file's name)."""
    space: str | dict[str, Any]
    """A search-space YAML file (a relative path is read from this file's folder) or the space itself."""
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
    """Directory for the study's files. Default: ``runs/<name>`` in the experiment's project folder
    (the experiment file's folder, or its parent when that folder is named ``experiments``).
    Relative paths in the file, here and everywhere else, are read from the file's folder."""
    report: str | None = None
    """Directory for the report written at the end (default ``reports/<name>`` in the project folder)."""

    _file: Path | None = None
    _root: Path | None = None
    _source: SourceMap | None = None
    _overrides: tuple[Any, ...] = ()

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
    def file(self) -> Path | None:
        """The experiment file, if it was read from one."""
        return self._file

    @property
    def project(self) -> Path:
        """The folder that holds ``runs/`` and ``reports/`` by default (see :mod:`._paths`)."""
        return self._root if self._root is not None else project_folder(self._file)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else self.project / "runs" / (self.name or "study")

    @property
    def report_path(self) -> Path:
        return Path(self.report) if self.report else self.project / "reports" / (self.name or "study")

    @property
    def storage_url(self) -> str:
        """The storage as an Optuna URL, or a journal path prefixed ``journal:``."""
        storage = self.backend.storage
        if storage is None:
            return f"journal:{self.run_path / 'study.journal'}"
        if "://" in storage:
            return storage
        path = Path(storage)  # made absolute from the experiment file's folder when it was read
        return f"sqlite:///{path}" if path.suffix == ".db" else f"journal:{path}"

    @property
    def storage_file(self) -> Path | None:
        """The file of a file storage (journal or SQLite), ``None`` for a database server."""
        url = self.storage_url
        if url.startswith(("journal:", "sqlite:///")) and not url.endswith(":memory:"):
            return Path(url.removeprefix("journal:").removeprefix("sqlite:///"))
        return None

    def locate(self, issue: Issue, under: tuple[str | int, ...] = ()) -> Issue:
        """``issue`` placed in this experiment's file at ``under`` + its path (``("space",)`` for
        an issue of the space written inline), unless it already names a file."""
        if issue.file is not None:
            return issue
        path = (*under, *issue.path)
        source = self._source or SourceMap(file=None if self._file is None else str(self._file))
        return replace(issue, path=path, file=source.file, line=source.line_of(path))

    def space_source(self) -> str | dict[str, Any]:
        """The space as a path to load (already absolute when read from a file) or a mapping."""
        return self.space if isinstance(self.space, dict) else str(Path(self.space))

    def check_files(self) -> None:
        """Check that the space file and the data root exist, before a search changes anything
        (reading a study needs neither).

        Raises:
            SpecError: naming the experiment's file and the line of ``space`` or ``data.root``
                (``<command line>`` for an overridden path) and the folder a relative path is
                read from."""
        _check_files(self)

    def check_report(self) -> None:
        """Check that the report folder (:attr:`report_path`) can be written, before a search starts.

        Raises:
            SpecError: at the line of ``report`` (``<command line>`` for an override), naming the
                file in the way or the folder that may not be written."""
        from ..report import report_folder_problem  # lazily: the report's modules load pandas

        problem = report_folder_problem(self.report_path)
        if problem is not None:
            smap = self._source or SourceMap()
            message = f"cannot write the report into {shown(self.report_path)}: {problem}"
            issue = smap.issue(("report",), message, allowed="a folder (made when missing), or --no-report")
            raise command_line_issues(SpecError(issue), self._overrides, smap.file)

    def paths(self) -> dict[str, str]:
        """The resolved places of this experiment, for people: ``experiment`` (the file),
        ``space``, ``data``, ``storage``, ``report`` (paths relative to the current directory
        where they are inside it)."""
        data = self.data
        root = getattr(data, "root", None)
        out = {
            "experiment": shown(self._file) if self._file else "(a mapping)",
            "space": shown(self.space) if isinstance(self.space, str) else "(inline)",
            "data": f"{data.kind} {shown(root)}" if root else data.kind,
        }
        file = self.storage_file
        out["storage"] = (
            f"{'journal' if self.storage_url.startswith('journal:') else 'sqlite'} {shown(file)}"
            if file is not None
            else self.storage_url
        )
        out["report"] = shown(self.report_path)
        return out


def load_experiment(
    source: str | os.PathLike[str] | dict[str, Any], overrides: Sequence[str] = ()
) -> Experiment:
    """Read and validate an experiment (a YAML file or a mapping), with command-line
    ``overrides`` (``KEY=VALUE``, see :mod:`archsearch.core`'s ``apply_dotlist``) applied.

    Relative paths in the file are read from its folder, those of overrides and of a mapping from
    the current directory (:mod:`._paths`). Whether the space file and the data root exist is
    checked when a search starts (:meth:`Experiment.check_files`): reading a study needs neither.

    Raises:
        SpecError: naming the file, line and key (``<command line>`` and the override for an
            overridden value) of every problem: an unknown key, a bad value, or a file that is
            a spec or a search space rather than an experiment
            (the error's ``hint`` then holds an experiment that would search that space).
    """
    parsed = [parse_override(o) for o in overrides]
    if isinstance(source, dict):
        data, smap, file = dict(source), SourceMap(), None
    else:
        file = _zoo_check(source)
        data, smap = read_yaml_file(source, "experiment", "an experiment", needs="'space' and 'objectives'")
        if isinstance(data, dict):
            data.setdefault("name", file.stem)
    if not isinstance(data, dict):
        raise smap.error(
            (), "an experiment is a mapping (space, data, evaluator, objectives, ...)", value=data
        )
    what = describe_document(data, file)
    if what is not None:
        error = smap.error((), what[0])
        error.hint = what[1]  # type: ignore[attr-defined]
        raise error
    if file is not None:
        data = resolve_paths(data, file.resolve().parent)
    data = resolve_paths(apply_dotlist(data, parsed), Path.cwd())
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        issues = SpecError(validation_issues(exc, data, smap, Experiment))
        raise command_line_issues(issues, parsed, smap.file) from None
    experiment._file = file
    experiment._root = project_folder(file)
    experiment._source = smap
    experiment._overrides = tuple(parsed)
    return experiment


def _zoo_check(source: str | os.PathLike[str]) -> Path:
    """The experiment file's path; a zoo name given instead is named as such."""
    file = Path(source)
    if not file.exists() and isinstance(source, str) and source in zoo_names():
        raise SpecError(
            Issue(
                (),
                f"{source} is an architecture of the zoo, not an experiment file: `archsearch compile "
                f"{source}` or `profile {source}` measure it; `archsearch search` takes an experiment",
                file=source,
                allowed="an experiment YAML file, e.g. experiments/quickstart.yaml",
            )
        )
    return file


def _check_files(experiment: Experiment) -> None:
    """The space file and the data root must exist: named with the experiment's file and line."""
    smap = experiment._source or SourceMap()
    parsed = experiment._overrides

    def fail(path: tuple[str, ...], what: str) -> None:
        given = any(path[: len(o.path)] == o.path for o in parsed)
        folder = (
            f"the file's folder, {shown(experiment._file.parent) or '.'}/"
            if experiment._file and not given
            else "the current directory"
        )
        issue = smap.issue(path, f"{what} (a relative path is read from {folder})")
        raise command_line_issues(SpecError(issue), parsed, smap.file)

    if isinstance(experiment.space, str):
        space = Path(experiment.space)
        if not space.is_file():
            kind = "is a folder, not a search-space file" if space.is_dir() else "does not exist"
            fail(("space",), f"the space file {shown(space)} {kind}")
    root = getattr(experiment.data, "root", None)
    if isinstance(root, str) and not Path(root).exists():
        fail(("data", "root"), f"the data root {shown(root)} does not exist")
