"""``mixer: mobilevit``: the MobileViT block's attention over patch sequences (Mehta & Rastegari
2022, "MobileViT"; timm ``MobileVitBlock``). The stage's blocks are its transformer layers; the
convs around them are the mixer's per-stage part."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import (
    BlockPlan,
    CheckContext,
    Cost,
    FeatureShape,
    Kernel,
    Path,
    PositiveInt,
    StagePlan,
    StrictModel,
)
from ..ops import Attention
from ._base import MixerKind, Share, check_heads, check_odd_kernel

__all__ = ["MOBILEVIT", "MobileViTMixer"]


class MobileViTMixer(StrictModel):
    """MobileViT block: local kxk conv, attention over patches, fusion; the stage's ``depth`` counts
    its transformer layers (the paper's L). Family: ``mobilevit``.

    kxk conv + BN + act, 1x1 conv to ``transformer_dim``; the map is unfolded into
    ``patch`` x ``patch`` patches and the pixels at the same position of every patch form one
    sequence; ``depth`` pre-norm transformer layers (the stage's blocks) run on them, then a
    LayerNorm; the map is folded back, projected by a 1x1 conv + BN + act to the stage dim and
    fused with the stage input by a kxk conv + BN + act on their concatenation. A map not divisible
    by the patch is resized bilinearly to the next multiple and back, as timm does.
    """

    kind: Literal["mobilevit"] = "mobilevit"
    transformer_dim: PositiveInt | None = None
    """Width of the transformer layers (the paper's d); default: the stage dim."""
    heads: PositiveInt = 4
    """Attention heads; must divide ``transformer_dim``."""
    patch: PositiveInt = 2
    """Patch side: attention runs among pixels at the same position of each patch."""
    kernel: Kernel = 3
    """Kernel of the local and the fusion conv (padding ``kernel // 2``); must be odd."""
    qkv_bias: bool = True
    """Bias in the q/k/v Linear layer."""


class _MobileViT(MixerKind):
    name = "mobilevit"
    share = Share(
        nested=("transformer_dim",),
        kernels=("kernel",),
        reuse=("heads", "patch"),
        source="AutoFormer weight entanglement (Chen et al. ICCV 2021); kernel: OFA elastic kernel",
    )
    schema = MobileViTMixer
    family = "mobilevit"

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_odd_kernel(ctx, mpath, mixer.kernel)
        check_heads(ctx, mpath, mixer.heads, mixer.transformer_dim or width, what)

    def prepare(self, mixer: Any, dim: int, shape: FeatureShape) -> tuple[Any, FeatureShape]:
        """Blocks are transformer layers at ``transformer_dim`` on the map resized up to a
        multiple of the patch."""
        d = mixer.transformer_dim or dim
        mixer = mixer.model_copy(update={"transformer_dim": d})
        p = mixer.patch
        return mixer, FeatureShape(d, -(-shape.height // p) * p, -(-shape.width // p) * p)

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        return shape  # transformer layers keep the unfolded map

    def stage_out(self, dim: int, embed_shape: FeatureShape, last: FeatureShape) -> FeatureShape:
        return FeatureShape(dim, embed_shape.height, embed_shape.width)  # folded back, projected

    def canonical(self, data: dict[str, Any], stage: StagePlan) -> dict[str, Any]:
        """``transformer_dim`` resolved (its default is the stage dim)."""
        return {**data, "transformer_dim": stage.blocks[0].dim}

    def build(self, block: BlockPlan) -> nn.Module:
        """Attention within each patch-position sequence: ``(B * P, N, d)`` -> the same."""
        mixer = block.mixer
        assert isinstance(mixer, MobileViTMixer)
        return Attention(block.dim, mixer.heads, qkv="linear", qkv_bias=mixer.qkv_bias)

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        mixer = block.mixer
        assert isinstance(mixer, MobileViTMixer)
        c, h, w = block.dim, block.in_shape.height, block.in_shape.width
        tokens, seq = h * w, h * w // mixer.patch**2  # all tokens; tokens per sequence
        cost.linear(tokens, c, 3 * c, mixer.qkv_bias)
        cost.op(2 * tokens * seq * c, tokens * c)  # q k^T and attn v, every sequence, all heads
        cost.linear(tokens, c, c)

    def stage_cost(self, stage: StagePlan, cost: Cost) -> None:
        """The convs around the transformer layers: local kxk and 1x1 in, resize, LayerNorm,
        1x1 projection and kxk fusion out."""
        mixer = stage.blocks[0].mixer
        assert isinstance(mixer, MobileViTMixer) and mixer.transformer_dim is not None
        c, d, dim, k = stage.embed_shape.channels, mixer.transformer_dim, stage.dim, mixer.kernel
        h, w = stage.embed_shape.height, stage.embed_shape.width
        hp, wp = stage.blocks[0].in_shape.height, stage.blocks[0].in_shape.width
        cost.conv(c, c, k, h, w)
        cost.batch_norm(c, c * h * w)
        cost.conv(c, d, 1, h, w)
        if (hp, wp) != (h, w):  # bilinear resize to a multiple of the patch and back (4 per output)
            cost.op(4 * d * hp * wp, d * hp * wp)
            cost.op(4 * d * h * w, d * h * w)
        cost.layer_norm(d, d * hp * wp)
        cost.conv(d, dim, 1, h, w)
        cost.batch_norm(dim, dim * h * w)
        cost.conv(c + dim, dim, k, h, w)
        cost.batch_norm(dim, dim * h * w)


MOBILEVIT = _MobileViT()
