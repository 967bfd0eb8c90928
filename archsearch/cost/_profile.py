"""One call for everything known about a spec's cost: counts, analytic costs, latency, memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..compiler import build
from ..spec import NormalizedSpec, Spec, normalize, spec_hash
from ._analytic import analytic_costs
from ._latency import LatencyCache, LatencyResult, device_name, measure_latency
from ._memory import cuda_peak_memory, saved_activation_bytes
from ._traced import count_params, count_traced

__all__ = ["Profile", "profile"]


@dataclass
class Profile:
    name: str
    spec_hash: str
    resolution: tuple[int, int]
    batch: int
    params: int
    trainable_params: int
    macs: int
    """Traced MACs per image (fvcore's unit)."""
    params_analytic: int
    macs_analytic: int
    activation_bytes_analytic: int
    """Analytic activations at this batch, float32."""
    saved_activation_bytes: int | None
    """Measured: tensors autograd saves in one training forward at this batch."""
    latency: LatencyResult | None
    cuda_peak_inference_bytes: int | None = None
    cuda_peak_train_bytes: int | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    stem: dict[str, Any] | None = None
    """The stem's ``kind``, ``params``, ``macs``, ``params_analytic``, ``macs_analytic``; None
    without a stem."""
    head: dict[str, Any] = field(default_factory=dict)
    """The head's ``pool``, ``num_classes``, ``params``, ``macs``, ``params_analytic``,
    ``macs_analytic``."""

    def to_dict(self) -> dict[str, Any]:
        lat = self.latency
        return {
            "name": self.name,
            "spec_hash": self.spec_hash,
            "resolution": list(self.resolution),
            "batch": self.batch,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "params_analytic": self.params_analytic,
            "macs_analytic": self.macs_analytic,
            "latency_ms": lat.median_ms if lat else None,
            "latency_iqr_ms": lat.iqr_ms if lat else None,
            "latency_cv": lat.cv if lat else None,
            "latency": lat.to_dict() if lat else None,
            "activation_bytes_analytic": self.activation_bytes_analytic,
            "saved_activation_bytes": self.saved_activation_bytes,
            "cuda_peak_inference_bytes": self.cuda_peak_inference_bytes,
            "cuda_peak_train_bytes": self.cuda_peak_train_bytes,
            "stem": self.stem,
            "stages": self.stages,
            "head": self.head,
            "uncounted_ops": self.uncounted_ops,
        }


def profile(
    spec: Spec | NormalizedSpec,
    *,
    batch: int = 1,
    device: str = "cpu",
    dtype: str = "float32",
    runs: int = 30,
    warmup: int = 10,
    threads: int | None = None,
    latency: bool = True,
    memory: bool = True,
    cache: LatencyCache | None = None,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """Count, compute and measure ``spec``: params and MACs traced and analytic, for the stem,
    each stage and the head; latency at ``batch`` on ``device``; saved-activation memory; CUDA
    peak memory on CUDA. ``progress`` is called with each step's name as it starts."""
    say = progress or (lambda _: None)
    plan = spec if isinstance(spec, NormalizedSpec) else normalize(spec)
    say("building the model")
    model = build(plan)
    shape = plan.input_shape
    one = (1, shape.channels, shape.height, shape.width)
    say("counting params and MACs (traced and analytic)")
    traced = count_traced(model, one, warn=False)
    analytic = analytic_costs(plan)

    def part(scope: str, module: Any, cost: Any) -> dict[str, Any]:
        return {
            "params": count_params(module)[0],
            "macs": traced.by_scope.get(scope, 0),
            "params_analytic": cost.params,
            "macs_analytic": cost.macs,
        }

    stages = []
    for stage, cost in zip(plan.stages, analytic.stages, strict=True):
        stages.append(
            {
                "stage": stage.index,
                "family": stage.family,
                "blocks": stage.depth,
                "output": list(stage.out_shape.as_tuple()),
                "cls_tokens": stage.out_shape.cls_tokens,
                "params": count_params(model.stages[stage.index])[0],
                "macs": traced.by_scope.get(f"stages.{stage.index}", 0),
                "params_analytic": cost.params,
                "macs_analytic": cost.macs,
            }
        )
    stem = None
    if plan.spec.stem is not None:
        stem = {"kind": plan.spec.stem.kind, **part("stem", model.stem, analytic.stem)}
    head: dict[str, Any] = {"pool": plan.head.pool, "num_classes": plan.num_classes}
    head.update(part("head", model.head, analytic.head))
    digest = spec_hash(plan.spec)
    batch_shape = (batch, *one[1:])
    if memory and device == "cpu":
        say("measuring the activations saved for backward")
    saved = saved_activation_bytes(model, batch_shape) if memory and device == "cpu" else None
    result = None
    if latency:
        threads_used = threads if threads is not None else torch.get_num_threads()
        key = LatencyCache.key(digest, device_name(device), dtype, batch, threads_used)
        result = cache.get(key) if cache is not None else None
        if result is None:
            say(f"measuring latency ({warmup} warm-up + {runs} timed runs at batch {batch})")
            result = measure_latency(
                model, batch_shape, device=device, dtype=dtype, warmup=warmup, runs=runs, threads=threads
            )
            if cache is not None:
                cache.put(key, result)
    prof = Profile(
        name=plan.name,
        spec_hash=digest,
        resolution=(shape.height, shape.width),
        batch=batch,
        params=traced.params,
        trainable_params=traced.trainable_params,
        macs=traced.macs,
        params_analytic=analytic.params,
        macs_analytic=analytic.macs,
        activation_bytes_analytic=analytic.activation_bytes(batch),
        saved_activation_bytes=saved,
        latency=result,
        stages=stages,
        uncounted_ops=traced.uncounted,
        stem=stem,
        head=head,
    )
    if memory and torch.device(device).type == "cuda":
        say("measuring CUDA peak memory")
        peak = cuda_peak_memory(model, batch_shape, device)
        prof.cuda_peak_inference_bytes, prof.cuda_peak_train_bytes = (
            peak.inference_bytes,
            peak.train_step_bytes,
        )
        prof.saved_activation_bytes = saved_activation_bytes(model, batch_shape)
    return prof
