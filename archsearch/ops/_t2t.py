"""Tokens-to-Token (T2T-ViT): soft split, token transformer, and the fixed sinusoidal table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ._attention import attend
from ._layers import Mlp

if TYPE_CHECKING:  # the schema sits above this layer
    from ..spec import T2TEmbed

__all__ = ["TokenTransformer", "TokensToToken", "sinusoid_table", "t2t_embed"]


class TokenTransformer(nn.Module):
    """T2T-ViT's token transformer: ``in_dim``-wide tokens in, ``token_dim``-wide tokens out.

    ``x = v + proj(attention(norm1(x)))`` where the q/k/v Linear maps ``in_dim`` to
    ``3 * token_dim``, so the skip connection goes through the values ``v`` (heads merged back);
    then ``x = x + mlp(norm2(x))``. The logit scale is ``(in_dim // heads) ** -0.5``, as the
    reference computes it from the input width.
    """

    def __init__(
        self,
        in_dim: int,
        token_dim: int,
        heads: int,
        *,
        mlp_ratio: float = 1.0,
        qkv_bias: bool = False,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.heads = heads
        self.token_dim = token_dim
        self.scale = (in_dim // heads) ** -0.5
        self.norm1 = nn.LayerNorm(in_dim, eps=eps)
        self.qkv = nn.Linear(in_dim, 3 * token_dim, bias=qkv_bias)
        self.proj = nn.Linear(token_dim, token_dim)
        self.norm2 = nn.LayerNorm(token_dim, eps=eps)
        self.mlp = Mlp(token_dim, int(token_dim * mlp_ratio), "gelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, self.token_dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, heads, tokens, head_dim), head_dim contiguous
        out = attend(q, k, v, self.scale).transpose(1, 2).reshape(b, n, self.token_dim)
        x = v.transpose(1, 2).reshape(b, n, self.token_dim) + self.proj(out)
        return x + self.mlp(self.norm2(x))


class TokensToToken(nn.Module):
    """The T2T embedding on a ``(B, C, H, W)`` map: soft split (unfold) -> token transformer ->
    re-structurisation into a map, iterated; then the last soft split and a Linear to ``dim``.
    Returns the ``(B, dim, H', W')`` map."""

    def __init__(self, embed: T2TEmbed, in_channels: int, dim: int, eps: float):
        super().__init__()
        assert embed.paddings is not None  # filled in by normalisation
        self.splits = [
            (k, s, p) for k, s, p in zip(embed.kernels, embed.strides, embed.paddings, strict=True)
        ]
        widths = [in_channels] + [embed.token_dim] * (len(self.splits) - 1)
        self.transformers = nn.ModuleList(
            TokenTransformer(
                c * k * k,
                embed.token_dim,
                embed.heads,
                mlp_ratio=embed.mlp_ratio,
                qkv_bias=embed.qkv_bias,
                eps=eps,
            )
            for c, (k, _, _) in zip(widths[:-1], self.splits[:-1], strict=True)
        )
        k_last = self.splits[-1][0]
        self.project = nn.Linear(widths[-1] * k_last * k_last, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for j, (k, s, p) in enumerate(self.splits):
            h, w = ((size + 2 * p - k) // s + 1 for size in x.shape[2:])
            tokens = F.unfold(x, k, padding=p, stride=s).transpose(1, 2)  # soft split
            tokens = self.project(tokens) if j == len(self.transformers) else self.transformers[j](tokens)
            x = tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)  # re-structurisation
        return x

    def extra_repr(self) -> str:
        return "soft splits (kernel, stride, padding): " + ", ".join(str(s) for s in self.splits)


def t2t_embed(embed: T2TEmbed, in_channels: int, dim: int, eps: float) -> nn.Module:
    return TokensToToken(embed, in_channels, dim, eps)


def sinusoid_table(tokens: int, dim: int) -> torch.Tensor:
    """T2T-ViT's (and "Attention is all you need"'s) fixed position table, ``(1, tokens, dim)``:
    ``angle = pos / 10000 ** (2 * (j // 2) / dim)``, ``sin`` in even channels, ``cos`` in odd ones.
    Computed in float64 and rounded to float32, as the reference's NumPy table is."""
    pos = torch.arange(tokens, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.to(torch.float32)[None]
