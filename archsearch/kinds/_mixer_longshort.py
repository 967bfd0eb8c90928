"""``mixer: longshort``: Transformer-LS attention for vision (Zhu et al., NeurIPS 2021, "Long-Short
Transformer: Efficient Transformers for Language and Vision"; official NVIDIA/transformer-ls
``imagenet/models/layers/transformer_ls.py::AttentionLS`` and, for ``attention: full``, the ViL
``full_attention.py::Attention`` its ImageNet models use in their last stages)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from torch import nn

from ..core import MAX_WIDTH, BlockPlan, CheckContext, Cost, FeatureShape, Path, PositiveInt, StrictModel
from ..ops import LongShortAttention, ViLAttention, long_short_geometry
from ._base import MixerKind, check_heads

__all__ = ["LONGSHORT", "LongShortMixer"]


class LongShortMixer(StrictModel):
    """Long-short attention (Transformer-LS for vision): every map token attends, in one softmax,
    to ``rank`` landmarks per head (the long-term branch: keys and values projected by a softmax
    over the tokens of a Linear of the input, LayerNormed: DualLN) and to the ``(w + 2 (w // 2))^2``
    tokens around its ``window`` x ``window`` segment (the short-term branch, with a relative
    position bias under ``pos_embed: relative_bias``, the default), and to the class token (at most
    one), which attends to its own key and to the map tokens' outputs. Keys and values are
    LayerNormed first; the DualLN norms use eps 1e-5 as the official code. ``attention: full`` is
    instead the ViL full attention with a 2-D relative position bias (map and class-token terms)
    that the official ImageNet models use in their stages with arch flag ``s0``. Where the official
    models differ: they need a map of whole segments (here one is padded and masked), and their
    absolute position embedding (arch flag ``a1``) is two factorised x/y tables, where ``pos_embed:
    absolute`` is one learned table over all tokens. Family: ``transformer``.
    """

    kind: Literal["longshort"] = "longshort"
    heads: PositiveInt = 1
    """Attention heads; must divide the stage dim."""
    window: Annotated[int, Field(ge=0, le=MAX_WIDTH)] = 7
    """Segment size ``w`` of the short-term branch, in tokens (0: no short-term branch). A map that
    is not a multiple of it is zero-padded at the bottom/right, the padding masked (the official
    code requires a multiple). Not for ``attention: full``."""
    rank: Annotated[int, Field(ge=0, le=MAX_WIDTH)] = 8
    """Landmarks ``r`` per head of the long-term dynamic projection (0: no long-term branch; its
    LayerNorm ``dual_ln_dp`` is made all the same, unused, as in the official code). Not for
    ``attention: full``."""
    attention: Literal["long_short", "full"] = "long_short"
    """``long_short``: Transformer-LS attention (official arch flag ``s1``); ``full``: ViL's global
    attention with relative position bias (``s0``)."""
    qkv_bias: bool = True
    """Bias in the q/k/v Linear."""


class _LongShort(MixerKind):
    name = "longshort"
    schema = LongShortMixer
    family = "transformer"
    pos_embeds = ("relative_bias", "none", "absolute")

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_heads(ctx, mpath, mixer.heads, width, what)
        if mixer.attention == "full":
            for name in sorted({"window", "rank"} & mixer.model_fields_set):
                ctx.fail(
                    (*mpath, name),
                    f"{name} belongs to the long-short branches, which attention: full does not have",
                    value=getattr(mixer, name),
                    allowed="attention: long_short (or no " + name + ")",
                )
        elif not mixer.window and not mixer.rank:
            ctx.fail(
                (*mpath, "window"),
                "with window 0 and rank 0 the map tokens have neither a short-term nor a long-term branch",
                value=0,
                allowed="a segment size of at least 1, or rank >= 1",
            )

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        """Long-short attention takes at most one class token."""
        if mixer.attention == "long_short" and shape.cls_tokens > 1:
            ctx.fail(
                (*mpath[:2], "dist_token"),
                "long-short attention has one global token (the class token)",
                value=True,
                allowed="false",
            )
            return None
        return FeatureShape(dim, shape.height, shape.width, shape.cls_tokens)

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, cls + H*W, dim)`` tokens on an ``H x W`` map -> the same shape."""
        mixer = block.mixer
        assert isinstance(mixer, LongShortMixer)
        shape, relative = block.in_shape, block.pos_embed == "relative_bias"
        if mixer.attention == "full":
            size = (shape.height, shape.width)
            return ViLAttention(
                block.dim, mixer.heads, size, shape.cls_tokens, relative=relative, qkv_bias=mixer.qkv_bias
            )
        return LongShortAttention(
            block.dim,
            mixer.heads,
            mixer.window,
            mixer.rank,
            shape.cls_tokens,
            relative=relative,
            qkv_bias=mixer.qkv_bias,
        )

    def fixed_size(self, block: BlockPlan) -> str | None:
        """ViL's full attention holds a relative position bias table for the built map."""
        mixer = block.mixer
        if mixer.attention == "full" and block.pos_embed == "relative_bias":
            h, w = block.in_shape.height, block.in_shape.width
            return f"holds a relative position bias table for the {h}x{w} token map"
        return None

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        """q/k/v Linear; long-short: the DualLN norms, the dynamic projection and its landmarks,
        the segment-neighbourhood, landmark and class-token logits and products, the class token's
        attention over the map outputs; full: ``q k^T`` and ``attn v`` over all tokens and the bias
        tables; the output Linear."""
        mixer = block.mixer
        assert isinstance(mixer, LongShortMixer)
        c, heads, shape = block.dim, mixer.heads, block.in_shape
        g, hw = shape.cls_tokens, shape.height * shape.width
        n = g + hw
        relative = block.pos_embed == "relative_bias"
        cost.linear(n, c, 3 * c, mixer.qkv_bias)
        if mixer.attention == "full":
            if relative:
                cost.params += (2 * shape.height - 1) * (2 * shape.width - 1) * heads
                cost.params += 2 * heads * g + heads * g * g
            cost.op(2 * n * n * c, n * c)  # q k^T and attn v over all heads
            cost.linear(n, c, c)
            return
        r, win = mixer.rank, mixer.window
        # queries of the map padded to whole segments (the padding is cropped after attention)
        nq = -(-shape.height // win) * win * -(-shape.width // win) * win if win else hw
        cost.layer_norm(c, n * c)  # dual_ln_full on the keys ...
        cost.op(5 * n * c, n * c)  # ... and on the values
        cost.params += 2 * c  # dual_ln_dp (made whatever the rank, as the official code)
        if r:
            cost.linear(hw, c, r * heads)  # to_dynamic_projection
            for _ in range(2):  # landmarks of the keys and of the values, each LayerNormed
                cost.op(r * hw * c, r * c)
                cost.op(5 * r * c, r * c)
            cost.op(nq * c * r, nq * heads * r)  # q . landmark keys
            cost.op(nq * r * c, nq * c)  # attn . landmark values
        if win:
            _, kv_width, table = long_short_geometry(win)
            kv = kv_width * kv_width
            if relative:
                cost.params += table * heads
            cost.op(nq * kv * c, nq * heads * kv)  # q . neighbourhood keys
            cost.op(nq * kv * c, nq * c)  # attn . neighbourhood values
        if g:
            cost.op(nq * c * g, nq * heads * g)  # map queries . class key
            cost.op(g * g * c, heads * g * g)  # class query . class key
            cost.op(g * hw * c, heads * g * hw)  # class query . map outputs
            cost.op(g * hw * c, g * c)  # its attention . map outputs
            cost.op(g * g * c, g * c)  # its attention . class value
        cost.linear(n, c, c)


LONGSHORT = _LongShort()
