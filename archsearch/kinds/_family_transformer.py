"""``block: transformer``: Pre-norm transformer block: x + mixer(norm(x)); x + mlp(norm(x)) (ViT,
CvT, Swin, PVT v2)."""

from __future__ import annotations

from torch import nn

from ..core import BlockPlan, Cost, StagePlan
from ..ops import BuildMixer, TokenStage, TransformerBlock
from ._base import CostMixer, FamilyKind

__all__ = ["TRANSFORMER", "transformer_cost"]


def transformer_cost(block: BlockPlan, cost_mixer: CostMixer) -> Cost:
    """Pre-norm transformer block (also a MobileViT layer): LayerNorm, the mixer, LayerNorm and the
    MLP on the mixer's output tokens (PVT v2: with a depthwise 3x3 conv on the map), and the stage's
    PEG where it follows the block."""
    cost = Cost()
    assert block.mlp_ratio is not None
    c, n, nq = block.dim, block.in_shape.tokens, block.out_shape.tokens
    cost.layer_norm(c, n * c)
    cost_mixer(block, cost)
    cost.layer_norm(c, nq * c)
    hidden = int(c * block.mlp_ratio)
    cost.linear(nq, c, hidden)
    if block.mlp_dwconv:  # depthwise 3x3 on the output map; class tokens bypass it
        out = block.out_shape
        cost.conv(hidden, hidden, 3, out.height, out.width, groups=hidden, bias=True)
    cost.linear(nq, hidden, c)
    if block.peg:  # the stage's PEG: depthwise 3x3 on the output map (the sum is not counted)
        out = block.out_shape
        cost.conv(c, c, 3, out.height, out.width, groups=c, bias=True)
    return cost


class _Transformer(FamilyKind):
    name = "transformer"
    act = "gelu"
    embeds = ("conv", "patch", "t2t", "merge", "mbconv", "none")
    mlp_ratio = 4.0
    stage_fields = ("cls_token", "dist_token", "mlp_dwconv", "norm_out", "peg")
    keeps_dim = True
    head_norm = "tokens"

    def block(self, plan: BlockPlan, build_mixer: BuildMixer) -> nn.Module:
        """:class:`~archsearch.ops.TransformerBlock`: ``(tokens (B, cls + H*W, dim), (H, W))`` ->
        ``(tokens, (H', W'))``, ``H' = H / q_stride``."""
        return TransformerBlock(plan, build_mixer)

    def stage(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        """:class:`~archsearch.ops.TokenStage`: map -> tokens (class token, position embedding) ->
        blocks -> ``norm_out`` -> map and class tokens."""
        return TokenStage(plan, embed, blocks)

    def cost(self, block: BlockPlan, cost_mixer: CostMixer) -> Cost:
        return transformer_cost(block, cost_mixer)

    def stage_cost(self, stage: StagePlan, cost: Cost) -> None:
        """The ``norm_out`` LayerNorm on the stage's output tokens (PVT v2)."""
        if stage.norm_out:
            cost.layer_norm(stage.dim, stage.dim * stage.out_shape.tokens)


TRANSFORMER = _Transformer()
