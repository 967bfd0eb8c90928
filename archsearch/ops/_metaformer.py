"""The MetaFormer block on the ``(B, C, H, W)`` map and PoolFormer's pooling mixer (Yu et al.,
CVPR 2022, "MetaFormer Is Actually What You Need for Vision"; timm ``metaformer.py``), in timm's
module order so weights copy across in registration order."""

from __future__ import annotations

import torch
from torch import nn

from ..core import BlockPlan
from ._blocks import BuildMixer
from ._layers import DropPath, make_act

__all__ = ["GROUP_NORM_EPS", "LayerScale2d", "MetaFormerBlock", "Pooling"]

#: Epsilon of the MetaFormer block's one-group GroupNorms (PyTorch's default, as timm's GroupNorm1).
GROUP_NORM_EPS = 1e-5


class Pooling(nn.Module):
    """PoolFormer's token mixer: ``avg_pool(x) - x`` with a kxk, stride-1 average pool (padding
    ``kernel // 2``, padding not counted); the block adds ``x`` back."""

    def __init__(self, kernel: int):
        super().__init__()
        self.pool = nn.AvgPool2d(kernel, 1, kernel // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class LayerScale2d(nn.Module):
    """A learned per-channel scale of a ``(B, C, H, W)`` branch, starting at ``init`` (timm's
    ``Scale`` with ``use_nchw``: a ``(C,)`` parameter viewed as ``(C, 1, 1)``)."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(-1, 1, 1)


class MetaFormerBlock(nn.Module):
    """MetaFormer block (timm ``MetaFormerBlock``): ``x + ls1 * mixer(norm1(x))``, then
    ``x + ls2 * mlp(norm2(x))``; the norms are one-group GroupNorms (over channels and positions),
    the MLP two 1x1 convs with bias and the activation between, the layer scales per channel
    (``layer_scale`` of the mixer; none where it is ``None`` or 0), drop path on both branches.
    Map in, map out: ``(B, dim, H, W)``."""

    def __init__(self, plan: BlockPlan, build_mixer: BuildMixer):
        super().__init__()
        assert plan.mlp_ratio is not None
        dim, hidden = plan.dim, int(plan.dim * plan.mlp_ratio)
        layer_scale = getattr(plan.mixer, "layer_scale", None)
        self.norm1 = nn.GroupNorm(1, dim, eps=GROUP_NORM_EPS)
        self.token_mixer = build_mixer(plan)
        self.layer_scale1: nn.Module = LayerScale2d(dim, layer_scale) if layer_scale else nn.Identity()
        self.norm2 = nn.GroupNorm(1, dim, eps=GROUP_NORM_EPS)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), make_act(plan.act), nn.Conv2d(hidden, dim, 1))
        self.layer_scale2: nn.Module = LayerScale2d(dim, layer_scale) if layer_scale else nn.Identity()
        self.drop_path = DropPath(plan.drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale1(self.token_mixer(self.norm1(x))))
        return x + self.drop_path(self.layer_scale2(self.mlp(self.norm2(x))))
