"""The devices an experiment times latency on must exist here.

A ``latency_ms`` objective with ``device: cuda`` on a machine without CUDA would fail every trial
(each charged to the budget) and end with an empty front; a ``latency_ms`` constraint with
``device: cuda`` would fail on the first piece its table lacks. Both are refused before the study
is created, at the line of their ``device``.
"""

from __future__ import annotations

import torch

from ..core import command_line_issues
from ..errors import Issue, SpecError
from ..space import SearchSpace
from ._experiment import Experiment

__all__ = ["check_constraint_devices", "check_objective_devices", "device_problem"]


def device_problem(name: str) -> tuple[str, str] | None:
    """``(what is wrong, what is allowed)`` when the device ``name`` cannot be used here (not a
    device, CUDA or MPS not available, a CUDA index beyond the devices), else ``None``."""
    try:
        device = torch.device(name)
    except RuntimeError:
        return "not a device", "cpu, cuda, cuda:N"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available here", "cpu (or run on a machine with a CUDA device)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return "no such CUDA device", ", ".join(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available here", "cpu"
    return None


def check_objective_devices(experiment: Experiment) -> None:
    """Refuse a ``latency_ms`` objective whose ``device`` this machine lacks (for a search that
    times latency in this process or its workers here; a Ray search times it on the cluster's
    workers, which may have the device the driver lacks, and is not checked).

    Raises:
        SpecError: one issue per such objective, at ``objectives[i].device`` in the experiment file
            (``<command line>`` for an override), naming the device and what is allowed."""
    issues = []
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
