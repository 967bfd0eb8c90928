"""``embed: t2t``: the Tokens-to-Token embedding (T2T-ViT, Yuan et al. 2021; its reference
``T2T_module`` with the transformer token layers)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field
from torch import nn

from ..core import (
    MAX_KERNEL,
    MAX_LIST,
    CheckContext,
    Cost,
    FeatureShape,
    Kernel,
    Path,
    PositiveInt,
    Ratio,
    StagePlan,
    StrictModel,
    conv_out,
)
from ..ops import t2t_embed
from ._base import EmbedKind, FamilyKind, Share

__all__ = ["T2T_EMBED", "T2TEmbed"]


class T2TEmbed(StrictModel):
    """Tokens-to-Token embedding (T2T-ViT): soft splits with a token transformer between them.

    Each soft split unfolds the map into overlapping ``kernel x kernel`` patches, one token per
    patch (``channels * kernel**2`` wide). Between soft splits a token transformer (LayerNorm,
    attention projecting to ``token_dim`` with the skip connection through its values, then a
    pre-norm GELU MLP) re-structures the tokens into a ``token_dim``-channel map; after the last
    soft split a Linear projects the tokens to the stage dim. The embedding's stride is the
    product of the soft-split strides, and must divide the map.
    """

    kind: Literal["t2t"] = "t2t"
    kernels: Annotated[list[Kernel], Field(min_length=1, max_length=MAX_LIST)] = [7, 3, 3]  # noqa: RUF012 (pydantic copies defaults)
    """Kernel side of each soft split, in order."""
    strides: Annotated[list[PositiveInt], Field(min_length=1, max_length=MAX_LIST)] = [4, 2, 2]  # noqa: RUF012
    """Stride of each soft split; their product is the embedding's stride (``embed.stride``) and
    must divide the map."""
    paddings: (
        Annotated[list[Annotated[int, Field(ge=0, le=MAX_KERNEL)]], Field(max_length=MAX_LIST)] | None
    ) = None
    """Zero padding of each soft split; default ``(kernel - stride + 1) // 2`` (at least 0), the
    least that shrinks a map by exactly the stride (T2T-ViT: 2, 1, 1)."""
    token_dim: PositiveInt = 64
    """Channels of the tokens the token transformers produce."""
    heads: PositiveInt = 1
    """Attention heads of the token transformers; must divide ``token_dim``."""
    mlp_ratio: Ratio = 1.0
    """Hidden/``token_dim`` ratio of the token transformers' MLP."""
    qkv_bias: bool = False
    """Bias in the token transformers' q/k/v Linear."""

    @property
    def stride(self) -> int:
        """Spatial stride of the whole embedding: the product of the soft-split strides."""
        return math.prod(self.strides)


class _T2T(EmbedKind):
    name = "t2t"
    share = Share(
        nested=("token_dim", "mlp_ratio"),
        reuse=("heads",),
        source="AutoFormer weight entanglement (leading slice; Chen et al. ICCV 2021)",
    )
    schema = T2TEmbed

    def normalize(
        self, ctx: CheckContext, epath: Path, stage: Any, family: FamilyKind, shape: FeatureShape, act: str
    ) -> tuple[Any, FeatureShape | None, int]:
        """Resolve the paddings and carry the map through every soft split."""
        embed: T2TEmbed = stage.embed
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
            return embed, None, 1
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
                return embed, None, 1
            width = channels * k * k
            if j < n - 1 and width < embed.heads:
                ctx.fail(
                    (*epath, "heads"),
                    f"soft split {j} makes {width}-wide tokens, fewer than the heads: the token "
                    "transformer's logit scale (width // heads) ** -0.5 needs heads <= width",
                    value=embed.heads,
                    allowed=f"at most {width}",
                )
                return embed, None, 1
            h, w, channels = oh, ow, embed.token_dim
        return embed, FeatureShape(stage.dim, h, w), 1

    def build(self, embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
        return t2t_embed(embed, c_in, dim, eps)

    def cost(self, stage: StagePlan, c_in: int, cost: Cost) -> None:
        """Soft splits (unfold: data movement, zero) with a token transformer after all but the
        last, then the Linear projection."""
        embed = stage.embed
        assert isinstance(embed, T2TEmbed) and embed.paddings is not None
        h, w = stage.in_shape.height, stage.in_shape.width
        channels, td, last = c_in, embed.token_dim, len(embed.kernels) - 1
        for j, (k, s, p) in enumerate(zip(embed.kernels, embed.strides, embed.paddings, strict=True)):
            h, w = conv_out(h, k, s, p), conv_out(w, k, s, p)
            n, width = h * w, channels * k * k
            if j == last:
                cost.linear(n, width, stage.dim)
                return
            cost.layer_norm(width, n * width)
            cost.linear(n, width, 3 * td, embed.qkv_bias)
            cost.op(2 * n * n * td, n * td)  # q k^T and attn v over all heads
            cost.linear(n, td, td)
            cost.layer_norm(td, n * td)
            hidden = int(td * embed.mlp_ratio)
            cost.linear(n, td, hidden)
            cost.linear(n, hidden, td)
            channels = td


T2T_EMBED = _T2T()
