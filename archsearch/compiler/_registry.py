"""Builders of the kinds not yet migrated to :mod:`archsearch.kinds` (stems, embeddings), in
explicit tables: nothing registers itself at import time. Mixers and block families are built by
their kinds (``archsearch.kinds.MIXERS``, ``FAMILIES``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..kinds import KindRegistry
from ..ops import (
    conv_embed,
    conv_stem,
    mbconv_embed,
    merge_embed,
    patch_embed,
    resnet_stem,
    t2t_embed,
)

__all__ = ["EMBEDS", "STEMS"]


def _no_embed(embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
    return nn.Identity()


#: stem kind -> ``builder(stem, in_channels) -> nn.Module``.
STEMS: KindRegistry[Callable[..., nn.Module]] = KindRegistry(
    "stem", (("resnet", resnet_stem), ("conv", conv_stem))
)
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
