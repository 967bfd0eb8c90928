"""Layers and blocks that compiled models are made of."""

from ._attention import Attention, MHSA2d, attend, fused_attention, set_fused_attention, uses_fused_attention
from ._blocks import Bottleneck, BuildMixer, ConvNeXtBlock, TransformerBlock
from ._embed import conv_embed, patch_embed, resnet_stem
from ._gpsa import GatedPositionalAttention, relative_indices
from ._halo import HaloAttention, RelativeTables
from ._involution import INVOLUTION_GROUP, INVOLUTION_REDUCTION, Involution
from ._lambda import LambdaLayer
from ._layers import (
    DropPath,
    LayerNorm2d,
    Mlp,
    MlpDwConv,
    PosConv,
    QuickGELU,
    SqueezeExcite,
    se_reduced,
    tokens_to_map,
)
from ._longshort import DUAL_LN_EPS, LongShortAttention, ViLAttention, long_short_geometry, ls_relative_index
from ._metaformer import GROUP_NORM_EPS, LayerScale2d, MetaFormerBlock, Pooling
from ._mobile import (
    ConvBnAct,
    InvertedResidual,
    MobileViTLayer,
    MobileViTStage,
    conv_stem,
    deep_stem,
    fold_patches,
    mbconv_embed,
    unfold_patches,
)
from ._mvit import MultiScaleBlock, PoolingAttention, mvit_offsets, mvit_table_length
from ._resample import resample_abs_pos_embed, resample_bias_table, resample_rel_embed
from ._stages import Features, MapStage, TokenStage
from ._stdconv import BLOCK_GROUP_NORM_EPS, MaxPool2dSame, StdConv2d, block_norm, make_conv, resnetv2_stem
from ._t2t import TokensToToken, TokenTransformer, sinusoid_table, t2t_embed
from ._window import PatchMerging, WindowAttention, WindowLayout, merge_embed

__all__ = [
    "BLOCK_GROUP_NORM_EPS",
    "DUAL_LN_EPS",
    "GROUP_NORM_EPS",
    "INVOLUTION_GROUP",
    "INVOLUTION_REDUCTION",
    "Attention",
    "Bottleneck",
    "BuildMixer",
    "ConvBnAct",
    "ConvNeXtBlock",
    "DropPath",
    "Features",
    "GatedPositionalAttention",
    "HaloAttention",
    "InvertedResidual",
    "Involution",
    "LambdaLayer",
    "LayerNorm2d",
    "LayerScale2d",
    "LongShortAttention",
    "MHSA2d",
    "MapStage",
    "MaxPool2dSame",
    "MetaFormerBlock",
    "Mlp",
    "MlpDwConv",
    "MobileViTLayer",
    "MobileViTStage",
    "MultiScaleBlock",
    "PatchMerging",
    "Pooling",
    "PoolingAttention",
    "PosConv",
    "QuickGELU",
    "RelativeTables",
    "SqueezeExcite",
    "StdConv2d",
    "TokenStage",
    "TokenTransformer",
    "TokensToToken",
    "TransformerBlock",
    "ViLAttention",
    "WindowAttention",
    "WindowLayout",
    "attend",
    "block_norm",
    "conv_embed",
    "conv_stem",
    "deep_stem",
    "fold_patches",
    "fused_attention",
    "long_short_geometry",
    "ls_relative_index",
    "make_conv",
    "mbconv_embed",
    "merge_embed",
    "mvit_offsets",
    "mvit_table_length",
    "patch_embed",
    "relative_indices",
    "resample_abs_pos_embed",
    "resample_bias_table",
    "resample_rel_embed",
    "resnet_stem",
    "resnetv2_stem",
    "se_reduced",
    "set_fused_attention",
    "sinusoid_table",
    "t2t_embed",
    "tokens_to_map",
    "unfold_patches",
    "uses_fused_attention",
]
