"""Members with inherited weights: BatchNorm recalibration, validation accuracy, export."""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core import NormalizedSpec
from ..data import Dataset
from ..deploy import save_weights
from ..evaluate import normalize_images
from ..spec import spec_yaml
from ._net import Supernet

__all__ = ["inherited_accuracy", "recalibrate", "save_member", "validation_accuracy"]


@torch.no_grad()
def recalibrate(
    model: nn.Module, data: Dataset, *, batches: int, batch_size: int, device: torch.device, seed: int = 0
) -> int:
    """Replace every BatchNorm's running statistics by their average over ``batches`` training
    batches of ``batch_size`` (a seeded draw, no augmentation): the statistics a supernet keeps
    are those of all paths mixed, not of this member (SPOS, Guo et al. 2020, section 3.4; OFA
    does the same). Returns the number of BatchNorm layers reset (0: nothing to do)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the calibration batches
    mean = torch.tensor(data.mean, device=device)
    std = torch.tensor(data.std, device=device)
    order = torch.randperm(data.num_train, generator=torch.Generator().manual_seed(seed))
    model.train()
    for i in range(batches):
        index = order[(i * batch_size) % data.num_train :][:batch_size]
        model(normalize_images(data.train_images[index].to(device), mean, std))
    model.eval()
    return len(norms)


@torch.no_grad()
def validation_accuracy(
    model: nn.Module, data: Dataset, *, batch_size: int, device: torch.device, amp: bool
) -> float:
    """Top-1 accuracy (a fraction) of ``model`` on the validation images, in eval mode (bf16
    autocast on CUDA when ``amp``)."""
    model.eval()
    mean = torch.tensor(data.mean, device=device)
    std = torch.tensor(data.std, device=device)
    autocast: Any = (
        torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" else nullcontext()
    )
    correct = 0
    with autocast:
        for start in range(0, data.num_val, batch_size):
            images = normalize_images(data.val_images[start : start + batch_size].to(device), mean, std)
            labels = data.val_labels[start : start + batch_size].to(device)
            correct += int((model(images).argmax(-1) == labels).sum())
    return correct / max(data.num_val, 1)


def inherited_accuracy(
    net: Supernet,
    plan: NormalizedSpec,
    data: Dataset,
    *,
    calibration_batches: int,
    batch_size: int,
    eval_batch_size: int,
    device: torch.device,
    amp: bool = True,
    seed: int = 0,
) -> tuple[float, nn.Module]:
    """The validation accuracy of member ``plan`` with the weights it inherits from ``net``
    (:meth:`Supernet.member`, BatchNorm recalibrated), and the member itself (in eval mode)."""
    model = net.member(plan).to(device)
    recalibrate(model, data, batches=calibration_batches, batch_size=batch_size, device=device, seed=seed)
    return validation_accuracy(model, data, batch_size=eval_batch_size, device=device, amp=amp), model


def save_member(
    model: nn.Module, plan: NormalizedSpec, folder: str | os.PathLike[str], name: str
) -> tuple[Path, Path]:
    """Write a member as ``<name>.yaml`` (its spec) and its weights as ``<name>.safetensors``
    (or ``<name>.pt``, a ``torch.save`` state dict, where the safetensors package is not
    installed) in ``folder``; ``archsearch.create_model("<name>.yaml", weights=<weights file>)``
    loads it back. Returns both paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    spec_file = out / f"{name}.yaml"
    spec_file.write_text(spec_yaml(plan.spec.model_dump(mode="json"), name), encoding="utf-8")
    # a state dict, not the model: a member's tensors may be views of the supernet's
    weights_file = save_weights(model.state_dict(), out / f"{name}.safetensors")
    return spec_file, weights_file
