"""``block: mobilevit``: MobileViT stages: the blocks are the transformer layers of one MobileViT
block (Mehta & Rastegari 2022)."""

from __future__ import annotations

from torch import nn

from ..core import BlockPlan, Cost, StagePlan
from ..ops import BuildMixer, MobileViTLayer, MobileViTStage
from ._base import CostMixer, FamilyKind
from ._family_transformer import transformer_cost

__all__ = ["MOBILEVIT"]


class _MobileViT(FamilyKind):
    name = "mobilevit"
    act = "silu"
    embeds = ("conv", "patch", "mbconv", "none")
    mlp_ratio = 2.0
    width_name = "transformer_dim"

    def block(self, plan: BlockPlan, build_mixer: BuildMixer) -> nn.Module:
        """:class:`~archsearch.ops.MobileViTLayer`: ``(B * P, N, d)`` patch sequences in and out."""
        return MobileViTLayer(plan, build_mixer)

    def stage(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        """:class:`~archsearch.ops.MobileViTStage`: local conv, unfold, the layers, fold, fusion
        (its convs are costed by the ``mobilevit`` mixer's ``stage_cost``)."""
        return MobileViTStage(plan, embed, blocks)

    def cost(self, block: BlockPlan, cost_mixer: CostMixer) -> Cost:
        """A pre-norm transformer layer, costed as the transformer family's block."""
        return transformer_cost(block, cost_mixer)


MOBILEVIT = _MobileViT()
