"""``mixer: dwconv``: the depthwise 7x7 conv of a ConvNeXt block, with layer scale
(Liu et al. 2022, "A ConvNet for the 2020s"; timm ``ConvNeXtBlock``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from torch import nn

from ..core import BlockPlan, Cost, Kernel, StrictModel
from ._base import OddKernelMixer, Share

__all__ = ["DWCONV", "DwConvMixer"]


class DwConvMixer(StrictModel):
    """Depthwise kxk convolution (with bias) of a ConvNeXt block. Family: ``convnext``.

    The block (timm ``ConvNeXtBlock``): depthwise conv -> LayerNorm over channels -> Linear to
    ``mlp_ratio * dim`` -> activation -> Linear back -> layer scale -> drop path -> + shortcut.
    """

    kind: Literal["dwconv"] = "dwconv"
    kernel: Kernel = 7
    """Kernel side (padding ``kernel // 2``); must be odd."""
    layer_scale: Annotated[float, Field(ge=0)] | None = 1e-6
    """Initial value of the learned per-channel scale on the block's branch (ConvNeXt: 1e-6);
    ``null`` or 0 leaves the scale out."""


class _DwConv(OddKernelMixer):
    name = "dwconv"
    share = Share(
        kernels=("kernel",), source="OFA elastic kernel (centre of the largest; Cai et al. ICLR 2020)"
    )
    schema = DwConvMixer
    family = "convnext"

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, dim, H, W)`` -> the same: depthwise kxk conv with bias (the block re-initialises
        it as timm does, after its MLP, so a seed gives timm's weights)."""
        mixer, dim = block.mixer, block.dim
        assert isinstance(mixer, DwConvMixer)
        return nn.Conv2d(dim, dim, mixer.kernel, 1, mixer.kernel // 2, groups=dim)

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        mixer, c = block.mixer, block.dim
        assert isinstance(mixer, DwConvMixer)
        cost.conv(c, c, mixer.kernel, block.in_shape.height, block.in_shape.width, groups=c, bias=True)
        if mixer.layer_scale:
            cost.params += c  # gamma; its multiply counts zero (elementwise)


DWCONV = _DwConv()
