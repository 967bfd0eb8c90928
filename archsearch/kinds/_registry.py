"""The one place kinds are registered: every kind archsearch knows, one line each.

Adding a kind is one module plus one line here. The order is the order of the schema unions, of
the allowed-kind lists in error messages and of the docs.
"""

from __future__ import annotations

from ._base import EmbedKind, FamilyKind, KindRegistry, MixerKind, StemKind
from ._embed_block import BLOCK_EMBED
from ._embed_conv import CONV_EMBED
from ._embed_mbconv import MBCONV_EMBED
from ._embed_merge import MERGE_EMBED
from ._embed_none import NO_EMBED
from ._embed_patch import PATCH_EMBED
from ._embed_t2t import T2T_EMBED
from ._family_bottleneck import BOTTLENECK
from ._family_convnext import CONVNEXT
from ._family_mbconv import MBCONV as MBCONV_FAMILY
from ._family_metaformer import METAFORMER
from ._family_mobilevit import MOBILEVIT as MOBILEVIT_FAMILY
from ._family_multiscale import MULTISCALE
from ._family_transformer import TRANSFORMER
from ._mixer_attention import ATTENTION
from ._mixer_conv import CONV
from ._mixer_dwconv import DWCONV
from ._mixer_gpsa import GPSA
from ._mixer_halo import HALO
from ._mixer_involution import INVOLUTION
from ._mixer_lambda import LAMBDA
from ._mixer_longshort import LONGSHORT
from ._mixer_mbconv import MBCONV
from ._mixer_mhsa import MHSA
from ._mixer_mobilevit import MOBILEVIT
from ._mixer_pool import POOL
from ._mixer_pooling import POOLING
from ._mixer_window import WINDOW
from ._stem_conv import CONV_STEM
from ._stem_deep import DEEP_STEM
from ._stem_resnet import RESNET_STEM
from ._stem_resnetv2 import RESNETV2_STEM

__all__ = ["EMBEDS", "FAMILIES", "MIXERS", "STEMS"]

#: Token mixers (``stages[i].mixer``).
MIXERS: KindRegistry[MixerKind] = KindRegistry(
    "token mixer",
    (
        (CONV.name, CONV),
        (MHSA.name, MHSA),
        (ATTENTION.name, ATTENTION),
        (WINDOW.name, WINDOW),
        (DWCONV.name, DWCONV),
        (MBCONV.name, MBCONV),
        (MOBILEVIT.name, MOBILEVIT),
        (POOL.name, POOL),
        (LAMBDA.name, LAMBDA),
        (HALO.name, HALO),
        (GPSA.name, GPSA),
        (LONGSHORT.name, LONGSHORT),
        (INVOLUTION.name, INVOLUTION),
        (POOLING.name, POOLING),
    ),
)

#: Block families (``stages[i].block``).
FAMILIES: KindRegistry[FamilyKind] = KindRegistry(
    "block family",
    (
        (BOTTLENECK.name, BOTTLENECK),
        (TRANSFORMER.name, TRANSFORMER),
        (CONVNEXT.name, CONVNEXT),
        (MBCONV_FAMILY.name, MBCONV_FAMILY),
        (MOBILEVIT_FAMILY.name, MOBILEVIT_FAMILY),
        (METAFORMER.name, METAFORMER),
        (MULTISCALE.name, MULTISCALE),
    ),
)

#: Stems (``spec.stem``).
STEMS: KindRegistry[StemKind] = KindRegistry(
    "stem",
    (
        (RESNET_STEM.name, RESNET_STEM),
        (CONV_STEM.name, CONV_STEM),
        (DEEP_STEM.name, DEEP_STEM),
        (RESNETV2_STEM.name, RESNETV2_STEM),
    ),
)

#: Token embeddings (``stages[i].embed``).
EMBEDS: KindRegistry[EmbedKind] = KindRegistry(
    "token embedding",
    (
        (CONV_EMBED.name, CONV_EMBED),
        (PATCH_EMBED.name, PATCH_EMBED),
        (BLOCK_EMBED.name, BLOCK_EMBED),
        (T2T_EMBED.name, T2T_EMBED),
        (MERGE_EMBED.name, MERGE_EMBED),
        (MBCONV_EMBED.name, MBCONV_EMBED),
        (NO_EMBED.name, NO_EMBED),
    ),
)
