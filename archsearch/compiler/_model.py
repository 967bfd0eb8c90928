"""The one model class every spec compiles to: stem -> stages -> head."""

from __future__ import annotations

import torch
from torch import nn

from ..ops import Bottleneck, ConvNeXtBlock, MBConvBlock, MobileViTLayer, MobileViTStage, TransformerBlock
from ..ops._embed import conv_embed, patch_embed, resnet_stem
from ..ops._layers import tokens_to_map
from ..ops._mobile import ConvBnAct, conv_stem, mbconv_embed
from ..ops._t2t import sinusoid_table, t2t_embed
from ..ops._window import merge_embed
from ..spec import NormalizedSpec, StagePlan
from ._registry import BLOCKS, EMBEDS, STEMS

__all__ = ["ArchNet", "ClassifierHead", "MapStage", "TokenStage"]

STEMS.register("resnet")(resnet_stem)
STEMS.register("conv")(conv_stem)
EMBEDS.register("conv")(conv_embed)
EMBEDS.register("patch")(patch_embed)
EMBEDS.register("t2t")(t2t_embed)
EMBEDS.register("merge")(merge_embed)
EMBEDS.register("block")(lambda embed, c_in, dim, eps: nn.Identity())
EMBEDS.register("mbconv")(mbconv_embed)
EMBEDS.register("none")(lambda embed, c_in, dim, eps: nn.Identity())

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

    After the embedding, the map is flattened to tokens, the class token is prepended and the
    position embedding (learned, or the fixed sinusoidal table as a frozen parameter) added; at
    the end (after the ``norm_out`` LayerNorm, if any) the class tokens are split off again.
    """

    def __init__(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]):
        super().__init__()
        self.embed = embed
        self.cls_tokens = plan.embed_shape.cls_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, self.cls_tokens, plan.dim)) if self.cls_tokens else None
        self.pos_embed = None
        if plan.pos_embed == "absolute":
            self.pos_embed = nn.Parameter(torch.zeros(1, plan.embed_shape.tokens, plan.dim))
        elif plan.pos_embed == "sinusoidal":
            table = sinusoid_table(plan.embed_shape.tokens, plan.dim)
            self.pos_embed = nn.Parameter(table, requires_grad=False)
        self.blocks = nn.ModuleList(blocks)
        self.norm_out = nn.LayerNorm(plan.dim, eps=plan.blocks[0].norm_eps) if plan.norm_out else None

    def forward(self, x: torch.Tensor, cls: torch.Tensor | None = None) -> Features:
        x = self.embed(x)
        b, _, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            t = torch.cat((self.cls_token.expand(b, -1, -1), t), dim=1)
        if self.pos_embed is not None:
            t = t + self.pos_embed
        hw = (h, w)
        for block in self.blocks:
            t, hw = block(t, hw)
        if self.norm_out is not None:
            t = self.norm_out(t)
        cls_out = t[:, : self.cls_tokens] if self.cls_tokens else None
        fmap = tokens_to_map(t[:, self.cls_tokens :], hw)
        return fmap, cls_out


BLOCKS.register("bottleneck")((Bottleneck, MapStage))
BLOCKS.register("transformer")((TransformerBlock, TokenStage))
BLOCKS.register("convnext")((ConvNeXtBlock, MapStage))
BLOCKS.register("mbconv")((MBConvBlock, MapStage))
BLOCKS.register("mobilevit")((MobileViTLayer, MobileViTStage))


class ClassifierHead(nn.Module):
    """Pool (class token or average), LayerNorm per token before the average (``norm: tokens``)
    or on the pooled vector (``norm: pooled``), dropout, Linear."""

    def __init__(self, plan: NormalizedSpec):
        super().__init__()
        head, dim = plan.head, plan.out_shape.channels
        self.conv: nn.Module = nn.Identity()
        if head.conv is not None:  # MobileViT's final 1x1 conv
            self.conv = ConvBnAct(dim, head.conv, 1, act=plan.blocks[-1].act)
            dim = head.conv
        self.pool = head.pool
        self.norm = nn.LayerNorm(dim, eps=plan.spec.norm_eps) if head.norm else None
        self.norm_tokens = head.norm == "tokens" and head.pool == "avg"
        self.drop = nn.Dropout(head.dropout)
        self.fc = nn.Linear(dim, head.num_classes) if head.num_classes else nn.Identity()

    def forward(self, x: torch.Tensor, cls: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x)
        if self.pool == "cls":
            assert cls is not None
            x = cls[:, 0]
        elif self.norm_tokens:
            assert self.norm is not None
            x = self.norm(x.flatten(2).transpose(1, 2)).mean(dim=1)
        else:
            x = x.mean(dim=(2, 3))
        if self.norm is not None and not self.norm_tokens:
            x = self.norm(x)
        return self.fc(self.drop(x))


class ArchNet(nn.Module):
    """A compiled spec. ``plan`` is its normalised spec; ``feature_info`` lists per-stage
    channels and reduction (as timm's ``feature_info``)."""

    def __init__(self, plan: NormalizedSpec):
        super().__init__()
        self.plan = plan
        spec, source = plan.spec, plan.source
        eps = spec.norm_eps
        channels = plan.input_shape.channels
        self.stem: nn.Module = nn.Identity()
        if spec.stem is not None:
            self.stem = STEMS.get(spec.stem.kind, ("stem", "kind"), source)(spec.stem, channels)
            assert plan.stem_shape is not None
            channels = plan.stem_shape.channels
        stages = []
        for sp in plan.stages:
            embed_builder = EMBEDS.get(sp.embed.kind, ("stages", sp.index, "embed", "kind"), source)
            embed = embed_builder(sp.embed, channels, sp.dim, eps)
            block_cls, stage_cls = BLOCKS.get(sp.family, ("stages", sp.index, "block"), source)
            stages.append(stage_cls(sp, embed, [block_cls(b) for b in sp.blocks]))
            channels = sp.out_shape.channels
        self.stages = nn.ModuleList(stages)
        self.head = ClassifierHead(plan)
        self.feature_info = [
            {"num_chs": s.out_shape.channels, "reduction": s.reduction, "module": f"stages.{s.index}"}
            for s in plan.stages
        ]
        self.apply(_init_weights)
        for stage in self.stages:
            for name in ("cls_token", "pos_embed"):
                param = getattr(stage, name, None)
                if param is not None and param.requires_grad:  # a fixed table stays as it is
                    nn.init.trunc_normal_(param, std=0.02)

    @property
    def num_classes(self) -> int:
        return self.plan.num_classes

    def forward_features(self, x: torch.Tensor) -> Features:
        x = self.stem(x)
        cls = None
        for stage in self.stages:
            x, cls = stage(x, cls)
        return x, cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, cls = self.forward_features(x)
        return self.head(x, cls)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, Bottleneck):
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(module.bn3.weight)  # zero-init the last BN: each block starts as identity
