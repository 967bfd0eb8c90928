"""``block: transformer``: Pre-norm transformer block: x + mixer(norm(x)); x + mlp(norm(x)) (ViT,
CvT, Swin, PVT v2).

Its block and stage builders still live in :mod:`archsearch.compiler` and its cost in
:mod:`archsearch.cost` (to migrate here).
"""

from __future__ import annotations

from ._base import FamilyKind

__all__ = ["TRANSFORMER"]

TRANSFORMER = FamilyKind(
    name="transformer",
    act="gelu",
    embeds=("conv", "patch", "t2t", "merge", "mbconv", "none"),
    mlp_ratio=4.0,
    stage_fields=("cls_token", "mlp_dwconv", "norm_out"),
    keeps_dim=True,
    head_norm="tokens",
)
