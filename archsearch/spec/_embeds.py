"""Normalising the token embeddings and stems (not yet kinds of their own: see KINDS_HOWTO.md)."""

from __future__ import annotations

from ..core import CheckContext, FeatureShape, Path, conv_out
from ..kinds import FAMILIES
from ._schema import (
    BlockEmbed,
    ConvEmbed,
    Embed,
    MBConvEmbed,
    MergeEmbed,
    NoEmbed,
    PatchEmbed,
    Stage,
    T2TEmbed,
)

__all__ = ["normalize_embed"]


def normalize_embed(
    ctx: CheckContext, path: Path, stage: Stage, family: str, shape: FeatureShape, act: str
) -> tuple[Embed, FeatureShape | None, int]:
    """The stage's embedding with defaults filled in, the shape after it (``None`` after
    reporting why there is none) and the stride its first block takes over (``embed: block``)."""
    embed = stage.embed
    h, w = shape.height, shape.width
    epath = (*path, "embed")
    if isinstance(embed, ConvEmbed | PatchEmbed) and embed.norm_first and embed.norm == "none":
        ctx.fail(
            (*epath, "norm_first"),
            "norm_first puts the norm before the conv, but this embedding has no norm",
            value=True,
            allowed="norm: layer or batch (or norm_first: false)",
        )
        return embed, None, 1
    if isinstance(embed, ConvEmbed):
        padding = embed.kernel // 2 if embed.padding is None else embed.padding
        eps = embed.norm_eps
        if eps is not None and embed.norm != "layer":
            ctx.fail(
                (*epath, "norm_eps"),
                f"norm_eps applies to the layer norm, but this embedding's norm is {embed.norm!r}",
                value=eps,
                allowed="norm: layer, or leave norm_eps out",
            )
        elif embed.norm == "layer" and eps is None:
            eps = ctx.spec.norm_eps
        embed = embed.model_copy(update={"padding": padding, "norm_eps": eps})
        oh, ow = (conv_out(s, embed.kernel, embed.stride, padding) for s in (h, w))
        if oh < 1 or ow < 1:
            ctx.fail(
                (*epath, "stride"),
                f"the {embed.kernel}x{embed.kernel} conv with stride {embed.stride} and padding "
                f"{padding} leaves no tokens from the {h}x{w} map",
                value=embed.stride,
            )
            return embed, None, 1
        return embed, FeatureShape(stage.dim, oh, ow), 1
    if isinstance(embed, PatchEmbed):
        if h % embed.stride or w % embed.stride:
            ctx.fail(
                (*epath, "stride"),
                f"the {h}x{w} map is not divisible into {embed.stride}x{embed.stride} patches",
                value=embed.stride,
                allowed="strides dividing both sides: "
                + ", ".join(str(d) for d in range(1, min(h, w) + 1) if h % d == 0 and w % d == 0),
            )
            return embed, None, 1
        return embed, FeatureShape(stage.dim, h // embed.stride, w // embed.stride), 1
    if isinstance(embed, BlockEmbed):
        return embed, FeatureShape(shape.channels, h, w), embed.stride
    if isinstance(embed, T2TEmbed):
        t2t, out = _t2t_embed(ctx, epath, embed, stage.dim, shape)
        return t2t, out, 1
    if isinstance(embed, MergeEmbed):
        if h < 2 or w < 2:
            ctx.fail(
                (*epath, "kind"),
                f"patch merging concatenates 2x2 neighbourhoods, but the map here is only {h}x{w}",
                value="merge",
                allowed="a map of at least 2x2 (merge earlier, or use embed 'none')",
            )
            return embed, None, 1
        return embed, FeatureShape(stage.dim, -(-h // 2), -(-w // 2)), 1
    if isinstance(embed, MBConvEmbed):
        embed = embed.model_copy(update={"act": embed.act or act})
        if embed.kernel % 2 == 0:
            ctx.fail(
                (*epath, "kernel"),
                "the depthwise kernel must be odd (padding kernel // 2)",
                value=embed.kernel,
                allowed="odd kernels: 1, 3, 5, 7, ...",
            )
            return embed, None, 1
        pad = embed.kernel // 2
        oh, ow = (
            conv_out(h, embed.kernel, embed.stride, pad),
            conv_out(w, embed.kernel, embed.stride, pad),
        )
        return embed, FeatureShape(stage.dim, oh, ow), 1
    assert isinstance(embed, NoEmbed)
    if FAMILIES.get(family).keeps_dim and shape.channels != stage.dim:
        ctx.fail(
            (*path, "dim"),
            f"embed 'none' keeps the {shape.channels} incoming channels, so dim must be "
            f"{shape.channels} (or use a conv/patch embedding)",
            value=stage.dim,
        )
        return embed, None, 1
    return embed, FeatureShape(shape.channels, h, w), 1


def _t2t_embed(
    ctx: CheckContext, epath: Path, embed: T2TEmbed, dim: int, shape: FeatureShape
) -> tuple[T2TEmbed, FeatureShape | None]:
    """Resolve the paddings and carry the map through every soft split of a t2t embedding."""
    n, ok = len(embed.kernels), True
    for name in ("strides", "paddings"):
        given = getattr(embed, name)
        if given is not None and len(given) != n:
            ctx.fail(
                (*epath, name),
                f"needs one value per soft split: {n} kernel{'s' if n != 1 else ''}, "
                f"{len(given)} {name if len(given) != 1 else name[:-1]}",
                value=given,
            )
            ok = False
    if embed.token_dim % embed.heads:
        ctx.fail(
            (*epath, "heads"),
            f"heads must divide the token_dim {embed.token_dim}",
            value=embed.heads,
            allowed=", ".join(str(d) for d in range(1, embed.token_dim + 1) if embed.token_dim % d == 0),
        )
        ok = False
    h, w = shape.height, shape.width
    stride = embed.stride
    if ok and (h % stride or w % stride):
        ctx.fail(
            (*epath, "strides"),
            f"the soft splits stride {stride} in all (the product of the strides), which must "
            f"divide the {h}x{w} map",
            value=embed.strides,
            allowed="strides whose product divides both sides: "
            + ", ".join(str(d) for d in range(1, min(h, w) + 1) if h % d == 0 and w % d == 0),
        )
        ok = False
    if not ok:
        return embed, None
    paddings = (
        embed.paddings
        if embed.paddings is not None
        else [max(0, (k - s + 1) // 2) for k, s in zip(embed.kernels, embed.strides, strict=True)]
    )
    embed = embed.model_copy(update={"paddings": paddings})
    channels = shape.channels
    for j, (k, s, p) in enumerate(zip(embed.kernels, embed.strides, paddings, strict=True)):
        oh, ow = conv_out(h, k, s, p), conv_out(w, k, s, p)
        if oh < 1 or ow < 1:
            ctx.fail(
                (*epath, "kernels", j),
                f"soft split {j}: the {k}x{k} unfold with stride {s} and padding {p} leaves no "
                f"tokens from the {h}x{w} map",
                value=k,
                allowed=f"kernels up to {min(h, w) + 2 * p}",
            )
            return embed, None
        width = channels * k * k
        if j < n - 1 and width < embed.heads:
            ctx.fail(
                (*epath, "heads"),
                f"soft split {j} makes {width}-wide tokens, fewer than the heads: the token "
                "transformer's logit scale (width // heads) ** -0.5 needs heads <= width",
                value=embed.heads,
                allowed=f"at most {width}",
            )
            return embed, None
        h, w, channels = oh, ow, embed.token_dim
    return embed, FeatureShape(dim, h, w)
