"""Mobile families: the MobileNetV2 inverted residual (MBConv) and the MobileViT block.

Built as timm builds MobileViT (``timm/models/mobilevit.py`` on ``byobnet.py``): convs without
bias followed by BatchNorm and the activation, the same module order (so weights copy across in
registration order), and the same unfold/fold of the map into patches.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..core import BlockPlan, StagePlan, make_divisible
from ._blocks import BuildMixer
from ._involution import Involution
from ._layers import DropPath, Mlp, SqueezeExcite, make_act

if TYPE_CHECKING:  # the schema sits above this layer
    from ..kinds import MobileViTMixer
    from ..spec import ConvStem, DeepStem, MBConvEmbed

__all__ = [
    "ConvBnAct",
    "InvertedResidual",
    "MobileViTLayer",
    "MobileViTStage",
    "conv_stem",
    "deep_stem",
    "fold_patches",
    "mbconv_embed",
    "unfold_patches",
]


class ConvBnAct(nn.Module):
    """kxk conv (no bias, padding ``kernel // 2``) -> BatchNorm -> activation (``None``: none).

    Convs start from timm's init, normal with std ``sqrt(2 / fan_out)``, fan_out per group.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: str | None = None
    ):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = make_act(act, inplace=True) if act is not None else nn.Identity()
        nn.init.normal_(self.conv.weight, 0.0, math.sqrt(2.0 * groups / (kernel * kernel * c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand -> kxk depthwise (strided) -> 1x1 project.

    Without ``expand`` there is no 1x1 expand conv and the depthwise conv runs on the ``c_in``
    input channels (``hidden`` must equal ``c_in``: timm's ``DepthwiseSeparableConv``, the first
    EfficientNet block). ``se`` > 0 adds squeeze-excitation to ``se`` channels after the
    depthwise conv (EfficientNet; its activation is ``act``). The projection is linear (BN, no
    activation); the residual is added where the stride is 1 and the channels match (timm's
    ``downsample=''``: no shortcut otherwise). The last BN starts at zero in residual blocks, so
    each starts as the identity. Raises ``ValueError`` without ``expand`` when ``hidden != c_in``.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        *,
        stride: int,
        hidden: int,
        kernel: int,
        act: str,
        drop_path: float = 0.0,
        expand: bool = True,
        se: int = 0,
    ):
        super().__init__()
        if not expand and hidden != c_in:
            raise ValueError(
                f"an inverted residual without expand conv needs hidden == c_in, got {hidden} != {c_in}"
            )
        self.conv1 = ConvBnAct(c_in, hidden, 1, act=act) if expand else nn.Identity()
        self.conv2 = ConvBnAct(hidden, hidden, kernel, stride, groups=hidden, act=act)
        self.se = SqueezeExcite(hidden, se, act) if se else nn.Identity()
        self.conv3 = ConvBnAct(hidden, c_out, 1)
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = DropPath(drop_path)
        if self.residual:
            nn.init.zeros_(self.conv3.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.se(self.conv2(self.conv1(x))))
        return x + self.drop_path(out) if self.residual else out


def mbconv_embed(embed: MBConvEmbed, in_channels: int, dim: int, eps: float) -> nn.Module:
    """The ``mbconv`` embedding: one inverted residual into the stage (MobileViT's strided MV2)."""
    assert embed.act is not None  # filled in by normalisation
    hidden = make_divisible(in_channels * embed.expansion)
    return InvertedResidual(
        in_channels, dim, stride=embed.stride, hidden=hidden, kernel=embed.kernel, act=embed.act
    )


def conv_stem(stem: ConvStem, in_channels: int) -> nn.Module:
    return ConvBnAct(in_channels, stem.channels, stem.kernel, stem.stride, act=stem.act)


def deep_stem(stem: DeepStem, in_channels: int) -> nn.Module:
    """``stem: deep``: kxk conv + BN + act per entry of ``channels`` (the first strided; at the
    positions in ``involution`` a kxk :class:`Involution` + BN + act instead), then a 3x3/2
    max-pool (padding 1) unless ``pool: none``."""
    layers: list[nn.Module] = []
    for i, c in enumerate(stem.channels):
        if i in stem.involution:  # RedNet: involution + BN + act in place of the conv (channels kept)
            layers += [Involution(c, stem.kernel), nn.BatchNorm2d(c), make_act(stem.act, inplace=True)]
        else:
            layers.append(ConvBnAct(in_channels, c, stem.kernel, stem.stride if i == 0 else 1, act=stem.act))
        in_channels = c
    if stem.pool == "max":
        layers.append(nn.MaxPool2d(3, 2, 1))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- MobileViT


def unfold_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B * patch**2, H*W / patch**2, C)``: one sequence per position inside
    a patch, holding that pixel of every patch (patches in row-major order). H and W must be
    multiples of ``patch``."""
    b, c, h, w = x.shape
    nh, nw = h // patch, w // patch
    x = x.reshape(b, c, nh, patch, nw, patch).permute(0, 3, 5, 2, 4, 1)
    return x.reshape(b * patch * patch, nh * nw, c)


def fold_patches(t: torch.Tensor, batch: int, size: tuple[int, int], patch: int) -> torch.Tensor:
    """The inverse of :func:`unfold_patches`: back to a ``(B, C, H, W)`` map of ``size``."""
    h, w = size
    nh, nw = h // patch, w // patch
    c = t.shape[-1]
    x = t.reshape(batch, patch, patch, nh, nw, c).permute(0, 5, 3, 1, 4, 2)
    return x.reshape(batch, c, h, w)


class MobileViTLayer(nn.Module):
    """One pre-norm transformer layer of a MobileViT block, on ``(B * P, N, d)`` patch sequences."""

    def __init__(self, plan: BlockPlan, build_mixer: BuildMixer):
        super().__init__()
        assert plan.mlp_ratio is not None
        self.norm1 = nn.LayerNorm(plan.dim, eps=plan.norm_eps)
        self.attn = build_mixer(plan)
        self.drop_path = DropPath(plan.drop_path)
        self.norm2 = nn.LayerNorm(plan.dim, eps=plan.norm_eps)
        self.mlp = Mlp(plan.dim, int(plan.dim * plan.mlp_ratio), plan.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), (x.shape[1], 1)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class MobileViTStage(nn.Module):
    """A MobileViT block as a stage: embedding, local kxk conv, 1x1 to the transformer dim,
    unfold into patch sequences, the stage's transformer layers, LayerNorm, fold, 1x1 projection
    to the stage dim, and a kxk fusion conv on ``cat(embedded input, projection)``.

    A map that the patch does not divide is resized bilinearly up to the next multiple before
    unfolding and back after folding (timm's behaviour).
    """

    def __init__(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]):
        super().__init__()
        first = plan.blocks[0]
        mixer: MobileViTMixer = first.mixer
        assert mixer.transformer_dim is not None
        c_in, dim, d, k = plan.embed_shape.channels, plan.dim, mixer.transformer_dim, mixer.kernel
        self.patch = mixer.patch
        self.embed = embed
        self.conv_kxk = ConvBnAct(c_in, c_in, k, act=first.act)
        self.conv_1x1 = nn.Conv2d(c_in, d, 1, bias=False)
        nn.init.normal_(self.conv_1x1.weight, 0.0, math.sqrt(2.0 / d))
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.LayerNorm(d, eps=first.norm_eps)
        self.conv_proj = ConvBnAct(d, dim, 1, act=first.act)
        self.conv_fusion = ConvBnAct(c_in + dim, dim, k, act=first.act)

    def forward(self, x: torch.Tensor, cls: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        x = self.embed(x)
        y = self.conv_1x1(self.conv_kxk(x))
        b, _, h, w = y.shape
        p = self.patch
        size = (-(-h // p) * p, -(-w // p) * p)
        resized = size != (h, w)
        if resized:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        t = self.norm(self.blocks(unfold_patches(y, p)))
        y = fold_patches(t, b, size, p)
        if resized:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        y = self.conv_proj(y)
        return self.conv_fusion(torch.cat((x, y), dim=1)), None
