"""One call for everything known about a spec's cost: counts, analytic costs, latency, memory."""

from __future__ import annotations

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
            "stages": self.stages,
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
) -> Profile:
    """Count, compute and measure ``spec``: params and MACs traced and analytic, per stage; latency
    at ``batch`` on ``device``; saved-activation memory; CUDA peak memory on CUDA."""
    plan = spec if isinstance(spec, NormalizedSpec) else normalize(spec)
    model = build(plan)
    shape = plan.input_shape
    one = (1, shape.channels, shape.height, shape.width)
    traced = count_traced(model, one, warn=False)
    analytic = analytic_costs(plan)
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
    digest = spec_hash(plan.spec)
    batch_shape = (batch, *one[1:])
    saved = saved_activation_bytes(model, batch_shape) if memory and device == "cpu" else None
    result = None
    if latency:
        threads_used = threads if threads is not None else torch.get_num_threads()
        key = LatencyCache.key(digest, device_name(device), dtype, batch, threads_used)
        result = cache.get(key) if cache is not None else None
        if result is None:
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
    )
    if memory and torch.device(device).type == "cuda":
        peak = cuda_peak_memory(model, batch_shape, device)
        prof.cuda_peak_inference_bytes, prof.cuda_peak_train_bytes = (
            peak.inference_bytes,
            peak.train_step_bytes,
        )
        prof.saved_activation_bytes = saved_activation_bytes(model, batch_shape)
    return prof
