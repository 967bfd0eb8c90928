"""``mixer: mbconv``: the MobileNetV2 inverted residual (Sandler et al. 2018; timm
``InvertedResidual``), with optional squeeze-excitation and without the expand conv (timm
``DepthwiseSeparableConv``) as EfficientNet uses them (Tan & Le 2019; timm ``efficientnet.py``).
Its family's block is the mixer itself."""

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
    Ratio,
    StagePlan,
    StrictModel,
    conv_out,
)
from ..ops import InvertedResidual, se_reduced
from ._base import MixerKind, Share, check_odd_kernel, check_se, omit_defaults

__all__ = ["MBCONV", "MBConvMixer"]


class MBConvMixer(StrictModel):
    """MobileNetV2 inverted residual (MBConv), optionally with squeeze-excitation (EfficientNet).
    Family: ``mbconv``.

    1x1 expand conv + BN + act to ``expansion`` x the input channels (rounded to a multiple of 8,
    as timm; none with ``expand_conv: false``), kxk depthwise conv + BN + act (strided in the
    first block under ``embed: block``), squeeze-excitation (with ``se``), 1x1 project conv + BN
    (linear output); residual where stride is 1 and the channels match.
    """

    kind: Literal["mbconv"] = "mbconv"
    kernel: Kernel = 3
    """Kernel side of the depthwise conv (padding ``kernel // 2``); must be odd."""
    se: Ratio | None = None
    """Squeeze-excitation after the depthwise conv (EfficientNet: 0.25): global average pool ->
    1x1 conv (bias) to ``round(se x block input channels)`` -> the stage's activation -> 1x1 conv
    (bias) -> sigmoid gate per channel; ``null``: none."""
    expand_conv: bool = True
    """``false``: no 1x1 expand conv, the depthwise conv runs on the input channels (a
    depthwise-separable conv: EfficientNet's first block); needs ``expansion: 1``."""


class _MBConv(MixerKind):
    name = "mbconv"
    share = Share(
        kernels=("kernel",), source="OFA elastic kernel (centre of the largest; Cai et al. ICLR 2020)"
    )
    schema = MBConvMixer
    family = "mbconv"

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_odd_kernel(ctx, mpath, mixer.kernel)

    def per_block_values(self, ctx: CheckContext, path: Path, stage: Any, depth: int) -> dict[str, Any]:
        """No per-block fields; checks that ``expand_conv: false`` comes with ``expansion: 1``
        (the one check of the mixer that reads another stage key)."""
        if not stage.mixer.expand_conv and stage.expansion != 1:
            ctx.fail(
                (*path, "expansion"),
                "expand_conv: false runs the depthwise conv on the input channels, so the hidden "
                "width is the input's: the expansion must be 1",
                value=stage.expansion,
                allowed="1 (with expand_conv: false)",
            )
        return super().per_block_values(ctx, path, stage, depth)

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
        """The whole inverted residual: ``(B, dim_in, H, W)`` -> ``(B, dim, H/stride, W/stride)``."""
        mixer = block.mixer
        assert isinstance(mixer, MBConvMixer)
        return InvertedResidual(
            block.dim_in,
            block.dim,
            stride=block.stride,
            hidden=block.width if mixer.expand_conv else block.dim_in,
            kernel=mixer.kernel,
            act=block.act,
            drop_path=block.drop_path,
            expand=mixer.expand_conv,
            se=se_reduced(block.dim_in, mixer.se) if mixer.se else 0,
        )

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        mixer = block.mixer
        assert isinstance(mixer, MBConvMixer)
        hw, out = (
            (block.in_shape.height, block.in_shape.width),
            (block.out_shape.height, block.out_shape.width),
        )
        hidden = block.width if mixer.expand_conv else block.dim_in
        se = se_reduced(block.dim_in, mixer.se) if mixer.se else 0
        cost.inverted_residual(
            block.dim_in, hidden, block.dim, mixer.kernel, hw, out, expand=mixer.expand_conv, se=se
        )

    def canonical(self, data: dict[str, Any], stage: StagePlan) -> dict[str, Any]:
        """Without the fields added for issue 14 where unused: earlier spec hashes hold."""
        return omit_defaults(data, MBConvMixer, ("se", "expand_conv"))


MBCONV = _MBConv()
