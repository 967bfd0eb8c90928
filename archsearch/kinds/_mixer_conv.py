"""``mixer: conv``: the kxk convolution of a ResNet bottleneck (He et al. 2016; torchvision/timm
``Bottleneck``), optionally followed by squeeze-excitation (RegNetY: Radosavovic et al. 2020,
timm ``regnet.py``), and the ResNet v2 / BiT block options (weight-standardised convs, GroupNorm,
TensorFlow "same" padding: Kolesnikov et al. 2020; timm ``resnetv2.py``, used by the ViT hybrids)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
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
from ..ops import make_conv
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
    norm: Literal["batch", "group"] = "batch"
    """Norm after every conv of the block (the 1x1s, this conv, the projection shortcut):
    ``batch`` (BatchNorm) or ``group`` (GroupNorm with ``norm_groups`` groups, eps 1e-5: ResNet v2
    / BiT)."""
    norm_groups: PositiveInt = 32
    """Groups of ``norm: group``; must divide the bottleneck width."""
    weight_std: Annotated[float, Field(gt=0)] | None = None
    """Weight standardisation of every conv of the block with this epsilon (Qiao et al. 2019;
    BiT and timm's ViT hybrids: 1e-8): each filter is normalised to zero mean and unit variance
    before use; ``null``: plain convs."""
    padding: Literal["symmetric", "same"] = "symmetric"
    """Padding of the block's convs: ``symmetric`` (``kernel // 2`` on every side) or ``same``
    (TensorFlow's, timm ``StdConv2dSame``: a strided conv puts the odd pixel bottom / right). The
    output map is the same size either way."""


class _Conv(MixerKind):
    name = "conv"
    share = Share(
        kernels=("kernel",),
        reuse=("padding",),
        source="OFA elastic kernel (centre of the largest; Cai et al. ICLR 2020); the same weights at "
        "either padding",
    )
    schema = ConvMixer
    family = "bottleneck"

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_odd_kernel(ctx, mpath, mixer.kernel)
        if width % mixer.groups:
            ctx.fail(
                (*mpath, "groups"), f"groups must divide the bottleneck width {width}", value=mixer.groups
            )
        if mixer.norm == "group" and width % mixer.norm_groups:
            ctx.fail(
                (*mpath, "norm_groups"),
                f"norm_groups must divide the bottleneck width {width}",
                value=mixer.norm_groups,
                allowed=", ".join(str(d) for d in range(1, width + 1) if width % d == 0),
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
        """``(B, width, H, W)`` -> ``(B, width, H/stride, W/stride)``: kxk conv, no bias
        (weight-standardised with ``weight_std``)."""
        mixer, width = block.mixer, block.width
        assert isinstance(mixer, ConvMixer)
        return make_conv(
            width, width, mixer.kernel, block.stride, mixer.groups, mixer.weight_std, mixer.padding
        )

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        mixer, width, out = block.mixer, block.width, block.out_shape
        assert isinstance(mixer, ConvMixer)
        cost.conv(width, width, mixer.kernel, out.height, out.width, groups=mixer.groups)
        if mixer.weight_std is not None:
            cost.weight_std(width, width, mixer.kernel, mixer.groups)

    def canonical(self, data: dict[str, Any], stage: StagePlan) -> dict[str, Any]:
        """Without the fields added for issue 14 where unused: earlier spec hashes hold."""
        return omit_defaults(data, ConvMixer, ("se", "norm", "norm_groups", "weight_std", "padding"))


CONV = _Conv()
