"""The Ray backend's trainable (in Ray's workers) and its latency actor.

:func:`trainable` (run by Ray with ``cpus_per_trial``/``gpus_per_trial``; torch uses as many
threads as CPUs reserved) takes the checked spec from its config, normalises it once, measures its
costs, trains with one ``ray.tune.report`` and checkpoint per epoch, and ends with a final report
carrying every metric. The architecture's own errors (a diverged loss, an invalid model) end it as
a failed trial at once; anything else (a dead worker or node) makes Ray retry it up to
``max_failures`` times. A retried trial takes the costs it measured (and, if it had finished, its
result) from its last checkpoint; training restarts from epoch 1, which gives the same curve
because training is seeded.

Latency, when it is an objective, is timed by one actor (:class:`LatencyMeter`) that holds the
custom resource ``archsearch_latency`` plus ``threads`` CPUs (and a whole GPU for CUDA timing).
Ray hands out CPUs and GPUs by reservation, so while the search runs, the cores (and the GPU) the
meter times on are never reserved by a trial of this search: a timing does not share its cores
with co-scheduled training, and every architecture is timed by the same process with the same
threads, one at a time. (Reservations are bookkeeping: work outside Ray on that node can still
disturb it; give the resource to a node that runs nothing else.)
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from ..compiler import build
from ..cost import DEFAULT_STATISTIC, analytic_costs, measure_latency
from ..data import load_dataset
from ..errors import SpecError
from ..evaluate import TrainingDiverged
from ..spec import NormalizedSpec, normalize, spec_from_dict
from ._evaluate import Evaluator, cost_vector, failure_reason, plain_attrs
from ._experiment import Experiment

__all__ = ["NAMESPACE", "LatencyMeter", "Setup", "trainable"]

NAMESPACE = "archsearch"


@dataclass(frozen=True)
class Setup:
    """What every trial needs besides its spec (shipped once through Ray's object store)."""

    experiment: Experiment
    input_size: tuple[int, int]
    channels: int
    threads: int
    latency_actor: str | None


class _RayEvaluator(Evaluator):
    """The Optuna backends' evaluator, with latency timed by the search's latency actor."""

    def __init__(self, experiment: Experiment, dataset: Any, actor: str | None):
        super().__init__(experiment, dataset)
        self.actor = actor

    def _latency(self, plan: NormalizedSpec, spec_hash: str, model: torch.nn.Module) -> float:
        if self.actor is None:
            return super()._latency(plan, spec_hash, model)
        assert self.latency is not None
        o = self.latency
        size = plan.spec.input.size
        h, w = (size, size) if isinstance(size, int) else size
        meter = ray.get_actor(self.actor, namespace=NAMESPACE)
        shape = (o.batch, plan.spec.input.channels, h, w)
        remote: Any = meter.measure.remote(plan, shape, o.device, o.runs, o.dtype, o.cuda_graph, o.statistic)
        milliseconds: Any = ray.get(remote)
        return float(milliseconds)


class LatencyMeter:
    """Times forward passes, one at a time, on CPUs (and a GPU) no trial of the search holds."""

    def __init__(self, threads: int):
        self.threads = threads

    def measure(
        self,
        plan: NormalizedSpec,
        shape: tuple[int, ...],
        device: str,
        runs: int,
        dtype: str = "float32",
        cuda_graph: bool = False,
        statistic: str = DEFAULT_STATISTIC,
    ) -> float:
        """Forward time (ms; the ``statistic`` of the runs, :data:`archsearch.cost.STATISTICS`) of
        the model ``plan`` builds, on an input of ``shape``, in ``dtype`` (optionally as a CUDA
        graph's replay: :func:`~archsearch.cost.time_call`)."""
        torch.manual_seed(0)
        model = build(plan)
        result = measure_latency(
            model, shape, device=device, dtype=dtype, runs=runs, threads=self.threads, cuda_graph=cuda_graph
        )
        return result.statistic(statistic)


def _report_with_checkpoint(metrics: dict[str, Any], state: dict[str, Any]) -> None:
    """``tune.report(metrics)`` with ``state`` as the trial's checkpoint. Ray copies the folder
    into the run's storage during the call, so the temporary folder is removed after it."""
    with tempfile.TemporaryDirectory(prefix="archsearch-ckpt-") as folder:
        Path(folder, "state.json").write_text(json.dumps(state))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _restored() -> dict[str, Any]:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as folder:
        path = Path(folder, "state.json")
        return json.loads(path.read_text()) if path.exists() else {}


def trainable(config: dict[str, Any], setup: Setup) -> None:
    """One Ray trial: costs, then per-epoch training reports, then a final report.

    ``config`` holds ``trial`` (the Optuna trial number), ``spec`` (the concrete spec the searcher
    checked, as plain data) and ``spec_hash``; the spec is normalised once, here."""
    t0 = time.perf_counter()
    torch.set_num_threads(setup.threads)
    experiment = setup.experiment
    base = {"trial": config["trial"], "node_id": ray.get_runtime_context().get_node_id()}
    saved = _restored()
    if "final" in saved:  # finished before its worker died: report it again
        tune.report({"archsearch": json.dumps(saved["final"]), "final": True, **base})
        return
    metrics: dict[str, Any] = dict(saved.get("costs", {}))  # kept from before a retry
    curve: list[float] = []

    def report(payload: dict[str, Any], **extra: Any) -> None:
        payload = {**base, **payload, "eval_s": time.perf_counter() - t0}
        state = {"final": payload} if payload.get("final") else {"costs": costs_only}
        _report_with_checkpoint({"archsearch": json.dumps(payload), **base, **extra}, state)

    costs_only: dict[str, Any] = {}
    try:
        dataset = load_dataset(experiment.data, input_size=setup.input_size, channels=setup.channels)
        evaluator = _RayEvaluator(experiment, dataset, setup.latency_actor)
        plan = normalize(spec_from_dict(config["spec"], shapes=False))
        model = evaluator.build(plan)
        if not metrics:
            metrics = dict(evaluator.costs(plan, analytic_costs(plan), config["spec_hash"], model))
        costs_only = dict(metrics)
        costs = {f"cost_{i}": c for i, c in enumerate(cost_vector(experiment, metrics))}

        def on_epoch(epoch: int, accuracy: float) -> None:
            curve.append(accuracy)
            report(
                {"metrics": plain_attrs(metrics), "curve": curve, "epoch": epoch},
                epoch=epoch,
                accuracy=accuracy,
                **costs,
            )

        result = evaluator.evaluate(model, on_epoch)
    except (TrainingDiverged, SpecError) as exc:  # the architecture's fault: retrying cannot help
        report({"final": True, "failed": failure_reason(exc), "metrics": plain_attrs(metrics)}, final=True)
        return
    metrics.update(result.metrics)
    metrics.update(curve=result.curve or curve, epochs=result.epochs)
    report({"final": True, "metrics": plain_attrs(metrics)}, final=True)
