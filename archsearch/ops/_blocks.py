"""Block families: the ResNet bottleneck (conv or MHSA mixer), the pre-norm transformer block and
the ConvNeXt block.

Every block is built from its :class:`~archsearch.core.BlockPlan` and the builder of its mixer
(one constructor contract, the mixer kind's ``build``), so the compiler and the cost model read
the same resolved values.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..core import BlockPlan
from ._layers import DropPath, Mlp, MlpDwConv, PosConv, SqueezeExcite, make_act, se_reduced, tokens_to_map
from ._stdconv import block_norm, make_conv

__all__ = ["Bottleneck", "BuildMixer", "ConvNeXtBlock", "TransformerBlock", "pool_tokens"]

#: Builds a block's mixer module from its plan (the mixer kind's ``build``); a block calls it
#: where the mixer sits, so parameters are created (and seeded) in a fixed order.
BuildMixer = Callable[[BlockPlan], nn.Module]


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 reduce -> mixer -> 1x1 expand, plus shortcut; map in, map out.

    The mixer is a kxk conv (strided when the block downsamples) or BoTNet MHSA followed by a
    2x2 average pool when it downsamples. A mixer with ``se`` adds squeeze-excitation after the
    mixer's BN and activation (RegNetY). The shortcut is a strided 1x1 conv + BN when the shape
    changes (``plan.shortcut == "avg"``: ResNet-D's 2x2 average pool, ceil mode, then 1x1 conv + BN).
    A conv mixer's ``norm``, ``weight_std`` and ``padding`` apply to every conv and norm of the block
    (ResNet v2 without pre-activation, as timm's ViT hybrids use it: ``resnetv2.py`` ``Bottleneck``).
    """

    def __init__(self, plan: BlockPlan, build_mixer: BuildMixer):
        super().__init__()
        width, stride, mixer = plan.width, plan.stride, plan.mixer
        # ResNet v2 / BiT options of the conv mixer (weight standardisation, "same" padding,
        # GroupNorm) hold for every conv and norm of the block
        std_eps, padding = getattr(mixer, "weight_std", None), getattr(mixer, "padding", "symmetric")
        norm, groups = getattr(mixer, "norm", "batch"), getattr(mixer, "norm_groups", 1)
        self.conv1 = make_conv(plan.dim_in, width, 1, std_eps=std_eps, padding=padding)
        self.bn1 = block_norm(norm, width, groups)
        self.act1 = make_act(plan.act)
        self.mixer = build_mixer(plan)  # width -> width, strided when the block downsamples
        self.bn2 = block_norm(norm, width, groups)
        self.act2 = make_act(plan.act)
        se = getattr(mixer, "se", None)
        self.se = SqueezeExcite(width, se_reduced(plan.dim_in, se), plan.act) if se else nn.Identity()
        self.conv3 = make_conv(width, plan.dim, 1, std_eps=std_eps, padding=padding)
        self.bn3 = block_norm(norm, plan.dim, groups)
        self.shortcut: nn.Module = nn.Identity()
        if (stride != 1 or plan.dim_in != plan.dim) and plan.shortcut == "avg":  # ResNet-D
            pool = (
                nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
                if stride > 1
                else nn.Identity()
            )
            self.shortcut = nn.Sequential(
                pool,
                make_conv(plan.dim_in, plan.dim, 1, std_eps=std_eps, padding=padding),
                block_norm(norm, plan.dim, groups),
            )
        elif stride != 1 or plan.dim_in != plan.dim:
            self.shortcut = nn.Sequential(
                make_conv(plan.dim_in, plan.dim, 1, stride, std_eps=std_eps, padding=padding),
                block_norm(norm, plan.dim, groups),
            )
        self.drop_path = DropPath(plan.drop_path)
        self.act3 = make_act(plan.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.se(self.act2(self.bn2(self.mixer(out))))
        out = self.bn3(self.conv3(out))
        return self.act3(self.drop_path(out) + self.shortcut(x))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block on tokens: ``x + mixer(norm(x))``, ``x + mlp(norm(x))``.

    The mixer is global attention (ViT, CvT, PVT) or Swin window attention. With ``q_stride > 1``
    the token map shrinks, and the shortcut is max-pooled to match (class tokens pass through
    unchanged). With ``mlp_dwconv`` the MLP is PVT v2's, with a depthwise 3x3 conv on the (output)
    token map. With ``peg`` the stage's conditional position encoding follows the block
    (:class:`PosConv`).
    """

    def __init__(self, plan: BlockPlan, build_mixer: BuildMixer):
        super().__init__()
        assert plan.mlp_ratio is not None
        self.cls_tokens = plan.in_shape.cls_tokens
        self.norm1 = nn.LayerNorm(plan.dim, eps=plan.norm_eps)
        self.attn = build_mixer(plan)  # (tokens, hw) -> tokens on the q_stride-strided map
        self.drop_path = DropPath(plan.drop_path)
        self.norm2 = nn.LayerNorm(plan.dim, eps=plan.norm_eps)
        hidden = int(plan.dim * plan.mlp_ratio)
        self.mlp_dwconv = plan.mlp_dwconv
        self.mlp: nn.Module = (
            MlpDwConv(plan.dim, hidden, plan.act, self.cls_tokens)
            if plan.mlp_dwconv
            else Mlp(plan.dim, hidden, plan.act)
        )
        self.pool: nn.Module | None = None
        if plan.q_stride > 1:  # the query projection's kernel pools the shortcut alike
            kernel: int = getattr(plan.mixer, "kernel", 3)
            self.pool = nn.MaxPool2d(kernel, plan.q_stride, kernel // 2)
        # the stage's PEG after this block (CPVT, Twins): registered last, as timm lists it after
        self.peg = PosConv(plan.dim, plan.out_shape.cls_tokens) if plan.peg else None

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        shortcut, out_hw = (x, hw) if self.pool is None else self._pool_tokens(x, hw)
        x = shortcut + self.drop_path(self.attn(self.norm1(x), hw))
        y = self.norm2(x)
        x = x + self.drop_path(self.mlp(y, out_hw) if self.mlp_dwconv else self.mlp(y))
        if self.peg is not None:
            x = self.peg(x, out_hw)
        return x, out_hw

    def _pool_tokens(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        assert self.pool is not None
        return pool_tokens(self.pool, x, hw, self.cls_tokens)


def pool_tokens(
    pool: nn.Module, x: torch.Tensor, hw: tuple[int, int], cls_tokens: int
) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(B, cls + H*W, C)`` tokens with their map pooled by ``pool`` (class tokens pass through)
    and the pooled map's sides: a strided block's shortcut."""
    cls, tokens = x[:, :cls_tokens], x[:, cls_tokens:]
    pooled = pool(tokens_to_map(tokens, hw))
    out_hw = (pooled.shape[2], pooled.shape[3])
    return torch.cat((cls, pooled.flatten(2).transpose(1, 2)), dim=1), out_hw


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block (timm ``ConvNeXtBlock``, ``conv_mlp=False``); map in, map out.

    Depthwise kxk conv (with bias) on the ``(B, C, H, W)`` map, then channels-last
    ``(B, H, W, C)``: LayerNorm -> Linear -> activation -> Linear; the branch is scaled per channel
    by ``gamma`` (layer scale, when on), dropped per sample (drop path) and added to the input.
    """

    def __init__(self, plan: BlockPlan, build_mixer: BuildMixer):
        super().__init__()
        assert plan.mlp_ratio is not None
        dim = plan.dim
        layer_scale = getattr(plan.mixer, "layer_scale", None)
        # gamma first: the state dict then lists the tensors in timm's order
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale else None
        self.conv_dw = build_mixer(plan)
        self.norm = nn.LayerNorm(dim, eps=plan.norm_eps)
        self.mlp = Mlp(dim, int(dim * plan.mlp_ratio), plan.act)
        self.drop_path = DropPath(plan.drop_path)
        assert isinstance(self.conv_dw, nn.Conv2d)
        nn.init.trunc_normal_(self.conv_dw.weight, std=0.02)  # timm's init of the ConvNeXt conv
        nn.init.zeros_(self.conv_dw.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_dw(x).permute(0, 2, 3, 1)
        out = self.mlp(self.norm(out))
        if self.gamma is not None:
            out = out * self.gamma
        return x + self.drop_path(out.permute(0, 3, 1, 2))
