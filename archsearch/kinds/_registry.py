"""The one place kinds are registered: every kind archsearch knows, one line each.

Adding a kind is one module plus one line here. The order is the order of the schema unions, of
the allowed-kind lists in error messages and of the docs.
"""

from __future__ import annotations

from ._base import FamilyKind, KindRegistry, MixerKind, StemKind
from ._family_bottleneck import BOTTLENECK
from ._family_convnext import CONVNEXT
from ._family_mbconv import MBCONV as MBCONV_FAMILY
from ._family_mobilevit import MOBILEVIT as MOBILEVIT_FAMILY
from ._family_transformer import TRANSFORMER
from ._mixer_attention import ATTENTION
from ._mixer_conv import CONV
from ._mixer_dwconv import DWCONV
from ._mixer_mbconv import MBCONV
from ._mixer_mhsa import MHSA
from ._mixer_mobilevit import MOBILEVIT
from ._mixer_window import WINDOW
from ._stem_conv import CONV_STEM
from ._stem_resnet import RESNET_STEM

__all__ = ["FAMILIES", "MIXERS", "STEMS"]

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
    ),
)

#: Stems (``spec.stem``).
STEMS: KindRegistry[StemKind] = KindRegistry(
    "stem",
    (
        (RESNET_STEM.name, RESNET_STEM),
        (CONV_STEM.name, CONV_STEM),
    ),
)
