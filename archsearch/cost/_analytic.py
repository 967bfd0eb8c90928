"""Analytic costs: parameters, MACs and activations of a normalised spec, no module built.

Each block's figures follow from its :class:`~archsearch.spec.BlockPlan` by the same conventions
as :mod:`archsearch.cost._traced` (fvcore's unit), so the two agree: parameters exactly, MACs to
rounding. ``activations`` counts the output elements of every op that carries MACs, with
attention maps not materialised (the fused path): a proxy for activation memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..spec import (
    AttentionMixer,
    BlockPlan,
    ConvEmbed,
    ConvMixer,
    ConvStem,
    DwConvMixer,
    MBConvEmbed,
    MBConvMixer,
    MergeEmbed,
    MhsaMixer,
    MobileViTMixer,
    NormalizedSpec,
    PatchEmbed,
    StagePlan,
    T2TEmbed,
    WindowMixer,
    window_geometry,
)
from ..spec._normalize import conv_out, make_divisible, pool_out_ceil

__all__ = ["Cost", "CostReport", "analytic_costs"]


@dataclass
class Cost:
    """Parameters, multiply-accumulates and activation elements (per image) of a part."""

    params: int = 0
    macs: int = 0
    activations: int = 0

    def op(self, macs: int, out: int, params: int = 0) -> None:
        self.params += params
        self.macs += macs
        if macs:
            self.activations += out

    def __iadd__(self, other: Cost) -> Cost:
        self.params += other.params
        self.macs += other.macs
        self.activations += other.activations
        return self


@dataclass
class CostReport:
    """Costs of a whole network at batch 1, with the parts they come from."""

    name: str
    params: int
    macs: int
    activations: int
    stem: Cost
    stages: list[Cost]
    head: Cost
    blocks: list[Cost] = field(default_factory=list)
    frozen_params: int = 0
    """Parameters that do not train (a fixed sinusoidal position table); included in ``params``."""

    @property
    def trainable_params(self) -> int:
        return self.params - self.frozen_params

    @property
    def by_scope(self) -> dict[str, int]:
        """MACs per part, named as :func:`count_traced` names them."""
        out = {"stem": self.stem.macs, "head": self.head.macs}
        out.update({f"stages.{i}": s.macs for i, s in enumerate(self.stages)})
        return {k: v for k, v in out.items() if v}

    def activation_bytes(self, batch: int = 1, bytes_per_element: int = 4) -> int:
        return self.activations * batch * bytes_per_element


# --------------------------------------------------------------------------- building blocks


def _conv(
    cost: Cost,
    c_in: int,
    c_out: int,
    kernel: int,
    h_out: int,
    w_out: int,
    groups: int = 1,
    bias: bool = False,
) -> None:
    per_output = (c_in // groups) * kernel * kernel
    cost.op(
        h_out * w_out * c_out * per_output, c_out * h_out * w_out, c_out * per_output + (c_out if bias else 0)
    )


def _batch_norm(cost: Cost, channels: int, elements: int) -> None:
    cost.op(2 * elements, elements, 2 * channels)  # eval mode, affine


def _layer_norm(cost: Cost, channels: int, elements: int) -> None:
    cost.op(5 * elements, elements, 2 * channels)


def _linear(cost: Cost, tokens: int, c_in: int, c_out: int, bias: bool = True) -> None:
    cost.op(tokens * c_in * c_out, tokens * c_out, c_in * c_out + (c_out if bias else 0))


def _norm2d(cost: Cost, kind: str, channels: int, elements: int) -> None:
    if kind == "layer":
        _layer_norm(cost, channels, elements)
    elif kind == "batch":
        _batch_norm(cost, channels, elements)


# --------------------------------------------------------------------------- parts


def _stem(plan: NormalizedSpec) -> Cost:
    cost = Cost()
    stem = plan.spec.stem
    if stem is None:
        return cost
    if isinstance(stem, ConvStem):
        assert plan.stem_shape is not None
        h1, w1 = plan.stem_shape.height, plan.stem_shape.width
        _conv(cost, plan.input_shape.channels, stem.channels, stem.kernel, h1, w1)
        _batch_norm(cost, stem.channels, stem.channels * h1 * w1)
        return cost
    h1, w1 = conv_out(plan.input_shape.height, 7, 2, 3), conv_out(plan.input_shape.width, 7, 2, 3)
    _conv(cost, plan.input_shape.channels, stem.channels, 7, h1, w1)
    _batch_norm(cost, stem.channels, stem.channels * h1 * w1)
    return cost


def _embed(stage: StagePlan, c_in: int) -> Cost:
    cost = Cost()
    embed, shape = stage.embed, stage.embed_shape
    if isinstance(embed, ConvEmbed | PatchEmbed):
        kernel = embed.kernel if isinstance(embed, ConvEmbed) else embed.stride
        if embed.norm_first:
            _norm2d(cost, embed.norm, c_in, c_in * stage.in_shape.height * stage.in_shape.width)
        _conv(cost, c_in, stage.dim, kernel, shape.height, shape.width, bias=embed.bias)
        if not embed.norm_first:
            _norm2d(cost, embed.norm, stage.dim, stage.dim * shape.height * shape.width)
    elif isinstance(embed, T2TEmbed):
        _t2t(cost, embed, c_in, stage.dim, stage.in_shape.height, stage.in_shape.width)
    elif isinstance(embed, MergeEmbed):  # LayerNorm(4C) and Linear(4C -> dim) per merged token
        tokens = shape.height * shape.width
        _layer_norm(cost, 4 * c_in, 4 * c_in * tokens)
        _linear(cost, tokens, 4 * c_in, stage.dim, bias=False)
    elif isinstance(embed, MBConvEmbed):
        h, w = stage.in_shape.height, stage.in_shape.width
        hidden = make_divisible(c_in * embed.expansion)
        _inverted_residual(cost, c_in, hidden, stage.dim, embed.kernel, (h, w), (shape.height, shape.width))
    if stage.cls_token:
        cost.params += stage.dim * shape.cls_tokens
    if stage.pos_embed in ("absolute", "sinusoidal"):
        cost.params += stage.dim * shape.tokens
    return cost


def _t2t(cost: Cost, embed: T2TEmbed, c_in: int, dim: int, h: int, w: int) -> None:
    """Soft splits (unfold: data movement, zero) with a token transformer after all but the last,
    then the Linear projection."""
    assert embed.paddings is not None
    channels, td, last = c_in, embed.token_dim, len(embed.kernels) - 1
    for j, (k, s, p) in enumerate(zip(embed.kernels, embed.strides, embed.paddings, strict=True)):
        h, w = conv_out(h, k, s, p), conv_out(w, k, s, p)
        n, width = h * w, channels * k * k
        if j == last:
            _linear(cost, n, width, dim)
            return
        _layer_norm(cost, width, n * width)
        _linear(cost, n, width, 3 * td, embed.qkv_bias)
        cost.op(2 * n * n * td, n * td)  # q k^T and attn v over all heads
        _linear(cost, n, td, td)
        _layer_norm(cost, td, n * td)
        hidden = int(td * embed.mlp_ratio)
        _linear(cost, n, td, hidden)
        _linear(cost, n, hidden, td)
        channels = td


def _bottleneck(block: BlockPlan) -> Cost:
    cost = Cost()
    c_in, width, dim = block.dim_in, block.width, block.dim
    h, w = block.in_shape.height, block.in_shape.width
    ho, wo = block.out_shape.height, block.out_shape.width
    _conv(cost, c_in, width, 1, h, w)
    _batch_norm(cost, width, width * h * w)
    mixer = block.mixer
    if isinstance(mixer, ConvMixer):
        _conv(cost, width, width, mixer.kernel, ho, wo, groups=mixer.groups)
    else:
        assert isinstance(mixer, MhsaMixer)
        n, head_dim = h * w, width // mixer.heads
        _conv(cost, width, 3 * width, 1, h, w, bias=mixer.qkv_bias)
        if block.pos_embed == "relative":
            cost.params += (2 * h - 1 + 2 * w - 1) * head_dim
            cost.op(n * h * width, n * h * mixer.heads)  # q . rel_h for every key row
            cost.op(n * w * width, n * w * mixer.heads)  # q . rel_w for every key column
        cost.op(2 * n * n * width, n * width)  # q k^T and attn v (heads x head_dim = width)
    _batch_norm(cost, width, width * ho * wo)
    _conv(cost, width, dim, 1, ho, wo)
    _batch_norm(cost, dim, dim * ho * wo)
    if block.stride != 1 or c_in != dim:
        _conv(cost, c_in, dim, 1, ho, wo)
        _batch_norm(cost, dim, dim * ho * wo)
    return cost


def _window_transformer(block: BlockPlan) -> Cost:
    """Swin block: q/k/v on every padded window token, attention within windows, the output
    projection after cropping (per real token), then the MLP."""
    cost = Cost()
    mixer = block.mixer
    assert isinstance(mixer, WindowMixer) and block.mlp_ratio is not None
    c, h, w = block.dim, block.in_shape.height, block.in_shape.width
    (wh, ww), _ = window_geometry(mixer.window, bool(mixer.shift), h, w)
    n = wh * ww
    padded = -(-h // wh) * wh * -(-w // ww) * ww
    _layer_norm(cost, c, h * w * c)
    _linear(cost, padded, c, 3 * c, mixer.qkv_bias)
    if block.pos_embed == "relative_bias":
        cost.params += (2 * wh - 1) * (2 * ww - 1) * mixer.heads
    cost.op(2 * padded * n * c, padded * c)  # q k^T and attn v in each window, all heads
    _linear(cost, h * w, c, c)
    _layer_norm(cost, c, h * w * c)
    hidden = int(c * block.mlp_ratio)
    _linear(cost, h * w, c, hidden)
    _linear(cost, h * w, hidden, c)
    return cost


def _transformer(block: BlockPlan) -> Cost:
    if isinstance(block.mixer, WindowMixer):
        return _window_transformer(block)
    cost = Cost()
    mixer = block.mixer
    assert isinstance(mixer, AttentionMixer) and block.mlp_ratio is not None
    c, cls = block.dim, block.in_shape.cls_tokens
    h, w = block.in_shape.height, block.in_shape.width
    n = h * w + cls
    _layer_norm(cost, c, n * c)
    if mixer.qkv == "linear":
        nq = nk = n
        _linear(cost, n, c, 3 * c, mixer.qkv_bias)
    elif mixer.qkv == "sr":  # PVT v2: q = Linear(x); kv = Linear(LN(conv s x s / s (map)))
        s = block.kv_stride
        nq = nk = n
        _linear(cost, n, c, c, mixer.qkv_bias)
        if s > 1:
            hk, wk = conv_out(h, s, s, 0), conv_out(w, s, s, 0)
            _conv(cost, c, c, s, hk, wk, bias=True)
            _layer_norm(cost, c, c * hk * wk)
            nk = hk * wk + cls
        _linear(cost, nk, c, 2 * c, mixer.qkv_bias)
    else:
        k = mixer.kernel
        if mixer.qkv == "dw_bn":
            hq, wq = conv_out(h, k, block.q_stride, k // 2), conv_out(w, k, block.q_stride, k // 2)
            hk, wk = conv_out(h, k, block.kv_stride, k // 2), conv_out(w, k, block.kv_stride, k // 2)
            _conv(cost, c, c, k, hq, wq, groups=c)
            _batch_norm(cost, c, c * hq * wq)
            for _ in range(2):
                _conv(cost, c, c, k, hk, wk, groups=c)
                _batch_norm(cost, c, c * hk * wk)
        else:  # avg: queries stay unprojected; pooling counts zero by convention
            hq, wq = h, w
            hk, wk = (
                pool_out_ceil(h, k, block.kv_stride, k // 2),
                pool_out_ceil(w, k, block.kv_stride, k // 2),
            )
        nq, nk = hq * wq + cls, hk * wk + cls
        _linear(cost, nq, c, c, mixer.qkv_bias)
        _linear(cost, nk, c, c, mixer.qkv_bias)
        _linear(cost, nk, c, c, mixer.qkv_bias)
    cost.op(2 * nq * nk * c, nq * c)  # q k^T and attn v over all heads
    _linear(cost, nq, c, c)
    _layer_norm(cost, c, nq * c)
    hidden = int(c * block.mlp_ratio)
    _linear(cost, nq, c, hidden)
    if block.mlp_dwconv:  # depthwise 3x3 on the output map; class tokens bypass it
        out = block.out_shape
        _conv(cost, hidden, hidden, 3, out.height, out.width, groups=hidden, bias=True)
    _linear(cost, nq, hidden, c)
    return cost


def _convnext(block: BlockPlan) -> Cost:
    cost = Cost()
    mixer = block.mixer
    assert isinstance(mixer, DwConvMixer) and block.mlp_ratio is not None
    c, h, w = block.dim, block.in_shape.height, block.in_shape.width
    _conv(cost, c, c, mixer.kernel, h, w, groups=c, bias=True)
    _layer_norm(cost, c, c * h * w)
    hidden = int(c * block.mlp_ratio)
    _linear(cost, h * w, c, hidden)
    _linear(cost, h * w, hidden, c)
    if mixer.layer_scale:
        cost.params += c  # gamma; its multiply counts zero (elementwise)
    return cost


def _inverted_residual(
    cost: Cost, c_in: int, hidden: int, c_out: int, kernel: int, hw: tuple[int, int], out: tuple[int, int]
) -> None:
    (h, w), (ho, wo) = hw, out
    _conv(cost, c_in, hidden, 1, h, w)
    _batch_norm(cost, hidden, hidden * h * w)
    _conv(cost, hidden, hidden, kernel, ho, wo, groups=hidden)
    _batch_norm(cost, hidden, hidden * ho * wo)
    _conv(cost, hidden, c_out, 1, ho, wo)
    _batch_norm(cost, c_out, c_out * ho * wo)


def _mbconv(block: BlockPlan) -> Cost:
    cost = Cost()
    assert isinstance(block.mixer, MBConvMixer)
    hw, out = (block.in_shape.height, block.in_shape.width), (block.out_shape.height, block.out_shape.width)
    _inverted_residual(cost, block.dim_in, block.width, block.dim, block.mixer.kernel, hw, out)
    return cost


def _mobilevit_layer(block: BlockPlan) -> Cost:
    """One transformer layer of a MobileViT block: attention within each patch-position sequence."""
    cost = Cost()
    mixer = block.mixer
    assert isinstance(mixer, MobileViTMixer) and block.mlp_ratio is not None
    c, h, w = block.dim, block.in_shape.height, block.in_shape.width
    tokens, seq = h * w, h * w // mixer.patch**2  # all tokens; tokens per sequence
    _layer_norm(cost, c, tokens * c)
    _linear(cost, tokens, c, 3 * c, mixer.qkv_bias)
    cost.op(2 * tokens * seq * c, tokens * c)  # q k^T and attn v, every sequence, all heads
    _linear(cost, tokens, c, c)
    _layer_norm(cost, c, tokens * c)
    hidden = int(c * block.mlp_ratio)
    _linear(cost, tokens, c, hidden)
    _linear(cost, tokens, hidden, c)
    return cost


def _mobilevit_stage(stage: StagePlan) -> Cost:
    """The parts of a MobileViT stage around its transformer layers (the blocks)."""
    cost = Cost()
    mixer = stage.blocks[0].mixer
    assert isinstance(mixer, MobileViTMixer) and mixer.transformer_dim is not None
    c, d, dim, k = stage.embed_shape.channels, mixer.transformer_dim, stage.dim, mixer.kernel
    h, w = stage.embed_shape.height, stage.embed_shape.width
    hp, wp = stage.blocks[0].in_shape.height, stage.blocks[0].in_shape.width
    _conv(cost, c, c, k, h, w)
    _batch_norm(cost, c, c * h * w)
    _conv(cost, c, d, 1, h, w)
    if (hp, wp) != (h, w):  # bilinear resize to a multiple of the patch and back (4 per output)
        cost.op(4 * d * hp * wp, d * hp * wp)
        cost.op(4 * d * h * w, d * h * w)
    _layer_norm(cost, d, d * hp * wp)
    _conv(cost, d, dim, 1, h, w)
    _batch_norm(cost, dim, dim * h * w)
    _conv(cost, c + dim, dim, k, h, w)
    _batch_norm(cost, dim, dim * h * w)
    return cost


_BLOCKS = {
    "bottleneck": _bottleneck,
    "transformer": _transformer,
    "mbconv": _mbconv,
    "mobilevit": _mobilevit_layer,
    "convnext": _convnext,
}
#: Costs of a family's stage outside its embedding and blocks.
_STAGES = {"mobilevit": _mobilevit_stage}


_BLOCK_COSTS: dict[tuple[object, ...], tuple[int, int, int]] = {}
#: Everything about a block but where it sits and what costs nothing (stochastic depth, norm eps):
#: two blocks alike in these cost the same. ``_key`` reads them; the check below keeps the two in step.
_NOT_IN_KEY = ("index", "stage", "position", "drop_path", "norm_eps")
_KEY_FIELDS = (
    "family", "mixer", "dim_in", "dim", "stride", "mlp_ratio", "expansion", "act", "pos_embed",
    "in_shape", "out_shape", "mlp_dwconv",
)  # fmt: skip
if set(_KEY_FIELDS) != {f.name for f in dataclasses.fields(BlockPlan)} - set(_NOT_IN_KEY):  # pragma: no cover
    raise RuntimeError("BlockPlan gained or lost a field: update _KEY_FIELDS and _key in cost/_analytic.py")


def _key(block: BlockPlan) -> tuple[object, ...]:
    """Plain values only (no models or dataclasses), so hashing and comparing the key is cheap."""
    mixer, i, o = block.mixer, block.in_shape, block.out_shape
    return (
        block.family,
        type(mixer),
        *(tuple(v) if isinstance(v, list) else v for v in mixer.__dict__.values()),
        block.dim_in,
        block.dim,
        block.stride,
        block.mlp_ratio,
        block.expansion,
        block.act,
        block.pos_embed,
        i.channels, i.height, i.width, i.cls_tokens,
        o.channels, o.height, o.width, o.cls_tokens,
        block.mlp_dwconv,
    )  # fmt: skip


def _block_cost(block: BlockPlan) -> Cost:
    """A block's cost, memoised on what determines it (not its position): candidates of a search
    share most blocks, so filtering millions of them costs little more than a few thousand.
    The key holds plain values only, so looking it up is cheap."""
    key = _key(block)
    found = _BLOCK_COSTS.get(key)
    if found is None:
        if len(_BLOCK_COSTS) > 65536:
            _BLOCK_COSTS.clear()
        cost = _BLOCKS[block.family](block)
        found = _BLOCK_COSTS[key] = (cost.params, cost.macs, cost.activations)
    return Cost(*found)


def _head(plan: NormalizedSpec) -> Cost:
    cost = Cost()
    head, out = plan.head, plan.out_shape
    c = out.channels
    if head.conv is not None:
        _conv(cost, c, head.conv, 1, out.height, out.width)
        c = head.conv
        _batch_norm(cost, c, c * out.height * out.width)
    if head.pool == "cls":
        if head.norm:
            _layer_norm(cost, c, c)
    elif head.norm == "tokens":
        _layer_norm(cost, c, out.height * out.width * c)
    else:
        cost.op(c * out.height * out.width, c)  # global average pooling
        if head.norm:
            _layer_norm(cost, c, c)
    if head.num_classes:
        _linear(cost, 1, c, head.num_classes)
    return cost


def analytic_costs(plan: NormalizedSpec) -> CostReport:
    """Parameters, MACs and activation elements of ``plan`` at batch 1, per block and stage."""
    stem = _stem(plan)
    stages, blocks = [], []
    channels = plan.stem_shape.channels if plan.stem_shape else plan.input_shape.channels
    for stage in plan.stages:
        cost = _embed(stage, channels)
        if stage.family in _STAGES:
            cost += _STAGES[stage.family](stage)
        for block in stage.blocks:
            block_cost = _block_cost(block)
            blocks.append(block_cost)
            cost += block_cost
        if stage.norm_out:
            _layer_norm(cost, stage.dim, stage.dim * stage.out_shape.tokens)
        stages.append(cost)
        channels = stage.out_shape.channels
    head = _head(plan)
    parts = [stem, *stages, head]
    frozen = sum(s.dim * s.embed_shape.tokens for s in plan.stages if s.pos_embed == "sinusoidal")
    return CostReport(
        name=plan.name,
        params=sum(p.params for p in parts),
        macs=sum(p.macs for p in parts),
        activations=sum(p.activations for p in parts),
        stem=stem,
        stages=stages,
        head=head,
        blocks=blocks,
        frozen_params=frozen,
    )
