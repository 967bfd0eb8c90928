"""Parameter importances (Optuna's), with the library's warnings summarised once and a warning
when they come from too few trials to mean much."""

from __future__ import annotations

import math
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._results import Objective

__all__ = ["MIN_IMPORTANCE_TRIALS", "Importances", "compute_importances"]

#: Complete trials below which importances are shown with a warning that they are unreliable.
MIN_IMPORTANCE_TRIALS = 10
_NAME = re.compile(r"`([^`]*)`")


@dataclass
class Importances:
    """Per target (each objective's metric, and ``Pareto front``), choice -> importance."""

    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    trials: int = 0
    """Complete trials the importances were computed from."""
    warning: str | None = None
    """Set when ``trials`` is below :data:`MIN_IMPORTANCE_TRIALS`."""
    notes: list[str] = field(default_factory=list)
    """Why importances are missing, and the library's warnings, each once."""


def compute_importances(study: Any, objectives: Sequence[Objective]) -> Importances:
    """``optuna.importance.get_param_importances`` for each objective (maximised ones negated,
    since the default evaluator, PED-ANOVA in Optuna 5, takes lower targets as better) and, with
    several objectives, for reaching the front. A warning Optuna gives for several targets or
    several parameters becomes one note naming them all."""
    result = Importances()
    if study is None:
        result.notes.append("Parameter importances are not shown: no Optuna study was given.")
        return result
    import optuna

    try:
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    except Exception as exc:
        result.notes.append(f"Parameter importances are not shown: the study cannot be read ({exc}).")
        return result
    result.trials = len(complete)
    if len(complete) < 2:
        result.notes.append(
            f"Parameter importances are not shown: they need two or more complete trials, "
            f"and the study has {len(complete)}."
        )
        return result
    targets: list[tuple[str, Callable[[Any], float] | None]] = [
        (o.metric, _target(i, o.direction)) for i, o in enumerate(objectives)
    ]
    if len(objectives) > 1:
        targets.append(("Pareto front", None))  # how much each choice matters to reach the front
    said: list[tuple[str, str]] = []  # (target, message), in order
    for name, target in targets:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                scores = optuna.importance.get_param_importances(study, target=target)
        except Exception as exc:
            result.notes.append(
                f"Parameter importances for {name} are not shown: {type(exc).__name__}: {exc}"
            )
            continue
        for message in dict.fromkeys(str(w.message) for w in caught):
            if "achieve low `target` values" not in message:  # PED-ANOVA's reminder; targets are negated
                said.append((name, message))
        clean = {k: float(v) for k, v in scores.items() if math.isfinite(float(v))}
        if clean:
            result.scores[name] = clean
        else:
            result.notes.append(f"Parameter importances for {name}: no parameter to assess.")
    result.notes += summarise_warnings(said)
    if result.scores and result.trials < MIN_IMPORTANCE_TRIALS:
        result.warning = (
            f"These importances come from {result.trials} complete trial{'s' if result.trials != 1 else ''}: "
            f"too few to rely on (about {MIN_IMPORTANCE_TRIALS} or more are needed); read them as a hint."
        )
    return result


def summarise_warnings(said: Sequence[tuple[str, str]]) -> list[str]:
    """``(target, message)`` pairs -> one note per kind of message: messages that differ only in
    the names they quote in backticks are one kind, noted once with every target and name."""
    kinds: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for target, message in said:
        targets, names = kinds[_NAME.sub("`…`", message)]
        if target not in targets:
            targets.append(target)
        names += [n for n in _NAME.findall(message) if n not in names]
    notes = []
    for template, (targets, names) in kinds.items():
        text = template
        if len(names) == 1:
            text = template.replace("`…`", f"`{names[0]}`")
        elif names:
            text += f" ({len(names)}: {', '.join(names)})"
        notes.append(f"Parameter importances for {', '.join(targets)}: {text}")
    return notes


def _target(index: int, direction: str) -> Callable[[Any], float]:
    sign = -1.0 if direction == "maximize" else 1.0
    return lambda t: sign * t.values[index]
