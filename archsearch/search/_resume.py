"""What a resumed study must share with the run that resumes it: the evaluator settings, and the
domain of every parameter it stored (:func:`check_space`).

A study records its evaluator (``study.user_attrs["experiment"]["evaluator"]``, written by
:func:`~._ledger.study_meta`). Resuming it with settings that score differently (5 epochs, then 2)
would put accuracies that cannot be compared on one Pareto front, so :func:`check_evaluator`
refuses it, naming each changed field, unless the run is told to mix them; a mixed study keeps a
list of its changes (``study.user_attrs["evaluator_changes"]``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
)

from ..core import command_line_issues
from ..errors import Issue, SpecError
from ..space import Dimension, SearchSpace
from ._experiment import Experiment
from ._ledger import CHANGES, evaluator_settings
from ._storage import open_storage

__all__ = ["CHANGES", "RUNTIME_FIELDS", "check_evaluator", "check_space", "describe_change"]

#: Evaluator settings that change how a run goes, not what it measures: they may differ between
#: the runs of one study. (``seed`` draws other noise at the same budget.)
RUNTIME_FIELDS = frozenset(
    {
        "device",
        "threads",
        "compile",
        "compile_backend",
        "channels_last",
        "grad_checkpointing",
        "eval_batch_size",
        "seed",
    }
)


#: What a changed evaluator may be instead, after the stored value.
_ALLOWED = "--fresh to start a new study, another study name, or --allow-changed-evaluator to mix them"


def _changes(stored: dict[str, Any], now: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [stored, now]}`` for each field that scores differently (the kind alone when it
    differs: the other fields then mean other things). A field the study did not record (added to
    archsearch later) is not compared."""
    if stored.get("kind") != now.get("kind"):
        return {"kind": [stored.get("kind"), now.get("kind")]}
    return {
        key: [stored[key], value]
        for key, value in now.items()
        if key in stored and key not in RUNTIME_FIELDS and stored[key] != value
    }


def check_evaluator(experiment: Experiment, *, allow: bool = False) -> dict[str, Any] | None:
    """Compare the experiment's evaluator with the one its stored study (if any, with trials) was
    searched with. Nothing is created: a missing storage or study passes.

    Returns:
        With ``allow`` and changed settings, the change as recorded in the study's
        ``evaluator_changes``: ``{"from_trial": N, "changes": {field: [stored, now]}}``, N the
        first trial under the new settings; otherwise ``None``.

    Raises:
        SpecError: without ``allow``, one issue per changed field, at the field's line in the
            experiment file (or ``<command line>`` and the override that set it), naming the stored
            value and how to proceed.
    """
    storage = open_storage(experiment.storage_url, writable=False)
    try:
        study = optuna.load_study(study_name=experiment.study_name, storage=storage)
    except KeyError:
        return None
    stored = study.user_attrs.get("experiment", {}).get("evaluator")
    n_trials = len(study.get_trials(deepcopy=False))
    if not isinstance(stored, dict) or n_trials == 0:
        return None
    changes = _changes(stored, evaluator_settings(experiment))
    if not changes:
        return None
    if not allow:
        name = experiment.study_name
        issues = [
            experiment.locate(
                Issue(
                    ("evaluator", key),
                    f"study {name!r} was searched with {key} {_show(old)}; accuracies under other "
                    "evaluator settings are not comparable",
                    value=new,
                    allowed=f"{_show(old)} (as stored), {_ALLOWED}",
                )
            )
            for key, (old, new) in changes.items()
        ]
        file = None if experiment.file is None else str(experiment.file)
        raise command_line_issues(SpecError(issues), experiment._overrides, file)
    record = {"from_trial": n_trials, "changes": changes}
    study.set_user_attr(CHANGES, [*study.user_attrs.get(CHANGES, []), record])
    return record


def describe_change(study_name: str, record: dict[str, Any]) -> str:
    """``study 'q': evaluator epochs 5 -> 2 from trial 12 on ...``, for a warning."""
    fields = ", ".join(f"{k} {_show(old)} -> {_show(new)}" for k, (old, new) in record["changes"].items())
    return (
        f"study {study_name!r}: evaluator {fields} from trial {record['from_trial']} on "
        "(--allow-changed-evaluator); accuracies before and after are not comparable"
    )


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check_space(experiment: Experiment, study: optuna.Study, space: SearchSpace) -> None:
    """Refuse to resume ``study`` with a space whose draws Optuna cannot store beside the old ones:
    a ``choice`` with other options (added, removed or reordered), a parameter that changed kind
    (``int`` to ``choice``), or a range that gained or lost ``log``. A changed ``int`` or ``float``
    range (other bounds or step) is allowed, as Optuna allows it; a parameter the space no longer
    draws is ignored. Nothing is created: call it before the first trial is asked.

    Raises:
        SpecError: one issue per changed parameter, at its line in the space file (in the
            experiment file for a space written inline), naming the stored and the new domain and
            how to go on (``--fresh``, or another study name).
    """
    stored: dict[str, BaseDistribution] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, dist in trial.distributions.items():
            stored.setdefault(name, dist)  # Optuna compares with the first trial that stored it
    issues, seen = [], set()
    for name, old in stored.items():
        dim = _dimension_of(space, name)
        if dim is None or dim.node is None or dim.name in seen:
            continue  # a per-block draw: one issue for all its blocks
        new = _distribution(dim)
        try:
            check_distribution_compatibility(old, new)
        except ValueError:
            seen.add(dim.name)
            issue = Issue(
                dim.node.path,
                f"study {experiment.study_name!r} stored parameter {dim.name!r} as {_domain(old)}; "
                f"the space now draws it as {_domain(new)}, which Optuna cannot mix in one study",
                allowed=f"{_domain(old)} (as stored), --fresh to move the old study aside and start "
                "a new one, or another study name (backend.study_name)",
            )
            file = space.source.file
            issues.append(
                experiment.locate(issue, ("space",))
                if file is None
                else replace(issue, file=file, line=space.source.line_of(issue.path))
            )
    if issues:
        raise SpecError(issues)


def _distribution(dim: Dimension) -> BaseDistribution:
    """The distribution Optuna stores for a draw of ``dim``, as
    :class:`~archsearch.space.OptunaSuggest` asks for it."""
    node: Any = dim.node
    if dim.kind == "categorical":
        return CategoricalDistribution(list(node.labels))
    if dim.kind == "int":
        return IntDistribution(node.low, node.high, log=node.log, step=node.step)
    return FloatDistribution(node.low, node.high, log=node.log, step=node.step)


def _domain(dist: BaseDistribution) -> str:
    if isinstance(dist, CategoricalDistribution):
        return f"choices {list(dist.choices)}"
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    assert isinstance(dist, IntDistribution | FloatDistribution)
    return f"{kind} {dist.low}..{dist.high}" + (" log" if dist.log else "")


def _dimension_of(space: SearchSpace, param: str) -> Dimension | None:
    """The dimension of ``space`` that draws the parameter named ``param`` (``stages.0.blocks.3.dim``
    matches the per-block ``stages.0.blocks.*.dim``), or ``None`` when no draw has that name."""
    for dim in space.dimensions():
        if dim.name == param or (
            "*" in dim.name and re.fullmatch(re.escape(dim.name).replace(r"\*", r"\d+"), param)
        ):
            return dim
    return None
