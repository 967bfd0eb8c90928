"""Stems and token embeddings: map in, map out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from ._layers import make_norm2d

if TYPE_CHECKING:  # the schema sits above this layer
    from ..spec import ConvEmbed, PatchEmbed, ResNetStem

__all__ = ["conv_embed", "patch_embed", "resnet_stem"]


def resnet_stem(stem: ResNetStem, in_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, stem.channels, 7, 2, 3, bias=False),
        nn.BatchNorm2d(stem.channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    )


def _conv_norm(conv: nn.Conv2d, norm: str, norm_first: bool, eps: float) -> nn.Module:
    """conv -> norm on the output channels, or norm on the input channels -> conv (``norm_first``)."""
    if norm_first:
        return nn.Sequential(make_norm2d(norm, conv.in_channels, eps), conv)
    return nn.Sequential(conv, make_norm2d(norm, conv.out_channels, eps))


def conv_embed(embed: ConvEmbed, in_channels: int, dim: int, eps: float) -> nn.Module:
    assert embed.padding is not None  # filled in by normalisation
    conv = nn.Conv2d(in_channels, dim, embed.kernel, embed.stride, embed.padding, bias=embed.bias)
    return _conv_norm(conv, embed.norm, embed.norm_first, eps if embed.norm_eps is None else embed.norm_eps)


def patch_embed(embed: PatchEmbed, in_channels: int, dim: int, eps: float) -> nn.Module:
    conv = nn.Conv2d(in_channels, dim, embed.stride, embed.stride, bias=embed.bias)
    return _conv_norm(conv, embed.norm, embed.norm_first, eps)
