"""``embed: block``: no separate embedding; the stage's first block downsamples (ResNet stages,
He et al. 2016)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import CheckContext, FeatureShape, Path, PositiveInt, StrictModel
from ._base import EmbedKind, FamilyKind, Share

__all__ = ["BLOCK_EMBED", "BlockEmbed"]


class BlockEmbed(StrictModel):
    """No separate embedding: the stage's first block downsamples (ResNet stages).

    A ``bottleneck`` block strides its 3x3 conv (ResNet v1.5) or 2x2 average-pools after MHSA
    (BoTNet), with a strided 1x1 conv + BatchNorm on the shortcut.
    """

    kind: Literal["block"] = "block"
    stride: PositiveInt = 1
    """Spatial stride of the stage's first block."""


class _Block(EmbedKind):
    name = "block"
    share = Share(reuse=("stride",), source="the same block at another stride")
    schema = BlockEmbed

    def normalize(
        self, ctx: CheckContext, epath: Path, stage: Any, family: FamilyKind, shape: FeatureShape, act: str
    ) -> tuple[Any, FeatureShape | None, int]:
        """The map passes unchanged; the stride goes to the first block."""
        embed = stage.embed
        return embed, FeatureShape(shape.channels, shape.height, shape.width), embed.stride

    def build(self, embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
        return nn.Identity()


BLOCK_EMBED = _Block()
