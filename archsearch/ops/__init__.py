"""Layers and blocks that compiled models are made of."""

from ._attention import Attention, MHSA2d, attend, fused_attention, set_fused_attention, uses_fused_attention
from ._blocks import Bottleneck, ConvNeXtBlock, TransformerBlock
from ._layers import DropPath, LayerNorm2d, Mlp, QuickGELU

__all__ = [
    "Attention",
    "Bottleneck",
    "ConvNeXtBlock",
    "DropPath",
    "LayerNorm2d",
    "MHSA2d",
    "Mlp",
    "QuickGELU",
    "TransformerBlock",
    "attend",
    "fused_attention",
    "set_fused_attention",
    "uses_fused_attention",
]
