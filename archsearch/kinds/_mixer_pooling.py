"""``mixer: pooling``: MViT v2's pooling attention (Li et al. 2022, "MViTv2: Improved Multiscale
Vision Transformers for Classification and Detection"; timm ``mvitv2.MultiScaleAttention``)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import (
    BlockPlan,
    CheckContext,
    Cost,
    FeatureShape,
    Kernel,
    Path,
    PerBlockInt,
    PositiveInt,
    StagePlan,
    StrictModel,
    conv_out,
    scalar,
)
from ..ops import PoolingAttention, mvit_table_length
from ._base import MixerKind, Share, check_heads, check_odd_kernel, check_strides_fit

__all__ = ["POOLING", "PoolingMixer"]


class PoolingMixer(StrictModel):
    """MViT v2 pooling attention (Li et al. 2022; timm ``mvitv2``). Family: ``multiscale``.

    One Linear makes queries, keys and values at the stage dim (a stage under ``embed: none``
    changes the width in its first block, whose shortcut is then a Linear of the normed input);
    each is pooled per head by a depthwise ``kernel`` x ``kernel`` conv (no bias, padding
    ``kernel // 2``, shared by the heads) and a LayerNorm over the head dim, the queries with stride
    ``q_stride`` (the block's shortcut is max-pooled to match: kernel ``q_stride + 1``), keys and
    values with ``kv_stride``. The logits get a decomposed relative position bias (one table per
    side, sized for the map the model is built on) and, with ``residual_pooling``, the pooled
    queries are added to the output. timm's adaptive key/value stride (4 at the first stage,
    divided by each stage's query stride) is written per stage: ``kv_stride`` 4, 2, 1, 1.
    """

    kind: Literal["pooling"] = "pooling"
    heads: PositiveInt = 1
    """Attention heads; must divide the stage dim."""
    kernel: Kernel = 3
    """Kernel of the pooling convs (odd; with ``kernel: 1`` and stride 1 a tensor is not pooled)."""
    q_stride: PerBlockInt = 1
    """Stride of the query pooling (MViT: 2 in a stage's first block); a list gives one per block."""
    kv_stride: PerBlockInt = 1
    """Stride of the key/value pooling; a list gives one per block."""
    qkv_bias: bool = True
    """Bias in the q/k/v Linear."""
    residual_pooling: bool = True
    """Add the pooled queries to the attention's output (MViT v2)."""
    rel_pos: bool = True
    """Decomposed relative position bias on the logits (MViT v2)."""


class _Pooling(MixerKind):
    name = "pooling"
    share = Share(
        centre=("rel_pos_h", "rel_pos_w"),
        refuse={
            name: "a stride decides whether a pooling conv exists (kernel 1) and the map the later "
            "blocks' relative position tables are made for; choose it outside a supernet"
            for name in ("q_stride", "kv_stride")
        },
        source="relative position tables: the centre of the largest, as BoTNet's",
    )
    schema = PoolingMixer
    family = "multiscale"
    pos_embeds = ("none", "absolute")
    per_block_fields = ("q_stride", "kv_stride")

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_odd_kernel(ctx, mpath, mixer.kernel)
        check_heads(ctx, mpath, mixer.heads, width, what)

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        """The queries' pooled map; the shortcut's max pool (kernel ``s + 1``) must give the same.
        Each stride at most the map's smaller side, as the attention mixer's."""
        strides = {name: scalar(getattr(mixer, name)) for name in self.per_block_fields}
        if not check_strides_fit(
            ctx, mpath, j, strides, shape, "the pooling would only sample its first row and column"
        ):
            return None
        s, k = strides["q_stride"], mixer.kernel
        sides = [conv_out(n, k, s, k // 2) for n in (shape.height, shape.width)]
        pooled = [conv_out(n, s + 1, s, (s + 1) // 2) for n in (shape.height, shape.width)]
        if s > 1 and pooled != sides:
            ctx.fail(
                (*mpath, "q_stride"),
                f"on the {shape.height}x{shape.width} map block {j} sees, the queries pool to "
                f"{sides[0]}x{sides[1]} but the shortcut's {s + 1}x{s + 1} max pool to "
                f"{pooled[0]}x{pooled[1]}",
                value=s,
                allowed="an even q_stride, or an odd one that does not divide the map's sides",
            )
            return None
        return FeatureShape(dim, sides[0], sides[1], shape.cls_tokens)

    def canonical(self, data: dict[str, Any], stage: StagePlan) -> dict[str, Any]:
        """``q_stride`` and ``kv_stride`` as one value per block."""
        return {**data, **{name: [getattr(b, name) for b in stage.blocks] for name in self.per_block_fields}}

    def fixed_size(self, block: BlockPlan) -> str | None:
        """The relative position tables are sized for the built map."""
        if not getattr(block.mixer, "rel_pos", True):
            return None
        h, w = block.in_shape.height, block.in_shape.width
        return f"sizes its relative position tables for the {h}x{w} token map"

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, cls + H*W, dim_in)`` tokens -> ``(B, cls + H'*W', dim)`` (:class:`PoolingAttention`)."""
        mixer = block.mixer
        assert isinstance(mixer, PoolingMixer)
        return PoolingAttention(
            block.dim_in,
            block.dim,
            mixer.heads,
            (block.in_shape.height, block.in_shape.width),
            kernel=mixer.kernel,
            q_stride=block.q_stride,
            kv_stride=block.kv_stride,
            cls_tokens=block.in_shape.cls_tokens,
            qkv_bias=mixer.qkv_bias,
            residual_pooling=mixer.residual_pooling,
            rel_pos=mixer.rel_pos,
            eps=block.norm_eps,
        )

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        """The q/k/v Linear, the pooling convs (one weight per head dim, applied to every head) and
        their LayerNorms, the relative-position logits (two einsums), ``q k^T`` and ``attn v``, the
        output Linear; the residual pooling's sum counts zero."""
        mixer = block.mixer
        assert isinstance(mixer, PoolingMixer)
        c, heads, k, cls = block.dim, mixer.heads, mixer.kernel, block.in_shape.cls_tokens
        d, (h, w) = c // heads, (block.in_shape.height, block.in_shape.width)
        cost.linear(h * w + cls, block.dim_in, 3 * c, mixer.qkv_bias)
        sides = {}
        for name, stride, count in (("q", block.q_stride, 1), ("kv", block.kv_stride, 2)):
            sides[name] = (conv_out(h, k, stride, k // 2), conv_out(w, k, stride, k // 2))
            if k > 1 or stride > 1:
                ho, wo = sides[name]
                for _ in range(count):
                    cost.op(c * ho * wo * k * k, c * ho * wo, d * k * k)
                    cost.layer_norm(d, (ho * wo + cls) * c)
            else:
                sides[name] = (h, w)
        (qh, qw), (kh, kw) = sides["q"], sides["kv"]
        nq, nk = qh * qw + cls, kh * kw + cls
        if mixer.rel_pos:
            rows_h = mvit_table_length(h, block.q_stride, block.kv_stride, qh, kh)
            rows_w = mvit_table_length(w, block.q_stride, block.kv_stride, qw, kw)
            cost.params += d * (rows_h + rows_w)
            cost.op(qh * qw * c * kh, qh * qw * heads * kh)
            cost.op(qh * qw * c * kw, qh * qw * heads * kw)
        cost.op(2 * nq * nk * c, nq * c)  # q k^T and attn v over all heads
        cost.linear(nq, c, c)


POOLING = _Pooling()
