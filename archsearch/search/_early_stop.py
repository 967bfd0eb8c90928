"""Early stopping for multi-objective studies, where Optuna's pruners cannot act.

The rule (``early_stopping: {kind: dominance}``): after ``warmup_epochs`` epochs, and once
``min_trials`` trials have completed, a running trial stops at epoch *e* when a completed trial
*j* costs no more on every cost objective (MACs, params, latency, memory: all known before any
training) and had, at the same epoch *e*, an accuracy at least ``margin`` higher (strictly
higher when ``margin`` is 0 and the costs are equal). Such a trial is, at that epoch, dominated
on every objective by an architecture already measured; training it on is the least useful way
to spend the budget. It is the multi-objective counterpart of a median pruner: it compares
learning curves at equal epochs, never a partial curve with a finished one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Curve", "dominated_at"]


@dataclass(frozen=True)
class Curve:
    """A completed trial as the rule sees it: its costs (lower is better) and accuracy per epoch."""

    number: int
    costs: tuple[float, ...]
    accuracy: tuple[float, ...]


def dominated_at(
    epoch: int,
    accuracy: float,
    costs: Sequence[float],
    completed: Sequence[Curve],
    *,
    warmup_epochs: int = 1,
    min_trials: int = 3,
    margin: float = 0.0,
) -> tuple[Curve, float] | None:
    """The completed trial (and its accuracy at ``epoch``) that dominates a running trial with
    ``accuracy`` at ``epoch`` (1-based) and ``costs``, or ``None`` if none does."""
    if epoch < max(warmup_epochs, 1) or len(completed) < min_trials:
        return None
    best: tuple[Curve, float] | None = None
    for other in completed:
        if len(other.accuracy) < epoch or len(other.costs) != len(costs):
            continue
        theirs = other.accuracy[epoch - 1]
        if any(c_other > c for c_other, c in zip(other.costs, costs, strict=True)):
            continue  # it costs more somewhere: no dominance
        cheaper = any(c_other < c for c_other, c in zip(other.costs, costs, strict=True))
        better = (
            theirs >= accuracy + margin
            if margin > 0
            else theirs > accuracy or (cheaper and theirs >= accuracy)
        )
        if better and (best is None or theirs > best[1]):
            best = (other, theirs)
    return best
