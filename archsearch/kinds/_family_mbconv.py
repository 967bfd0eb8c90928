"""``block: mbconv``: MobileNetV2 inverted residual stages (Sandler et al. 2018): the block is its
mixer (the ``mbconv`` mixer builds the whole inverted residual)."""

from __future__ import annotations

from torch import nn

from ..core import BlockPlan, Cost, StagePlan
from ..ops import BuildMixer, MapStage
from ._base import CostMixer, FamilyKind

__all__ = ["MBCONV"]


class _MBConv(FamilyKind):
    name = "mbconv"
    act = "silu"
    embeds = ("conv", "patch", "block", "mbconv", "none")
    expansion = 4

    def block(self, plan: BlockPlan, build_mixer: BuildMixer) -> nn.Module:
        """The mixer itself: ``(B, dim_in, H, W)`` -> ``(B, dim, H/stride, W/stride)``."""
        return build_mixer(plan)

    def stage(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        return MapStage(plan, embed, blocks)

    def cost(self, block: BlockPlan, cost_mixer: CostMixer) -> Cost:
        """The mixer's cost alone."""
        cost = Cost()
        cost_mixer(block, cost)
        return cost


MBCONV = _MBConv()
