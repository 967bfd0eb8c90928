"""``stem: deep``: a stack of 3x3 convs, each with BatchNorm and activation, then a 3x3/2 max-pool:
the ResNet-D deep stem (He et al. 2019, "Bag of Tricks", Fig. 2c; timm ``resnet50d``,
``stem_type='deep'``) and timm's "tiered" stem (``byobnet.py`` ``Stem``: 3/8, 1/2 and all of the
channels; BoTNet-26t, HaloNet-26t, LambdaResNet-26t)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from torch import nn

from ..core import Act, Cost, FeatureShape, Kernel, NormalizedSpec, PositiveInt, StrictModel, conv_out
from ..ops import deep_stem
from ._base import StemKind

__all__ = ["DEEP_STEM", "DeepStem"]


class DeepStem(StrictModel):
    """Several kxk convs (no bias), each followed by BatchNorm and the activation, the first one
    strided, then a 3x3/2 max-pool (ResNet-D: ``[32, 32, 64]``; timm's tiered stem:
    ``[24, 32, 64]``)."""

    kind: Literal["deep"] = "deep"
    channels: Annotated[list[PositiveInt], Field(min_length=1, max_length=8)] = [32, 32, 64]  # noqa: RUF012 (pydantic copies defaults)
    """Output channels of each conv, in order; the last is what the first stage gets."""
    kernel: Kernel = 3
    """Kernel side of every conv (padding ``kernel // 2``)."""
    stride: PositiveInt = 2
    """Spatial stride of the first conv (the others keep the map)."""
    act: Act = "relu"
    """Activation after each BatchNorm."""
    pool: Literal["max", "none"] = "max"
    """``max``: a 3x3/2 max-pool (padding 1) after the convs; ``none``: no pool."""


class _Deep(StemKind):
    name = "deep"
    schema = DeepStem

    def _sides(self, stem: Any, side: int) -> tuple[int, int]:
        """The side after the first (strided) conv and after the whole stem."""
        first = conv_out(side, stem.kernel, stem.stride, stem.kernel // 2)
        return first, conv_out(first, 3, 2, 1) if stem.pool == "max" else first

    def shape(self, stem: Any, input_shape: FeatureShape) -> FeatureShape:
        """Padded convs and pool: never empty."""
        (_, h), (_, w) = self._sides(stem, input_shape.height), self._sides(stem, input_shape.width)
        return FeatureShape(stem.channels[-1], h, w)

    def build(self, stem: Any, c_in: int) -> nn.Module:
        return deep_stem(stem, c_in)

    def cost(self, plan: NormalizedSpec, cost: Cost) -> None:
        """Each conv and its BatchNorm on the map after the first conv; activations and the pool
        cost no MACs."""
        stem = plan.spec.stem
        assert isinstance(stem, DeepStem)
        (h, _), (w, _) = self._sides(stem, plan.input_shape.height), self._sides(stem, plan.input_shape.width)
        c_in = plan.input_shape.channels
        for c in stem.channels:
            cost.conv(c_in, c, stem.kernel, h, w)
            cost.batch_norm(c, c * h * w)
            c_in = c


DEEP_STEM = _Deep()
