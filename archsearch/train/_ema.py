"""An exponential moving average of a model's weights: timm's ``ModelEmaV2`` semantics."""

from __future__ import annotations

import copy
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from ..core import StrictModel

__all__ = ["EmaConfig", "ModelEma"]


class EmaConfig(StrictModel):
    """Keep an exponential moving average of the weights, updated after every optimizer step
    (timm ``ModelEmaV2``); the run evaluates and writes both the model and its average."""

    decay: Annotated[float, Field(gt=0, lt=1)] = 0.9998
    """Weight of the old average per step: ``ema = decay * ema + (1 - decay) * weights``
    (0.9998 for ImageNet-length runs; about ``1 - 10 / steps`` for short ones)."""


class ModelEma(nn.Module):
    """A frozen copy of ``model`` in eval mode whose state is an exponential moving average.

    As timm's ``ModelEmaV2``, every entry of the state dict is averaged after each step, the
    BatchNorm running statistics included; integer buffers (BatchNorm's ``num_batches_tracked``)
    are copied instead (timm averages them too and truncates)."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """``ema = decay * ema + (1 - decay) * model``, entry by entry of the state dicts."""
        for ema, value in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if ema.is_floating_point():
                ema.lerp_(value.to(ema.dtype), 1.0 - self.decay)
            else:
                ema.copy_(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)
