"""Analytic costs: parameters, MACs and activations of a normalised spec, no module built.

Each block's figures follow from its :class:`~archsearch.spec.BlockPlan` by the same conventions
as :mod:`archsearch.cost._traced` (fvcore's unit), so the two agree: parameters exactly, MACs to
rounding. ``activations`` counts the output elements of every op that carries MACs, with
attention maps not materialised (the fused path): a proxy for activation memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from itertools import starmap
from typing import TYPE_CHECKING, NamedTuple

from ..core import BlockPlan, Cost, FeatureShape, NormalizedSpec, StagePlan
from ..kinds import EMBEDS, FAMILIES, MIXERS, STEMS
from ._memo import ObjectMemo

if TYPE_CHECKING:
    from ..spec import Head

__all__ = ["Breakdown", "Cost", "CostReport", "Figures", "analytic_costs"]


Figures = tuple[int, int, int]
"""``(params, macs, activations)``."""


class Breakdown(NamedTuple):
    """Where a report's costs come from, as plain :data:`Figures` (no :class:`Cost` objects, so
    that filtering many candidates builds none): the stem, each stage (its embedding and blocks),
    the head, and each block in network order (each also counted in its stage's figures)."""

    stem: Figures
    stages: tuple[Figures, ...]
    head: Figures
    blocks: tuple[Figures, ...]


@dataclass
class CostReport:
    """Costs of a whole network at batch 1, with the parts they come from.

    The parts (:attr:`stem`, :attr:`stages`, :attr:`head`, :attr:`blocks`) are :class:`Cost`
    objects made from :attr:`figures` when first read."""

    name: str
    params: int
    macs: int
    activations: int
    figures: Breakdown
    frozen_params: int = 0
    """Parameters that do not train (a fixed sinusoidal position table); included in ``params``."""

    @cached_property
    def stem(self) -> Cost:
        return Cost(*self.figures.stem)

    @cached_property
    def stages(self) -> list[Cost]:
        return list(starmap(Cost, self.figures.stages))

    @cached_property
    def head(self) -> Cost:
        return Cost(*self.figures.head)

    @cached_property
    def blocks(self) -> list[Cost]:
        return list(starmap(Cost, self.figures.blocks))

    @property
    def trainable_params(self) -> int:
        return self.params - self.frozen_params

    @property
    def by_scope(self) -> dict[str, int]:
        """MACs per part, named as :func:`count_traced` names them."""
        figures = self.figures
        out = {"stem": figures.stem[1], "head": figures.head[1]}
        out.update({f"stages.{i}": s[1] for i, s in enumerate(figures.stages)})
        return {k: v for k, v in out.items() if v}

    def activation_bytes(self, batch: int = 1, bytes_per_element: int = 4) -> int:
        return self.activations * batch * bytes_per_element


# --------------------------------------------------------------------------- parts


_NO_COST: Figures = (0, 0, 0)


def _figures(cost: Cost) -> Figures:
    return cost.params, cost.macs, cost.activations


def _stem(plan: NormalizedSpec) -> Figures:
    if plan.spec.stem is None:
        return _NO_COST
    cost = Cost()
    STEMS.get(plan.spec.stem.kind).cost(plan, cost)
    return _figures(cost)


def _embed(stage: StagePlan, c_in: int) -> Cost:
    """The embedding's cost (its kind's), plus the stage's class tokens and position table."""
    cost = Cost()
    EMBEDS.get(stage.embed.kind).cost(stage, c_in, cost)
    shape = stage.embed_shape
    if stage.cls_token:  # at the embedding's width (a multiscale stage widens in its first block)
        cost.params += shape.channels * shape.cls_tokens
    if stage.pos_embed in ("absolute", "sinusoidal"):
        cost.params += shape.channels * shape.tokens
    return cost


_BLOCK_COSTS: dict[tuple[object, ...], tuple[int, int, int]] = {}
#: Everything about a block but where it sits and what costs nothing (stochastic depth, norm eps):
#: two blocks alike in these cost the same. ``_key`` reads them; the check below keeps the two in step.
_NOT_IN_KEY = ("index", "stage", "position", "drop_path", "norm_eps")
_KEY_FIELDS = (
    "family", "mixer", "dim_in", "dim", "stride", "mlp_ratio", "expansion", "act", "pos_embed",
    "in_shape", "out_shape", "mlp_dwconv", "shortcut", "peg",
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
        block.shortcut,
        block.peg,
    )  # fmt: skip


_BY_BLOCK: ObjectMemo[Figures] = ObjectMemo()
_BY_STAGE: ObjectMemo[tuple[Figures, tuple[Figures, ...]]] = ObjectMemo(second_sight=True)
_BY_HEAD: ObjectMemo[tuple[tuple[FeatureShape, bool], Figures]] = ObjectMemo()
#: A stage's own figures (embedding, the mixer's and the family's stage costs) by what they may read:
#: the stage plan but its blocks after the first (``kinds._base``: the stage-cost contract).
_OWN: dict[tuple[object, ...], tuple[object, object, Figures]] = {}


def _block_figures(block: BlockPlan) -> Figures:
    """A block's figures, memoised on the plan object, then on what determines them (not its
    position): candidates of a search share most blocks, so filtering millions of them costs
    little more than a few thousand. The key holds plain values only, so looking it up is cheap."""
    key = _key(block)
    found = _BLOCK_COSTS.get(key)
    if found is None:
        if len(_BLOCK_COSTS) > 65536:
            _BLOCK_COSTS.clear()
        cost = FAMILIES.get(block.family).cost(block, MIXERS.get(block.mixer.kind).cost)
        found = _BLOCK_COSTS[key] = _figures(cost)
    return found


def _own_figures(stage: StagePlan) -> Figures:
    """What a stage costs outside its blocks: its embedding (with class tokens and position
    table), the mixer's and the family's stage costs. Memoised on every field of the plan but the
    blocks after the first (the embedding and the first block by identity, held by the entry)."""
    embed, first = stage.embed, stage.blocks[0]
    key = (
        id(embed), id(first), stage.index, stage.family, stage.dim, stage.depth, stage.cls_token,
        stage.pos_embed, stage.in_shape, stage.embed_shape, stage.out_shape, stage.reduction, stage.norm_out,
    )  # fmt: skip
    found = _OWN.get(key)
    if found is not None and found[0] is embed and found[1] is first:
        return found[2]
    cost = _embed(stage, stage.in_shape.channels)
    MIXERS.get(first.mixer.kind).stage_cost(stage, cost)
    FAMILIES.get(stage.family).stage_cost(stage, cost)
    figures = _figures(cost)
    if len(_OWN) > 8192:
        _OWN.clear()
    _OWN[key] = (embed, first, figures)
    return figures


def _stage_figures(stage: StagePlan) -> tuple[Figures, tuple[Figures, ...]]:
    """A stage's total and its blocks' figures, memoised on the plan object: a stage's cost is a
    function of its plan alone (the channels entering it are ``stage.in_shape.channels``)."""
    hit = _BY_STAGE.by_id(id(stage))
    if hit is not None:
        return hit
    params, macs, activations = _own_figures(stage)
    looked_up = tuple(map(_BY_BLOCK.by_id, map(id, stage.blocks)))
    blocks: tuple[Figures, ...] = (
        _BY_BLOCK.get_all(stage.blocks, _block_figures) if None in looked_up else looked_up  # type: ignore[assignment]
    )
    for p, m, a in blocks:
        params += p
        macs += m
        activations += a
    found = ((params, macs, activations), blocks)
    _BY_STAGE.put(stage, found)
    return found


def _head(plan: NormalizedSpec) -> Figures:
    """The head's cost, memoised on the (shared) resolved head object and the last map."""
    head, out, dist = plan.head, plan.out_shape, plan.stages[-1].dist_token
    found = _BY_HEAD.get(head)
    if found is None or found[0] != (out, dist):
        cost = _head_cost(head, out, dist)
        found = ((out, dist), _figures(cost))
        _BY_HEAD.put(head, found)
    return found[1]


def _head_cost(head: Head, out: FeatureShape, dist_token: bool) -> Cost:
    cost = Cost()
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
    if dist_token and head.pool == "cls":  # DeiT: the same on the distillation token
        if head.norm:
            cost.op(5 * c, c)  # the LayerNorm's MACs again; its weights are shared
        if head.num_classes:
            cost.linear(1, c, head.num_classes)
    return cost


def analytic_costs(plan: NormalizedSpec) -> CostReport:
    """Parameters, MACs and activation elements of ``plan`` at batch 1, per block and stage.

    The totals are summed from plain figures (memoised per block, stage and head); the
    :class:`Cost` objects of the parts are made only when a report's parts are read."""
    stem = _stem(plan)
    params, macs, activations = stem
    stages: list[Figures] = []
    blocks: tuple[Figures, ...] = ()
    frozen = 0
    stage_memo = _BY_STAGE.by_id
    for stage in plan.stages:
        found = stage_memo(id(stage))
        total, figures = found if found is not None else _stage_figures(stage)
        params += total[0]
        macs += total[1]
        activations += total[2]
        stages.append(total)
        blocks += figures
        if stage.pos_embed == "sinusoidal":
            frozen += stage.embed_shape.channels * stage.embed_shape.tokens
    head = _head(plan)
    return CostReport(
        plan.name,
        params + head[0],
        macs + head[1],
        activations + head[2],
        Breakdown(stem, tuple(stages), head, blocks),
        frozen,
    )
