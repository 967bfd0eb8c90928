"""``block: mobilevit``: MobileViT stages: the blocks are the transformer layers of one MobileViT
block (Mehta & Rastegari 2022).

Its block and stage builders still live in :mod:`archsearch.compiler` and its cost in
:mod:`archsearch.cost` (to migrate here).
"""

from __future__ import annotations

from ._base import FamilyKind

__all__ = ["MOBILEVIT"]

MOBILEVIT = FamilyKind(
    name="mobilevit",
    act="silu",
    embeds=("conv", "patch", "mbconv", "none"),
    mlp_ratio=2.0,
    width_name="transformer_dim",
)
