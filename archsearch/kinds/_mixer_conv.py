"""``mixer: conv``: the kxk convolution of a ResNet bottleneck (He et al. 2016; torchvision/timm
``Bottleneck``), optionally followed by squeeze-excitation (RegNetY: Radosavovic et al. 2020,
timm ``regnet.py``)."""

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
    PositiveInt,
    Ratio,
    StagePlan,
    StrictModel,
    conv_out,
)
from ._base import MixerKind, Share, check_odd_kernel, check_se, omit_defaults

__all__ = ["CONV", "ConvMixer"]


class ConvMixer(StrictModel):
    """A kxk convolution (the 3x3 of a ResNet bottleneck), optionally followed by
    squeeze-excitation (RegNetY). Family: ``bottleneck``."""

    kind: Literal["conv"] = "conv"
    kernel: Kernel = 3
    """Kernel side (padding ``kernel // 2``)."""
    groups: PositiveInt = 1
    """Groups of the conv; must divide the bottleneck width."""
    se: Ratio | None = None
    """Squeeze-excitation after the conv's BatchNorm and activation (RegNetY: 0.25): global
    average pool -> 1x1 conv (bias) to ``round(se x block input channels)`` -> the stage's
    activation -> 1x1 conv (bias) -> sigmoid gate per channel; ``null``: none."""


class _Conv(MixerKind):
    name = "conv"
    share = Share(
        kernels=("kernel",), source="OFA elastic kernel (centre of the largest; Cai et al. ICLR 2020)"
    )
    schema = ConvMixer
    family = "bottleneck"

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_odd_kernel(ctx, mpath, mixer.kernel)
        if width % mixer.groups:
            ctx.fail(
                (*mpath, "groups"), f"groups must divide the bottleneck width {width}", value=mixer.groups
            )

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        if not check_se(ctx, mpath, mixer.se, shape.channels):
            return None
        pad = mixer.kernel // 2
        oh, ow = (
            conv_out(shape.height, mixer.kernel, stride, pad),
            conv_out(shape.width, mixer.kernel, stride, pad),
        )
        return FeatureShape(dim, oh, ow, shape.cls_tokens)

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, width, H, W)`` -> ``(B, width, H/stride, W/stride)``: kxk conv, no bias."""
        mixer, width = block.mixer, block.width
        assert isinstance(mixer, ConvMixer)
        return nn.Conv2d(
            width, width, mixer.kernel, block.stride, mixer.kernel // 2, groups=mixer.groups, bias=False
        )

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        mixer, width, out = block.mixer, block.width, block.out_shape
        assert isinstance(mixer, ConvMixer)
        cost.conv(width, width, mixer.kernel, out.height, out.width, groups=mixer.groups)

    def canonical(self, data: dict[str, Any], stage: StagePlan) -> dict[str, Any]:
        """Without the fields added for issue 14 where unused: earlier spec hashes hold."""
        return omit_defaults(data, ConvMixer, ("se",))


CONV = _Conv()
