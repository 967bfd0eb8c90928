"""``block: bottleneck``: ResNet bottleneck: 1x1 reduce -> mixer -> 1x1 expand, residual (He et al.
2016; BoTNet, Srinivas et al. 2021)."""

from __future__ import annotations

from torch import nn

from ..core import BlockPlan, Cost, StagePlan
from ..ops import Bottleneck, BuildMixer, MapStage, se_reduced
from ._base import CostMixer, FamilyKind, Share

__all__ = ["BOTTLENECK"]


class _Bottleneck(FamilyKind):
    name = "bottleneck"
    share = Share(
        nested=("dim", "mlp_ratio", "expansion"),
        reuse=("stride",),
        source="AutoFormer weight entanglement / OFA elastic width; act and mlp_dwconv: one set per option",
    )
    act = "relu"
    embeds = ("conv", "patch", "block", "t2t", "merge", "mbconv", "none")
    expansion = 4
    width_name = "bottleneck width"
    bottleneck_width = True

    def block(self, plan: BlockPlan, build_mixer: BuildMixer) -> nn.Module:
        """:class:`~archsearch.ops.Bottleneck`: ``(B, dim_in, H, W)`` -> ``(B, dim, H/stride, W/stride)``."""
        return Bottleneck(plan, build_mixer)

    def stage(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        return MapStage(plan, embed, blocks)

    def cost(self, block: BlockPlan, cost_mixer: CostMixer) -> Cost:
        """1x1 reduce + BN, the mixer + BN (+ squeeze-excitation), 1x1 expand + BN, the shortcut
        (1x1 conv + BN when the shape changes)."""
        cost = Cost()
        c_in, width, dim = block.dim_in, block.width, block.dim
        h, w = block.in_shape.height, block.in_shape.width
        ho, wo = block.out_shape.height, block.out_shape.width
        cost.conv(c_in, width, 1, h, w)
        cost.batch_norm(width, width * h * w)
        cost_mixer(block, cost)
        cost.batch_norm(width, width * ho * wo)
        se = getattr(block.mixer, "se", None)
        if se:
            cost.squeeze_excite(width, se_reduced(c_in, se), ho, wo)
        cost.conv(width, dim, 1, ho, wo)
        cost.batch_norm(dim, dim * ho * wo)
        if block.stride != 1 or c_in != dim:
            cost.conv(c_in, dim, 1, ho, wo)
            cost.batch_norm(dim, dim * ho * wo)
        return cost


BOTTLENECK = _Bottleneck()
