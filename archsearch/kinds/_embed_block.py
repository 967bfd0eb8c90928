"""``embed: block``: no separate embedding; the stage's first block downsamples (ResNet stages,
He et al. 2016)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import CheckContext, FeatureShape, Path, PositiveInt, StrictModel
from ._base import EmbedKind, FamilyKind, Share, omit_defaults

__all__ = ["BLOCK_EMBED", "BlockEmbed"]


class BlockEmbed(StrictModel):
    """No separate embedding: the stage's first block downsamples (ResNet stages).

    A ``bottleneck`` block strides its 3x3 conv (ResNet v1.5) or 2x2 average-pools after MHSA
    (BoTNet), with a strided 1x1 conv + BatchNorm on the shortcut (or, with ``shortcut: avg``,
    ResNet-D's average pool and 1x1 conv).
    """

    kind: Literal["block"] = "block"
    stride: PositiveInt = 1
    """Spatial stride of the stage's first block."""
    shortcut: Literal["conv", "avg"] = "conv"
    """The first block's projection shortcut (where the shape changes), bottleneck stages only:
    ``conv`` (strided 1x1 conv + BN) or ``avg`` (ResNet-D, He et al. 2019: a 2x2/stride average
    pool, ceil mode, padding not counted, then 1x1 conv + BN; no pool at stride 1)."""


class _Block(EmbedKind):
    name = "block"
    share = Share(reuse=("stride",), source="the same block at another stride")
    schema = BlockEmbed

    def normalize(
        self, ctx: CheckContext, epath: Path, stage: Any, family: FamilyKind, shape: FeatureShape, act: str
    ) -> tuple[Any, FeatureShape | None, int]:
        """The map passes unchanged; the stride goes to the first block."""
        embed = stage.embed
        if embed.shortcut != "conv" and family.name != "bottleneck":
            ctx.fail(
                (*epath, "shortcut"),
                f"the shortcut form applies to bottleneck stages, but this stage is a {family.name} stage",
                value=embed.shortcut,
                allowed="conv (or a bottleneck stage)",
            )
            return embed, None, 1
        return embed, FeatureShape(shape.channels, shape.height, shape.width), embed.stride

    def build(self, embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
        return nn.Identity()

    def canonical(self, data: dict[str, Any]) -> dict[str, Any]:
        """Without ``shortcut`` at its default (added for issue 14): earlier spec hashes hold."""
        return omit_defaults(data, BlockEmbed, ("shortcut",))


BLOCK_EMBED = _Block()
