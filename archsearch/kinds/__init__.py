"""The kind registry: one module per mixer (and block family), registered in one place.

Each kind owns its schema model, its normalisation (checks, output shape), its module builder,
its analytic cost, its latency-table key and its weight-sharing rule. The schema unions, the
family tables, the docs and the allowed-kind lists in errors are derived from :data:`MIXERS` and
:data:`FAMILIES` (and :data:`STEMS`, :data:`EMBEDS`). See ``KINDS_HOWTO.md`` for adding one.
"""

from ._base import (
    EmbedKind,
    FamilyKind,
    KindRegistry,
    MixerKind,
    StemKind,
    check_heads,
    check_norm_first,
    check_odd_kernel,
)
from ._mixer_attention import AttentionMixer
from ._mixer_conv import ConvMixer
from ._mixer_dwconv import DwConvMixer
from ._mixer_mbconv import MBConvMixer
from ._mixer_mhsa import MhsaMixer
from ._mixer_mobilevit import MobileViTMixer
from ._mixer_window import WindowMixer
from ._registry import FAMILIES, MIXERS, STEMS
from ._stem_conv import ConvStem
from ._stem_resnet import ResNetStem
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
    FamilyName,
    Mixer,
    Stem,
)

__all__ = [
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
    "ConvMixer",
    "ConvStem",
    "DwConvMixer",
    "EmbedKind",
    "FamilyKind",
    "FamilyName",
    "KindRegistry",
    "MBConvMixer",
    "MhsaMixer",
    "Mixer",
    "MixerKind",
    "MobileViTMixer",
    "ResNetStem",
    "Stem",
    "StemKind",
    "WindowMixer",
    "check_heads",
    "check_norm_first",
    "check_odd_kernel",
]
