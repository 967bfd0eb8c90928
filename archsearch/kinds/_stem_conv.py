"""``stem: conv``: one conv + BatchNorm + activation (MobileViT's 3x3/2 SiLU stem; timm
``ConvNormAct``)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import Act, Cost, FeatureShape, Kernel, NormalizedSpec, PositiveInt, StrictModel, conv_out
from ..ops import conv_stem
from ._base import Share, StemKind

__all__ = ["CONV_STEM", "ConvStem"]


class ConvStem(StrictModel):
    """Convolutional stem: one kxk conv (no bias), BatchNorm, activation (MobileViT: 3x3/2, SiLU)."""

    kind: Literal["conv"] = "conv"
    channels: PositiveInt = 16
    """Output channels of the conv."""
    kernel: Kernel = 3
    """Kernel side (padding ``kernel // 2``)."""
    stride: PositiveInt = 2
    """Spatial stride."""
    act: Act = "relu"
    """Activation after the BatchNorm."""


class _Conv(StemKind):
    name = "conv"
    share = Share(
        nested=("channels",), kernels=("kernel",), reuse=("stride",), source="OFA elastic width and kernel"
    )
    schema = ConvStem

    def shape(self, stem: Any, input_shape: FeatureShape) -> FeatureShape:
        """Padded ``kernel // 2``: never empty."""
        k, s = stem.kernel, stem.stride
        h, w = conv_out(input_shape.height, k, s, k // 2), conv_out(input_shape.width, k, s, k // 2)
        return FeatureShape(stem.channels, h, w)

    def build(self, stem: Any, c_in: int) -> nn.Module:
        return conv_stem(stem, c_in)

    def cost(self, plan: NormalizedSpec, cost: Cost) -> None:
        stem = plan.spec.stem
        assert isinstance(stem, ConvStem) and plan.stem_shape is not None
        h1, w1 = plan.stem_shape.height, plan.stem_shape.width
        cost.conv(plan.input_shape.channels, stem.channels, stem.kernel, h1, w1)
        cost.batch_norm(stem.channels, stem.channels * h1 * w1)


CONV_STEM = _Conv()
