"""``mixer: halo``: HaloNet's blocked local self-attention in place of a bottleneck's 3x3 conv
(Vaswani et al., CVPR 2021; timm ``HaloAttn`` in ``byoanet.py``'s HaloNets), with BoTNet's
relative position logits."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import BlockPlan, CheckContext, Cost, FeatureShape, Path, PositiveInt, StrictModel
from ..ops import HaloAttention
from ._base import MixerKind, check_heads

__all__ = ["HALO", "HaloMixer"]


class HaloMixer(StrictModel):
    """HaloNet attention: each ``block`` x ``block`` block of the map attends to itself widened by
    ``halo`` pixels, with 2-D relative position logits (learned per offset inside the window).
    Family: ``bottleneck``.

    A downsampling block (stride 2) strides its query projection: ``block / 2`` queries per block.
    A map whose sides are not multiples of ``block`` is zero-padded to them (bottom and right, as
    the halo pads the borders) and the output cropped; timm's ``HaloAttn`` takes multiples only.
    """

    kind: Literal["halo"] = "halo"
    heads: PositiveInt = 8
    """Attention heads; must divide the bottleneck width."""
    block: PositiveInt = 8
    """Side of the query blocks (timm's ``block_size``)."""
    halo: int = 3
    """Pixels the key/value window extends each block by on every side (timm's ``halo_size``)."""
    qkv_bias: bool = False
    """Bias in the 1x1 query and key/value projections."""


class _Halo(MixerKind):
    name = "halo"
    schema = HaloMixer
    family = "bottleneck"
    pos_embeds = ("relative",)

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_heads(ctx, mpath, mixer.heads, width, what)
        if mixer.halo < 0:
            ctx.fail(
                (*mpath, "halo"), "the halo is a number of pixels", value=mixer.halo, allowed="0, 1, 2, ..."
            )

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        h, w, block = shape.height, shape.width, mixer.block
        if stride > 2 or block % stride:
            ctx.fail(
                ("stages", mpath[1], "embed", "stride"),
                f"a halo block downsamples by striding its queries inside each {block}x{block} block: "
                "the stride must be 1 or 2 and divide the block",
                value=stride,
                allowed="1, 2 (with an even block)",
            )
            return None
        return FeatureShape(dim, -(-h // stride), -(-w // stride), shape.cls_tokens)

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, width, H, W)`` -> ``(B, width, H / stride, W / stride)``."""
        mixer = block.mixer
        assert isinstance(mixer, HaloMixer)
        return HaloAttention(
            block.width, mixer.heads, mixer.block, mixer.halo, stride=block.stride, qkv_bias=mixer.qkv_bias
        )

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        """The projections, the relative logits (per query: a row of each table's window) and
        ``q k^T``, ``attn v`` of every block against its window."""
        mixer, width = block.mixer, block.width
        assert isinstance(mixer, HaloMixer)
        b = mixer.block  # the map padded to whole blocks, the output cropped (zero cost)
        h, w = -(-block.in_shape.height // b) * b, -(-block.in_shape.width // b) * b
        ho, wo = h // block.stride, w // block.stride
        heads, d = mixer.heads, width // mixer.heads
        blocks, queries = (h // mixer.block) * (w // mixer.block), (mixer.block // block.stride) ** 2
        window = mixer.block + 2 * mixer.halo
        cost.conv(width, width, 1, ho, wo, bias=mixer.qkv_bias)
        cost.conv(width, 2 * width, 1, h, w, bias=mixer.qkv_bias)
        cost.params += 2 * (2 * window - 1) * d
        rel = heads * blocks * queries * window * d  # q . rel_h[y, ky] for every key row (and columns)
        cost.op(rel, heads * blocks * queries * window)
        cost.op(rel, heads * blocks * queries * window)
        cost.op(2 * heads * blocks * queries * window * window * d, heads * blocks * queries * d)


HALO = _Halo()
