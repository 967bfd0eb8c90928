"""Predicted latency checked against measured latency on the Pareto front, for the report.

When latency is predicted (``latency_ms: {predict: true}``) no candidate is timed during the
search. Afterwards, the Pareto members are built and timed whole with the harness, in the
setting of the objective's latency table (its warm-up, runs and rounds: the members are timed
together, interleaved); the times are kept in the
study's user attribute ``latency_measured`` (trial number -> ms), where the report reads them to
show predicted and measured latency side by side, and added to the latency table's measured
members (the overhead fit learns from them).
"""

from __future__ import annotations

import json

import optuna

from ..spec import load_spec, normalize, spec_hash
from ._evaluate import latency_predictor
from ._experiment import Experiment
from ._ledger import outcome_of

__all__ = ["MEASURED_ATTR", "measure_front_latency"]

#: The study's user attribute holding the measured latency of front members: ``{"7": 3.21}``.
MEASURED_ATTR = "latency_measured"


def measure_front_latency(experiment: Experiment, study: optuna.Study) -> dict[str, float]:
    """Time the study's Pareto members whose latency was predicted and not yet measured; return
    (and store in the study) trial number -> measured median ms. Nothing happens unless the
    experiment predicts latency with ``measure_front`` on."""
    objective = next((o for o in experiment.objectives if o.metric == "latency_ms" and o.predict), None)
    if objective is None or not objective.measure_front:
        return {}
    measured: dict[str, float] = dict(study.user_attrs.get(MEASURED_ATTR) or {})
    try:
        front = [t for t in study.best_trials if outcome_of(t) == "complete"]
    except (RuntimeError, ValueError):  # no complete trial
        return measured
    todo = [t for t in front if str(t.number) not in measured and isinstance(t.user_attrs.get("spec"), str)]
    if not todo:
        return measured
    predictor = latency_predictor(experiment)
    assert predictor is not None
    plans = [normalize(load_spec(json.loads(trial.user_attrs["spec"]))) for trial in todo]
    # timed together, in interleaved rounds: a drift of the machine's speed touches them all alike
    times = predictor.measure_members([(plan, spec_hash(plan)) for plan in plans], experiment.sampler.seed)
    for trial, ms in zip(todo, times, strict=True):
        measured[str(trial.number)] = ms
    if predictor.table.path is not None:
        predictor.table.save()
    study.set_user_attr(MEASURED_ATTR, measured)
    return measured
