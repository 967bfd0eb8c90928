"""Multi-objective asynchronous successive halving for Ray Tune (the ``ray`` backend's early stopping).

ASHA promotes a trial past a rung (an epoch count) when it is in the top ``1/eta`` of the trials
that reached that rung so far. With several objectives "top" has no single order, so the rung
ranks its trials by non-dominated sorting (:func:`archsearch.pareto.non_dominated_sort`) of their
accuracy at the rung epoch together with their cost objectives (MACs, params, latency, memory:
known before training, lower is better). With ``n`` trials at a rung, a trial goes on while fewer
than ``max(1, ceil(n / eta))`` of them sit on strictly better fronts; the rung's Pareto front
(rank 0) therefore always goes on, whatever its size. A cheap, mediocre architecture survives
as long as nothing at least as cheap learns faster, which is what a Pareto search needs and what
a single-metric ASHA (stopping the cheap ones first) gets wrong.

:func:`rung_decision` is the rule as a plain function; :class:`ParetoASHA` applies it inside
Tune (this module imports Ray: import it only through the ray backend).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ..pareto import non_dominated_sort

__all__ = ["STOP_REASONS", "ParetoASHA", "rung_decision", "rungs"]

#: Why a trial was stopped, by Ray trial id (the searcher in the same driver stores it).
STOP_REASONS: dict[str, str] = {}


def rungs(max_epochs: int, grace_epochs: int = 1, eta: int = 3) -> list[int]:
    """The rung epochs: ``grace * eta**k`` below ``max_epochs``."""
    out, epoch = [], max(grace_epochs, 1)
    while epoch < max_epochs:
        out.append(epoch)
        epoch *= eta
    return out


def rung_decision(
    key: str,
    entries: Mapping[str, Sequence[float]],
    *,
    eta: int = 3,
    min_trials: int = 3,
) -> tuple[bool, str]:
    """Whether the trial ``key`` stops at a rung, and why.

    ``entries`` holds, for every trial that reached the rung (``key`` included), its accuracy at
    the rung followed by its costs (lower is better). Fewer than ``min_trials`` entries stop nothing.
    """
    n = len(entries)
    if n < min_trials:
        return False, f"{n} trials at this rung (fewer than {min_trials})"
    keys = list(entries)
    values = [list(entries[k]) for k in keys]
    directions = ["maximize"] + ["minimize"] * (len(values[0]) - 1)
    ranks = non_dominated_sort(values, directions)  # type: ignore[arg-type]
    own = int(ranks[keys.index(key)])
    better = int(sum(int(r) < own for r in ranks))
    keep = max(1, math.ceil(n / eta))
    if better >= keep:
        return True, (
            f"on front {own} of {n} trials at this rung ({better} on better fronts; the best {keep} go on)"
        )
    return False, f"on front {own} of {n} trials at this rung"


class ParetoASHA(FIFOScheduler):
    """ASHA whose rungs promote by non-dominated rank (see the module docstring).

    Trials report ``epoch``, ``accuracy`` and ``cost_0 ... cost_{n-1}`` (lower is better); results
    without an ``epoch`` (a trial's final summary) pass through.
    """

    def __init__(self, *, max_epochs: int, grace_epochs: int = 1, eta: int = 3, min_trials: int = 3):
        super().__init__()
        self.rung_epochs = rungs(max_epochs, grace_epochs, eta)
        self.eta, self.min_trials = eta, min_trials
        self.recorded: dict[int, dict[str, list[float]]] = {e: {} for e in self.rung_epochs}

    def decide(self, trial_id: str, result: Mapping[str, Any]) -> str:
        """``CONTINUE`` or ``STOP`` for one result (the part that needs no Tune controller)."""
        epoch = result.get("epoch")
        if epoch not in self.recorded or "accuracy" not in result:
            return TrialScheduler.CONTINUE
        costs = [float(result[k]) for k in sorted(k for k in result if k.startswith("cost_"))]
        entries = self.recorded[epoch]
        entries[trial_id] = [float(result["accuracy"]), *costs]
        stop, why = rung_decision(trial_id, entries, eta=self.eta, min_trials=self.min_trials)
        if stop:
            STOP_REASONS[trial_id] = (
                f"stopped by Pareto ASHA at epoch {epoch} (accuracy {float(result['accuracy']):.4f}): {why}"
            )
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        return self.decide(trial.trial_id, result)

    def debug_string(self) -> str:
        sizes = ", ".join(f"epoch {e}: {len(v)}" for e, v in self.recorded.items())
        return f"ParetoASHA: rungs {sizes or 'none'}"
