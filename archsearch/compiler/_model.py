"""The one model class every spec compiles to: stem -> stages -> head."""

from __future__ import annotations

import torch
from torch import nn

from ..core import NormalizedSpec
from ..kinds import EMBEDS, FAMILIES, STEMS, build_mixer
from ..ops import Bottleneck, ConvBnAct, Features
from ._size import input_shape_error, input_size_error, size_dependence

__all__ = ["ArchNet", "ClassifierHead"]


class ClassifierHead(nn.Module):
    """Pool (class token or average), LayerNorm per token before the average (``norm: tokens``)
    or on the pooled vector (``norm: pooled``), dropout, Linear.

    After a last stage with DeiT's distillation token and ``pool: cls``, a second Linear
    (``fc_dist``) classifies the distillation token (normalised alike): the output is the mean of
    the two logits, or both ``(class logits, distillation logits)`` in training when
    ``distilled_training`` is on (timm ``VisionTransformerDistilled``)."""

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
        self.fc_dist: nn.Module | None = None
        if plan.stages[-1].dist_token and head.pool == "cls":
            self.fc_dist = nn.Linear(dim, head.num_classes) if head.num_classes else nn.Identity()
        self.distilled_training = False

    def forward(
        self, x: torch.Tensor, cls: torch.Tensor | None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x)
        if self.fc_dist is not None:
            assert cls is not None
            x, x_dist = (
                self.fc(self.drop(self._norm(cls[:, 0]))),
                self.fc_dist(self.drop(self._norm(cls[:, 1]))),
            )
            if self.distilled_training and self.training:
                return x, x_dist
            return (x + x_dist) / 2
        if self.pool == "cls":
            assert cls is not None
            x = cls[:, 0]
        elif self.norm_tokens:
            assert self.norm is not None
            x = self.norm(x.flatten(2).transpose(1, 2)).mean(dim=1)
        else:
            x = x.mean(dim=(2, 3))
        if not self.norm_tokens:
            x = self._norm(x)
        return self.fc(self.drop(x))

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.norm is None else self.norm(x)


class ArchNet(nn.Module):
    """A compiled spec. ``plan`` is its normalised spec; ``feature_info`` lists per-stage
    channels and reduction (as timm's ``feature_info``).

    Input size: ``input_size`` is the ``(height, width)`` the model is built for (the spec's
    ``input.size``; the analytic costs are for it). Where a part of the model depends on it
    (``fixed_size``: a position table, Swin windows, BoTNet relative logits), an input of another
    size raises :class:`~archsearch.InputSizeError` (a ``ValueError``) at the entry, naming both
    sizes, unless ``dynamic_size`` is on (the spec's ``dynamic_size: true`` or
    :meth:`set_dynamic_size`): then position tables are resampled, windows laid out and relative
    logits resized for each input, as timm's ``dynamic_img_size``. Models without such a part
    (ResNet, ConvNeXt, CvT, PVT v2, MobileViT) take any size either way.
    """

    def __init__(self, plan: NormalizedSpec):
        super().__init__()
        self.plan = plan
        spec, source = plan.spec, plan.source
        eps = spec.norm_eps
        channels = plan.input_shape.channels
        self.stem: nn.Module = nn.Identity()
        if spec.stem is not None:
            self.stem = STEMS.get(spec.stem.kind, ("stem", "kind"), source).build(spec.stem, channels)
            assert plan.stem_shape is not None
            channels = plan.stem_shape.channels
        stages = []
        for sp in plan.stages:
            embed_kind = EMBEDS.get(sp.embed.kind, ("stages", sp.index, "embed", "kind"), source)
            embed = embed_kind.build(sp.embed, channels, sp.dim, eps)
            family = FAMILIES.get(sp.family, ("stages", sp.index, "block"), source)
            stages.append(family.stage(sp, embed, [family.block(b, build_mixer) for b in sp.blocks]))
            channels = sp.out_shape.channels
        self.stages = nn.ModuleList(stages)
        self.head = ClassifierHead(plan)
        self.feature_info = [
            {"num_chs": s.out_shape.channels, "reduction": s.reduction, "module": f"stages.{s.index}"}
            for s in plan.stages
        ]
        self.input_size = (plan.input_shape.height, plan.input_shape.width)
        self.fixed_size = size_dependence(plan)
        self.dynamic_size = False
        self.set_dynamic_size(plan.spec.dynamic_size)
        self.apply(_init_weights)
        for stage in self.stages:
            for name in ("cls_token", "dist_token", "pos_embed"):
                param = getattr(stage, name, None)
                if param is not None and param.requires_grad:  # a fixed table stays as it is
                    nn.init.trunc_normal_(param, std=0.02)

    @property
    def num_classes(self) -> int:
        return self.plan.num_classes

    def set_dynamic_size(self, enabled: bool = True) -> None:
        """Accept inputs of other sizes than ``input_size`` (``True``) or raise on them
        (``False``); the spec's ``dynamic_size`` sets it at build time.

        Raises:
            TypeError: ``enabled`` is not a bool (``"yes"``, ``1``, ``None`` would be read wrongly).
        """
        if not isinstance(enabled, bool):
            raise TypeError(
                f"set_dynamic_size: expected True or False (got {enabled!r}, a {type(enabled).__name__}); "
                "allowed: True (accept other input sizes) or False (raise on them)"
            )
        self.dynamic_size = enabled
        for module in self.modules():
            if module is not self and hasattr(module, "dynamic_size"):
                setattr(module, "dynamic_size", self.dynamic_size)  # noqa: B010 (any module that has it)

    def check_input_size(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` when ``x`` is not a ``(B, C, H, W)`` batch with the spec's
        ``input.channels``, and :class:`~archsearch.InputSizeError` when it is not ``input_size``
        where the model depends on it and ``dynamic_size`` is off."""
        if x.dim() != 4 or x.shape[1] != self.plan.input_shape.channels:
            raise input_shape_error(self.plan, tuple(x.shape))
        if self.fixed_size is not None and not self.dynamic_size:
            given = (x.shape[-2], x.shape[-1])
            if given != self.input_size:
                raise input_size_error(self.plan, self.fixed_size, given)

    def forward_features(self, x: torch.Tensor) -> Features:
        """``(B, C, H, W)`` image -> the last stage's ``(B, C', H', W')`` map and its class tokens
        ``(B, n, C')`` (or ``None``). Raises :class:`~archsearch.InputSizeError` for an input of
        another size than ``input_size`` where the model depends on it and ``dynamic_size`` is off."""
        self.check_input_size(x)
        x = self.stem(x)
        cls = None
        for stage in self.stages:
            x, cls = stage(x, cls)
        return x, cls

    def set_distilled_training(self, enabled: bool = True) -> None:
        """DeiT's training mode for a model with a distillation token: in ``train()`` mode its
        forward returns ``(class logits, distillation logits)`` for the two losses (in eval, and
        with this off, their mean). Raises ``ValueError`` on a model without distillation head."""
        if self.head.fc_dist is None:
            raise ValueError(
                "this model has no distillation head: set dist_token: true in its last stage (with pool: cls)"
            )
        self.head.distilled_training = bool(enabled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` image -> ``(B, num_classes)`` logits (see :meth:`set_distilled_training`
        for the one exception)."""
        x, cls = self.forward_features(x)
        return self.head(x, cls)  # a pair only under distilled training


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
