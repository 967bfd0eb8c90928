"""ResNet v2 / BiT layers: weight-standardised convs, TensorFlow's "same" padding, GroupNorm, and
the 7x7 stem built from them (Kolesnikov et al., ECCV 2020; Qiao et al. 2019; timm
``std_conv.py``, ``padding.py``, ``resnetv2.py``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # the schema sits above this layer
    from ..kinds import ResNetV2Stem

__all__ = ["BLOCK_GROUP_NORM_EPS", "MaxPool2dSame", "StdConv2d", "block_norm", "make_conv", "resnetv2_stem"]

#: Epsilon of the GroupNorms of ResNet v2 blocks and stems (timm ``GroupNormAct``'s default).
BLOCK_GROUP_NORM_EPS = 1e-5


def _same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` as TensorFlow's "SAME" does (timm ``pad_same``): the output side is
    ``ceil(side / stride)``, and the odd pixel of padding goes to the bottom / right."""
    pads = []
    for side in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(side / stride) - 1) * stride + kernel - side, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class StdConv2d(nn.Conv2d):
    """A conv (no bias) whose weight is standardised per output channel before use (weight
    standardisation, Qiao et al. 2019; timm ``StdConv2d`` / ``StdConv2dSame``): each filter gets
    zero mean and unit variance, ``eps`` added to the variance (timm computes it with
    ``F.batch_norm`` in training mode, as here, so the results agree to the bit).

    ``std_eps=None`` leaves the weight as it is. ``same=True`` pads as TensorFlow's "SAME" (the odd
    pixel bottom / right) where the stride is above 1; at stride 1 the odd kernel is padded
    ``kernel // 2`` on every side, which is the same. Either way the output side is
    ``ceil(side / stride)``: ``(B, c_in, H, W)`` -> ``(B, c_out, ceil(H/stride), ceil(W/stride))``.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        std_eps: float | None = 1e-6,
        same: bool = False,
    ):
        self.dynamic_pad = same and stride > 1
        super().__init__(
            c_in, c_out, kernel, stride, 0 if self.dynamic_pad else kernel // 2, groups=groups, bias=False
        )
        self.std_eps = std_eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic_pad:
            x = _same_pad(x, self.kernel_size[0], self.stride[0])
        weight = self.weight
        if self.std_eps is not None:
            flat = F.batch_norm(
                weight.reshape(1, self.out_channels, -1), None, None, training=True, eps=self.std_eps
            )
            weight = flat.reshape_as(weight)
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, std_eps={self.std_eps}, same={self.dynamic_pad}"


def make_conv(
    c_in: int,
    c_out: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    std_eps: float | None = None,
    padding: str = "symmetric",
) -> nn.Conv2d:
    """A kxk conv without bias: ``nn.Conv2d`` padded ``kernel // 2`` (``std_eps=None`` and
    ``padding="symmetric"``: what ResNet blocks always had), else :class:`StdConv2d`."""
    if std_eps is None and padding == "symmetric":
        return nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
    return StdConv2d(c_in, c_out, kernel, stride, groups, std_eps, same=padding == "same")


def block_norm(kind: str, channels: int, groups: int) -> nn.BatchNorm2d | nn.GroupNorm:
    """The norm after a bottleneck conv: ``batch`` (BatchNorm2d) or ``group`` (GroupNorm with
    ``groups`` groups, eps :data:`BLOCK_GROUP_NORM_EPS`)."""
    if kind == "group":
        return nn.GroupNorm(groups, channels, eps=BLOCK_GROUP_NORM_EPS)
    return nn.BatchNorm2d(channels)


class MaxPool2dSame(nn.MaxPool2d):
    """3x3 (``kernel``) max-pool with TensorFlow's "SAME" padding (by ``-inf``; timm
    ``MaxPool2dSame``): ``(B, C, H, W)`` -> ``(B, C, ceil(H/stride), ceil(W/stride))``."""

    def __init__(self, kernel: int, stride: int):
        super().__init__(kernel, stride, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        assert isinstance(k, int) and isinstance(s, int)
        return F.max_pool2d(_same_pad(x, k, s, value=-math.inf), k, s)


def resnetv2_stem(stem: ResNetV2Stem, in_channels: int) -> nn.Module:
    """``stem: resnetv2`` (timm ``create_resnetv2_stem`` with ``preact=False``, 7x7 stem types
    ``same``, ``fixed`` and ``''``): weight-standardised 7x7/2 conv, GroupNorm, ReLU, 3x3/2
    max-pool. ``padding``: ``same`` pads conv and pool as TensorFlow (the pool with ``-inf``),
    ``fixed`` pads the conv 3 and the pool input by one zero (BiT), ``symmetric`` pads the conv 3
    and the pool 1 (PyTorch's). ``(B, in_channels, H, W)`` -> ``(B, channels, H/4, W/4)``."""
    same = stem.padding == "same"
    layers: dict[str, nn.Module] = {
        "conv": StdConv2d(in_channels, stem.channels, 7, 2, std_eps=stem.weight_std, same=same),
        "norm": block_norm("group", stem.channels, stem.norm_groups),
        "act": nn.ReLU(inplace=True),
    }
    if stem.padding == "fixed":
        layers["pad"] = nn.ConstantPad2d(1, 0.0)
        layers["pool"] = nn.MaxPool2d(3, 2, 0)
    else:
        layers["pool"] = MaxPool2dSame(3, 2) if same else nn.MaxPool2d(3, 2, 1)
    return nn.Sequential(*layers.values())
