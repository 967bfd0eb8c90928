"""Full training of one architecture (``archsearch train``): the retraining after a search.

AdamW with warm-up and a cosine schedule, label smoothing, mixup/CutMix and a weight EMA (timm's
semantics), the GPU options of :mod:`archsearch.evaluate` (bf16, channels-last, ``torch.compile``,
gradient checkpointing), a checkpoint per epoch with exact resume, and DistributedDataParallel
under ``torchrun``. The weights come out as safetensors that :func:`archsearch.create_model` loads.

>>> from archsearch.train import FullTrainConfig, train_architecture
>>> result = train_architecture("winner.yaml", FullTrainConfig(epochs=30), "runs/winner-full")
>>> result.accuracy, result.ema_accuracy, result.weights
"""

from ._batches import BatchSource, MemoryBatches
from ._checkpoint import TrainError
from ._config import FullTrainConfig, load_train_config
from ._ema import EmaConfig, ModelEma
from ._loop import CHECKPOINT, LOG_FIELDS, WARMUP_STEPS, FitResult, fit
from ._mixup import MixupConfig, mix_batch, mixup_target, soft_target_cross_entropy
from ._run import train_architecture

__all__ = [
    "CHECKPOINT",
    "LOG_FIELDS",
    "WARMUP_STEPS",
    "BatchSource",
    "EmaConfig",
    "FitResult",
    "FullTrainConfig",
    "MemoryBatches",
    "MixupConfig",
    "ModelEma",
    "TrainError",
    "fit",
    "load_train_config",
    "mix_batch",
    "mixup_target",
    "soft_target_cross_entropy",
    "train_architecture",
]
