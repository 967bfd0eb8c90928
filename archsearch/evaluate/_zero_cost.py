"""Zero-cost proxies: score an untrained network from one batch, in well under a second.

All three are "higher is better" and run on a deep copy of the model, so the model passed in
(parameters, buffers, gradients, train/eval mode, device) is left exactly as it was.

- ``synflow`` (Tanaka et al. 2020, as used by Abdelfattah et al. 2021): the copy in float64 and
  eval mode, every parameter replaced by its absolute value (buffers such as BatchNorm running
  statistics and attention masks are kept), one all-ones input ``[1, C, H, W]``, ``R = sum of the
  outputs``; the score is ``S = sum over parameters of |theta * dR/dtheta|``. Raw values span
  hundreds of orders of magnitude, so the proxy returns **the natural log, ln S** (``-inf`` when S
  is 0, e.g. a net whose norms see a constant input; ``inf`` if float64 overflows).
- ``naswot`` (Mellor et al. 2021, v1, the Jacobian-covariance score): for B real training images
  (normalised like the trainer's), ``J_i = d(sum of all logits)/d(x_i)`` flattened, ``C`` the
  correlation matrix of the B rows, ``lambda`` its eigenvalues;
  ``score = -sum(log(lambda + k) + 1 / (lambda + k))`` with ``k = 1e-5``. The copy is in train
  mode as in the reference code (BatchNorm uses batch statistics). A constant Jacobian row has no
  correlation; it counts as uncorrelated with the others.
- ``grad_norm`` (Abdelfattah et al. 2021): the sum over parameters of the L2 norm of the gradient
  of the (unsmoothed) cross-entropy loss on the same batch, copy in train mode.
"""

from __future__ import annotations

import copy
import math
from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from ..core import MAX_WIDTH, StrictModel
from ..data import Dataset
from ._augment import normalize_images
from ._common import Device, check_model_fits, resolve_device, rng_devices

__all__ = ["Proxy", "ZeroCostConfig", "zero_cost_scores"]

Proxy = Literal["synflow", "naswot", "grad_norm"]
_K = 1e-5


class ZeroCostConfig(StrictModel):
    """Score candidates without training, by zero-cost proxies (all higher-is-better)."""

    kind: Literal["zero_cost"] = "zero_cost"
    proxies: list[Proxy] = Field(default=["synflow"], min_length=1)
    """Proxies to compute, each at most once: ``synflow`` (returned as its natural log),
    ``naswot`` (Jacobian covariance) and ``grad_norm``."""
    batch_size: Annotated[int, Field(gt=0, le=MAX_WIDTH)] = 64
    """Training images for ``naswot`` and ``grad_norm`` (a seeded random subset; at most the
    training set)."""
    device: Device = "auto"
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    seed: Annotated[int, Field(ge=0)] = 0
    """Seed of the batch and of in-model randomness (dropout)."""

    @field_validator("proxies")
    @classmethod
    def _unique(cls, proxies: list[str]) -> list[str]:
        repeated = sorted({p for p in proxies if proxies.count(p) > 1})
        if repeated:
            raise ValueError(f"each proxy may be listed once, but {', '.join(repeated)} is repeated")
        return proxies


def zero_cost_scores(model: nn.Module, data: Dataset, config: ZeroCostConfig) -> dict[str, float]:
    """``{proxy: score}`` in the order of ``config.proxies``; deterministic for a seed on the CPU."""
    device = resolve_device(config.device)
    check_model_fits(model, data)
    generator = torch.Generator().manual_seed(config.seed)
    index = torch.randperm(data.num_train, generator=generator)[: config.batch_size]
    images = normalize_images(data.train_images[index].to(device), data.mean, data.std)
    labels = data.train_labels[index].to(device)
    scores: dict[str, float] = {}
    for proxy in config.proxies:
        with torch.random.fork_rng(devices=rng_devices(device)):
            torch.manual_seed(config.seed)
            if proxy == "synflow":
                scores[proxy] = synflow(model, (data.channels, *data.input_size), device)
            elif proxy == "naswot":
                scores[proxy] = naswot(model, images)
            else:
                scores[proxy] = grad_norm(model, images, labels)
    return scores


def _copy(model: nn.Module, device: torch.device, dtype: torch.dtype | None = None) -> nn.Module:
    net = copy.deepcopy(model).to(device)
    return net.to(dtype) if dtype is not None else net


def synflow(model: nn.Module, shape: tuple[int, ...], device: torch.device) -> float:
    """``ln(sum |theta * dR/dtheta|)`` with absolute parameters and an all-ones float64 input."""
    net = _copy(model, device, torch.float64).eval()
    params = [p for p in net.parameters() if p.requires_grad]
    with torch.no_grad():
        for p in params:
            p.abs_()
    output = net(torch.ones((1, *shape), dtype=torch.float64, device=device))
    grads = torch.autograd.grad(output.sum(), params, allow_unused=True)
    total = sum(
        (float((p.detach() * g).abs().sum()) for p, g in zip(params, grads, strict=True) if g is not None),
        0.0,
    )
    return math.log(total) if total > 0 else -math.inf


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """The NASWOT v1 score of the input Jacobians of a batch (at least two images)."""
    if len(images) < 2:
        raise ValueError("naswot needs a batch of at least 2 images")
    net = _copy(model, images.device).train()
    net.requires_grad_(False)
    x = images.clone().requires_grad_(True)
    (jacobian,) = torch.autograd.grad(net(x).sum(), x)
    rows = jacobian.reshape(len(images), -1).double().cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(rows)
    corr = np.nan_to_num(corr, nan=0.0)
    np.fill_diagonal(corr, 1.0)
    eigenvalues = np.clip(np.linalg.eigvalsh(corr), 0.0, None)
    return float(-np.sum(np.log(eigenvalues + _K) + 1.0 / (eigenvalues + _K)))


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum over parameters of ``||d CE / d theta||_2`` on one batch."""
    net = _copy(model, images.device).train()
    params = [p for p in net.parameters() if p.requires_grad]
    loss = F.cross_entropy(net(images), labels)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(
        sum((g.double().norm() for g in grads if g is not None), torch.zeros((), dtype=torch.float64))
    )
