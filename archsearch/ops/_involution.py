"""Involution (Li et al., CVPR 2021, "Involution: Inverting the Inherence of Convolution for Visual
Recognition"; official code d-li14/involution, ``cls/mmcls/models/utils/involution_naive.py``), in
the official module order so weights copy across in registration order."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["INVOLUTION_GROUP", "INVOLUTION_REDUCTION", "Involution"]

#: The official involution's channels per generated kernel and kernel-generator reduction.
INVOLUTION_GROUP, INVOLUTION_REDUCTION = 16, 4


class Involution(nn.Module):
    """Involution on a ``(B, C, H, W)`` map: a kxk kernel generated at every output pixel.

    The kernel generator reads the (strided) map: a ``stride`` x ``stride`` average pool when
    ``stride > 1`` (ceil mode: on a map whose sides ``stride`` divides it is the official
    ``AvgPool2d(stride, stride)``; on others it covers the last, partial window instead of
    failing), a 1x1 conv to ``C // reduction`` channels (no bias) + BatchNorm + ReLU, and a 1x1 conv
    (bias) to ``kernel**2 * groups`` weights, ``groups = C // group_channels``. Each group of
    ``group_channels`` channels is then summed over the kxk neighbourhood of every output pixel
    (the map unfolded with padding ``(kernel - 1) // 2`` and ``stride``), weighted by that pixel's
    kernel for the group: output ``(B, C, ceil(H / stride), ceil(W / stride))``.

    The weighted sum runs as one batched matrix product, ``(group_channels, kernel**2) @
    (kernel**2, 1)`` per group and output pixel (``C * kernel**2`` MACs per output pixel, counted
    by fvcore and by :func:`archsearch.cost.count_traced`; ``einsum`` would take an uncounted
    elementwise product for a 1x1 kernel); the official naive path multiplies and sums, the same
    numbers.

    Args:
        channels: ``C``, a multiple of ``group_channels`` and at least ``reduction``.
        kernel: odd kernel side.
        stride: spatial stride.
        group_channels: channels that share one generated kernel (official: 16).
        reduction: channel reduction of the kernel generator (official: 4).
    """

    def __init__(
        self,
        channels: int,
        kernel: int,
        stride: int = 1,
        group_channels: int = INVOLUTION_GROUP,
        reduction: int = INVOLUTION_REDUCTION,
    ):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.group_channels, self.groups = group_channels, channels // group_channels
        reduced = channels // reduction
        # official names: conv1 (ConvModule: conv, bn, ReLU) and conv2 (conv with bias)
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, reduced, 1, bias=False), nn.BatchNorm2d(reduced), nn.ReLU()
        )
        self.span = nn.Conv2d(reduced, kernel * kernel * self.groups, 1)
        self.pool: nn.Module = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        weight = self.span(self.reduce(self.pool(x)))  # (B, groups * k*k, H', W')
        ho, wo = weight.shape[-2:]
        k, g = self.kernel, self.groups
        cols = F.unfold(x, k, padding=(k - 1) // 2, stride=self.stride)  # (B, C * k*k, H'W')
        cols = cols.view(b, g, self.group_channels, k * k, ho * wo).permute(0, 1, 4, 2, 3)
        kernels = weight.view(b, g, k * k, ho * wo).permute(0, 1, 3, 2).unsqueeze(-1)
        out = cols @ kernels  # (B, groups, H'W', group_channels, 1): one matrix product per pixel
        return out.squeeze(-1).permute(0, 1, 3, 2).reshape(b, c, ho, wo)
