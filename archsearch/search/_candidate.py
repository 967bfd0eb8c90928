"""A candidate from sampling to evaluation: the space and data it is drawn for, and the checks it
passes once (shapes, constraints, spec hash) before any backend builds it."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ..cost import CostReport
from ..data import Dataset, load_dataset
from ..errors import Issue, SpecError
from ..space import SearchSpace, Suggest, load_space
from ..spec import NormalizedSpec, Spec, spec_hash
from ._devices import check_constraint_devices
from ._experiment import Experiment

__all__ = ["Checked", "Rejected", "check_candidate", "plan_hash", "prepare"]


@dataclass(frozen=True)
class Checked:
    """A candidate that passed the checks: its plan (normalised once), analytic costs and hash."""

    plan: NormalizedSpec
    costs: CostReport
    spec_hash: str
    params: dict[str, Any]
    """The sampled choices (Optuna's trial parameters)."""
    data: dict[str, Any]
    """The concrete spec as plain data (what a trial stores as its ``spec`` attribute, and what a
    Ray trial receives)."""
    constraints: tuple[float, ...] | None = None
    """Optuna's constraint values of the space's limits (all ``<= 0`` here), None without limits."""

    @property
    def spec(self) -> Spec:
        return self.plan.spec

    def spec_json(self) -> str:
        return json.dumps(self.data, separators=(",", ":"))


class Rejected(str):
    """Why a candidate was rejected (a plain string to every reader); one over the space's limits
    also carries its analytic ``macs``, ``params`` and Optuna's ``constraints`` values."""

    macs: float | None = None
    params: float | None = None
    constraints: tuple[float, ...] | None = None


def plan_hash(plan: NormalizedSpec) -> str:
    """The spec hash of a normalised candidate, read from its plan (no second normalisation)."""
    return spec_hash(plan)


def check_candidate(space: SearchSpace, suggest: Suggest, name: str) -> Checked | str:
    """Sample ``space`` through ``suggest`` and check the candidate (shapes, then constraints with
    the analytic cost model): the checked candidate, named ``name``, or why it is rejected."""
    candidate = space.candidate(suggest)
    limits = space.constraints.values(candidate.costs) if candidate.costs is not None else None
    if limits is not None and not space.constraints.limited:
        limits = None
    if candidate.rejected is not None or candidate.plan is None or candidate.costs is None:
        rejected = Rejected(candidate.rejected)
        if candidate.costs is not None and limits is not None:
            rejected.macs, rejected.params = float(candidate.costs.macs), float(candidate.costs.params)
            rejected.constraints = tuple(limits)
        return rejected
    data = {**candidate.sample.data, "name": name}
    return Checked(
        candidate.plan,
        candidate.costs,
        plan_hash(candidate.plan),
        dict(candidate.sample.params),
        data,
        None if limits is None else tuple(limits),
    )


def _locate_space_issue(
    issue: Issue, experiment: Experiment, source: str | dict[str, Any], inline: tuple[str, ...]
) -> Issue:
    """An issue of the experiment's space: one of an inline space placed in the experiment file; a
    space file that cannot be read at all (no line: missing, a directory, too large) is named at
    the experiment's ``space`` key too."""
    if inline or issue.file != source or issue.line is not None:
        return experiment.locate(issue, inline)
    return experiment.locate(Issue(("space",), f"{issue.file}: {issue.message}", value=experiment.space))


def _locate_data_issue(
    issue: Issue, experiment: Experiment, space: SearchSpace, inline: tuple[str, ...]
) -> Issue:
    """A data issue placed in its file: ``input.*`` (an image the data cannot give) on the space's
    value, anything else (``data.root``) on the experiment's."""
    if issue.file is not None or issue.path[:1] != ("input",):
        return experiment.locate(issue)
    if inline:
        return experiment.locate(issue, inline)
    return replace(issue, file=space.source.file, line=space.source.line_of(issue.path))


def prepare(experiment: Experiment) -> tuple[SearchSpace, Dataset]:
    """The experiment's space and dataset: the data at the space's input size and channels, and
    the space's head sized to the data's classes."""
    override = {"input_size": experiment.input_size} if experiment.input_size else {}
    source = experiment.space_source()
    inline: tuple[str, ...] = ("space",) if isinstance(source, dict) else ()
    try:
        space = load_space(source, **override)
        check_constraint_devices(space)  # before the study is created
        space.check_tables()  # a missing or unreadable latency table stops before the study is opened
    except SpecError as exc:  # a space written inline: its issues are the experiment file's
        raise SpecError([_locate_space_issue(i, experiment, source, inline) for i in exc.issues]) from None
    first = space.default().data.get("input", {})
    size = first.get("size", 224)
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    try:
        dataset = load_dataset(experiment.data, input_size=hw, channels=int(first.get("channels", 3)))
    except SpecError as exc:
        raise SpecError([_locate_data_issue(i, experiment, space, inline) for i in exc.issues]) from None
    return load_space(space, num_classes=dataset.num_classes), dataset
