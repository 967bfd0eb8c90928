"""``mixer: involution``: involution in place of a bottleneck's 3x3 conv (Li et al., CVPR 2021,
"Involution: Inverting the Inherence of Convolution for Visual Recognition"; RedNet, official code
d-li14/involution ``cls/mmcls/models/backbones/rednet.py``)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import BlockPlan, CheckContext, Cost, FeatureShape, Kernel, Path, PositiveInt, StrictModel
from ..ops import Involution
from ._base import MixerKind, check_odd_kernel

__all__ = ["INVOLUTION", "InvolutionMixer"]


class InvolutionMixer(StrictModel):
    """Involution (RedNet, Li et al. 2021): a kxk kernel generated at every pixel from the pixel
    itself, shared by the channels of a group and applied to the pixel's kxk neighbourhood.
    Family: ``bottleneck``.

    The kernel generator (official ``involution``): a ``stride`` x ``stride`` average pool when the
    block downsamples, a 1x1 conv to ``width // reduction`` channels + BatchNorm + ReLU, a 1x1 conv
    (bias) to ``kernel**2 x width / group_channels`` weights; each group of ``group_channels``
    channels is then the kernel-weighted sum of its kxk neighbourhood (padding ``kernel // 2``,
    strided as the block). RedNet: ``kernel: 7`` in every bottleneck.
    """

    kind: Literal["involution"] = "involution"
    kernel: Kernel = 7
    """Side of the generated kernels (padding ``kernel // 2``); must be odd."""
    group_channels: PositiveInt = 16
    """Channels that share one generated kernel (official: 16); must divide the bottleneck width."""
    reduction: PositiveInt = 4
    """Channel reduction of the kernel generator (official: 4); at most the bottleneck width."""


class _Involution(MixerKind):
    name = "involution"
    schema = InvolutionMixer
    family = "bottleneck"

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        """An odd kernel, ``group_channels`` dividing the width and at least one channel in the
        kernel generator (``width // reduction``)."""
        check_odd_kernel(ctx, mpath, mixer.kernel)
        if width % mixer.group_channels:
            ctx.fail(
                (*mpath, "group_channels"),
                f"group_channels must divide the {what} {width}",
                value=mixer.group_channels,
                allowed=", ".join(str(d) for d in range(1, width + 1) if width % d == 0),
            )
        if width < mixer.reduction:
            ctx.fail(
                (*mpath, "reduction"),
                f"the kernel generator reduces the {what} {width} to {what} // reduction = 0 channels",
                value=mixer.reduction,
                allowed=f"1 to {width}",
            )

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        """The unfold's map (odd kernel, padding ``kernel // 2``): ``ceil(side / stride)``, as the
        ceil-mode pool of the kernel generator; never empty."""
        return FeatureShape(dim, -(-shape.height // stride), -(-shape.width // stride), shape.cls_tokens)

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, width, H, W)`` -> ``(B, width, ceil(H / stride), ceil(W / stride))``."""
        mixer = block.mixer
        assert isinstance(mixer, InvolutionMixer)
        return Involution(block.width, mixer.kernel, block.stride, mixer.group_channels, mixer.reduction)

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        """The kernel generator on the output map and the weighted sum (:meth:`Cost.involution`)."""
        mixer, out = block.mixer, block.out_shape
        assert isinstance(mixer, InvolutionMixer)
        cost.involution(
            block.width, mixer.kernel, mixer.group_channels, mixer.reduction, out.height, out.width
        )


INVOLUTION = _Involution()
