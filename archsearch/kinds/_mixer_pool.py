"""``mixer: pool``: PoolFormer's pooling token mixer (Yu et al., CVPR 2022, "MetaFormer Is Actually
What You Need for Vision"; timm ``metaformer.py`` ``Pooling``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from torch import nn

from ..core import BlockPlan, Cost, Kernel, StagePlan, StrictModel
from ..ops import Pooling
from ._base import OddKernelMixer

__all__ = ["POOL", "PoolMixer"]


class PoolMixer(StrictModel):
    """PoolFormer's pooling mixer: ``avg_pool(x) - x`` (kxk, stride 1, padding not counted).
    Family: ``metaformer``.

    The block (timm ``MetaFormerBlock``): one-group GroupNorm -> mixer -> layer scale -> drop path
    -> + shortcut; one-group GroupNorm -> 1x1 conv to ``mlp_ratio * dim`` -> activation -> 1x1 conv
    back -> layer scale -> drop path -> + shortcut.
    """

    kind: Literal["pool"] = "pool"
    kernel: Kernel = 3
    """Side of the average pool (padding ``kernel // 2``); must be odd."""
    layer_scale: Annotated[float, Field(ge=0)] | None = 1e-5
    """Initial value of the learned per-channel scales on both branches of the block (PoolFormer:
    1e-5); ``null`` or 0 leaves them out."""


class _Pool(OddKernelMixer):
    name = "pool"
    schema = PoolMixer
    family = "metaformer"

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, dim, H, W)`` -> the same: ``avg_pool(x) - x``."""
        assert isinstance(block.mixer, PoolMixer)
        return Pooling(block.mixer.kernel)

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        """Nothing: the average pool and the subtraction count zero (fvcore's convention)."""

    def canonical(self, data: dict[str, Any], stage: StagePlan) -> dict[str, Any]:
        """A layer scale of 0 builds what ``null`` builds."""
        return {**data, "layer_scale": data["layer_scale"] or None}


POOL = _Pool()
