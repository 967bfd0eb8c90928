"""``block: bottleneck``: ResNet bottleneck: 1x1 reduce -> mixer -> 1x1 expand, residual (He et al.
2016; BoTNet).

Its block and stage builders still live in :mod:`archsearch.compiler` and its cost in
:mod:`archsearch.cost` (to migrate here).
"""

from __future__ import annotations

from ._base import FamilyKind

__all__ = ["BOTTLENECK"]

BOTTLENECK = FamilyKind(
    name="bottleneck",
    act="relu",
    embeds=("conv", "patch", "block", "t2t", "merge", "mbconv", "none"),
    expansion=4,
    width_name="bottleneck width",
    bottleneck_width=True,
)
