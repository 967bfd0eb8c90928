"""Layers and blocks that compiled models are made of."""

from ._attention import Attention, MHSA2d, attend, fused_attention, set_fused_attention, uses_fused_attention
from ._blocks import Bottleneck, BuildMixer, ConvNeXtBlock, TransformerBlock
from ._embed import conv_embed, patch_embed, resnet_stem
from ._layers import (
    DropPath,
    LayerNorm2d,
    Mlp,
    MlpDwConv,
    QuickGELU,
    SqueezeExcite,
    se_reduced,
    tokens_to_map,
)
from ._mobile import (
    ConvBnAct,
    InvertedResidual,
    MobileViTLayer,
    MobileViTStage,
    conv_stem,
    fold_patches,
    mbconv_embed,
    unfold_patches,
)
from ._resample import resample_abs_pos_embed, resample_bias_table, resample_rel_embed
from ._stages import Features, MapStage, TokenStage
from ._t2t import TokensToToken, TokenTransformer, sinusoid_table, t2t_embed
from ._window import PatchMerging, WindowAttention, WindowLayout, merge_embed

__all__ = [
    "Attention",
    "Bottleneck",
    "BuildMixer",
    "ConvBnAct",
    "ConvNeXtBlock",
    "DropPath",
    "Features",
    "InvertedResidual",
    "LayerNorm2d",
    "MHSA2d",
    "MapStage",
    "Mlp",
    "MlpDwConv",
    "MobileViTLayer",
    "MobileViTStage",
    "PatchMerging",
    "QuickGELU",
    "SqueezeExcite",
    "TokenStage",
    "TokenTransformer",
    "TokensToToken",
    "TransformerBlock",
    "WindowAttention",
    "WindowLayout",
    "attend",
    "conv_embed",
    "conv_stem",
    "fold_patches",
    "fused_attention",
    "mbconv_embed",
    "merge_embed",
    "patch_embed",
    "resample_abs_pos_embed",
    "resample_bias_table",
    "resample_rel_embed",
    "resnet_stem",
    "se_reduced",
    "set_fused_attention",
    "sinusoid_table",
    "t2t_embed",
    "tokens_to_map",
    "unfold_patches",
    "uses_fused_attention",
]
