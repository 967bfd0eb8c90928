"""What a resumed study must share with the run that resumes it: the evaluator settings.

A study records its evaluator (``study.user_attrs["experiment"]["evaluator"]``, written by
:func:`~._ledger.study_meta`). Resuming it with settings that score differently (5 epochs, then 2)
would put accuracies that cannot be compared on one Pareto front, so :func:`check_evaluator`
refuses it, naming each changed field, unless the run is told to mix them; a mixed study keeps a
list of its changes (``study.user_attrs["evaluator_changes"]``).
"""

from __future__ import annotations

from typing import Any

import optuna

from ..core import command_line_issues
from ..errors import Issue, SpecError
from ._experiment import Experiment
from ._ledger import CHANGES, evaluator_settings
from ._storage import open_storage

__all__ = ["CHANGES", "RUNTIME_FIELDS", "check_evaluator", "describe_change"]

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
