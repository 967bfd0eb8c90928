"""``stem: resnet``: the ResNet stem (He et al. 2016; torchvision ``resnet50``)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import Cost, FeatureShape, NormalizedSpec, PositiveInt, StrictModel, conv_out
from ..ops import resnet_stem
from ._base import Share, StemKind

__all__ = ["RESNET_STEM", "ResNetStem"]


class ResNetStem(StrictModel):
    """ResNet stem: 7x7/2 conv (no bias), BatchNorm, ReLU, 3x3/2 max-pool."""

    kind: Literal["resnet"] = "resnet"
    channels: PositiveInt = 64
    """Output channels of the 7x7 conv."""


class _ResNet(StemKind):
    name = "resnet"
    share = Share(
        nested=("channels",), source="AutoFormer weight entanglement (leading slice; Chen et al. ICCV 2021)"
    )
    schema = ResNetStem

    def shape(self, stem: Any, input_shape: FeatureShape) -> FeatureShape:
        """7x7/2 conv then 3x3/2 max-pool, both padded: never empty."""
        h = conv_out(conv_out(input_shape.height, 7, 2, 3), 3, 2, 1)
        w = conv_out(conv_out(input_shape.width, 7, 2, 3), 3, 2, 1)
        return FeatureShape(stem.channels, h, w)

    def build(self, stem: Any, c_in: int) -> nn.Module:
        return resnet_stem(stem, c_in)

    def cost(self, plan: NormalizedSpec, cost: Cost) -> None:
        """The conv and its BatchNorm on the map before the pool; ReLU and max-pool cost no MACs."""
        stem, image = plan.spec.stem, plan.input_shape
        assert isinstance(stem, ResNetStem)
        h1, w1 = conv_out(image.height, 7, 2, 3), conv_out(image.width, 7, 2, 3)
        cost.conv(image.channels, stem.channels, 7, h1, w1)
        cost.batch_norm(stem.channels, stem.channels * h1 * w1)


RESNET_STEM = _ResNet()
