"""A candidate from sampling to evaluation: the space and data it is drawn for, and the checks it
passes once (shapes, constraints, spec hash) before any backend builds it."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ..cost import CostReport
from ..data import Dataset, load_dataset
from ..errors import SpecError
from ..space import SearchSpace, Suggest, load_space
from ..spec import NormalizedSpec, Spec, spec_hash
from ._experiment import Experiment

__all__ = ["Checked", "check_candidate", "plan_hash", "prepare"]


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

    @property
    def spec(self) -> Spec:
        return self.plan.spec

    def spec_json(self) -> str:
        return json.dumps(self.data, separators=(",", ":"))


def plan_hash(plan: NormalizedSpec) -> str:
    """The spec hash of a normalised candidate, read from its plan (no second normalisation)."""
    return spec_hash(plan)


def check_candidate(space: SearchSpace, suggest: Suggest, name: str) -> Checked | str:
    """Sample ``space`` through ``suggest`` and check the candidate (shapes, then constraints with
    the analytic cost model): the checked candidate, named ``name``, or why it is rejected."""
    candidate = space.candidate(suggest)
    if candidate.rejected is not None or candidate.plan is None or candidate.costs is None:
        return str(candidate.rejected)
    data = {**candidate.sample.data, "name": name}
    return Checked(
        candidate.plan, candidate.costs, plan_hash(candidate.plan), dict(candidate.sample.params), data
    )


def prepare(experiment: Experiment) -> tuple[SearchSpace, Dataset]:
    """The experiment's space and dataset: the data at the space's input size and channels, and
    the space's head sized to the data's classes."""
    override = {"input_size": experiment.input_size} if experiment.input_size else {}
    space = load_space(experiment.space_source(), **override)
    first = space.default().data.get("input", {})
    size = first.get("size", 224)
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    try:
        dataset = load_dataset(experiment.data, input_size=hw, channels=int(first.get("channels", 3)))
    except SpecError as exc:  # the data's errors name the experiment's file and the line of `data`
        raise _placed(exc, experiment) from None
    return load_space(space, num_classes=dataset.num_classes), dataset


def _placed(exc: SpecError, experiment: Experiment) -> SpecError:
    """``exc`` with its issues that name no file placed on the experiment file's lines."""
    source = experiment._source
    if source is None or source.file is None:
        return exc
    return SpecError(
        [
            replace(i, file=source.file, line=source.line_of(i.path)) if i.file is None else i
            for i in exc.issues
        ]
    )
