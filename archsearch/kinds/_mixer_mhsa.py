"""``mixer: mhsa``: BoTNet multi-head self-attention with 2-D relative position logits
(Srinivas et al. 2021, "Bottleneck Transformers"; timm ``BottleneckAttn``)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import BlockPlan, CheckContext, Cost, FeatureShape, Path, PositiveInt, StrictModel
from ..ops import MHSA2d
from ._base import MixerKind, Share, check_heads

__all__ = ["MHSA", "MhsaMixer"]


class MhsaMixer(StrictModel):
    """BoTNet multi-head self-attention over the 2-D map, with relative position logits.

    Content-content ``q.k`` plus content-position ``q.r`` logits (``pos_embed: relative``, the
    default) where ``r`` sums learned height and width offset embeddings. Family: ``bottleneck``.
    """

    kind: Literal["mhsa"] = "mhsa"
    heads: PositiveInt = 4
    """Attention heads; must divide the bottleneck width."""
    qkv_bias: bool = False
    """Bias in the 1x1 q/k/v projection."""


class _Mhsa(MixerKind):
    name = "mhsa"
    share = Share(
        reuse=("heads",),
        centre=("rel_h", "rel_w"),
        source="heads split one qkv projection; relative logits: the centre of the largest table",
    )
    schema = MhsaMixer
    family = "bottleneck"
    pos_embeds = ("relative", "none")

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_heads(ctx, mpath, mixer.heads, width, what)

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        h, w = shape.height, shape.width
        if stride > min(h, w):
            ctx.fail(
                ("stages", mpath[1], "embed", "stride"),
                f"the {stride}x{stride} pool after MHSA leaves no tokens from the {h}x{w} map",
                value=stride,
            )
            return None
        # ceil-mode pool, like the strided shortcut
        return FeatureShape(dim, -(-h // stride), -(-w // stride), shape.cls_tokens)

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, width, H, W)`` -> the same, then a 2x2 average pool (ceil mode) when the block
        downsamples (BoTNet)."""
        mixer, width, stride = block.mixer, block.width, block.stride
        assert isinstance(mixer, MhsaMixer)
        size = (block.in_shape.height, block.in_shape.width)
        attn = MHSA2d(
            width, mixer.heads, size, relative=block.pos_embed == "relative", qkv_bias=mixer.qkv_bias
        )
        return nn.Sequential(attn, nn.AvgPool2d(stride, stride, ceil_mode=True)) if stride > 1 else attn

    def fixed_size(self, block: BlockPlan) -> str | None:
        """The relative embeddings have one row per offset of the built map."""
        if block.pos_embed != "relative":
            return None
        h, w = block.in_shape.height, block.in_shape.width
        return f"learns relative position logits for the offsets of its {h}x{w} map"

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        mixer, width = block.mixer, block.width
        assert isinstance(mixer, MhsaMixer)
        h, w = block.in_shape.height, block.in_shape.width
        n, head_dim = h * w, width // mixer.heads
        cost.conv(width, 3 * width, 1, h, w, bias=mixer.qkv_bias)
        if block.pos_embed == "relative":
            cost.params += (2 * h - 1 + 2 * w - 1) * head_dim
            cost.op(n * h * width, n * h * mixer.heads)  # q . rel_h for every key row
            cost.op(n * w * width, n * w * mixer.heads)  # q . rel_w for every key column
        cost.op(2 * n * n * width, n * width)  # q k^T and attn v (heads x head_dim = width)


MHSA = _Mhsa()
