"""``block: metaformer``: the MetaFormer block on the map: one-group GroupNorms, a token mixer and
a 1x1-conv MLP, both branches layer-scaled (Yu et al., CVPR 2022; timm ``MetaFormerBlock``)."""

from __future__ import annotations

from torch import nn

from ..core import BlockPlan, Cost, StagePlan
from ..ops import BuildMixer, MapStage, MetaFormerBlock
from ._base import CostMixer, FamilyKind

__all__ = ["METAFORMER"]


class _MetaFormer(FamilyKind):
    name = "metaformer"
    act = "gelu"
    embeds = ("conv", "patch", "none")
    mlp_ratio = 4.0
    keeps_dim = True
    head_norm = "pooled"

    def block(self, plan: BlockPlan, build_mixer: BuildMixer) -> nn.Module:
        """:class:`~archsearch.ops.MetaFormerBlock`: ``(B, dim, H, W)`` -> ``(B, dim, H, W)``."""
        return MetaFormerBlock(plan, build_mixer)

    def stage(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        return MapStage(plan, embed, blocks)

    def cost(self, block: BlockPlan, cost_mixer: CostMixer) -> Cost:
        """Two GroupNorms (five MACs per element, as fvcore), the mixer, the 1x1-conv MLP and the
        two layer scales (parameters only: their products count zero)."""
        cost = Cost()
        assert block.mlp_ratio is not None
        c, h, w = block.dim, block.in_shape.height, block.in_shape.width
        hidden = int(c * block.mlp_ratio)
        cost.layer_norm(c, c * h * w)
        cost_mixer(block, cost)
        cost.layer_norm(c, c * h * w)
        cost.conv(c, hidden, 1, h, w, bias=True)
        cost.conv(hidden, c, 1, h, w, bias=True)
        if getattr(block.mixer, "layer_scale", None):
            cost.params += 2 * c
        return cost


METAFORMER = _MetaFormer()
