"""``embed: patch``: non-overlapping patchify (ViT, Dosovitskiy et al. 2021; Swin; the ConvNeXt
stem and downsampling layers; timm ``PatchEmbed``)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import CheckContext, Cost, FeatureShape, Path, PositiveInt, StagePlan, StrictModel
from ..ops import patch_embed
from ._base import EmbedKind, FamilyKind, Share, check_norm_first
from ._embed_conv import conv_norm_cost

__all__ = ["PATCH_EMBED", "PatchEmbed"]


class PatchEmbed(StrictModel):
    """Non-overlapping patchify (ViT): a conv whose kernel equals its stride."""

    kind: Literal["patch"] = "patch"
    stride: PositiveInt = 16
    """Patch side, which is also the stride; must divide the feature map."""
    norm: Literal["layer", "batch", "none"] = "none"
    """Norm after the patchify conv (Swin, the ConvNeXt stem: layer)."""
    norm_first: bool = False
    """Apply the norm before the conv, on the incoming channels (ConvNeXt downsampling: LayerNorm,
    then a 2x2/2 conv)."""
    bias: bool = True
    """Bias in the patchify conv."""


class _Patch(EmbedKind):
    name = "patch"
    share = Share(
        kernels=("stride",),
        source="patch size: OFA elastic kernel (centre of the largest; Cai et al. ICLR 2020)",
    )
    schema = PatchEmbed

    def normalize(
        self, ctx: CheckContext, epath: Path, stage: Any, family: FamilyKind, shape: FeatureShape, act: str
    ) -> tuple[Any, FeatureShape | None, int]:
        """The patch side must divide both sides of the map."""
        embed = stage.embed
        if not check_norm_first(ctx, epath, embed):
            return embed, None, 1
        h, w = shape.height, shape.width
        if h % embed.stride or w % embed.stride:
            ctx.fail(
                (*epath, "stride"),
                f"the {h}x{w} map is not divisible into {embed.stride}x{embed.stride} patches",
                value=embed.stride,
                allowed="strides dividing both sides: "
                + ", ".join(str(d) for d in range(1, min(h, w) + 1) if h % d == 0 and w % d == 0),
            )
            return embed, None, 1
        return embed, FeatureShape(stage.dim, h // embed.stride, w // embed.stride), 1

    def build(self, embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
        return patch_embed(embed, c_in, dim, eps)

    def cost(self, stage: StagePlan, c_in: int, cost: Cost) -> None:
        assert isinstance(stage.embed, PatchEmbed)
        conv_norm_cost(stage, stage.embed, c_in, stage.embed.stride, cost)


PATCH_EMBED = _Patch()
