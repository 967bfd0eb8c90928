"""``block: multiscale``: MViT v2's block (Li et al. 2022; timm ``mvitv2.MultiScaleBlock`` with
``expand_attn``): pre-norm attention whose queries may be pooled and whose width may change, then
an MLP."""

from __future__ import annotations

from torch import nn

from ..core import BlockPlan, Cost, StagePlan
from ..ops import BuildMixer, MultiScaleBlock, TokenStage
from ._base import CostMixer, FamilyKind, Share

__all__ = ["MULTISCALE"]


class _Multiscale(FamilyKind):
    name = "multiscale"
    share = Share(
        nested=("dim", "mlp_ratio", "expansion"),
        reuse=("stride",),
        source="AutoFormer weight entanglement / OFA elastic width (the input width too: a leading slice)",
    )
    act = "gelu"
    embeds = ("conv", "patch", "none")
    mlp_ratio = 4.0
    stage_fields = ("cls_token",)
    head_norm = "tokens"

    def block(self, plan: BlockPlan, build_mixer: BuildMixer) -> nn.Module:
        """:class:`~archsearch.ops.MultiScaleBlock`: ``(tokens (B, cls + H*W, dim_in), (H, W))`` ->
        ``(tokens (B, cls + H'*W', dim), (H', W'))``; a stage under ``embed: none`` may change the
        width in its first block (MViT v2's stage transitions)."""
        return MultiScaleBlock(plan, build_mixer)

    def stage(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        """:class:`~archsearch.ops.TokenStage` around the blocks."""
        return TokenStage(plan, embed, blocks)

    def cost(self, block: BlockPlan, cost_mixer: CostMixer) -> Cost:
        """LayerNorm on the input tokens, the shortcut's Linear where the width changes (its max
        pool counts zero), the mixer, LayerNorm and the MLP on the mixer's output tokens."""
        cost = Cost()
        assert block.mlp_ratio is not None
        c_in, c, n, nq = block.dim_in, block.dim, block.in_shape.tokens, block.out_shape.tokens
        cost.layer_norm(c_in, n * c_in)
        if c_in != c:
            cost.linear(n, c_in, c)
        cost_mixer(block, cost)
        cost.layer_norm(c, nq * c)
        hidden = int(c * block.mlp_ratio)
        cost.linear(nq, c, hidden)
        cost.linear(nq, hidden, c)
        return cost


MULTISCALE = _Multiscale()
