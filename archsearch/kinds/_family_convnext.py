"""``block: convnext``: ConvNeXt block: depthwise conv, LayerNorm, MLP, layer scale (Liu et al. 2022)."""

from __future__ import annotations

from torch import nn

from ..core import BlockPlan, Cost, StagePlan
from ..ops import BuildMixer, ConvNeXtBlock, MapStage
from ._base import CostMixer, FamilyKind

__all__ = ["CONVNEXT"]


class _ConvNeXt(FamilyKind):
    name = "convnext"
    act = "gelu"
    embeds = ("conv", "patch", "none")
    mlp_ratio = 4.0
    keeps_dim = True
    head_norm = "pooled"

    def block(self, plan: BlockPlan, build_mixer: BuildMixer) -> nn.Module:
        """:class:`~archsearch.ops.ConvNeXtBlock`: ``(B, dim, H, W)`` -> ``(B, dim, H, W)``."""
        return ConvNeXtBlock(plan, build_mixer)

    def stage(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        return MapStage(plan, embed, blocks)

    def cost(self, block: BlockPlan, cost_mixer: CostMixer) -> Cost:
        """The mixer (depthwise conv, layer scale), LayerNorm, the MLP."""
        cost = Cost()
        assert block.mlp_ratio is not None
        c, h, w = block.dim, block.in_shape.height, block.in_shape.width
        cost_mixer(block, cost)
        cost.layer_norm(c, c * h * w)
        hidden = int(c * block.mlp_ratio)
        cost.linear(h * w, c, hidden)
        cost.linear(h * w, hidden, c)
        return cost


CONVNEXT = _ConvNeXt()
