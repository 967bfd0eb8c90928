"""``mixer: mbconv``: the MobileNetV2 inverted residual (Sandler et al. 2018; timm
``InvertedResidual`` without squeeze-excitation). Its family's block is the mixer itself."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import (
    BlockPlan,
    CheckContext,
    Cost,
    FeatureShape,
    Kernel,
    Path,
    StrictModel,
    conv_out,
)
from ..ops import InvertedResidual
from ._base import MixerKind, Share, check_odd_kernel

__all__ = ["MBCONV", "MBConvMixer"]


class MBConvMixer(StrictModel):
    """MobileNetV2 inverted residual (MBConv without squeeze-excitation). Family: ``mbconv``.

    1x1 expand conv + BN + act to ``expansion`` x the input channels (rounded to a multiple of 8,
    as timm), kxk depthwise conv + BN + act (strided in the first block under ``embed: block``),
    1x1 project conv + BN (linear output); residual where stride is 1 and the channels match.
    """

    kind: Literal["mbconv"] = "mbconv"
    kernel: Kernel = 3
    """Kernel side of the depthwise conv (padding ``kernel // 2``); must be odd."""


class _MBConv(MixerKind):
    name = "mbconv"
    share = Share(
        kernels=("kernel",), source="OFA elastic kernel (centre of the largest; Cai et al. ICLR 2020)"
    )
    schema = MBConvMixer
    family = "mbconv"

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_odd_kernel(ctx, mpath, mixer.kernel)

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        pad = mixer.kernel // 2
        oh, ow = (
            conv_out(shape.height, mixer.kernel, stride, pad),
            conv_out(shape.width, mixer.kernel, stride, pad),
        )
        return FeatureShape(dim, oh, ow, shape.cls_tokens)

    def build(self, block: BlockPlan) -> nn.Module:
        """The whole inverted residual: ``(B, dim_in, H, W)`` -> ``(B, dim, H/stride, W/stride)``."""
        assert isinstance(block.mixer, MBConvMixer)
        return InvertedResidual(
            block.dim_in,
            block.dim,
            stride=block.stride,
            hidden=block.width,
            kernel=block.mixer.kernel,
            act=block.act,
            drop_path=block.drop_path,
        )

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        assert isinstance(block.mixer, MBConvMixer)
        hw, out = (
            (block.in_shape.height, block.in_shape.width),
            (block.out_shape.height, block.out_shape.width),
        )
        cost.inverted_residual(block.dim_in, block.width, block.dim, block.mixer.kernel, hw, out)


MBCONV = _MBConv()
