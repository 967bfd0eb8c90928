"""``embed: conv``: overlapping convolutional token embedding (CvT, Wu et al. 2021; PVT v2,
Wang et al. 2022; timm ``ConvEmbed`` / ``OverlapPatchEmbed``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from torch import nn

from ..core import (
    MAX_KERNEL,
    CheckContext,
    Cost,
    FeatureShape,
    Kernel,
    Path,
    PositiveInt,
    StagePlan,
    StrictModel,
    conv_out,
)
from ..ops import conv_embed
from ._base import EmbedKind, FamilyKind, Share, check_norm_first

__all__ = ["CONV_EMBED", "ConvEmbed"]


class ConvEmbed(StrictModel):
    """Overlapping convolutional token embedding (CvT, PVT): conv, then a norm."""

    kind: Literal["conv"] = "conv"
    kernel: Kernel = 3
    """Kernel side of the conv."""
    stride: PositiveInt = 2
    """Spatial stride of the embedding (one of the five first-class choices)."""
    padding: Annotated[int, Field(ge=0, le=MAX_KERNEL)] | None = None
    """Zero padding; default ``kernel // 2``."""
    norm: Literal["layer", "batch", "none"] = "layer"
    """Norm after the conv: LayerNorm over channels (CvT), BatchNorm, or none."""
    norm_first: bool = False
    """Apply the norm before the conv, on the incoming channels, instead of after it."""
    bias: bool = True
    """Bias in the conv."""
    norm_eps: Annotated[float, Field(gt=0)] | None = None
    """Epsilon of the ``layer`` norm; default the spec's ``norm_eps`` (PVT v2: ``1e-5`` here, ``1e-6``
    in the blocks)."""


class _Conv(EmbedKind):
    name = "conv"
    share = Share(
        kernels=("kernel",),
        reuse=("stride", "padding", "norm_eps"),
        source="OFA elastic kernel (Cai et al. ICLR 2020); stride: the same conv at another stride",
    )
    schema = ConvEmbed

    def normalize(
        self, ctx: CheckContext, epath: Path, stage: Any, family: FamilyKind, shape: FeatureShape, act: str
    ) -> tuple[Any, FeatureShape | None, int]:
        """Fills in ``padding`` (``kernel // 2``) and ``norm_eps`` (the spec's, for a layer norm)."""
        embed = stage.embed
        if not check_norm_first(ctx, epath, embed):
            return embed, None, 1
        h, w = shape.height, shape.width
        padding = embed.kernel // 2 if embed.padding is None else embed.padding
        eps = embed.norm_eps
        if eps is not None and embed.norm != "layer":
            ctx.fail(
                (*epath, "norm_eps"),
                f"norm_eps applies to the layer norm, but this embedding's norm is {embed.norm!r}",
                value=eps,
                allowed="norm: layer, or leave norm_eps out",
            )
        elif embed.norm == "layer" and eps is None:
            eps = ctx.spec.norm_eps
        embed = embed.model_copy(update={"padding": padding, "norm_eps": eps})
        oh, ow = (conv_out(s, embed.kernel, embed.stride, padding) for s in (h, w))
        if oh < 1 or ow < 1:
            ctx.fail(
                (*epath, "stride"),
                f"the {embed.kernel}x{embed.kernel} conv with stride {embed.stride} and padding "
                f"{padding} leaves no tokens from the {h}x{w} map",
                value=embed.stride,
            )
            return embed, None, 1
        return embed, FeatureShape(stage.dim, oh, ow), 1

    def build(self, embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
        return conv_embed(embed, c_in, dim, eps)

    def cost(self, stage: StagePlan, c_in: int, cost: Cost) -> None:
        assert isinstance(stage.embed, ConvEmbed)
        conv_norm_cost(stage, stage.embed, c_in, stage.embed.kernel, cost)


def conv_norm_cost(stage: StagePlan, embed: Any, c_in: int, kernel: int, cost: Cost) -> None:
    """A ``kernel``-sided conv to the stage dim with its norm after it (or before it, on the
    incoming map, under ``norm_first``): the conv and patch embeddings."""
    shape = stage.embed_shape
    if embed.norm_first:
        cost.norm2d(embed.norm, c_in, c_in * stage.in_shape.height * stage.in_shape.width)
    cost.conv(c_in, stage.dim, kernel, shape.height, shape.width, bias=embed.bias)
    if not embed.norm_first:
        cost.norm2d(embed.norm, stage.dim, stage.dim * shape.height * shape.width)


CONV_EMBED = _Conv()
