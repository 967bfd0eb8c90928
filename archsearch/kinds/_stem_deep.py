"""``stem: deep``: a stack of 3x3 convs, each with BatchNorm and activation, then a 3x3/2 max-pool:
the ResNet-D deep stem (He et al. 2019, "Bag of Tricks", Fig. 2c; timm ``resnet50d``,
``stem_type='deep'``), timm's "tiered" stem (``byobnet.py`` ``Stem``: 3/8, 1/2 and all of the
channels; BoTNet-26t, HaloNet-26t, LambdaResNet-26t) and RedNet's (Li et al. 2021, official
``rednet.py`` ``_make_stem_layer``: the middle 3x3 conv an involution)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator
from torch import nn

from ..core import Act, Cost, FeatureShape, Kernel, NormalizedSpec, PositiveInt, StrictModel, conv_out
from ..ops import INVOLUTION_GROUP, INVOLUTION_REDUCTION, deep_stem
from ._base import StemKind, omit_defaults

__all__ = ["DEEP_STEM", "DeepStem"]


class DeepStem(StrictModel):
    """Several kxk convs (no bias), each followed by BatchNorm and the activation, the first one
    strided, then a 3x3/2 max-pool (ResNet-D: ``[32, 32, 64]``; timm's tiered stem:
    ``[24, 32, 64]``; RedNet: ``[32, 32, 64]`` with ``involution: [1]``)."""

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
    involution: Annotated[list[Annotated[int, Field(ge=1, le=7)]], Field(max_length=7)] = []  # noqa: RUF012
    """Positions (from 0) in ``channels`` of the convs that are involutions instead (RedNet:
    ``[1]``): kxk, stride 1, on ``channels[i] == channels[i - 1]`` channels in groups of 16 with a
    4x kernel-generator reduction (as ``mixer: involution``'s defaults), then BatchNorm and the
    activation. Not the first (strided) conv."""

    @model_validator(mode="after")
    def _involutions_keep_channels(self) -> Self:
        for i in self.involution:
            if i >= len(self.channels):
                raise ValueError(f"involution position {i} is past the last conv ({len(self.channels) - 1})")
            if self.channels[i] != self.channels[i - 1] or self.channels[i] % INVOLUTION_GROUP:
                raise ValueError(
                    f"the involution at position {i} keeps its {self.channels[i - 1]} input channels, "
                    f"in groups of {INVOLUTION_GROUP}: channels[{i}] must equal channels[{i - 1}] "
                    f"and be a multiple of {INVOLUTION_GROUP} (got {self.channels[i]})"
                )
        if self.involution and self.kernel % 2 == 0:
            raise ValueError(f"an involution's kernel must be odd (got kernel {self.kernel})")
        if len(set(self.involution)) != len(self.involution):
            raise ValueError(f"involution positions repeat: {self.involution}")
        return self


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

    def canonical(self, data: dict[str, Any]) -> dict[str, Any]:
        """Without ``involution`` where it is empty: earlier spec hashes hold."""
        return omit_defaults(data, DeepStem, ("involution",))

    def cost(self, plan: NormalizedSpec, cost: Cost) -> None:
        """Each conv (or involution) and its BatchNorm on the map after the first conv;
        activations and the pool cost no MACs."""
        stem = plan.spec.stem
        assert isinstance(stem, DeepStem)
        (h, _), (w, _) = self._sides(stem, plan.input_shape.height), self._sides(stem, plan.input_shape.width)
        c_in = plan.input_shape.channels
        for i, c in enumerate(stem.channels):
            if i in stem.involution:
                cost.involution(c, stem.kernel, INVOLUTION_GROUP, INVOLUTION_REDUCTION, h, w)
            else:
                cost.conv(c_in, c, stem.kernel, h, w)
            cost.batch_norm(c, c * h * w)
            c_in = c


DEEP_STEM = _Deep()
