"""``block: convnext``: ConvNeXt block: depthwise conv, LayerNorm, MLP, layer scale (Liu et al. 2022).

Its block and stage builders still live in :mod:`archsearch.compiler` and its cost in
:mod:`archsearch.cost` (to migrate here).
"""

from __future__ import annotations

from ._base import FamilyKind

__all__ = ["CONVNEXT"]

CONVNEXT = FamilyKind(
    name="convnext",
    act="gelu",
    embeds=("conv", "patch", "none"),
    mlp_ratio=4.0,
    keeps_dim=True,
    head_norm="pooled",
)
