"""``mixer: gpsa``: ConViT's gated positional self-attention (d'Ascoli et al. 2021, "ConViT:
Improving Vision Transformers with Soft Convolutional Inductive Biases"; timm ``convit.GPSA``)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import BlockPlan, CheckContext, Cost, FeatureShape, Path, PositiveInt, StrictModel
from ..ops import GatedPositionalAttention
from ._base import MixerKind, Share, check_heads

__all__ = ["GPSA", "GpsaMixer"]


class GpsaMixer(StrictModel):
    """Gated positional self-attention (ConViT): each head mixes a softmax of content scores
    ``q k^T`` and a softmax of position scores (a Linear of each query-key offset ``dx, dy,
    dx^2 + dy^2``) by a learned gate, renormalises, and attends to ``v``. Map tokens only: ConViT
    adds its class token after the GPSA blocks (a later stage with ``cls_token``). Family:
    ``transformer``.
    """

    kind: Literal["gpsa"] = "gpsa"
    heads: PositiveInt = 4
    """Attention heads; must divide the stage dim."""
    qkv_bias: bool = False
    """Bias in the q/k and v Linear layers (ConViT: none)."""


class _Gpsa(MixerKind):
    name = "gpsa"
    share = Share(
        nested=("heads",),
        source="AutoFormer weight entanglement (heads: the leading slice of the gate and position Linear)",
    )
    schema = GpsaMixer
    family = "transformer"
    pos_embeds = ("none", "absolute", "sinusoidal")

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_heads(ctx, mpath, mixer.heads, width, what)

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        if shape.cls_tokens:
            ctx.fail(
                (*mpath[:2], "cls_token"),
                "gated positional attention has positions for map tokens only (ConViT adds its class "
                "token after the GPSA blocks)",
                value=True,
                allowed="false here, and cls_token: true on a later stage",
            )
            return None
        return FeatureShape(dim, shape.height, shape.width)

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, H*W, dim)`` tokens on an ``H x W`` map -> the same shape."""
        mixer = block.mixer
        assert isinstance(mixer, GpsaMixer)
        return GatedPositionalAttention(block.dim, mixer.heads, qkv_bias=mixer.qkv_bias)

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        """q/k and v Linears, the position Linear on every query-key offset, the
        content scores and ``attn v`` over all heads, the output Linear; the gate's parameters."""
        mixer = block.mixer
        assert isinstance(mixer, GpsaMixer)
        c, heads = block.dim, mixer.heads
        n = block.in_shape.height * block.in_shape.width
        cost.linear(n, c, 2 * c, mixer.qkv_bias)
        cost.linear(n * n, 3, heads)  # pos_proj
        cost.op(n * n * c, n * n * heads)  # q k^T
        cost.params += heads  # gating_param
        cost.op(n * n * c, n * c)  # attn v
        cost.linear(n, c, c, mixer.qkv_bias)  # v
        cost.linear(n, c, c)


GPSA = _Gpsa()
