"""Builders of the kinds not yet migrated to :mod:`archsearch.kinds` (embeddings, block families),
in explicit tables: nothing registers itself at import time. Mixers and stems are built by their
kind (``archsearch.kinds.MIXERS``, ``STEMS``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    conv_embed,
    mbconv_embed,
    merge_embed,
    patch_embed,
    t2t_embed,
)
from ._stages import MapStage, TokenStage

__all__ = ["BLOCKS", "EMBEDS"]


def _no_embed(embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
    return nn.Identity()


def _mixer_is_block(plan: BlockPlan, build_mixer: BuildMixer) -> nn.Module:
    """Families whose block is the mixer itself (mbconv: the inverted residual)."""
    return build_mixer(plan)


#: embedding kind -> ``builder(embed, in_channels, dim, norm_eps) -> nn.Module``.
EMBEDS: KindRegistry[Callable[..., nn.Module]] = KindRegistry(
    "token embedding",
    (
        ("conv", conv_embed),
        ("patch", patch_embed),
        ("block", _no_embed),
        ("t2t", t2t_embed),
        ("merge", merge_embed),
        ("mbconv", mbconv_embed),
        ("none", _no_embed),
    ),
)
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
