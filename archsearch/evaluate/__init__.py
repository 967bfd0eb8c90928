"""Evaluators that score a candidate network on a :class:`~archsearch.data.Dataset`.

``TrainConfig`` + :func:`train_and_evaluate` train it briefly and report validation accuracy per
epoch; ``ZeroCostConfig`` + :func:`zero_cost_scores` score it untrained. ``EvaluatorConfig`` is
their union with ``SupernetConfig`` (one-shot, :mod:`archsearch.supernet`), discriminated on
``kind``. :class:`AutoThreads` and :class:`CpuSampler` choose the
training threads under ``threads: auto`` from the cores other processes leave free.
"""

from typing import Annotated

from pydantic import Field

from ._augment import augment_batch, normalize_images, random_crop, random_flip
from ._common import resolve_device
from ._supernet import RetrainConfig, ShrinkConfig, SupernetConfig
from ._threads import AutoThreads, CpuSampler, core_ceiling, cpu_quota, shared_sampler
from ._train import TrainConfig, TrainingDiverged, TrainResult, lr_at, train_and_evaluate
from ._zero_cost import Proxy, ZeroCostConfig, zero_cost_scores

EvaluatorConfig = Annotated[TrainConfig | ZeroCostConfig | SupernetConfig, Field(discriminator="kind")]

__all__ = [
    "AutoThreads",
    "CpuSampler",
    "EvaluatorConfig",
    "Proxy",
    "RetrainConfig",
    "ShrinkConfig",
    "SupernetConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "ZeroCostConfig",
    "augment_batch",
    "core_ceiling",
    "cpu_quota",
    "lr_at",
    "normalize_images",
    "random_crop",
    "random_flip",
    "resolve_device",
    "shared_sampler",
    "train_and_evaluate",
    "zero_cost_scores",
]
