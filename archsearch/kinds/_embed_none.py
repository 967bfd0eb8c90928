"""``embed: none``: the stage continues on the previous feature map."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import CheckContext, FeatureShape, Path, StrictModel
from ._base import EmbedKind, FamilyKind

__all__ = ["NO_EMBED", "NoEmbed"]


class NoEmbed(StrictModel):
    """No embedding: the stage continues on the previous feature map unchanged."""

    kind: Literal["none"] = "none"


class _None(EmbedKind):
    name = "none"
    schema = NoEmbed

    def normalize(
        self, ctx: CheckContext, epath: Path, stage: Any, family: FamilyKind, shape: FeatureShape, act: str
    ) -> tuple[Any, FeatureShape | None, int]:
        """A family whose blocks keep their width (``keeps_dim``) needs the stage dim to equal the
        incoming channels."""
        embed = stage.embed
        if family.keeps_dim and shape.channels != stage.dim:
            ctx.fail(
                (*epath[:-1], "dim"),
                f"embed 'none' keeps the {shape.channels} incoming channels, so dim must be "
                f"{shape.channels} (or use a conv/patch embedding)",
                value=stage.dim,
            )
            return embed, None, 1
        return embed, FeatureShape(shape.channels, shape.height, shape.width), 1

    def build(self, embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
        return nn.Identity()


NO_EMBED = _None()
