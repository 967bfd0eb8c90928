"""``embed: merge``: Swin's patch merging (Liu et al. 2021; timm ``PatchMerging``)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import CheckContext, Cost, FeatureShape, Path, StagePlan, StrictModel
from ..ops import merge_embed
from ._base import EmbedKind, FamilyKind

__all__ = ["MERGE_EMBED", "MergeEmbed"]


class MergeEmbed(StrictModel):
    """Swin patch merging: each 2x2 neighbourhood concatenated (4C), LayerNorm, Linear to ``dim``.

    Halves the map (an odd side is zero-padded at the bottom/right first, as timm does); the
    Linear has no bias. Needs a map of at least 2x2.
    """

    kind: Literal["merge"] = "merge"


class _Merge(EmbedKind):
    name = "merge"
    schema = MergeEmbed

    def normalize(
        self, ctx: CheckContext, epath: Path, stage: Any, family: FamilyKind, shape: FeatureShape, act: str
    ) -> tuple[Any, FeatureShape | None, int]:
        """Halves the map, rounding up; needs at least 2x2."""
        embed = stage.embed
        h, w = shape.height, shape.width
        if h < 2 or w < 2:
            ctx.fail(
                (*epath, "kind"),
                f"patch merging concatenates 2x2 neighbourhoods, but the map here is only {h}x{w}",
                value="merge",
                allowed="a map of at least 2x2 (merge earlier, or use embed 'none')",
            )
            return embed, None, 1
        return embed, FeatureShape(stage.dim, -(-h // 2), -(-w // 2)), 1

    def build(self, embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
        return merge_embed(embed, c_in, dim, eps)

    def cost(self, stage: StagePlan, c_in: int, cost: Cost) -> None:
        """LayerNorm(4C) and Linear(4C -> dim) per merged token."""
        shape = stage.embed_shape
        tokens = shape.height * shape.width
        cost.layer_norm(4 * c_in, 4 * c_in * tokens)
        cost.linear(tokens, 4 * c_in, stage.dim, bias=False)


MERGE_EMBED = _Merge()
