"""``embed: mbconv``: one MobileNetV2 inverted residual as the embedding (MobileViT's strided
MV2, Mehta & Rastegari 2022; timm ``InvertedResidual``)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import (
    Act,
    CheckContext,
    Cost,
    FeatureShape,
    Kernel,
    Path,
    PositiveInt,
    StagePlan,
    StrictModel,
    conv_out,
    make_divisible,
)
from ..ops import mbconv_embed
from ._base import EmbedKind, FamilyKind, Share

__all__ = ["MBCONV_EMBED", "MBConvEmbed"]


class MBConvEmbed(StrictModel):
    """One MobileNetV2 inverted residual block as the embedding (MobileViT's strided MV2).

    1x1 expand conv + BN + act, kxk depthwise conv (strided) + BN + act, 1x1 project conv + BN to
    the stage dim; residual only where the shape is unchanged. The hidden width is the input
    channels times ``expansion``, rounded to a multiple of 8 as timm and MobileNetV2 do.
    """

    kind: Literal["mbconv"] = "mbconv"
    stride: PositiveInt = 2
    """Spatial stride of the depthwise conv."""
    expansion: PositiveInt = 4
    """Hidden width / input channels."""
    kernel: Kernel = 3
    """Kernel side of the depthwise conv (padding ``kernel // 2``); must be odd."""
    act: Act | None = None
    """Activation; default: the stage's ``act``."""


class _MBConv(EmbedKind):
    name = "mbconv"
    share = Share(
        nested=("expansion",), kernels=("kernel",), reuse=("stride",), source="OFA elastic width and kernel"
    )
    schema = MBConvEmbed

    def normalize(
        self, ctx: CheckContext, epath: Path, stage: Any, family: FamilyKind, shape: FeatureShape, act: str
    ) -> tuple[Any, FeatureShape | None, int]:
        """Fills in ``act`` (the stage's); the depthwise kernel must be odd."""
        embed = stage.embed.model_copy(update={"act": stage.embed.act or act})
        if embed.kernel % 2 == 0:
            ctx.fail(
                (*epath, "kernel"),
                "the depthwise kernel must be odd (padding kernel // 2)",
                value=embed.kernel,
                allowed="odd kernels: 1, 3, 5, 7, ...",
            )
            return embed, None, 1
        pad = embed.kernel // 2
        oh, ow = (
            conv_out(shape.height, embed.kernel, embed.stride, pad),
            conv_out(shape.width, embed.kernel, embed.stride, pad),
        )
        return embed, FeatureShape(stage.dim, oh, ow), 1

    def build(self, embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
        return mbconv_embed(embed, c_in, dim, eps)

    def cost(self, stage: StagePlan, c_in: int, cost: Cost) -> None:
        embed, shape = stage.embed, stage.embed_shape
        assert isinstance(embed, MBConvEmbed)
        h, w = stage.in_shape.height, stage.in_shape.width
        hidden = make_divisible(c_in * embed.expansion)
        cost.inverted_residual(c_in, hidden, stage.dim, embed.kernel, (h, w), (shape.height, shape.width))


MBCONV_EMBED = _MBConv()
