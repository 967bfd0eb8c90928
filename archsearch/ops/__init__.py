"""Layers and blocks that compiled models are made of."""

from ._attention import Attention, MHSA2d, attend, fused_attention, set_fused_attention, uses_fused_attention
from ._blocks import Bottleneck, TransformerBlock
from ._layers import DropPath, LayerNorm2d, Mlp, QuickGELU
from ._window import PatchMerging, WindowAttention

__all__ = [
    "Attention",
    "Bottleneck",
    "DropPath",
    "LayerNorm2d",
    "MHSA2d",
    "Mlp",
    "PatchMerging",
    "QuickGELU",
    "TransformerBlock",
    "WindowAttention",
    "attend",
    "fused_attention",
    "set_fused_attention",
    "uses_fused_attention",
]
