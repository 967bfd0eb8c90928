"""Training a supernet: sampled paths per step, a checkpoint per epoch, resume after a kill,
the trainer's precision and channels-last options, data parallel under ``torchrun`` (every rank on
the same path)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..core import NormalizedSpec
from ..data import Dataset
from ..evaluate import (
    SupernetConfig,
    TrainingDiverged,
    augment_batch,
    autocast_context,
    lr_at,
    memory_format,
    normalize_images,
    resolve_device,
)
from ..space import RandomSuggest
from ._choices import ExtremeSuggest, normal_name
from ._net import Supernet, SupernetError

__all__ = ["SupernetRun", "load_supernet_weights", "sample_path", "shrink", "train_supernet"]

_TRIES = 64  # draws per path before a member that breaks the constraints is trained anyway


@dataclass
class SupernetRun:
    """What a supernet training did (also what its checkpoint holds besides the tensors)."""

    epochs: int = 0
    """Epochs finished."""
    steps: int = 0
    """Optimizer steps taken, over all runs of a resumed training."""
    losses: list[float] = field(default_factory=list)
    """Mean training loss of each epoch."""
    seconds: float = 0.0
    """Wall time spent training, over all runs."""
    allowed: dict[str, list[int]] = field(default_factory=dict)
    """Options still trained after shrinking: normalised draw name -> option indices."""
    resumed_from: int | None = None
    """The epoch this run resumed after (``None``: it started from scratch)."""


class _Restricted:
    """Random draws limited to the options shrinking kept."""

    def __init__(self, rng: np.random.Generator, allowed: dict[str, list[int]], fixed: dict[str, int]):
        self.inner, self.rng, self.allowed, self.fixed = RandomSuggest(rng), rng, allowed, fixed

    def categorical(self, name: str, choices: Any) -> Any:
        key = normal_name(name)
        if key in self.fixed:
            return choices[self.fixed[key] % len(choices)]
        options = self.allowed.get(key)
        if options:
            return choices[options[int(self.rng.integers(len(options)))]]
        return self.inner.categorical(name, choices)

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self.inner.integer(name, low, high, step=step, log=log)

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return self.inner.real(name, low, high, step=step, log=log)


def sample_path(
    net: Supernet,
    rng: np.random.Generator,
    *,
    allowed: dict[str, list[int]] | None = None,
    fixed: dict[str, int] | None = None,
    extreme: str | None = None,
) -> NormalizedSpec:
    """A valid member of the supernet's space: uniform over the ``allowed`` options (``fixed``
    pins some), or the largest/smallest (``extreme``: ``largest``/``smallest``, structural draws
    at random). Members within the space's constraints are preferred (up to 64 draws).

    Raises :class:`SupernetError` when no draw gives a member with valid shapes."""
    space = net.space
    fallback = None
    for _ in range(_TRIES):
        if extreme is not None:
            suggest: Any = ExtremeSuggest(space, largest=extreme == "largest", rng=rng, overrides=fixed)
        else:
            suggest = _Restricted(rng, allowed or {}, fixed or {})
        candidate = space.candidate(suggest)
        if candidate.plan is None:
            continue
        if not candidate.violations:
            return candidate.plan
        fallback = fallback or candidate.plan
    if fallback is None:
        raise SupernetError(f"no valid member of {space.name} in {_TRIES} draws")
    return fallback


def _paths(
    net: Supernet, config: SupernetConfig, seed: int, step: int, allowed: dict[str, list[int]]
) -> list:
    """The paths of one step: the same on every rank (drawn from ``(seed, step)``)."""
    rng = np.random.default_rng([seed, step])
    if config.sampling == "uniform":
        return [sample_path(net, rng, allowed=allowed)]
    return [
        sample_path(net, rng, extreme="largest"),
        sample_path(net, rng, extreme="smallest"),
        *(sample_path(net, rng, allowed=allowed) for _ in range(config.paths)),
    ]


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train_supernet(
    net: Supernet,
    data: Dataset,
    config: SupernetConfig,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    on_epoch: Callable[[int, int, float], None] | None = None,
) -> SupernetRun:
    """Train ``net`` on ``data`` for ``config.epochs`` (AdamW, warm-up + cosine, label smoothing,
    crop/flip, as :func:`~archsearch.evaluate.train_and_evaluate`), each step on the paths of
    ``config.sampling``; shrink the trained space if ``config.shrink`` is set.

    ``checkpoint``: a file written (atomically) after every epoch; when it exists, training
    resumes after its last epoch, and ends with the same steps as an uninterrupted run (paths
    and batches are drawn from the seed and the step, not from a running generator). A
    checkpoint of another supernet or other settings raises :class:`SupernetError`.

    Under ``torchrun`` (``torch.distributed`` initialised), the global batch of each step is
    ``batch_size * world_size`` images drawn as one run with that batch would draw them; each
    rank takes its share, every rank runs the same paths, and DistributedDataParallel averages
    the gradients: the weights equal a one-process run with the whole batch (BatchNorm aside:
    its statistics are per rank). Only rank 0 writes the checkpoint. ``on_epoch(epoch, epochs,
    loss)`` runs after each epoch. Raises :class:`~archsearch.evaluate.TrainingDiverged` on a
    non-finite loss.
    """
    device = resolve_device(config.device)
    rank, world = _world()
    net.to(device)
    global_batch = config.batch_size * world
    steps_per_epoch = max(data.num_train // global_batch, 1)
    epochs = config.epochs or math.ceil((config.steps or 1) / steps_per_epoch)
    total = config.steps if config.steps is not None else epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total)
    decay = [p for p in net.parameters() if p.ndim >= 2]
    rest = [p for p in net.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=config.lr,
        foreach=True if device.type == "cpu" else None,
    )
    run = SupernetRun()
    target = Path(checkpoint) if checkpoint is not None else None
    if target is not None and target.is_file():
        run = _load(target, net, optimizer, config, device)
        run.resumed_from = run.epochs
    model: nn.Module = net
    if world > 1:
        ids = [device.index or 0] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(net, device_ids=ids, find_unused_parameters=True)
    autocast = autocast_context(config.precision_on(device), device)
    fmt = memory_format(config.channels_last)
    if config.channels_last:
        net.to(memory_format=fmt)  # type: ignore[call-overload]
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    train_y = data.train_labels.to(device)
    mean, std = torch.tensor(data.mean, device=device), torch.tensor(data.std, device=device)
    phases = _phase_ends(epochs, config)
    while run.epochs < epochs and run.steps < total:
        start, epoch = time.perf_counter(), run.epochs
        net.train()
        order = torch.randperm(
            data.num_train, generator=torch.Generator().manual_seed(config.seed * 7919 + epoch)
        )
        losses = []
        for i in range(min(steps_per_epoch, total - run.steps)):
            step = run.steps
            index = order[i * global_batch : (i + 1) * global_batch]
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            # the global batch is augmented on every rank (the same draws as one process), then split
            images = augment_batch(
                data.train_images[index], padding=config.crop_padding, flip=config.flip, generator=generator
            )[rank::world].to(device)
            images = normalize_images(images, mean, std).contiguous(memory_format=fmt)
            labels = train_y[index[rank::world].to(device)]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total, warmup, config.lr)
            optimizer.zero_grad(set_to_none=True)
            paths = _paths(net, config, config.seed, step, run.allowed)
            step_loss = 0.0
            for plan in paths:
                net.path = plan
                with autocast():
                    logits = model(images)
                loss = criterion(logits.float(), labels)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"supernet loss is {loss.item()} at step {step + 1} of {total}")
                loss.backward()
                step_loss += loss.item() / len(paths)
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            optimizer.step()
            losses.append(step_loss)
            run.steps += 1
        run.epochs += 1
        run.losses.append(float(np.mean(losses)) if losses else math.nan)
        run.seconds += time.perf_counter() - start
        if config.shrink is not None and run.epochs in phases:
            run.allowed = shrink(net, data, config, run.allowed, device)
        if target is not None and rank == 0:
            _save(target, net, optimizer, config, run)
        if world > 1:
            dist.barrier()
        if on_epoch is not None:
            on_epoch(run.epochs, epochs, run.losses[-1])
    net.path = None
    return run


def _phase_ends(epochs: int, config: SupernetConfig) -> set[int]:
    """Epochs after which the space shrinks (the end of every phase but the last)."""
    if config.shrink is None:
        return set()
    n = config.shrink.phases
    return {round(epochs * k / n) for k in range(1, n)} - {0, epochs}


@torch.no_grad()
def shrink(
    net: Supernet, data: Dataset, config: SupernetConfig, allowed: dict[str, list[int]], device: torch.device
) -> dict[str, list[int]]:
    """Drop the worst ``shrink.drop`` share of each choice's still-allowed options, scored by the
    mean validation accuracy (on ``shrink.batches`` batches) of ``shrink.paths`` random members
    that take the option (DA-NAS's progressive pruning of candidate operations, with accuracy
    on held-out batches as the score)."""
    assert config.shrink is not None
    cfg = config.shrink
    rng = np.random.default_rng([config.seed, 104_729, len(allowed)])
    mean, std = torch.tensor(data.mean, device=device), torch.tensor(data.std, device=device)
    size = config.eval_batch_size
    val = [
        (
            normalize_images(data.val_images[i : i + size].to(device), mean, std),
            data.val_labels[i : i + size].to(device),
        )
        for i in range(0, min(data.num_val, size * cfg.batches), size)
    ]
    net.eval()
    out = dict(allowed)
    for dim in net.space.dimensions():
        if dim.kind != "categorical" or dim.count < 2:
            continue
        name = normal_name(dim.name)
        options = allowed.get(name, list(range(int(dim.count))))
        if len(options) < 2:
            continue
        scores = []
        for option in options:
            accs = []
            for _ in range(cfg.paths):
                plan = sample_path(net, rng, allowed=allowed, fixed={name: option})
                correct = sum(int((net(x, plan).argmax(-1) == y).sum()) for x, y in val)
                accs.append(correct / max(sum(len(y) for _, y in val), 1))
            scores.append(float(np.mean(accs)))
        keep = max(1, len(options) - max(1, math.floor(cfg.drop * len(options))))
        best = sorted(range(len(options)), key=lambda k: -scores[k])[:keep]
        out[name] = sorted(options[k] for k in best)
    net.train()
    return out


def _settings(config: SupernetConfig) -> dict[str, Any]:
    """The settings a checkpoint must share with the run that resumes it."""
    return config.model_dump(
        mode="json", exclude={"retrain", "calibration_batches", "device", "threads", "eval_batch_size"}
    )


def _save(
    target: Path, net: Supernet, optimizer: torch.optim.Optimizer, config: SupernetConfig, run: SupernetRun
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    torch.save(
        {
            "state": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "signature": net.signature(),
            "settings": _settings(config),
            "run": {k: v for k, v in run.__dict__.items() if k != "resumed_from"},
        },
        tmp,
    )
    os.replace(tmp, target)


def _load(
    target: Path,
    net: Supernet,
    optimizer: torch.optim.Optimizer,
    config: SupernetConfig,
    device: torch.device,
) -> SupernetRun:
    saved = torch.load(target, map_location=device, weights_only=True)
    if saved.get("signature") != net.signature():
        raise SupernetError(
            f"{target}: a checkpoint of another supernet (its slots differ from this space's)"
        )
    if saved.get("settings") != _settings(config):
        raise SupernetError(f"{target}: a checkpoint trained with other settings; delete it or restore them")
    net.load_state_dict(saved["state"])
    optimizer.load_state_dict(saved["optimizer"])
    return SupernetRun(**saved["run"])


def load_supernet_weights(net: Supernet, target: str | os.PathLike[str]) -> SupernetRun:
    """Load a checkpoint's tensors into ``net`` (on the CPU) and return what its training did.

    Raises :class:`SupernetError` for a checkpoint of another supernet."""
    saved = torch.load(Path(target), map_location="cpu", weights_only=True)
    if saved.get("signature") != net.signature():
        raise SupernetError(
            f"{target}: a checkpoint of another supernet (its slots differ from this space's)"
        )
    net.load_state_dict(saved["state"])
    return SupernetRun(**saved["run"])
