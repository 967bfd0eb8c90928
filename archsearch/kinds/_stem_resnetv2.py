"""``stem: resnetv2``: the ResNet v2 / BiT 7x7 stem without pre-activation, as timm's ViT hybrids
use it (Kolesnikov et al., ECCV 2020; Dosovitskiy et al., ICLR 2021; timm ``resnetv2.py``
``create_resnetv2_stem``, ``preact=False``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator
from torch import nn

from ..core import Cost, FeatureShape, NormalizedSpec, PositiveInt, StrictModel, conv_out
from ..ops import resnetv2_stem
from ._base import Share, StemKind

__all__ = ["RESNETV2_STEM", "ResNetV2Stem"]


class ResNetV2Stem(StrictModel):
    """ResNet v2 stem: weight-standardised 7x7/2 conv (no bias), GroupNorm, ReLU, 3x3/2 max-pool
    (timm's ViT hybrids: ``padding: same``; BiT: ``fixed``)."""

    kind: Literal["resnetv2"] = "resnetv2"
    channels: PositiveInt = 64
    """Output channels of the 7x7 conv."""
    norm_groups: PositiveInt = 32
    """Groups of the GroupNorm (eps 1e-5); must divide ``channels``."""
    weight_std: Annotated[float, Field(gt=0)] | None = 1e-8
    """Epsilon of the conv's weight standardisation (timm's hybrids: 1e-8); ``null``: a plain conv."""
    padding: Literal["same", "fixed", "symmetric"] = "same"
    """``same``: conv and pool padded as TensorFlow (the odd pixel bottom / right; the pool pads
    with -inf; timm ``stem_type='same'``); ``fixed``: the conv padded 3, the pool's input by one
    zero (BiT, ``'fixed'``); ``symmetric``: conv 3, pool 1 (PyTorch's, ``''``). The map is the same
    size either way: a quarter of the image, rounded up."""

    @model_validator(mode="after")
    def _groups_divide(self) -> Self:
        if self.channels % self.norm_groups:
            raise ValueError(
                f"norm_groups {self.norm_groups} must divide channels {self.channels}; allowed: "
                + ", ".join(str(d) for d in range(1, self.channels + 1) if self.channels % d == 0)
            )
        return self


class _ResNetV2(StemKind):
    name = "resnetv2"
    share = Share(
        nested=("channels",),
        reuse=("padding",),
        source="AutoFormer weight entanglement (leading slice; Chen et al. ICCV 2021); the same weights "
        "at every padding",
    )
    schema = ResNetV2Stem

    def _sides(self, side: int) -> tuple[int, int]:
        """The side after the conv and after the pool (every padding gives these)."""
        conv = conv_out(side, 7, 2, 3)
        return conv, conv_out(conv, 3, 2, 1)

    def shape(self, stem: Any, input_shape: FeatureShape) -> FeatureShape:
        """7x7/2 conv then 3x3/2 max-pool, padded: never empty."""
        (_, h), (_, w) = self._sides(input_shape.height), self._sides(input_shape.width)
        return FeatureShape(stem.channels, h, w)

    def build(self, stem: Any, c_in: int) -> nn.Module:
        return resnetv2_stem(stem, c_in)

    def cost(self, plan: NormalizedSpec, cost: Cost) -> None:
        """The conv (and its weight standardisation) and the GroupNorm on the map before the
        pool; ReLU, padding and max-pool cost no MACs."""
        stem, image = plan.spec.stem, plan.input_shape
        assert isinstance(stem, ResNetV2Stem)
        (h, _), (w, _) = self._sides(image.height), self._sides(image.width)
        cost.conv(image.channels, stem.channels, 7, h, w)
        if stem.weight_std is not None:
            cost.weight_std(image.channels, stem.channels, 7)
        cost.group_norm(stem.channels, stem.channels * h * w)


RESNETV2_STEM = _ResNetV2()
