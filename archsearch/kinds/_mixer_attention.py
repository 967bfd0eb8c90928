"""``mixer: attention``: global multi-head attention over tokens, with the q/k/v projections of
ViT (Dosovitskiy et al. 2021), CvT (Wu et al. 2021: ``dw_bn``, ``avg``, strided keys/values) and
PVT v2 (Wang et al. 2022: spatial-reduction ``sr``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from torch import nn

from ..core import (
    BlockPlan,
    CheckContext,
    Cost,
    FeatureShape,
    Kernel,
    Path,
    PerBlockInt,
    PositiveInt,
    StagePlan,
    StrictModel,
    as_list,
    conv_out,
    pool_out_ceil,
    scalar,
)
from ..ops import Attention
from ._base import MixerKind, Share, check_heads, check_odd_kernel, check_strides_fit

__all__ = ["ATTENTION", "AttentionMixer"]


class AttentionMixer(StrictModel):
    """Global multi-head attention over tokens (ViT, CvT, PVT v2). Family: ``transformer``.

    ``qkv: linear`` projects tokens with Linear layers (ViT). ``dw_bn`` first applies a
    depthwise kxk conv (no bias) + BatchNorm on the token map, then Linear (CvT); ``avg``
    average-pools keys and values. ``sr`` is PVT v2's spatial-reduction attention: queries are a
    Linear of the tokens; keys and values a Linear (C -> 2C) of the map reduced by a conv whose
    kernel and stride are ``kv_stride`` (with bias), then a LayerNorm (with ``kv_stride: 1`` no
    conv and no norm; a map side that is not a multiple of the stride drops its last rows, as in
    PVT). The strides subsample keys/values and queries on the map; a cls token bypasses the conv
    projection.
    """

    kind: Literal["attention"] = "attention"
    heads: PositiveInt = 1
    """Attention heads; must divide the stage dim."""
    qkv: Literal["linear", "dw_bn", "avg", "sr"] = "linear"
    """How tokens are projected to queries, keys and values (``sr``: PVT v2 spatial reduction)."""
    kernel: Kernel = 3
    """Kernel of the ``dw_bn``/``avg`` projection (padding ``kernel // 2``); ``sr`` takes ``kv_stride``."""
    kv_stride: PerBlockInt = 1
    """Stride of the key/value projection; a list gives one per block."""
    q_stride: PerBlockInt = 1
    """Stride of the query projection (the shortcut is max-pooled to match)."""
    qkv_bias: bool = True
    """Bias in the q/k/v Linear layers."""
    scale: Literal["head", "dim"] = "head"
    """Logit scale: ``head_dim ** -0.5`` (ViT) or ``dim ** -0.5`` (official CvT)."""
    norm_eps: Annotated[float, Field(gt=0)] | None = None
    """Epsilon of the LayerNorm of the ``sr`` projection (none at ``kv_stride: 1``); default the
    spec's ``norm_eps``."""


class _Attention(MixerKind):
    name = "attention"
    share = Share(
        kernels=("kernel",),
        reuse=("heads", "kv_stride", "q_stride", "norm_eps"),
        source="kv/q stride: the same projection at another stride (CvT-13-NAS); kernel: OFA",
    )
    schema = AttentionMixer
    family = "transformer"
    pos_embeds = ("none", "absolute", "sinusoidal")
    per_block_fields = ("kv_stride", "q_stride")

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_odd_kernel(ctx, mpath, mixer.kernel)
        check_heads(ctx, mpath, mixer.heads, width, what)
        strided = [
            name for name in self.per_block_fields if any(v > 1 for v in as_list(getattr(mixer, name)))
        ]
        if mixer.qkv == "linear" and strided:
            ctx.fail(
                (*mpath, strided[0]),
                f"{strided[0]} > 1 needs a convolutional projection",
                value=getattr(mixer, strided[0]),
                allowed="qkv: dw_bn, avg or sr (or stride 1)"
                if strided[0] == "kv_stride"
                else "qkv: dw_bn (or stride 1)",
            )
        if mixer.qkv == "avg" and "q_stride" in strided:
            ctx.fail(
                (*mpath, "q_stride"),
                "the avg projection keeps queries linear (official CvT), so q_stride must be 1",
                value=mixer.q_stride,
                allowed="qkv: dw_bn for a strided query",
            )
        if mixer.qkv == "sr":
            self._check_sr(ctx, mpath, mixer, strided)
        elif mixer.norm_eps is not None:
            ctx.fail(
                (*mpath, "norm_eps"),
                f"norm_eps is the epsilon of the sr projection's LayerNorm; qkv {mixer.qkv!r} has none",
                value=mixer.norm_eps,
                allowed="qkv: sr, or leave norm_eps out",
            )

    @staticmethod
    def _check_sr(ctx: CheckContext, mpath: Path, mixer: AttentionMixer, strided: list[str]) -> None:
        """PVT v2's spatial reduction: queries are a plain Linear, the conv's kernel is its stride."""
        if "q_stride" in strided:
            ctx.fail(
                (*mpath, "q_stride"),
                "the sr projection keeps queries at full resolution (PVT v2), so q_stride must be 1",
                value=mixer.q_stride,
                allowed="qkv: dw_bn for a strided query",
            )
        if "kernel" in mixer.model_fields_set:
            ctx.fail(
                (*mpath, "kernel"),
                "the sr projection's conv has kernel = stride = kv_stride; 'kernel' does not apply",
                value=mixer.kernel,
                allowed="leave kernel out (set kv_stride)",
            )

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        strides = {name: scalar(getattr(mixer, name)) for name in self.per_block_fields}

        def why(name: str, value: int) -> str:
            """What the stride at fault (``name`` = ``value``) would do: with ``sr`` only the keys'
            and values' conv has a stride (kernel = stride = kv_stride)."""
            if mixer.qkv == "sr" and name == "kv_stride":
                return f"the {value}x{value} spatial-reduction conv would leave no keys"
            return "the projection would only sample its first row and column"

        if not check_strides_fit(ctx, mpath, j, strides, shape, why):
            return None
        h, w = shape.height, shape.width
        q_stride, pad = scalar(mixer.q_stride), mixer.kernel // 2
        oh, ow = conv_out(h, mixer.kernel, q_stride, pad), conv_out(w, mixer.kernel, q_stride, pad)
        return FeatureShape(dim, oh, ow, shape.cls_tokens)

    def canonical(self, data: dict[str, Any], stage: StagePlan) -> dict[str, Any]:
        """``kv_stride`` and ``q_stride`` as one value per block (a scalar and its repeat agree)."""
        return {**data, **{name: [getattr(b, name) for b in stage.blocks] for name in self.per_block_fields}}

    def build(self, block: BlockPlan) -> nn.Module:
        """``(B, cls + H*W, dim)`` tokens on an ``H x W`` map -> ``(B, cls + H'*W', dim)`` with the
        map strided by ``q_stride``."""
        mixer = block.mixer
        assert isinstance(mixer, AttentionMixer)
        return Attention(
            block.dim,
            mixer.heads,
            qkv=mixer.qkv,
            kernel=mixer.kernel,
            kv_stride=block.kv_stride,
            q_stride=block.q_stride,
            qkv_bias=mixer.qkv_bias,
            scale=mixer.scale,
            cls_tokens=block.in_shape.cls_tokens,
            norm_eps=block.norm_eps if mixer.norm_eps is None else mixer.norm_eps,
        )

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        """Projections, ``q k^T`` and ``attn v`` over all heads, output projection."""
        mixer = block.mixer
        assert isinstance(mixer, AttentionMixer)
        c, cls = block.dim, block.in_shape.cls_tokens
        h, w = block.in_shape.height, block.in_shape.width
        n = h * w + cls
        if mixer.qkv == "linear":
            nq = nk = n
            cost.linear(n, c, 3 * c, mixer.qkv_bias)
        elif mixer.qkv == "sr":  # PVT v2: q = Linear(x); kv = Linear(LN(conv s x s / s (map)))
            s = block.kv_stride
            nq = nk = n
            cost.linear(n, c, c, mixer.qkv_bias)
            if s > 1:
                hk, wk = conv_out(h, s, s, 0), conv_out(w, s, s, 0)
                cost.conv(c, c, s, hk, wk, bias=True)
                cost.layer_norm(c, c * hk * wk)
                nk = hk * wk + cls
            cost.linear(nk, c, 2 * c, mixer.qkv_bias)
        else:
            k = mixer.kernel
            if mixer.qkv == "dw_bn":
                hq, wq = conv_out(h, k, block.q_stride, k // 2), conv_out(w, k, block.q_stride, k // 2)
                hk, wk = conv_out(h, k, block.kv_stride, k // 2), conv_out(w, k, block.kv_stride, k // 2)
                cost.conv(c, c, k, hq, wq, groups=c)
                cost.batch_norm(c, c * hq * wq)
                for _ in range(2):
                    cost.conv(c, c, k, hk, wk, groups=c)
                    cost.batch_norm(c, c * hk * wk)
            else:  # avg: queries stay unprojected; pooling counts zero by convention
                hq, wq = h, w
                hk, wk = (
                    pool_out_ceil(h, k, block.kv_stride, k // 2),
                    pool_out_ceil(w, k, block.kv_stride, k // 2),
                )
            nq, nk = hq * wq + cls, hk * wk + cls
            cost.linear(nq, c, c, mixer.qkv_bias)
            cost.linear(nk, c, c, mixer.qkv_bias)
            cost.linear(nk, c, c, mixer.qkv_bias)
        cost.op(2 * nq * nk * c, nq * c)  # q k^T and attn v over all heads
        cost.linear(nq, c, c)


ATTENTION = _Attention()
