"""Evaluators that score a candidate network on a :class:`~archsearch.data.Dataset`.

``TrainConfig`` + :func:`train_and_evaluate` train it briefly and report validation accuracy per
epoch; ``ZeroCostConfig`` + :func:`zero_cost_scores` score it untrained. ``EvaluatorConfig`` is
their union with ``SupernetConfig`` (one-shot, :mod:`archsearch.supernet`), discriminated on
``kind``. :class:`AutoThreads` and :class:`CpuSampler` choose the
training threads under ``threads: auto`` from the cores other processes leave free. The GPU
options (bf16 autocast, channels-last, ``torch.compile``, gradient checkpointing, peak memory)
are shared with full training (:mod:`archsearch.train`).
"""

from typing import Annotated

from pydantic import Field

from ._accel import (
    CompileBackend,
    Precision,
    autocast_context,
    block_modules,
    compile_model,
    grad_checkpointing,
    memory_format,
    peak_memory_mb,
    reset_peak_memory,
)
from ._augment import augment_batch, normalize_images, random_crop, random_flip
from ._common import check_model_fits, device_problem, resolve_device, rng_devices
from ._supernet import RetrainConfig, ShrinkConfig, SupernetConfig
from ._threads import AutoThreads, CpuSampler, core_ceiling, cpu_quota, oversubscription, shared_sampler
from ._train import TrainConfig, TrainingDiverged, TrainResult, lr_at, train_and_evaluate
from ._zero_cost import Proxy, ZeroCostConfig, zero_cost_scores

EvaluatorConfig = Annotated[TrainConfig | ZeroCostConfig | SupernetConfig, Field(discriminator="kind")]

__all__ = [
    "AutoThreads",
    "CompileBackend",
    "CpuSampler",
    "EvaluatorConfig",
    "Precision",
    "Proxy",
    "RetrainConfig",
    "ShrinkConfig",
    "SupernetConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "ZeroCostConfig",
    "augment_batch",
    "autocast_context",
    "block_modules",
    "check_model_fits",
    "compile_model",
    "core_ceiling",
    "cpu_quota",
    "device_problem",
    "grad_checkpointing",
    "lr_at",
    "memory_format",
    "normalize_images",
    "oversubscription",
    "peak_memory_mb",
    "random_crop",
    "random_flip",
    "reset_peak_memory",
    "resolve_device",
    "rng_devices",
    "shared_sampler",
    "train_and_evaluate",
    "zero_cost_scores",
]
