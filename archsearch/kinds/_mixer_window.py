"""``mixer: window``: Swin (shifted) window attention with a relative position bias table
(Liu et al. 2021, "Swin Transformer"; timm ``WindowAttention`` / ``SwinTransformerBlock``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from torch import nn

from ..core import (
    BlockPlan,
    CheckContext,
    Cost,
    FeatureShape,
    Path,
    PositiveInt,
    StrictModel,
    window_geometry,
)
from ..ops import WindowAttention
from ._base import MixerKind, Share, check_heads

__all__ = ["WINDOW", "WindowMixer"]


class WindowMixer(StrictModel):
    """Swin (shifted) window attention over the token map. Family: ``transformer``.

    Tokens attend within non-overlapping ``window`` x ``window`` windows; a shifted block first
    rolls the map by ``window // 2`` and masks pairs that the roll brought together. A learned
    relative position bias, a ``(2w-1)^2`` x heads table per block (``pos_embed: relative_bias``,
    the default), is added to the logits. As timm: where a side of the map is no larger than the
    window, the window shrinks to it and that side is not shifted; a side that is not a multiple
    of the window is zero-padded at the bottom/right after the roll. No class tokens.
    """

    kind: Literal["window"] = "window"
    heads: PositiveInt = 1
    """Attention heads; must divide the stage dim."""
    window: PositiveInt = 7
    """Side of the square attention window, in tokens."""
    shift: bool | Annotated[list[bool], Field(min_length=1)] = True
    """Cyclic shift by ``window // 2``: ``true`` shifts the odd blocks of the stage (Swin's
    alternation), ``false`` none; a list gives one per block."""
    qkv_bias: bool = True
    """Bias in the q/k/v Linear."""


class _Window(MixerKind):
    name = "window"
    share = Share(
        nested=("heads",),
        reuse=("shift",),
        source="window size: one set per option (SPOS); heads: AutoFormer weight entanglement",
    )
    schema = WindowMixer
    family = "transformer"
    pos_embeds = ("relative_bias", "none", "absolute")

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_heads(ctx, mpath, mixer.heads, width, what)

    def per_block_values(self, ctx: CheckContext, path: Path, stage: Any, depth: int) -> dict[str, Any]:
        """Each block's ``shift`` (``true``: Swin's alternation, odd blocks); no class tokens."""
        mixer = stage.mixer
        if stage.cls_token:
            ctx.fail(
                (*path, "cls_token"),
                "window attention partitions the token map into windows and has no place for class tokens",
                value=True,
                allowed="false (with head pool 'avg')",
            )
        if isinstance(mixer.shift, list):
            return {"shift": ctx.per_block((*path, "mixer", "shift"), mixer.shift, depth, None)}
        return {"shift": [mixer.shift and j % 2 == 1 for j in range(depth)]}

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        return FeatureShape(dim, shape.height, shape.width, shape.cls_tokens)

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, H*W, dim)`` tokens on an ``H x W`` map -> the same shape."""
        mixer = block.mixer
        assert isinstance(mixer, WindowMixer)
        size = (block.in_shape.height, block.in_shape.width)
        window, shift = window_geometry(mixer.window, bool(mixer.shift), *size)
        return WindowAttention(
            block.dim,
            mixer.heads,
            size,
            window,
            shift,
            relative=block.pos_embed == "relative_bias",
            qkv_bias=mixer.qkv_bias,
        )

    def fixed_size(self, block: BlockPlan) -> str | None:
        """The windows' layout (roll, padding, shift mask) is made for the built map."""
        h, w = block.in_shape.height, block.in_shape.width
        return f"lays out its windows (and shift mask) for the {h}x{w} token map"

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        """q/k/v on every padded window token, attention within windows, the output projection
        after cropping (per real token)."""
        mixer = block.mixer
        assert isinstance(mixer, WindowMixer)
        c, h, w = block.dim, block.in_shape.height, block.in_shape.width
        (wh, ww), _ = window_geometry(mixer.window, bool(mixer.shift), h, w)
        n = wh * ww
        padded = -(-h // wh) * wh * -(-w // ww) * ww
        cost.linear(padded, c, 3 * c, mixer.qkv_bias)
        if block.pos_embed == "relative_bias":
            cost.params += (2 * wh - 1) * (2 * ww - 1) * mixer.heads
        cost.op(2 * padded * n * c, padded * c)  # q k^T and attn v in each window, all heads
        cost.linear(h * w, c, c)


WINDOW = _Window()
