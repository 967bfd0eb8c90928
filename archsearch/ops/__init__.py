"""Layers and blocks that compiled models are made of."""

from ._attention import Attention, MHSA2d, attend, fused_attention, set_fused_attention, uses_fused_attention
from ._blocks import Bottleneck, TransformerBlock
from ._layers import DropPath, LayerNorm2d, Mlp, QuickGELU
from ._mobile import (
    InvertedResidual,
    MBConvBlock,
    MobileViTLayer,
    MobileViTStage,
    fold_patches,
    unfold_patches,
)

__all__ = [
    "Attention",
    "Bottleneck",
    "DropPath",
    "InvertedResidual",
    "LayerNorm2d",
    "MBConvBlock",
    "MHSA2d",
    "Mlp",
    "MobileViTLayer",
    "MobileViTStage",
    "QuickGELU",
    "TransformerBlock",
    "attend",
    "fold_patches",
    "fused_attention",
    "set_fused_attention",
    "unfold_patches",
    "uses_fused_attention",
]
