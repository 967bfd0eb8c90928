"""Analytic costs: parameters, MACs and activations of a normalised spec, no module built.

Each block's figures follow from its :class:`~archsearch.spec.BlockPlan` by the same conventions
as :mod:`archsearch.cost._traced` (fvcore's unit), so the two agree: parameters exactly, MACs to
rounding. ``activations`` counts the output elements of every op that carries MACs, with
attention maps not materialised (the fused path): a proxy for activation memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..core import BlockPlan, Cost, NormalizedSpec, StagePlan, conv_out, make_divisible
from ..kinds import MIXERS
from ..spec import ConvEmbed, ConvStem, MBConvEmbed, MergeEmbed, PatchEmbed, T2TEmbed
from ._memo import ObjectMemo

__all__ = ["Cost", "CostReport", "analytic_costs"]


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


# --------------------------------------------------------------------------- parts


def _stem(plan: NormalizedSpec) -> Cost:
    cost = Cost()
    stem = plan.spec.stem
    if stem is None:
        return cost
    if isinstance(stem, ConvStem):
        assert plan.stem_shape is not None
        h1, w1 = plan.stem_shape.height, plan.stem_shape.width
        cost.conv(plan.input_shape.channels, stem.channels, stem.kernel, h1, w1)
        cost.batch_norm(stem.channels, stem.channels * h1 * w1)
        return cost
    h1, w1 = conv_out(plan.input_shape.height, 7, 2, 3), conv_out(plan.input_shape.width, 7, 2, 3)
    cost.conv(plan.input_shape.channels, stem.channels, 7, h1, w1)
    cost.batch_norm(stem.channels, stem.channels * h1 * w1)
    return cost


def _embed(stage: StagePlan, c_in: int) -> Cost:
    cost = Cost()
    embed, shape = stage.embed, stage.embed_shape
    if isinstance(embed, ConvEmbed | PatchEmbed):
        kernel = embed.kernel if isinstance(embed, ConvEmbed) else embed.stride
        if embed.norm_first:
            cost.norm2d(embed.norm, c_in, c_in * stage.in_shape.height * stage.in_shape.width)
        cost.conv(c_in, stage.dim, kernel, shape.height, shape.width, bias=embed.bias)
        if not embed.norm_first:
            cost.norm2d(embed.norm, stage.dim, stage.dim * shape.height * shape.width)
    elif isinstance(embed, T2TEmbed):
        _t2t(cost, embed, c_in, stage.dim, stage.in_shape.height, stage.in_shape.width)
    elif isinstance(embed, MergeEmbed):  # LayerNorm(4C) and Linear(4C -> dim) per merged token
        tokens = shape.height * shape.width
        cost.layer_norm(4 * c_in, 4 * c_in * tokens)
        cost.linear(tokens, 4 * c_in, stage.dim, bias=False)
    elif isinstance(embed, MBConvEmbed):
        h, w = stage.in_shape.height, stage.in_shape.width
        hidden = make_divisible(c_in * embed.expansion)
        cost.inverted_residual(c_in, hidden, stage.dim, embed.kernel, (h, w), (shape.height, shape.width))
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
            cost.linear(n, width, dim)
            return
        cost.layer_norm(width, n * width)
        cost.linear(n, width, 3 * td, embed.qkv_bias)
        cost.op(2 * n * n * td, n * td)  # q k^T and attn v over all heads
        cost.linear(n, td, td)
        cost.layer_norm(td, n * td)
        hidden = int(td * embed.mlp_ratio)
        cost.linear(n, td, hidden)
        cost.linear(n, hidden, td)
        channels = td


def _bottleneck(block: BlockPlan) -> Cost:
    """ResNet bottleneck: 1x1 reduce + BN, the mixer + BN, 1x1 expand + BN, the shortcut."""
    cost = Cost()
    c_in, width, dim = block.dim_in, block.width, block.dim
    h, w = block.in_shape.height, block.in_shape.width
    ho, wo = block.out_shape.height, block.out_shape.width
    cost.conv(c_in, width, 1, h, w)
    cost.batch_norm(width, width * h * w)
    MIXERS.get(block.mixer.kind).cost(block, cost)
    cost.batch_norm(width, width * ho * wo)
    cost.conv(width, dim, 1, ho, wo)
    cost.batch_norm(dim, dim * ho * wo)
    if block.stride != 1 or c_in != dim:
        cost.conv(c_in, dim, 1, ho, wo)
        cost.batch_norm(dim, dim * ho * wo)
    return cost


def _transformer(block: BlockPlan) -> Cost:
    """Pre-norm transformer block (also a MobileViT layer): LayerNorm, the mixer, LayerNorm and
    the MLP on the mixer's output tokens (PVT v2: with a depthwise 3x3 conv on the map)."""
    cost = Cost()
    assert block.mlp_ratio is not None
    c, n, nq = block.dim, block.in_shape.tokens, block.out_shape.tokens
    cost.layer_norm(c, n * c)
    MIXERS.get(block.mixer.kind).cost(block, cost)
    cost.layer_norm(c, nq * c)
    hidden = int(c * block.mlp_ratio)
    cost.linear(nq, c, hidden)
    if block.mlp_dwconv:  # depthwise 3x3 on the output map; class tokens bypass it
        out = block.out_shape
        cost.conv(hidden, hidden, 3, out.height, out.width, groups=hidden, bias=True)
    cost.linear(nq, hidden, c)
    return cost


def _convnext(block: BlockPlan) -> Cost:
    """ConvNeXt block: the mixer (depthwise conv, layer scale), LayerNorm, MLP."""
    cost = Cost()
    assert block.mlp_ratio is not None
    c, h, w = block.dim, block.in_shape.height, block.in_shape.width
    MIXERS.get(block.mixer.kind).cost(block, cost)
    cost.layer_norm(c, c * h * w)
    hidden = int(c * block.mlp_ratio)
    cost.linear(h * w, c, hidden)
    cost.linear(h * w, hidden, c)
    return cost


def _mixer_only(block: BlockPlan) -> Cost:
    """Families whose block is the mixer itself (mbconv)."""
    cost = Cost()
    MIXERS.get(block.mixer.kind).cost(block, cost)
    return cost


_BLOCKS = {
    "bottleneck": _bottleneck,
    "transformer": _transformer,
    "mbconv": _mixer_only,
    "mobilevit": _transformer,
    "convnext": _convnext,
}


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


Figures = tuple[int, int, int]
"""``(params, macs, activations)``."""
_BY_BLOCK: ObjectMemo[Figures] = ObjectMemo()
_BY_STAGE: ObjectMemo[tuple[Figures, tuple[Figures, ...]]] = ObjectMemo(second_sight=True)


def _block_figures(block: BlockPlan) -> Figures:
    """A block's figures, memoised on the plan object, then on what determines them (not its
    position): candidates of a search share most blocks, so filtering millions of them costs
    little more than a few thousand. The key holds plain values only, so looking it up is cheap."""
    found = _BY_BLOCK.get(block)
    if found is not None:
        return found
    key = _key(block)
    found = _BLOCK_COSTS.get(key)
    if found is None:
        if len(_BLOCK_COSTS) > 65536:
            _BLOCK_COSTS.clear()
        cost = _BLOCKS[block.family](block)
        found = _BLOCK_COSTS[key] = (cost.params, cost.macs, cost.activations)
    _BY_BLOCK.put(block, found)
    return found


def _stage_figures(stage: StagePlan) -> tuple[Figures, tuple[Figures, ...]]:
    """A stage's total and its blocks' figures, memoised on the plan object: a stage's cost is a
    function of its plan alone (the channels entering it are ``stage.in_shape.channels``)."""
    found = _BY_STAGE.get(stage)
    if found is not None:
        return found
    cost = _embed(stage, stage.in_shape.channels)
    MIXERS.get(stage.blocks[0].mixer.kind).stage_cost(stage, cost)
    blocks = tuple(_block_figures(block) for block in stage.blocks)
    for params, macs, activations in blocks:
        cost.params += params
        cost.macs += macs
        cost.activations += activations
    if stage.norm_out:
        cost.layer_norm(stage.dim, stage.dim * stage.out_shape.tokens)
    found = ((cost.params, cost.macs, cost.activations), blocks)
    _BY_STAGE.put(stage, found)
    return found


def _head(plan: NormalizedSpec) -> Cost:
    cost = Cost()
    head, out = plan.head, plan.out_shape
    c = out.channels
    if head.conv is not None:
        cost.conv(c, head.conv, 1, out.height, out.width)
        c = head.conv
        cost.batch_norm(c, c * out.height * out.width)
    if head.pool == "cls":
        if head.norm:
            cost.layer_norm(c, c)
    elif head.norm == "tokens":
        cost.layer_norm(c, out.height * out.width * c)
    else:
        cost.op(c * out.height * out.width, c)  # global average pooling
        if head.norm:
            cost.layer_norm(c, c)
    if head.num_classes:
        cost.linear(1, c, head.num_classes)
    return cost


def analytic_costs(plan: NormalizedSpec) -> CostReport:
    """Parameters, MACs and activation elements of ``plan`` at batch 1, per block and stage."""
    stem = _stem(plan)
    stages: list[Cost] = []
    blocks: list[Cost] = []
    for stage in plan.stages:
        total, figures = _stage_figures(stage)
        stages.append(Cost(*total))
        blocks.extend([Cost(*f) for f in figures])
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
