"""The stage modules the block families use: blocks on the map, or on tokens (the MobileViT
stage is in :mod:`._mobile`)."""

from __future__ import annotations

import torch
from torch import nn

from ..core import StagePlan
from ._layers import tokens_to_map
from ._resample import resample_abs_pos_embed
from ._t2t import sinusoid_table

__all__ = ["Features", "MapStage", "TokenStage"]

Features = tuple[torch.Tensor, torch.Tensor | None]  # (B, C, H, W) map, (B, n, C) class tokens


class MapStage(nn.Module):
    """A stage whose blocks work on the ``(B, C, H, W)`` map (bottleneck, convnext, mbconv). Class
    tokens stop here."""

    def __init__(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]):
        super().__init__()
        self.embed = embed
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, cls: torch.Tensor | None = None) -> Features:
        return self.blocks(self.embed(x)), None


class TokenStage(nn.Module):
    """A stage whose blocks work on ``(B, cls + H*W, C)`` tokens (transformer).

    After the embedding, the map is flattened to tokens, the class token (and DeiT's distillation
    token after it) is prepended and the
    position embedding (learned, or the fixed sinusoidal table as a frozen parameter) added; at
    the end (after the ``norm_out`` LayerNorm, if any) the class tokens are split off again.

    The position table holds the ``grid`` of the size the stage was built for. On another grid,
    the stage raises ``ValueError`` unless ``dynamic_size`` is set (the model's
    ``dynamic_size: true``); then a learned table is resampled to the grid (bicubic, class tokens
    kept: :func:`resample_abs_pos_embed`) and the sinusoidal one recomputed for its tokens.
    """

    def __init__(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]):
        super().__init__()
        self.embed = embed
        self.cls_tokens = plan.embed_shape.cls_tokens
        n_cls = self.cls_tokens - (1 if plan.dist_token else 0)
        dim = plan.embed_shape.channels  # the stage dim (a multiscale stage widens in its first block)
        self.cls_token = nn.Parameter(torch.zeros(1, n_cls, dim)) if n_cls else None
        self.pos_embed = None
        self.pos_kind = plan.pos_embed
        self.grid = (plan.embed_shape.height, plan.embed_shape.width)
        self.dynamic_size = False
        if plan.pos_embed == "absolute":
            self.pos_embed = nn.Parameter(torch.zeros(1, plan.embed_shape.tokens, dim))
        elif plan.pos_embed == "sinusoidal":
            table = sinusoid_table(plan.embed_shape.tokens, dim)
            self.pos_embed = nn.Parameter(table, requires_grad=False)
        # after the position table: timm's VisionTransformerDistilled registers it there
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if plan.dist_token else None
        self.blocks = nn.ModuleList(blocks)
        self.norm_out = nn.LayerNorm(plan.dim, eps=plan.blocks[0].norm_eps) if plan.norm_out else None

    def forward(self, x: torch.Tensor, cls: torch.Tensor | None = None) -> Features:
        x = self.embed(x)
        b, _, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        if self.dist_token is not None:
            assert self.cls_token is not None
            t = torch.cat((self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), t), dim=1)
        elif self.cls_token is not None:
            t = torch.cat((self.cls_token.expand(b, -1, -1), t), dim=1)
        if self.pos_embed is not None:
            t = t + (self.pos_embed if (h, w) == self.grid else self._pos_embed_for((h, w)))
        hw = (h, w)
        for block in self.blocks:
            t, hw = block(t, hw)
        if self.norm_out is not None:
            t = self.norm_out(t)
        cls_out = t[:, : self.cls_tokens] if self.cls_tokens else None
        fmap = tokens_to_map(t[:, self.cls_tokens :], hw)
        return fmap, cls_out

    def _pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The ``(1, cls + H*W, C)`` position table for another token ``grid``."""
        assert self.pos_embed is not None
        if not self.dynamic_size:
            raise ValueError(
                f"the {self.pos_kind} position table was built for a {self.grid[0]}x{self.grid[1]} token "
                f"grid but got {grid[0]}x{grid[1]}; build the model at this input size or set "
                "dynamic_size: true in the spec"
            )
        if self.pos_kind == "sinusoidal":
            table = sinusoid_table(self.cls_tokens + grid[0] * grid[1], self.pos_embed.shape[-1])
            return table.to(self.pos_embed.device, self.pos_embed.dtype)
        return resample_abs_pos_embed(self.pos_embed, grid, self.grid, self.cls_tokens)
