"""``mixer: lambda``: the lambda layer in place of a bottleneck's 3x3 conv (Bello, ICLR 2021,
"LambdaNetworks"; timm ``LambdaLayer`` in ``byoanet.py``'s LambdaResNets)."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..core import BlockPlan, CheckContext, Cost, FeatureShape, Kernel, Path, PositiveInt, StrictModel
from ..ops import LambdaLayer
from ._base import MixerKind, check_heads

__all__ = ["LAMBDA", "LambdaMixer"]


class LambdaMixer(StrictModel):
    """Lambda layer: content and local-position lambdas applied by multi-query heads. Family:
    ``bottleneck``.

    Queries (``heads`` x ``key_dim``, BatchNorm), one key (``key_dim``, softmax over positions)
    and one value (bottleneck width / ``heads``, BatchNorm) from a 1x1 conv; the content lambda
    ``softmax(K)^T V`` is global, the position lambdas come from a ``radius`` x ``radius``
    neighbourhood of the values (a conv with bias). A downsampling block 2x2 average-pools after
    the layer (timm ``LambdaLayer``, ``r`` = ``radius``).
    """

    kind: Literal["lambda"] = "lambda"
    heads: PositiveInt = 4
    """Query heads; must divide the bottleneck width (each head's value has width / heads channels)."""
    key_dim: PositiveInt = 16
    """Channels of each query and of the key (timm's ``dim_head``)."""
    radius: Kernel = 9
    """Side of the local context of the position lambdas (timm's ``r``); must be odd."""
    qkv_bias: bool = False
    """Bias in the 1x1 projection."""


class _Lambda(MixerKind):
    name = "lambda"
    schema = LambdaMixer
    family = "bottleneck"

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_heads(ctx, mpath, mixer.heads, width, what)
        if mixer.radius % 2 == 0:
            ctx.fail(
                (*mpath, "radius"),
                "the radius must be odd: the position lambdas' conv is padded radius // 2",
                value=mixer.radius,
                allowed="odd sides: 1, 3, 5, 7, 9, ...",
            )

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        h, w = shape.height, shape.width
        if stride > 2:
            ctx.fail(
                ("stages", mpath[1], "embed", "stride"),
                "a lambda block downsamples by a 2x2 average pool: its stride is 1 or 2",
                value=stride,
                allowed="1, 2",
            )
            return None
        return FeatureShape(dim, -(-h // stride), -(-w // stride), shape.cls_tokens)  # ceil-mode pool

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, width, H, W)`` -> the same, 2x2 average-pooled when the block downsamples."""
        mixer = block.mixer
        assert isinstance(mixer, LambdaMixer)
        return LambdaLayer(
            block.width,
            mixer.heads,
            mixer.key_dim,
            mixer.radius,
            stride=block.stride,
            qkv_bias=mixer.qkv_bias,
        )

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        """The projection and its BatchNorms, ``K^T V``, the queries against the content lambda,
        the position lambdas' conv and the queries against them (fvcore's matmul counts)."""
        mixer, width = block.mixer, block.width
        assert isinstance(mixer, LambdaMixer)
        h, w = block.in_shape.height, block.in_shape.width
        m, heads, k, v, r = h * w, mixer.heads, mixer.key_dim, width // mixer.heads, mixer.radius
        cost.conv(width, heads * k + k + v, 1, h, w, bias=mixer.qkv_bias)
        cost.batch_norm(heads * k, heads * k * m)
        cost.batch_norm(v, v * m)
        cost.op(k * m * v, k * v)  # content lambda softmax(K)^T V
        cost.op(heads * m * k * v, heads * m * v)  # queries x content lambda
        cost.op(k * m * v * r * r, k * m * v, params=k * r * r + k)  # position lambdas (Conv3d)
        cost.op(heads * m * k * v, heads * m * v)  # queries x position lambdas


LAMBDA = _Lambda()
