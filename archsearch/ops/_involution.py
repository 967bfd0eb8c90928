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

    The weighted sum is the official naive path's multiply-and-sum, run as one op
    (:func:`weighted_sum`, ``C * kernel**2`` MACs per output pixel, counted by
    :func:`archsearch.cost.count_traced`).

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
        cols = cols.view(b, g, self.group_channels, k * k, ho * wo)
        kernels = weight.view(b, g, k * k, ho * wo)
        if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():  # exporters: plain aten ops
            out = _multiply_sum(cols, kernels)
        else:
            out = weighted_sum(cols, kernels)  # (B, groups, gc, H'W'), one counted op
        return out.reshape(b, c, ho, wo)


@torch.library.custom_op("archsearch::involution_sum", mutates_args=())
def weighted_sum(cols: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``out[b, g, c, p] = sum_k cols[b, g, c, k, p] * kernels[b, g, k, p]``: each pixel's kxk
    neighbourhood (``cols``, ``(B, groups, group_channels, k*k, P)``) weighted by its generated
    kernel (``kernels``, ``(B, groups, k*k, P)``) -> ``(B, groups, group_channels, P)``.

    The official naive involution's multiply-and-sum, as one op so that MAC counters see it
    (:func:`archsearch.cost.count_traced` counts ``group_channels * k*k`` per output element, as
    fvcore with the involution's sum counted); a batched matrix product per pixel would count the
    same but run far slower on tiny matrices."""
    return _multiply_sum(cols, kernels)


def _multiply_sum(cols: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    return (cols * kernels.unsqueeze(2)).sum(dim=3)


@weighted_sum.register_fake
def _(cols: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    b, g, c, _, p = cols.shape
    return cols.new_empty((b, g, c, p))


def _setup(ctx: object, inputs: tuple[torch.Tensor, torch.Tensor], output: torch.Tensor) -> None:
    ctx.save_for_backward(*inputs)  # type: ignore[attr-defined]


def _backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cols, kernels = ctx.saved_tensors  # type: ignore[attr-defined]
    grad = grad.unsqueeze(3)  # (B, groups, gc, 1, P)
    return grad * kernels.unsqueeze(2), (grad * cols).sum(dim=2)


weighted_sum.register_autograd(_backward, setup_context=_setup)
