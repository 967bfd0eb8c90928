"""The settings of a full training (``archsearch train``): a YAML file of :class:`FullTrainConfig`
with ``KEY=VALUE`` overrides, every error naming the file and line."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from ..core import (
    MAX_WIDTH,
    SourceMap,
    StrictModel,
    apply_dotlist,
    command_line_issues,
    parse_override,
    read_yaml_file,
    validation_issues,
)
from ..data import DataConfig, DigitsData
from ..errors import SpecError
from ..evaluate import CompileBackend, Precision
from ._ema import EmaConfig
from ._mixup import MixupConfig

__all__ = ["FullTrainConfig", "load_train_config"]

PositiveInt = Annotated[int, Field(gt=0)]
BatchSize = Annotated[int, Field(gt=0, le=MAX_WIDTH)]
NonNegative = Annotated[float, Field(ge=0)]


class FullTrainConfig(StrictModel):
    """Full training of one architecture: AdamW with linear warm-up and a cosine decay per step,
    label smoothing, crop/flip, optional mixup/CutMix and weight EMA, a checkpoint per epoch."""

    data: DataConfig = DigitsData()
    """The dataset, as in an experiment (``{kind: digits}``, ``cifar10``, ``imagefolder``, ...);
    images are resized to the spec's ``input.size`` and ``channels``."""
    epochs: PositiveInt = 30
    """Epochs to train (an epoch is ``len(train) // (batch_size * processes)`` steps)."""
    batch_size: BatchSize = 128
    """Images per step and process (the global batch is ``batch_size`` times the processes)."""
    lr: Annotated[float, Field(gt=0)] = 1e-3
    """Peak AdamW learning rate."""
    min_lr: NonNegative = 0.0
    """Where the cosine ends (the rate decays from ``lr`` to ``min_lr``)."""
    weight_decay: NonNegative = 0.05
    """AdamW weight decay on weights of 2 or more dimensions (not on norms and biases)."""
    warmup_epochs: NonNegative = 2.0
    """Linear warm-up (converted to steps, capped at the budget), then the cosine."""
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Label smoothing (mixed into mixup's soft targets when mixup is on)."""
    mixup: MixupConfig | None = None
    """Mixup / CutMix (``null``: off; ``{}``: timm's DeiT settings, mixup 0.8, CutMix 1.0)."""
    ema: EmaConfig | None = None
    """An exponential moving average of the weights, evaluated and written beside the model."""
    crop_padding: Annotated[int, Field(ge=0)] = 2
    """Random crop after zero-padding each side by this many pixels (0: none)."""
    flip: bool = True
    """Random horizontal flip (turn off for digits or text)."""
    grad_clip: Annotated[float, Field(gt=0)] | None = None
    """Clip the global gradient norm to this value; ``null``: no clipping."""
    seed: Annotated[int, Field(ge=0)] = 0
    """Seed of the weights, the shuffling, the augmentation, mixup and dropout."""
    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")] = "auto"
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; under
    ``torchrun`` each process takes the GPU of its ``LOCAL_RANK``."""
    precision: Precision = "auto"
    """``bf16`` autocast, ``fp32``, or ``auto`` (bf16 on CUDA, else fp32)."""
    channels_last: bool = False
    """Model and images in the channels-last memory format (faster convolutions on GPUs)."""
    compile: bool = False
    """``torch.compile`` the model (the first steps compile)."""
    compile_backend: CompileBackend = "inductor"
    """The compiler backend: ``inductor``, or ``aot_eager`` / ``eager`` to check graph capture."""
    grad_checkpointing: bool = False
    """Recompute each block's activations in the backward (less memory, about one more forward)."""
    eval_batch_size: BatchSize = 256
    """Batch of validation."""
    threads: PositiveInt | None = None
    """Intra-op CPU threads (``torch.set_num_threads``); ``null``: torch's setting."""

    def precision_on(self, device_type: str) -> Literal["fp32", "bf16"]:
        """The precision on a device of type ``device_type`` (``auto`` resolved)."""
        if self.precision == "auto":
            return "bf16" if device_type == "cuda" else "fp32"
        return self.precision

    def settings(self) -> dict[str, Any]:
        """What a checkpoint must share with the run that resumes it (all but where it runs)."""
        return self.model_dump(mode="json", exclude={"device", "threads", "eval_batch_size"})


def load_train_config(
    source: str | os.PathLike[str] | dict[str, Any] | None = None, overrides: Sequence[str] = ()
) -> FullTrainConfig:
    """Read a training YAML (or a mapping; ``None``: the defaults) with ``KEY=VALUE`` overrides
    (``epochs=10``, ``mixup.prob=0.5``, ``data.kind=cifar10``). A relative ``data.root`` in the
    file is read from the file's folder.

    Raises:
        SpecError: naming the file and line (or ``<command line>`` and the override) of every
            unknown key and bad value.
    """
    parsed = [parse_override(o) for o in overrides]
    file: Path | None = None
    data: Any
    if source is None:
        data, smap = {}, SourceMap()
    elif isinstance(source, dict):
        data, smap = dict(source), SourceMap()
    else:
        file = Path(source)
        data, smap = read_yaml_file(file, "training config", "a training config", needs="'epochs'")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise smap.error((), "a training config is a mapping (epochs, batch_size, lr, data, ...)", value=data)
    root = data.get("data", {}).get("root") if isinstance(data.get("data"), dict) else None
    if file is not None and isinstance(root, str) and not Path(root).is_absolute():
        data = {**data, "data": {**data["data"], "root": str(file.resolve().parent / root)}}
    data = apply_dotlist(data, parsed)
    try:
        return FullTrainConfig.model_validate(data)
    except ValidationError as exc:
        issues = SpecError(validation_issues(exc, data, smap, FullTrainConfig))
        raise command_line_issues(issues, parsed, smap.file) from None
