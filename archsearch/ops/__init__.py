"""Layers and blocks that compiled models are made of."""

from ._attention import Attention, MHSA2d, attend, fused_attention, set_fused_attention, uses_fused_attention
from ._blocks import Bottleneck, ConvNeXtBlock, TransformerBlock
from ._layers import DropPath, LayerNorm2d, Mlp, MlpDwConv, QuickGELU
from ._mobile import (
    InvertedResidual,
    MBConvBlock,
    MobileViTLayer,
    MobileViTStage,
    fold_patches,
    unfold_patches,
)
from ._t2t import TokensToToken, TokenTransformer, sinusoid_table
from ._window import PatchMerging, WindowAttention

__all__ = [
    "Attention",
    "Bottleneck",
    "ConvNeXtBlock",
    "DropPath",
    "InvertedResidual",
    "LayerNorm2d",
    "MBConvBlock",
    "MHSA2d",
    "Mlp",
    "MlpDwConv",
    "MobileViTLayer",
    "MobileViTStage",
    "PatchMerging",
    "QuickGELU",
    "TokenTransformer",
    "TokensToToken",
    "TransformerBlock",
    "WindowAttention",
    "attend",
    "fold_patches",
    "fused_attention",
    "set_fused_attention",
    "sinusoid_table",
    "unfold_patches",
    "uses_fused_attention",
]
