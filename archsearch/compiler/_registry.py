"""Builders of the kinds not yet migrated to :mod:`archsearch.kinds` (block families), in an
explicit table: nothing registers itself at import time. Mixers, stems and embeddings are built by
their kind (``archsearch.kinds.MIXERS``, ``STEMS``, ``EMBEDS``)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..core import BlockPlan
from ..kinds import KindRegistry
from ..ops import (
    Bottleneck,
    BuildMixer,
    ConvNeXtBlock,
    MobileViTLayer,
    MobileViTStage,
    TransformerBlock,
)
from ._stages import MapStage, TokenStage

__all__ = ["BLOCKS"]


def _mixer_is_block(plan: BlockPlan, build_mixer: BuildMixer) -> nn.Module:
    """Families whose block is the mixer itself (mbconv: the inverted residual)."""
    return build_mixer(plan)


#: family -> (``block(plan, build_mixer)``, ``stage(plan, embed, blocks)``).
BLOCKS: KindRegistry[tuple[Callable[..., nn.Module], Callable[..., nn.Module]]] = KindRegistry(
    "block family",
    (
        ("bottleneck", (Bottleneck, MapStage)),
        ("transformer", (TransformerBlock, TokenStage)),
        ("convnext", (ConvNeXtBlock, MapStage)),
        ("mbconv", (_mixer_is_block, MapStage)),
        ("mobilevit", (MobileViTLayer, MobileViTStage)),
    ),
)
