"""Short supervised training runs that score a candidate: AdamW, warm-up + cosine, label
smoothing, crop/flip augmentation, validation top-1 after every epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from ..core import MAX_WIDTH, StrictModel
from ..data import Dataset
from ..errors import Issue, SpecError
from ._accel import (
    CompileBackend,
    Precision,
    autocast_context,
    compile_model,
    grad_checkpointing,
    memory_format,
    peak_memory_mb,
    reset_peak_memory,
)
from ._augment import augment_batch, normalize_images
from ._common import Device, check_model_fits, resolve_device, rng_devices
from ._threads import AutoThreads, core_ceiling, shared_sampler

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "lr_at", "train_and_evaluate"]

PositiveInt = Annotated[int, Field(gt=0)]
BatchSize = Annotated[int, Field(gt=0, le=MAX_WIDTH)]
NonNegative = Annotated[float, Field(ge=0)]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class TrainConfig(StrictModel):
    """Train the candidate for a budget of epochs or steps and score it by validation accuracy."""

    kind: Literal["train"] = "train"
    epochs: PositiveInt | None = 5
    """Epochs to train (an epoch is ``len(train) // batch_size`` steps); ``null`` when ``steps`` is set.
    Giving ``steps`` alone clears the default."""
    steps: PositiveInt | None = None
    """Optimizer steps to train instead of epochs; validation runs at every epoch boundary and at the end."""
    batch_size: BatchSize = 64
    """Training batch; the last partial batch of an epoch is dropped (the data is reshuffled each epoch)."""
    lr: Annotated[float, Field(gt=0)] = 2e-3
    """Peak AdamW learning rate."""
    weight_decay: NonNegative = 0.05
    """AdamW weight decay, applied to weights of 2 or more dimensions only (not to norms and biases)."""
    warmup_epochs: NonNegative = 1.0
    """Linear warm-up from ``lr / warmup_steps`` to ``lr``, then a cosine decay to 0, per step;
    converted to steps as ``round(warmup_epochs * steps_per_epoch)`` (capped at the budget)."""
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Label smoothing of the cross-entropy loss."""
    crop_padding: Annotated[int, Field(ge=0)] = 2
    """Random crop after zero-padding each side by this many pixels (0: no crop)."""
    flip: bool = True
    """Random horizontal flip (turn off for digits or text)."""
    device: Device = "auto"
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    amp: bool = True
    """bfloat16 autocast on CUDA; ignored elsewhere. Kept for older experiments: ``precision``
    says the same and more (``amp: false`` is ``precision: fp32``)."""
    precision: Precision = "auto"
    """``bf16``: forwards under bfloat16 autocast (on any device; the loss in fp32); ``fp32``: no
    autocast; ``auto``: bf16 on CUDA when ``amp`` is on, else fp32."""
    channels_last: bool = False
    """Models and images in the channels-last (NHWC) memory format, which convolutions on GPUs
    (cuDNN, tensor cores) and oneDNN read fastest; the results are those of NCHW up to rounding."""
    compile: bool = False
    """``torch.compile`` the model for training and validation: the first steps compile (seconds
    to minutes; on the CPU inductor needs a C++ compiler), later ones run the fused kernels."""
    compile_backend: CompileBackend = "inductor"
    """The compiler backend: ``inductor`` (generated kernels), ``aot_eager`` or ``eager`` (graph
    capture only: to check that a model compiles, cheaply)."""
    grad_checkpointing: bool = False
    """Recompute each block's activations in the backward instead of keeping them
    (``torch.utils.checkpoint``; about one extra forward per step for much less activation memory).
    Losses, gradients and BatchNorm statistics are those of the plain run."""
    eval_batch_size: BatchSize = 256
    """Batch size for validation."""
    seed: Annotated[int, Field(ge=0)] = 0
    """Seed of shuffling, augmentation and in-model randomness (dropout, drop-path)."""
    grad_clip: Annotated[float, Field(gt=0)] | None = None
    """Clip the global gradient norm to this value; ``null``: no clipping."""
    threads: PositiveInt | Literal["auto"] | None = "auto"
    """Intra-op CPU threads while training (``torch.set_num_threads``; restored afterwards).
    ``auto``: re-chosen every epoch from the cores other processes leave free, and no more than the
    model gains from (a few steps are timed at 1, 2, ... threads the first time two cores are free),
    so a busy neighbour costs at most its core instead of stalling every operator; runs that pick
    different counts may differ in the last digits. ``N``: exactly N (bit-identical reruns on the
    CPU). ``null``: torch's current setting. Ignored on CUDA and MPS except for ``N``."""

    @field_validator("threads", mode="before")
    @classmethod
    def _threads_value(cls, value: Any) -> Any:
        """One message for every wrong value (not one per member of the union)."""
        if value is None or value == "auto" or (type(value) is int and value > 0):
            return value
        raise ValueError(f"must be a whole number >= 1, `auto` or null, but got {value!r}")

    @model_validator(mode="before")
    @classmethod
    def _steps_replace_default_epochs(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("steps") is not None and "epochs" not in data:
            return {**data, "epochs": None}
        return data

    @model_validator(mode="after")
    def _one_budget(self) -> TrainConfig:
        if (self.epochs is None) == (self.steps is None):
            budget = {"epochs": self.epochs, "steps": self.steps}
            shown = ", ".join(f"{k}={'null' if v is None else v}" for k, v in budget.items())
            raise ValueError(
                f"set exactly one of epochs and steps (got {shown}); allowed: epochs or steps, not both "
                "(an override ~KEY drops a key: ~evaluator.steps)"
            )
        if self.precision == "bf16" and not self.amp:
            raise ValueError("amp: false contradicts precision: bf16; drop `amp` and set only `precision`")
        return self

    def precision_on(self, device: torch.device) -> Literal["fp32", "bf16"]:
        """The precision training runs in on ``device`` (``auto`` resolved with ``amp``)."""
        if self.precision == "auto":
            return "bf16" if self.amp and device.type == "cuda" else "fp32"
        return self.precision


@dataclass
class TrainResult:
    """What one training run measured."""

    accuracy: float
    """Validation top-1 accuracy (a fraction) after the last epoch."""
    curve: list[float] = field(default_factory=list)
    """Validation accuracy after each epoch (the last one may be partial with a steps budget)."""
    epochs: int = 0
    """Evaluations run: ``len(curve)``."""
    steps: int = 0
    """Optimizer steps taken."""
    seconds: float = 0.0
    """Wall time of the whole run, validation included."""
    train_loss: float = math.nan
    """Mean training loss over the last epoch."""
    images_per_second: float = 0.0
    """Training throughput (augmentation, forward, backward and step; validation excluded)."""
    threads: list[int] = field(default_factory=list)
    """Intra-op CPU threads in use at the end of each epoch (``threads: auto`` may change them)."""
    peak_memory_mb: float | None = None
    """Most GPU memory allocated during the run (MiB, ``torch.cuda.max_memory_allocated`` after a
    reset at its start: tensors, not the allocator's cache); ``None`` off CUDA."""


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``total``: linear warm-up over
    ``warmup`` steps, then half a cosine from ``base`` down to 0 at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def train_and_evaluate(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data`` and return its validation accuracy per epoch.

    Each batch is cropped and flipped as uint8 (zero padding is black), then normalised per channel
    with the training set's own mean and std (:attr:`Dataset.mean`, ``std``); validation images are
    only normalised. ``on_epoch(epoch, accuracy)`` (epoch counted from 1) runs after each
    validation; whatever it raises (a pruner's signal) propagates unchanged. The model is moved to
    the device and left there, in eval mode. On the CPU the run is deterministic for a seed and a
    thread count (``threads: auto`` picks the count from the free cores: :class:`AutoThreads`);
    the global RNG state and torch's thread setting are restored afterwards. The GPU options
    (``precision``, ``channels_last``, ``compile``, ``grad_checkpointing``) apply for the run only:
    the model comes back uncompiled, with its blocks' forwards restored. On CUDA the peak of
    allocated memory is measured (:attr:`TrainResult.peak_memory_mb`). Raises
    :class:`TrainingDiverged` on a NaN/inf loss and :class:`~archsearch.SpecError` when model and
    data disagree.
    """
    device = resolve_device(config.device)
    check_model_fits(model, data)
    if data.num_val == 0 or data.num_train == 0:
        raise SpecError(
            Issue(("data",), f"{data.name} has {data.num_train} train and {data.num_val} val images")
        )
    threads = torch.get_num_threads()
    try:
        auto = None
        if isinstance(config.threads, int):
            torch.set_num_threads(config.threads)
        elif config.threads == "auto" and device.type == "cpu":
            auto = AutoThreads(core_ceiling(threads), shared_sampler())
        with torch.random.fork_rng(devices=rng_devices(device)):
            torch.manual_seed(config.seed)
            reset_peak_memory(device)
            with grad_checkpointing(model, config.grad_checkpointing, keep_norm_stats=not config.compile):
                result = _Run(model, data, config, device, auto).run(on_epoch)
            result.peak_memory_mb = peak_memory_mb(device)
            return result
    finally:
        torch.set_num_threads(threads)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


class _Run:
    def __init__(
        self,
        model: nn.Module,
        data: Dataset,
        config: TrainConfig,
        device: torch.device,
        auto: AutoThreads | None = None,
    ):
        self.format = memory_format(config.channels_last)
        self.trained = model.to(device).to(memory_format=self.format)  # type: ignore[call-overload]
        self.model = compile_model(self.trained, config.compile_backend) if config.compile else self.trained
        self.data, self.config, self.device = data, config, device
        self.auto = auto
        self.train_x = data.train_images.to(device, memory_format=self.format)
        self.train_y = data.train_labels.to(device)
        self.val_x = data.val_images.to(device, memory_format=self.format)
        self.val_y = data.val_labels.to(device)
        self.mean = torch.tensor(data.mean, device=device)
        self.std = torch.tensor(data.std, device=device)
        self.steps_per_epoch = max(data.num_train // config.batch_size, 1)
        epochs = config.epochs or 0
        self.total = config.steps if config.steps is not None else epochs * self.steps_per_epoch
        self.warmup = min(round(config.warmup_epochs * self.steps_per_epoch), self.total)
        self.autocast = autocast_context(config.precision_on(device), device)
        # Checking the loss costs a host sync: every step on the CPU, every few on an accelerator.
        self.check_every = 1 if device.type == "cpu" else 16

    def run(self, on_epoch: Callable[[int, float], None] | None) -> TrainResult:
        cfg, model = self.config, self.model
        start = time.perf_counter()
        # CUDA: the fused kernel. CPU: the multi-tensor path, a few calls per step instead of a few
        # per parameter tensor, with the same results bit for bit as the per-tensor loop.
        cuda, cpu = self.device.type == "cuda", self.device.type == "cpu"
        groups = _param_groups(self.trained, cfg.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=cuda, foreach=True if cpu else None)
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        generator = torch.Generator().manual_seed(cfg.seed)
        result = TrainResult(accuracy=math.nan)
        train_seconds, images, step = 0.0, 0, 0
        while step < self.total:
            model.train()
            n_steps = min(self.steps_per_epoch, self.total - step)
            order = torch.randperm(self.data.num_train, generator=generator).to(self.device)
            losses = torch.zeros(n_steps, device=self.device)
            if self.auto is not None:
                self.auto.start_epoch()
            tick = time.perf_counter()
            for i in range(n_steps):
                if self.auto is not None:
                    self._set_threads(self.auto.threads())
                    step_start = time.perf_counter()
                index = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                batch = augment_batch(
                    self.train_x[index], padding=cfg.crop_padding, flip=cfg.flip, generator=generator
                )
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, self.total, self.warmup, cfg.lr)
                with self.autocast():
                    logits = model(self._input(batch))
                loss = criterion(logits.float(), self.train_y[index])
                losses[i] = loss.detach()
                if (i + 1) % self.check_every == 0 or i + 1 == n_steps:
                    self._check_finite(losses, i, step)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(self.trained.parameters(), cfg.grad_clip)
                optimizer.step()
                if self.auto is not None:
                    self.auto.record(time.perf_counter() - step_start)
                images += len(index)
                step += 1
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            train_seconds += time.perf_counter() - tick
            result.train_loss = losses.mean().item()
            result.threads.append(torch.get_num_threads())
            accuracy = self._accuracy()
            result.curve.append(accuracy)
            result.accuracy, result.epochs, result.steps = accuracy, len(result.curve), step
            result.seconds = time.perf_counter() - start
            result.images_per_second = images / max(train_seconds, 1e-9)
            if on_epoch is not None:
                on_epoch(result.epochs, accuracy)
        result.seconds = time.perf_counter() - start
        return result

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images to the normalised float input, in the run's memory format."""
        return normalize_images(images, self.mean, self.std).contiguous(memory_format=self.format)

    @staticmethod
    def _set_threads(n: int) -> None:
        if n != torch.get_num_threads():
            torch.set_num_threads(n)

    def _check_finite(self, losses: torch.Tensor, upto: int, step: int) -> None:
        """Raise on the first non-finite loss among those not yet checked (before it is stepped on)."""
        first = max(upto + 1 - self.check_every, 0)
        bad = (~torch.isfinite(losses[first : upto + 1])).nonzero()
        if len(bad):
            i = first + int(bad[0])
            at = step - upto + i
            lr = lr_at(at, self.total, self.warmup, self.config.lr)
            raise TrainingDiverged(
                f"training loss is {losses[i].item()} at step {at + 1} of {self.total} "
                f"(epoch {at // self.steps_per_epoch + 1}, lr {lr:.3g})"
            )

    @torch.no_grad()
    def _accuracy(self) -> float:
        self.model.eval()
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        size = self.config.eval_batch_size
        for start in range(0, self.data.num_val, size):
            with self.autocast():
                logits = self.model(self._input(self.val_x[start : start + size]))
            correct += (logits.argmax(-1) == self.val_y[start : start + size]).sum()
        return correct.item() / self.data.num_val
