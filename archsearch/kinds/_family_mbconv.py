"""``block: mbconv``: MobileNetV2 inverted residual stages (Sandler et al. 2018).

Its block and stage builders still live in :mod:`archsearch.compiler` and its cost in
:mod:`archsearch.cost` (to migrate here).
"""

from __future__ import annotations

from ._base import FamilyKind

__all__ = ["MBCONV"]

MBCONV = FamilyKind(
    name="mbconv",
    act="silu",
    embeds=("conv", "patch", "block", "mbconv", "none"),
    expansion=4,
)
