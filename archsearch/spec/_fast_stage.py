"""One stage of a structure the fast path (:mod:`archsearch.spec._fast`) knows: the stage with
other per-block values filled in, and its plan assembled from learnt heads and blocks.

What makes it exact is told in :mod:`archsearch.spec._fast`; the memo contract it leans on is
:mod:`archsearch.spec._memo`'s.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

from ..core import FeatureShape, NormalizedSpec, StagePlan
from ..kinds import MIXERS
from ._parts import fill_stage

__all__ = ["FAST_SIZE", "Given", "StageTemplate", "Variant", "bounded_put", "make_frozen"]

FAST_SIZE = 1024
"""Entries a memo of the fast path holds before it is cleared."""
_STAGE_PLAN_FIELDS = (
    "index", "family", "embed", "dim", "depth", "cls_token", "pos_embed", "in_shape", "embed_shape",
    "out_shape", "reduction", "blocks", "norm_out", "dist_token",
)  # fmt: skip
_PLAN_FIELDS = ("spec", "name", "input_shape", "stem_shape", "stages", "head", "source")
if (  # pragma: no cover
    tuple(StagePlan.__dataclass_fields__) != _STAGE_PLAN_FIELDS
    or tuple(NormalizedSpec.__dataclass_fields__) != _PLAN_FIELDS
    or hasattr(StagePlan, "__post_init__")
    or hasattr(NormalizedSpec, "__post_init__")
):
    raise RuntimeError("StagePlan or NormalizedSpec changed: update make_frozen's callers in spec/_fast*.py")


def make_frozen(cls: Any, values: dict[str, Any]) -> Any:
    """An instance of frozen dataclass ``cls`` with these field values (all of them, in field
    order): what its ``__init__`` makes, without one ``object.__setattr__`` call per field."""
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    return obj


Given = tuple[tuple[str, ...], tuple[str, ...]]
"""The per-block fields a raw stage gives: the stage's, then its mixer's."""


class Variant(NamedTuple):
    """A stage with given per-block values."""

    stage: Any
    key: tuple[Any, ...] | None
    """The values, hashable (``None``: not memoised)."""
    plans: dict[FeatureShape, StagePlan] | None
    """Its plans by incoming shape (``None``: not memoised)."""


def bounded_put(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """Store ``value`` under ``key``, clearing ``memo`` first when it is full."""
    if len(memo) >= FAST_SIZE:
        memo.clear()
    memo[key] = value


def _second_sight(memo: dict[Any, Any], seen: set[int], key: Any, value: Any) -> None:
    """Store on the second sight of ``key`` (``seen`` holds hashes: a collision admits early)."""
    h = hash(key)
    if h in seen:
        bounded_put(memo, key, value)
    elif len(seen) >= 8 * FAST_SIZE:
        seen.clear()
    else:
        seen.add(h)


def _hashable(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """``values`` with lists as tuples (validated per-block values: exact ints/floats/None)."""
    key = ()
    for v in values:
        key += (tuple(v),) if v.__class__ is list else (v,)
    return key


_COLD_AFTER = 512
"""Lookups after which a stage whose values seldom repeat stops being memoised whole (its blocks
still are), and after which such a stage is tried again (times 16)."""


class StageTemplate:
    """One stage of a structure: its validated prototype and what its plans were made of."""

    def __init__(self, stage: Any, given: Given, n: int):
        self.proto = stage
        self.stage_names, self.mixer_names = given
        self.n = n
        """How many per-block values the stage takes (its slice of the spec's)."""
        self.fixed = Variant(stage, (), {})
        """The stage when it takes no per-block values."""
        self.variants: dict[tuple[Any, ...], Variant] = {}
        """Per-block values seen twice -> the stage with them and its plans by incoming shape."""
        self.seen: set[int] = set()
        self.lookups = self.hits = 0
        self.cold = False
        """The per-block values seldom repeat (a long stage with per-block choices): the stage is
        filled in and its plan assembled every time, without keys."""
        self.heads: dict[tuple[Any, ...], tuple[StagePlan, Any]] = {}
        """(incoming shape, head signature) -> a plan of the stage with it (for its stage-level
        parts) and its mixer kind's ``stage_out``."""
        self.blocks: dict[tuple[Any, ...], list[Any]] = {}
        """(incoming shape, which values are lists) -> [(position, the block's values) -> its
        BlockPlan, and what :func:`_uniform` says of all the blocks learnt] (see :meth:`assemble`)."""

    def variant(self, values: tuple[Any, ...]) -> Variant:
        """The validated stage with these (validated) per-block ``values``, memoised unless cold."""
        self.lookups += 1
        if self.lookups >= _COLD_AFTER * (16 if self.cold else 1):
            self.cold = not self.cold and self.hits * 64 < self.lookups
            self.lookups = self.hits = 0
        if self.cold:
            return Variant(self.fill(values), None, None)
        key = _hashable(values)
        found = self.variants.get(key)
        if found is not None:
            self.hits += 1
            return found
        found = Variant(self.fill(values), key, {})
        _second_sight(self.variants, self.seen, key, found)
        return found

    def fill(self, valid: tuple[Any, ...]) -> Any:
        """The prototype with other (validated) per-block values, as pydantic leaves a stage."""
        return fill_stage(self.proto, self.stage_names, self.mixer_names, valid)

    def plan(
        self, shape: FeatureShape, values: tuple[Any, ...], variant: Variant, hw0: int
    ) -> StagePlan | None:
        """The stage's plan on incoming ``shape``, or ``None`` where it was not learnt."""
        plans = variant.plans
        if plans is None:
            return self.assemble(shape, values, hw0)
        found = plans.get(shape)
        if found is None:
            found = self.assemble(shape, values, hw0)
            if found is not None:
                plans[shape] = found  # few shapes per variant
        return found

    def assemble(self, shape: FeatureShape, values: tuple[Any, ...], hw0: int) -> StagePlan | None:
        """The plan from a known head and known blocks (``None``: something is not known).

        Blocks are looked up by position and values (in C: ``map`` over ``zip``), then checked to
        chain (:func:`_chains`)."""
        head = self.heads.get((shape, _signature(values)))
        if head is None:
            return None
        proto, stage_out = head
        depth = proto.depth
        columns: list[Any] = []
        for v in values:
            if v.__class__ is list:
                if len(v) != depth:
                    return None  # the general normaliser words the error
                columns.append(v)
            else:
                columns.append((v,) * depth)
        found = self.blocks.get((shape, tuple([v.__class__ is list for v in values])))
        if found is None:
            return None
        memo, uniform = found
        blocks: tuple[Any, ...] = tuple(map(memo.get, zip(range(depth), *columns, strict=True)))
        if not all(blocks):  # a block not learnt (plans have no __bool__/__len__: always true)
            return None
        if not _chains(blocks, proto.blocks[0], uniform):
            return None
        out = stage_out(proto.dim, proto.embed_shape, blocks[-1].out_shape)
        fields = proto.__dict__.copy()  # as _normalize.stage_blocks makes it (the fields are pinned above)
        fields["in_shape"] = shape
        fields["out_shape"] = out
        fields["reduction"] = max(1, round(hw0 / out.height))
        fields["blocks"] = blocks
        return make_frozen(StagePlan, fields)

    def learn(self, plan: StagePlan, values: tuple[Any, ...]) -> None:
        """Remember what the general normaliser made of this stage with these values."""
        shape = plan.in_shape
        stage_out = MIXERS.get(plan.blocks[0].mixer.kind).stage_out
        bounded_put(self.heads, (shape, _signature(values)), (plan, stage_out))
        pattern = tuple([v.__class__ is list for v in values])
        found = self.blocks.get((shape, pattern))
        if found is None:
            found = [{}, _uniform(plan.blocks)]
            bounded_put(self.blocks, (shape, pattern), found)
        elif found[1] is not None and found[1] != _uniform(plan.blocks):
            found[1] = None
        memo = found[0]
        for j, block in enumerate(plan.blocks):
            row = [v[j] if is_list else v for v, is_list in zip(values, pattern, strict=True)]
            bounded_put(memo, (j, *row), block)


_IN_SHAPE = operator.attrgetter("in_shape")
_OUT_SHAPE = operator.attrgetter("out_shape")
_STRIDE = operator.attrgetter("stride")


def _chains(blocks: tuple[Any, ...], start: Any, uniform: tuple[FeatureShape, int] | None) -> bool:
    """Whether ``blocks`` chain as the normaliser chains a stage's blocks: the first on the shape
    and stride of ``start`` (the learnt plan's first block), each next on its predecessor's
    output with stride 1. A block's plan holds the shape and stride it was made for, so this
    stands for keying the blocks on them."""
    if uniform is not None and uniform == (start.in_shape, start.stride):
        return True  # every block learnt keeps that shape, the first with that stride: they chain
    first = blocks[0]
    if first.in_shape != start.in_shape or first.stride != start.stride:
        return False
    rest = len(blocks) - 1
    return not rest or (
        tuple(map(_IN_SHAPE, blocks[1:])) == tuple(map(_OUT_SHAPE, blocks[:-1]))
        and tuple(map(_STRIDE, blocks[1:])) == (1,) * rest
    )


def _uniform(blocks: tuple[Any, ...]) -> tuple[FeatureShape, int] | None:
    """``(shape, first stride)`` when every block maps that shape to itself, the first with that
    stride and the others with stride 1 (then any blocks learnt so chain), else ``None``."""
    shape, stride = blocks[0].in_shape, blocks[0].stride
    for j, block in enumerate(blocks):
        if block.in_shape != shape or block.out_shape != shape or block.stride != (stride if j == 0 else 1):
            return None
    return shape, stride


def _signature(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """What a stage's checks before its blocks may see of its per-block values."""
    return tuple([frozenset(v) if v.__class__ is list else v for v in values])
