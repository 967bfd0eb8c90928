"""The kind registry: one module per mixer (and block family), registered in one place.

Each kind owns its schema model, its normalisation (checks, output shape), its module builder,
its analytic cost, its latency-table key and its weight-sharing rule. The schema unions, the
family tables, the docs and the allowed-kind lists in errors are derived from :data:`MIXERS` and
:data:`FAMILIES` (and :data:`STEMS`, :data:`EMBEDS`). README.md, "How archsearch is built",
says how to add one.
"""

from ._base import (
    EmbedKind,
    FamilyKind,
    KindRegistry,
    MixerKind,
    Share,
    StemKind,
    check_heads,
    check_norm_first,
    check_odd_kernel,
    check_se,
)
from ._embed_block import BlockEmbed
from ._embed_conv import ConvEmbed
from ._embed_mbconv import MBConvEmbed
from ._embed_merge import MergeEmbed
from ._embed_none import NoEmbed
from ._embed_patch import PatchEmbed
from ._embed_t2t import T2TEmbed
from ._mixed import BlockMixer, build_mixer, canonical_mixers, mixable, resolve_mixers
from ._mixer_attention import AttentionMixer
from ._mixer_conv import ConvMixer
from ._mixer_dwconv import DwConvMixer
from ._mixer_gpsa import GpsaMixer
from ._mixer_halo import HaloMixer
from ._mixer_involution import InvolutionMixer
from ._mixer_lambda import LambdaMixer
from ._mixer_longshort import LongShortMixer
from ._mixer_mbconv import MBConvMixer
from ._mixer_mhsa import MhsaMixer
from ._mixer_mobilevit import MobileViTMixer
from ._mixer_pool import PoolMixer
from ._mixer_pooling import PoolingMixer
from ._mixer_window import WindowMixer
from ._registry import EMBEDS, FAMILIES, MIXERS, STEMS
from ._stem_conv import ConvStem
from ._stem_deep import DeepStem
from ._stem_resnet import ResNetStem
from ._stem_resnetv2 import ResNetV2Stem
from ._tables import (
    FAMILY_ACT,
    FAMILY_EMBEDS,
    FAMILY_EXPANSION,
    FAMILY_MIXERS,
    FAMILY_MLP_RATIO,
    FAMILY_ONLY_FIELDS,
    MIXER_FAMILY,
    MIXER_POS_EMBEDS,
    PER_BLOCK_MIXER_FIELDS,
    Embed,
    FamilyName,
    Mixer,
    Stem,
)

__all__ = [
    "EMBEDS",
    "FAMILIES",
    "FAMILY_ACT",
    "FAMILY_EMBEDS",
    "FAMILY_EXPANSION",
    "FAMILY_MIXERS",
    "FAMILY_MLP_RATIO",
    "FAMILY_ONLY_FIELDS",
    "MIXERS",
    "MIXER_FAMILY",
    "MIXER_POS_EMBEDS",
    "PER_BLOCK_MIXER_FIELDS",
    "STEMS",
    "AttentionMixer",
    "BlockEmbed",
    "BlockMixer",
    "ConvEmbed",
    "ConvMixer",
    "ConvStem",
    "DeepStem",
    "DwConvMixer",
    "Embed",
    "EmbedKind",
    "FamilyKind",
    "FamilyName",
    "GpsaMixer",
    "HaloMixer",
    "InvolutionMixer",
    "KindRegistry",
    "LambdaMixer",
    "LongShortMixer",
    "MBConvEmbed",
    "MBConvMixer",
    "MergeEmbed",
    "MhsaMixer",
    "Mixer",
    "MixerKind",
    "MobileViTMixer",
    "NoEmbed",
    "PatchEmbed",
    "PoolMixer",
    "PoolingMixer",
    "ResNetStem",
    "ResNetV2Stem",
    "Share",
    "Stem",
    "StemKind",
    "T2TEmbed",
    "WindowMixer",
    "build_mixer",
    "canonical_mixers",
    "check_heads",
    "check_norm_first",
    "check_odd_kernel",
    "check_se",
    "mixable",
    "resolve_mixers",
]
