"""Evaluating one candidate: its costs (before training), then proxy training or zero-cost scores."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..compiler import build
from ..cost import CostReport, Fingerprint, LatencyCache, LatencyPredictor, measure_latency
from ..data import Dataset
from ..errors import SpecError
from ..evaluate import (
    SupernetConfig,
    TrainConfig,
    TrainingDiverged,
    ZeroCostConfig,
    train_and_evaluate,
    zero_cost_scores,
)
from ..spec import NormalizedSpec
from ._experiment import COST_METRICS, Experiment
from ._oneshot import OneShot

__all__ = [
    "CALIBRATION_ATTR",
    "Evaluation",
    "Evaluator",
    "calibrate_latency",
    "cost_vector",
    "failure_reason",
    "latency_predictor",
    "objective_values",
    "plain_attrs",
]


@dataclass
class Evaluation:
    """What one trial measured."""

    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[float] = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0


class Evaluator:
    """Measures candidates of one experiment: costs first, then the evaluator."""

    def __init__(
        self, experiment: Experiment, dataset: Dataset, *, latency_cache: LatencyCache | None = None
    ):
        self.experiment = experiment
        self.dataset = dataset
        self.latency_cache = latency_cache
        self.latency = next((o for o in experiment.objectives if o.metric == "latency_ms"), None)
        self.predictor = latency_predictor(experiment)
        self.oneshot = (
            OneShot(experiment, dataset) if isinstance(experiment.evaluator, SupernetConfig) else None
        )
        """One-shot (``evaluator: {kind: supernet}``): members inherit the supernet's weights."""

    def costs(
        self, plan: NormalizedSpec, costs: CostReport, spec_hash: str, model: torch.nn.Module
    ) -> dict[str, float]:
        """MACs, params, the training-memory estimate (MiB) and, if it is an objective, latency (ms)
        of the candidate ``plan`` with analytic ``costs``, built as ``model``."""
        out: dict[str, float] = {"macs": float(costs.macs), "params": float(costs.params)}
        evaluator = self.experiment.evaluator
        batch = evaluator.batch_size if isinstance(evaluator, TrainConfig) else 1
        out["memory_mb"] = (16 * costs.params + costs.activation_bytes(batch)) / 2**20
        if self.predictor is not None:  # from the table: nothing is timed
            out["latency_ms"] = self.predictor.predict(plan)
        elif self.latency is not None:
            out["latency_ms"] = self._latency(plan, spec_hash, model)
        return out

    def _latency(self, plan: NormalizedSpec, spec_hash: str, model: torch.nn.Module) -> float:
        assert self.latency is not None
        o = self.latency
        channels = plan.spec.input.channels
        size = plan.spec.input.size
        h, w = (size, size) if isinstance(size, int) else size
        threads = o.threads or torch.get_num_threads()
        key = LatencyCache.key(spec_hash, o.device, o.dtype, o.batch, threads, o.cuda_graph)
        if self.latency_cache is not None and (hit := self.latency_cache.get(key)) is not None:
            return hit.statistic(o.statistic)
        result = measure_latency(
            model,
            (o.batch, channels, h, w),
            device=o.device,
            dtype=o.dtype,
            runs=o.runs,
            threads=threads,
            cuda_graph=o.cuda_graph,
        )
        model.to("cpu")
        if self.latency_cache is not None:
            self.latency_cache.put(key, result)
        return result.statistic(o.statistic)

    def build(self, plan: NormalizedSpec) -> torch.nn.Module:
        """The candidate's model, its weights seeded by the sampler's seed (one-shot: inherited)."""
        if self.oneshot is not None:
            return self.oneshot.member(plan)
        torch.manual_seed(self.experiment.sampler.seed)
        return build(plan)

    def evaluate(
        self, model: torch.nn.Module, on_epoch: Callable[[int, float], None] | None = None
    ) -> Evaluation:
        """Train (or score) ``model``; ``on_epoch`` may raise to stop it early."""
        evaluator = self.experiment.evaluator
        start = time.perf_counter()
        if self.oneshot is not None:
            accuracy = self.oneshot.score(model)
            metrics = {"accuracy": accuracy, "inherited_accuracy": accuracy}
            return Evaluation(metrics, curve=[accuracy], seconds=time.perf_counter() - start)
        if isinstance(evaluator, ZeroCostConfig):
            scores = zero_cost_scores(model, self.dataset, evaluator)
            return Evaluation(dict(scores), seconds=time.perf_counter() - start)
        result = train_and_evaluate(model, self.dataset, evaluator, on_epoch=on_epoch)
        metrics = {"accuracy": result.accuracy, "train_loss": result.train_loss}
        if result.peak_memory_mb is not None:  # measured on CUDA; the estimate is ``memory_mb``
            metrics["peak_memory_mb"] = result.peak_memory_mb
        return Evaluation(
            metrics,
            curve=list(result.curve),
            epochs=result.epochs,
            seconds=time.perf_counter() - start,
        )


def latency_predictor(experiment: Experiment) -> LatencyPredictor | None:
    """The predictor of the experiment's ``latency_ms: {predict: true}`` objective (its table, or
    this device setting's table in the cache), or ``None`` when latency is not predicted.

    Raises:
        TableMismatch: the table was measured in another setting (named with both fingerprints), or
            holds another statistic than the objective's ``statistic``.
    """
    o = next((o for o in experiment.objectives if o.metric == "latency_ms" and o.predict), None)
    if o is None:
        return None
    fingerprint = Fingerprint.here(o.device, threads=o.threads, dtype=o.dtype, batch=o.batch)
    return LatencyPredictor.open(o.table, fingerprint, o.statistic)


#: The study's user attribute holding the latency calibration its predictions use
#: (:meth:`~archsearch.cost.Calibration.to_dict`).
CALIBRATION_ATTR = "latency_calibration"


def calibrate_latency(predictor: LatencyPredictor | None, study: Any) -> dict[str, Any] | None:
    """Scale ``predictor``'s predictions to the machine's speed now (:meth:`LatencyPredictor.calibrate`:
    the table's anchors, a few of its whole members, timed 10 times each, or where it has none its
    reference, a second or so) at a study's first start, and keep the factor in
    the study (user attribute ``latency_calibration``); a resumed study, or another worker of it,
    reuses the kept factor, so that all its trials are predicted alike. Returns the calibration
    (with ``"reused"``), or ``None`` when latency is not predicted or the table is still empty
    (nothing to calibrate: its pieces will be timed now)."""
    if predictor is None or not predictor.table.pieces:
        return None
    kept = study.user_attrs.get(CALIBRATION_ATTR)
    if isinstance(kept, dict) and isinstance(kept.get("factor"), int | float) and kept["factor"] > 0:
        predictor.set_factor(float(kept["factor"]))
        return {**kept, "reused": True}
    calibration = predictor.calibrate().to_dict()
    study.set_user_attr(CALIBRATION_ATTR, calibration)
    return {**calibration, "reused": False}


def objective_values(experiment: Experiment, metrics: dict[str, Any]) -> list[float]:
    """The objectives' values, in the experiment's order, from a trial's metrics."""
    return [float(metrics[o.metric]) for o in experiment.objectives]


def cost_vector(experiment: Experiment, metrics: dict[str, Any]) -> list[float]:
    """The cost objectives (known before training), all as "lower is better"."""
    out = []
    for o in experiment.objectives:
        if o.metric in COST_METRICS:
            value = float(metrics[o.metric])
            out.append(value if o.sense == "minimize" else -value)
    return out


def plain_attrs(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics a trial may store as user attributes (numbers, strings, lists, booleans)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | list | bool)}


def failure_reason(exc: BaseException) -> str:
    """Why a trial failed, in one line: ``diverged: ...``, ``invalid: ...``, ``out of memory: ...``
    or ``ExceptionType: message``."""
    if isinstance(exc, TrainingDiverged):
        return f"diverged: {exc}"
    if isinstance(exc, SpecError):
        return f"invalid: {exc}"
    if "out of memory" in str(exc).lower():
        return f"out of memory: {str(exc).splitlines()[0][:300]}"
    text = str(exc).splitlines()[0][:500] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
