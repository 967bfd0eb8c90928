"""``block: bottleneck``: ResNet bottleneck: 1x1 reduce -> mixer -> 1x1 expand, residual (He et al.
2016; BoTNet, Srinivas et al. 2021)."""

from __future__ import annotations

from torch import nn

from ..core import BlockPlan, Cost, StagePlan
from ..ops import Bottleneck, BuildMixer, MapStage, se_reduced
from ._base import CostMixer, FamilyKind

__all__ = ["BOTTLENECK"]


class _Bottleneck(FamilyKind):
    name = "bottleneck"
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
        (1x1 conv + BN when the shape changes); with a conv mixer's ``norm: group`` GroupNorms
        instead of BNs, with its ``weight_std`` the standardisation of each conv's weight."""
        cost = Cost()
        c_in, width, dim = block.dim_in, block.width, block.dim
        h, w = block.in_shape.height, block.in_shape.width
        ho, wo = block.out_shape.height, block.out_shape.width
        mixer = block.mixer
        norm, std = getattr(mixer, "norm", "batch"), getattr(mixer, "weight_std", None)

        def conv1x1(c_from: int, c_to: int, side_h: int, side_w: int) -> None:
            cost.conv(c_from, c_to, 1, side_h, side_w)
            if std is not None:
                cost.weight_std(c_from, c_to, 1)
            cost.norm2d(norm, c_to, c_to * side_h * side_w)

        conv1x1(c_in, width, h, w)
        cost_mixer(block, cost)
        cost.norm2d(norm, width, width * ho * wo)
        se = getattr(mixer, "se", None)
        if se:
            cost.squeeze_excite(width, se_reduced(c_in, se), ho, wo)
        conv1x1(width, dim, ho, wo)
        if block.stride != 1 or c_in != dim:
            conv1x1(c_in, dim, ho, wo)
        return cost


BOTTLENECK = _Bottleneck()
