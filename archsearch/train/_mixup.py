"""Mixup and CutMix on a batch, with label smoothing mixed into the soft targets: the semantics
of timm's ``Mixup`` in its default ``mode='batch'`` (one draw per batch, each image mixed with the
batch's mirror image ``x.flip(0)``), written here in plain torch and numpy.

References: mixup, Zhang et al. ICLR 2018; CutMix, Yun et al. ICCV 2019; timm
``timm/data/mixup.py`` (``Mixup``, ``mixup_target``, ``rand_bbox``, ``cutmix_bbox_and_lam``).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from ..core import StrictModel

__all__ = ["MixupConfig", "mix_batch", "mixup_target", "soft_target_cross_entropy"]


class MixupConfig(StrictModel):
    """Mixup / CutMix (timm's ``Mixup``, batch mode): with probability ``prob`` a batch is mixed;
    when both alphas are positive, CutMix is chosen with probability ``switch_prob``, else mixup."""

    mixup_alpha: Annotated[float, Field(ge=0)] = 0.8
    """Beta(alpha, alpha) of the mixup weight; 0: no mixup."""
    cutmix_alpha: Annotated[float, Field(ge=0)] = 1.0
    """Beta(alpha, alpha) of the CutMix area; 0: no CutMix."""
    prob: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Probability that a batch is mixed at all."""
    switch_prob: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Probability of CutMix rather than mixup when both are on."""
    correct_lam: bool = True
    """Set CutMix's weight to the area actually pasted (the box is clipped at the borders)."""


def _rand_bbox(rng: np.random.Generator, shape: tuple[int, int], lam: float) -> tuple[int, int, int, int]:
    """timm's ``rand_bbox`` (margin 0): a box of ``sqrt(1 - lam)`` of each side, centred at a
    uniform pixel, clipped to the image: ``(y0, y1, x0, x1)``."""
    h, w = shape
    ratio = np.sqrt(1 - lam)
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y0, y1 = int(np.clip(cy - cut_h // 2, 0, h)), int(np.clip(cy + cut_h // 2, 0, h))
    x0, x1 = int(np.clip(cx - cut_w // 2, 0, w)), int(np.clip(cx + cut_w // 2, 0, w))
    return y0, y1, x0, x1


def mix_batch(images: torch.Tensor, config: MixupConfig, rng: np.random.Generator) -> float:
    """Mix the float batch ``[N, C, H, W]`` in place with its mirror ``images.flip(0)`` and return
    the weight ``lam`` of the original images (1.0: left unmixed). Mixup: ``lam * x + (1 - lam) *
    x.flip(0)``; CutMix: a box of ``x.flip(0)`` pasted into ``x``, ``lam`` the area not pasted.
    The draws, in timm's order, come from ``rng``."""
    lam, cutmix = 1.0, False
    if rng.random() < config.prob:
        if config.mixup_alpha > 0 and config.cutmix_alpha > 0:
            cutmix = bool(rng.random() < config.switch_prob)
            alpha = config.cutmix_alpha if cutmix else config.mixup_alpha
            lam = float(rng.beta(alpha, alpha))
        elif config.mixup_alpha > 0:
            lam = float(rng.beta(config.mixup_alpha, config.mixup_alpha))
        elif config.cutmix_alpha > 0:
            cutmix, lam = True, float(rng.beta(config.cutmix_alpha, config.cutmix_alpha))
    if lam == 1.0:
        return 1.0
    if cutmix:
        h, w = images.shape[-2:]
        y0, y1, x0, x1 = _rand_bbox(rng, (h, w), lam)
        if config.correct_lam:
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
        images[:, :, y0:y1, x0:x1] = images.flip(0)[:, :, y0:y1, x0:x1]
    else:
        flipped = images.flip(0).mul_(1.0 - lam)
        images.mul_(lam).add_(flipped)
    return lam


def mixup_target(
    labels: torch.Tensor, num_classes: int, lam: float = 1.0, smoothing: float = 0.0
) -> torch.Tensor:
    """Soft targets ``[N, num_classes]``: the smoothed one-hot labels (``1 - smoothing +
    smoothing / K`` on the class, ``smoothing / K`` elsewhere) mixed as the images were,
    ``lam * y + (1 - lam) * y.flip(0)`` (timm's ``mixup_target``)."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    y1 = torch.full((len(labels), num_classes), off, device=labels.device).scatter_(1, labels[:, None], on)
    y2 = y1.flip(0)
    return y1 * lam + y2 * (1.0 - lam)


def soft_target_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum(target * log_softmax(logits))`` (timm's
    ``SoftTargetCrossEntropy``); ``logits`` and ``target`` are ``[N, K]``."""
    return torch.sum(-target * torch.log_softmax(logits, dim=-1), dim=-1).mean()
