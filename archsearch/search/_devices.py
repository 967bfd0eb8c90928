"""The devices an experiment evaluates and times latency on must exist here.

A ``latency_ms`` objective (or an evaluator) with ``device: cuda`` on a machine without CUDA would
fail every trial (each charged to the budget) and end with an empty front; a ``latency_ms``
constraint with ``device: cuda`` would fail on the first piece its table lacks. All are refused
before the study is created (and before the CLI prints anything), at the line of their ``device``,
worded by :func:`~archsearch.evaluate.device_problem`.
"""

from __future__ import annotations

from ..core import command_line_issues
from ..errors import Issue, SpecError
from ..evaluate import device_problem
from ..space import SearchSpace
from ._experiment import Experiment

__all__ = ["check_constraint_devices", "check_devices"]


def check_devices(experiment: Experiment) -> None:
    """Refuse an evaluator ``device`` or a ``latency_ms`` objective's ``device`` that this machine
    lacks, for a search that evaluates in this process or its workers here (a Ray search runs its
    trials on the cluster's workers, which may have the device the driver lacks: not checked).

    Raises:
        SpecError: one issue per such device, at ``evaluator.device`` or ``objectives[i].device``
            in the experiment file (``<command line>`` for an override), naming the device and what
            is allowed."""
    if experiment.backend.kind == "ray":
        return
    issues = []
    device = getattr(experiment.evaluator, "device", None)
    if isinstance(device, str) and (problem := device_problem(device)) is not None:
        issues.append(experiment.locate(Issue(("evaluator", "device"), problem[0], device, problem[1])))
    for i, objective in enumerate(experiment.objectives):
        if objective.metric != "latency_ms" or (problem := device_problem(objective.device)) is None:
            continue
        message, allowed = problem
        issue = Issue(
            ("objectives", i, "device"), f"latency is timed there: {message}", objective.device, allowed
        )
        issues.append(experiment.locate(issue))
    if issues:
        file = None if experiment.file is None else str(experiment.file)
        raise command_line_issues(SpecError(issues), experiment._overrides, file)


def check_constraint_devices(space: SearchSpace) -> None:
    """Refuse a ``latency_ms`` constraint whose ``device`` this machine lacks (its table's missing
    pieces are timed there).

    Raises:
        SpecError: at ``constraints.latency_ms.device`` in the space file."""
    bound = space.constraints.latency_ms
    if bound is not None and (problem := device_problem(bound.device)) is not None:
        message, allowed = problem
        path = ("constraints", "latency_ms", "device")
        raise space.source.error(
            path, f"latency is predicted there: {message}", value=bound.device, allowed=allowed
        )
