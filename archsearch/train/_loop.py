"""``fit``: full training of one architecture, on one device or under ``torchrun``."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..compiler import ArchNet
from ..data import Dataset, StreamData, batches
from ..deploy import export
from ..evaluate import (
    TrainingDiverged,
    autocast_context,
    check_model_fits,
    compile_model,
    grad_checkpointing,
    lr_at,
    memory_format,
    normalize_images,
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
)
from ..spec import spec_hash
from ._batches import BatchSource, batch_source
from ._checkpoint import TrainError, load_checkpoint, save_checkpoint
from ._config import FullTrainConfig
from ._ema import ModelEma
from ._mixup import mix_batch, mixup_target, soft_target_cross_entropy

__all__ = ["FitResult", "fit"]

CHECKPOINT = "checkpoint.pt"
LOG_FIELDS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "accuracy",
    "ema_accuracy",
    "seconds",
    "images_per_second",
    "warmup_seconds",
    "steady_images_per_second",
)
"""The columns of ``log.csv``: ``seconds`` and ``images_per_second`` cover the whole epoch's steps
(compilation included); ``warmup_seconds`` is the time of the first :data:`WARMUP_STEPS` steps of
the first epoch a process runs (``torch.compile``'s compilation, cuDNN's autotuning, the allocator
filling; 0 in later epochs) and ``steady_images_per_second`` the rate of the epoch's other steps
(empty when the epoch has no other step)."""

#: Steps at the start of a process's first epoch (a fresh run or a resume) timed as warm-up, apart
#: from the steady rate: ``torch.compile`` compiles the forward and backward at the first step and
#: may recompile at the second or third (a new batch shape, the optimizer's state appearing).
WARMUP_STEPS = 3


@dataclass
class FitResult:
    """What a full training ended with (also written to ``result.json`` in the run folder)."""

    accuracy: float
    """Validation top-1 (a fraction) of the final weights."""
    ema_accuracy: float | None = None
    """Validation top-1 of the weight average (``None`` without ``ema``)."""
    epochs: int = 0
    """Epochs finished (over every run of a resumed training)."""
    steps: int = 0
    """Optimizer steps taken (over every run)."""
    seconds: float = 0.0
    """Wall time of this run."""
    weights: str | None = None
    """The safetensors file of the final weights (``archsearch.create_model(spec, weights=...)``)."""
    ema_weights: str | None = None
    """The safetensors file of the weight average."""
    resumed_from: int | None = None
    """The epoch this run continued after (``None``: from scratch)."""
    peak_memory_mb: float | None = None
    """Most GPU memory allocated in this run (MiB); ``None`` off CUDA."""
    world: int = 1
    """Processes that trained."""
    log: list[dict[str, Any]] = field(default_factory=list)
    """One row per epoch (the fields of ``log.csv``)."""


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextlib.contextmanager
def distributed(device_name: str) -> Iterator[torch.device]:
    """The device of this process; under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is
    started here if it is not yet (NCCL on CUDA, else gloo; the GPU of ``LOCAL_RANK``) and ended
    on exit."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started = False
    device = resolve_device(device_name)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started = True
    try:
        yield device
    finally:
        if started:
            dist.destroy_process_group()


def fit(
    model: ArchNet,
    data: Dataset | StreamData,
    config: FullTrainConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    stop_after: int | None = None,
    batches: BatchSource | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` in place for ``config.epochs`` on ``data`` and write the run into ``out``.

    Each step: a batch of the source (default :func:`batch_source` of ``data``: uint8 images,
    cropped and flipped; a streamed ``data`` is decoded per batch by DataLoader workers),
    normalised with the training set's mean and std, mixed (``mixup``),
    forward under the ``precision``'s autocast, loss in fp32 (soft-target cross-entropy with
    mixup, else label-smoothed cross-entropy), AdamW with the learning rate of the step (linear
    warm-up, cosine to ``min_lr``), then the EMA update. After each epoch: validation top-1 of the
    weights and of the EMA, a row of ``out/log.csv``, and ``out/checkpoint.pt`` (atomic).
    At the end: ``out/model.safetensors`` (and ``out/model-ema.safetensors``), written and checked
    by :func:`archsearch.export`, and ``out/result.json``.

    ``resume``: continue from ``out/checkpoint.pt``; on the CPU the weights equal those of an
    uninterrupted run bit for bit (every random draw comes from the seed, the epoch and the step).
    ``stop_after``: end this run after that many epochs in all (the schedule stays that of
    ``epochs``), e.g. to fit a job's time limit. Under ``torchrun`` every process calls this;
    DistributedDataParallel averages the gradients of the shares of each global batch, validation
    is split over the processes, BatchNorm statistics are rank 0's after every epoch (every
    process then holds the same state), and only rank 0 writes files. ``batches`` replaces the in-memory
    source (a streaming loader; see :class:`BatchSource`). ``on_epoch(row)`` gets each log row.

    Raises:
        TrainError: ``out`` holds a checkpoint and ``resume`` is off, or the checkpoint is of
            another model or other settings.
        TrainingDiverged: a non-finite training loss.
        SpecError: the model does not fit the data (channels, size, classes).
    """
    start = time.perf_counter()
    folder = Path(out)
    target = folder / CHECKPOINT
    if target.exists() and not resume:
        raise TrainError(f"{target} exists: pass --resume to continue that training, or choose another --out")
    check_model_fits(model, data)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        with distributed(config.device) as device:
            return _Fit(model, data, config, folder, device, batches).run(resume, stop_after, on_epoch, start)
    finally:
        torch.set_num_threads(threads)


class _Fit:
    def __init__(
        self,
        model: ArchNet,
        data: Dataset | StreamData,
        config: FullTrainConfig,
        folder: Path,
        device: torch.device,
        batches: BatchSource | None,
    ):
        self.rank, self.world = _world()
        self.config, self.data, self.folder, self.device = config, data, folder, device
        self.format = memory_format(config.channels_last)
        self.model = model.to(device).to(memory_format=self.format)  # type: ignore[call-overload]
        self.batches = batches or batch_source(
            data,
            batch_size=config.batch_size,
            crop_padding=config.crop_padding,
            flip=config.flip,
            seed=config.seed,
            rank=self.rank,
            world=self.world,
        )
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.total = config.epochs * self.steps_per_epoch
        self.warmup = min(round(config.warmup_epochs * self.steps_per_epoch), self.total)
        self.mean = torch.tensor(data.mean, device=device)
        self.std = torch.tensor(data.std, device=device)
        self.autocast = autocast_context(config.precision_on(device.type), device)
        self.hash = spec_hash(model.plan.spec)

    def lr(self, step: int) -> float:
        c = self.config
        return c.min_lr + lr_at(step, self.total, self.warmup, c.lr - c.min_lr)

    def run(
        self,
        resume: bool,
        stop_after: int | None,
        on_epoch: Callable[[dict[str, Any]], None] | None,
        start: float,
    ) -> FitResult:
        cfg, model, device = self.config, self.model, self.device
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
        rest = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=cfg.lr,
            fused=device.type == "cuda",
            foreach=True if device.type == "cpu" else None,
        )
        ema = ModelEma(model, cfg.ema.decay) if cfg.ema is not None else None
        epoch, step, log, resumed = 0, 0, [], None
        target = self.folder / CHECKPOINT
        held: dict[str, Any] = {
            "model": model,
            "optimizer": optimizer,
            "ema": ema,
            "settings": cfg.settings(),
            "spec_hash": self.hash,
        }
        if resume and target.exists():
            state = load_checkpoint(target, device=device, **held)
            epoch, step, log = state["epoch"], state["step"], state["log"]
            resumed = epoch
        runner: nn.Module = model
        if self.world > 1:
            ids = [device.index or 0] if device.type == "cuda" else None
            runner = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if cfg.compile:
            runner = compile_model(runner, cfg.compile_backend)
        reset_peak_memory(device)
        end = min(cfg.epochs, stop_after) if stop_after is not None else cfg.epochs
        with grad_checkpointing(model, cfg.grad_checkpointing, keep_norm_stats=not cfg.compile):
            warm = WARMUP_STEPS  # the first epoch this process runs warms up
            while epoch < end:
                tick = time.perf_counter()
                loss, images, warmed = self._epoch(runner, optimizer, ema, epoch, step, warm)
                step += self.steps_per_epoch
                epoch += 1
                done = time.perf_counter()
                seconds = done - tick
                # warm-up: the first steps (all of them in an epoch that has no more); steady: the rest
                since, before = (tick, 0) if not warm else warmed or (done, images)
                warmup = since - tick
                steady = (images - before) * self.world / max(done - since, 1e-9) if images > before else None
                warm = 0
                if self.world > 1:  # BatchNorm statistics are per process: all take rank 0's
                    for buffer in model.buffers():
                        dist.broadcast(buffer, 0)
                row = {
                    "epoch": epoch,
                    "step": step,
                    "lr": self.lr(step - 1),
                    "train_loss": loss,
                    "accuracy": self.accuracy(model),
                    "ema_accuracy": self.accuracy(ema.module) if ema is not None else None,
                    "seconds": seconds,
                    "images_per_second": images * self.world / max(seconds, 1e-9),
                    "warmup_seconds": warmup,
                    "steady_images_per_second": steady,
                }
                log.append(row)
                if self.rank == 0:
                    save_checkpoint(target, epoch=epoch, step=step, log=log, **held)
                    _write_log(self.folder / "log.csv", log)
                if self.world > 1:
                    dist.barrier()
                if on_epoch is not None:
                    on_epoch(row)
        last: dict[str, Any] = log[-1] if log else {"accuracy": math.nan, "ema_accuracy": None}
        result = FitResult(
            accuracy=float(last["accuracy"]),
            ema_accuracy=last["ema_accuracy"],
            epochs=epoch,
            steps=step,
            resumed_from=resumed,
            peak_memory_mb=peak_memory_mb(device),
            world=self.world,
            log=log,
        )
        if epoch == cfg.epochs and self.rank == 0:
            result.weights = self._write(model, "model")
            if ema is not None:
                result.ema_weights = self._write(ema.module, "model-ema")
        result.seconds = time.perf_counter() - start
        if self.rank == 0:
            (self.folder / "result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
        if self.world > 1:
            dist.barrier()
        return result

    def _epoch(
        self,
        runner: nn.Module,
        optimizer: torch.optim.Optimizer,
        ema: ModelEma | None,
        epoch: int,
        first: int,
        warm: int = 0,
    ) -> tuple[float, int, tuple[float, int] | None]:
        """One epoch of steps ``first, first + 1, ...``: the mean loss, the images this process saw,
        and, when ``warm`` > 0, when its first ``warm`` steps ended (``time.perf_counter()``, the
        device synchronised) with the images seen by then (``None``: no warm-up, or the epoch had
        no more steps)."""
        cfg, device = self.config, self.device
        warmed: tuple[float, int] | None = None
        runner.train()
        losses = torch.zeros(self.steps_per_epoch, device=device)
        images_seen = 0
        for i, (images, labels) in enumerate(self.batches.epoch(epoch)):
            step = first + i
            torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout, drop-path: a function of the step
            x = normalize_images(images.to(device, non_blocking=True), self.mean, self.std)
            x = x.contiguous(memory_format=self.format)
            y = labels.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = self.lr(step)
            soft = None
            if cfg.mixup is not None:
                lam = mix_batch(x, cfg.mixup, np.random.default_rng([cfg.seed, step]))
                soft = mixup_target(y, self.model.num_classes, lam, cfg.label_smoothing)
            with self.autocast():
                logits = runner(x)
            if soft is not None:
                loss = soft_target_cross_entropy(logits.float(), soft)
            else:
                loss = nn.functional.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            if device.type == "cpu" and not torch.isfinite(loss):
                raise TrainingDiverged(f"training loss is {loss.item()} at step {step + 1} of {self.total}")
            losses[i] = loss.detach()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(self.model)
            images_seen += len(y)
            if i + 1 == warm:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                warmed = (time.perf_counter(), images_seen)
        mean = losses.mean().item()
        if not math.isfinite(mean):
            raise TrainingDiverged(f"training loss is {mean} in epoch {epoch + 1} of {self.config.epochs}")
        return mean, images_seen, warmed

    @torch.no_grad()
    def accuracy(self, model: nn.Module) -> float:
        """Validation top-1 of ``model``; under ``torchrun`` each process scores every
        ``world``-th image and the counts are summed."""
        model.eval()
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for x, y in self._val_batches():
            x = normalize_images(x.to(self.device), self.mean, self.std)
            with self.autocast():
                logits = model(x.contiguous(memory_format=self.format))
            correct += (logits.argmax(-1) == y.to(self.device)).sum()
        if self.world > 1:
            dist.all_reduce(correct)
        return correct.item() / self.data.num_val

    def _val_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's validation images: every ``world``-th image in memory, every
        ``world``-th batch of a stream (each process still decodes every batch: simple, not yet
        a per-process sampler)."""
        size = self.config.eval_batch_size
        if isinstance(self.data, StreamData):
            # given the device, batches() copies through pinned memory, non-blocking, on CUDA
            for b, (x, y) in enumerate(batches(self.data, "val", size, device=self.device)):
                if b % self.world == self.rank:
                    yield x, y
            return
        val_x = self.data.val_images[self.rank :: self.world]
        val_y = self.data.val_labels[self.rank :: self.world]
        for s in range(0, len(val_x), size):
            yield val_x[s : s + size], val_y[s : s + size]

    def _write(self, model: nn.Module, name: str) -> str:
        """``model``'s weights as ``<name>.safetensors``, through :func:`archsearch.export`."""
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        result = export(model.cpu(), "safetensors", self.folder / f"{name}.safetensors")
        return str(result.path)


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """All rows so far as CSV (rewritten whole each epoch, atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        writer.writeheader()
        for row in rows:
            # rows of a checkpoint written before a column existed leave it empty
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in LOG_FIELDS})
    os.replace(tmp, path)
