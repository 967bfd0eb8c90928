"""Memos of the normaliser: stage plans, stage heads, block plans and heads, keyed by plain values.

A search normalises thousands of candidates that share most of their stages and blocks. The
normaliser (:mod:`archsearch.spec._normalize`) looks each stage up here before resolving it; the
kinds stay pure functions and know nothing of this. What makes the memos exact is the kinds'
contract (see :class:`archsearch.kinds.MixerKind`):

* a stage's plan depends only on the stage model (its field values *and* which fields were given)
  and on the context the driver puts in :func:`stage_keys` (index, depth, incoming shape, first
  block, total blocks, the spec's ``drop_path``/``norm_eps`` and input size);
* stage-level checks see a per-block list only as its length and its set of values; anything that
  depends on a block's position is checked per block (``block_shape``).

Keys are never a whole spec or the input dict: a stage image is interned into a ``token`` (a fresh
int per distinct image and context, never reused), the stage plan is memoised on ``(token, the
per-block lists)``, the part of the stage before its blocks on ``(token, length and set of values
of each list)`` and each block on ``(token, position, its per-block values, in-shape, stride)``.
Only results without issues are stored, so errors always come from the checks themselves. Every
memo is bounded (cleared when it outgrows :data:`MEMO_SIZE`); stage plans are admitted on second
sight (:func:`remember`), so one-off stages do not pile up as long-lived objects.

Benign edge: equal keys that differ in type (``2`` and ``2.0``, ``0.0`` and ``-0.0``) share a plan.
"""

from __future__ import annotations

import itertools
import types
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import BaseModel

from ..core import BlockPlan, FeatureShape, StagePlan
from ..kinds import MIXERS, BlockMixer, MixerKind
from ._parts import StageParts
from ._schema import STAGE_PER_BLOCK_FIELDS, Head, Spec, Stage

__all__ = [
    "BLOCK_PLANS",
    "HEADS",
    "MEMO_SIZE",
    "STAGE_HEADS",
    "STAGE_PLANS",
    "STAGE_SEEN",
    "StageHead",
    "StageKeys",
    "head_key",
    "keep",
    "remember",
    "stage_keys",
]

MEMO_SIZE = 8192
"""Entries a memo holds before it is cleared (the second-sight sets hold 8 times as many ints)."""


class StageHead(NamedTuple):
    """What a stage resolves to before its blocks: shared by stages whose per-block lists have the
    same lengths and sets of values."""

    family_name: str
    family: Any  # FamilyKind
    mixer_kind: MixerKind
    pos_embed: str
    act: str
    embed: Any  # Embed with defaults filled in
    embed_shape: FeatureShape
    block_stride: int
    expansion: int | None
    mixer: Any
    """The stage's mixer as its blocks start from it (``prepare``)."""
    first_shape: FeatureShape
    """The shape the first block sees."""
    mixers: tuple[BlockMixer, ...] | None = None
    """Each block's mixer where the stage gives a per-block mixer list (else ``None``)."""


class StageKeys(NamedTuple):
    token: int
    """One int per distinct (stage image, context): block keys start with it."""
    plan: tuple[Any, ...]
    """Key of the whole stage plan: the token and the per-block lists."""
    lists: tuple[tuple[Any, ...], ...]
    """The per-block lists."""

    @property
    def head(self) -> tuple[Any, ...]:
        """Key of the stage head: the token and each list's length and set of values."""
        return (self.token, tuple([(len(values), frozenset(values)) for values in self.lists]))


STAGE_PLANS: dict[tuple[Any, ...], StagePlan] = {}
STAGE_HEADS: dict[tuple[Any, ...], StageHead] = {}
BLOCK_PLANS: dict[tuple[Any, ...], BlockPlan] = {}
HEADS: dict[tuple[Any, ...], Head] = {}
STAGE_SEEN: set[int] = set()
"""Hashes of stage-plan keys seen once (see :func:`remember`)."""
_CONTEXTS: dict[tuple[Any, ...], int] = {}
_TOKENS = itertools.count()
_PLAIN = frozenset((int, float, str, bool, type(None)))
_NONE: frozenset[str] = frozenset()
#: Which fields of a schema class may hold one value per block (their lists are not in the image).
_PER_BLOCK: dict[type, frozenset[str]] = {
    Stage: frozenset(STAGE_PER_BLOCK_FIELDS),
    **{m.schema: frozenset(m.per_block_fields) for m in MIXERS.values()},
}
_IMAGERS: dict[type, Callable[[BaseModel, list[tuple[Any, ...]]], tuple[Any, ...]]] = {}


def keep(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """Store ``value`` under ``key``, clearing ``memo`` first when it is full."""
    if len(memo) > MEMO_SIZE:
        memo.clear()
    memo[key] = value


def remember(memo: dict[Any, Any], seen: set[int], key: Any, value: Any) -> None:
    """Store ``value`` under ``key`` the second time ``key`` comes (admission on second sight).

    A stage that never comes back (the 10-block stage of a CvT-13-NAS candidate: 2**20 variants)
    would only fill the memo with long-lived objects, and every object that lives long makes the
    garbage collector's full passes come sooner. ``seen`` holds hashes (ints, which the collector
    does not track); a collision can only admit a key early, never return a wrong value."""
    h = hash(key)
    if h not in seen:
        if len(seen) > 8 * MEMO_SIZE:
            seen.clear()
        seen.add(h)
        return
    keep(memo, key, value)


def _is_plain(annotation: Any) -> bool:
    """Whether a field annotated so can only hold ``int``/``float``/``str``/``bool``/``None``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return True
    if origin is typing.Annotated:
        return _is_plain(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return all(_is_plain(a) for a in typing.get_args(annotation))
    return annotation in _PLAIN


def _imager(cls: type[BaseModel]) -> Callable[[BaseModel, list[tuple[Any, ...]]], tuple[Any, ...]]:
    """The image function of schema class ``cls``, generated once from its fields (the way
    dataclasses generate ``__init__``): plain fields are read as they are, the others through
    :func:`_value`."""
    per_block = _PER_BLOCK.get(cls, _NONE)
    parts = []
    for name, field in cls.model_fields.items():
        if _is_plain(field.annotation):
            parts.append(f"d[{name!r}]")
        else:
            parts.append(f"_value(d[{name!r}], lists, {name in per_block})")
    body = ", ".join(["cls", "frozenset(model.__pydantic_fields_set__)", *parts])
    code = f"def image(model, lists):\n    d = model.__dict__\n    return ({body},)\n"
    namespace: dict[str, Any] = {"cls": cls, "_value": _value}
    exec(code, namespace)  # generated from the schema's own field names
    image: Callable[[BaseModel, list[tuple[Any, ...]]], tuple[Any, ...]] = namespace["image"]
    _IMAGERS[cls] = image
    return image


def _value(value: Any, lists: list[tuple[Any, ...]], per_block: bool) -> Any:
    """The image of a field value that may be a list or a model."""
    cls = value.__class__
    if cls is list:
        if per_block:
            lists.append(tuple(value))
            return ...
        return tuple(_value(v, lists, False) for v in value)
    if isinstance(value, BaseModel):
        return (_IMAGERS.get(cls) or _imager(cls))(value, lists)
    return value


def _image(model: BaseModel, lists: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """A hashable image of a frozen schema model: its class, which fields were given, the field
    values (nested models as their own images, lists as tuples). The lists of per-block fields
    (the stage's ``mlp_ratio``, a mixer kind's ``per_block_fields``) go to ``lists`` instead,
    ``...`` left in their place: the image alone determines everything but the per-block values."""
    cls = model.__class__
    return (_IMAGERS.get(cls) or _imager(cls))(model, lists)


def stage_keys(
    spec: Spec,
    i: int,
    stage: Stage,
    depth: int,
    shape: FeatureShape,
    first_block: int,
    total_blocks: int,
    parts: tuple[int, StageParts] | None = None,
) -> StageKeys:
    """The memo keys of stage ``i`` of ``spec`` (``shape``: the map entering it). ``parts``: the
    spec's top-level part and this stage's parts when :data:`PARTS` validated the spec; they
    stand for the stage's image and the spec-level values (the part ids are never reused, and no
    image is an int)."""
    if parts is None:
        lists: list[tuple[Any, ...]] | tuple[tuple[Any, ...], ...] = []
        image = _image(stage, lists)  # type: ignore[arg-type]
        hw = spec.input.hw  # the stage's reduction is measured against the input height
        context: tuple[Any, ...] = (
            image, i, depth, shape, first_block, total_blocks, spec.drop_path, spec.norm_eps, hw,
        )  # fmt: skip
    else:
        top, stage_parts = parts
        lists = stage_parts.lists
        context = (top, stage_parts.part, stage_parts.holes, i, depth, shape, first_block, total_blocks)
    token = _CONTEXTS.get(context)
    if token is None:
        keep(_CONTEXTS, context, None)  # clears when full; tokens are never reused
        token = _CONTEXTS[context] = next(_TOKENS)
    return StageKeys(token, (token, *lists), tuple(lists))


def head_key(head: Head, last: StagePlan, top: int | None = None) -> tuple[Any, ...]:
    """Key of the resolved head after stage plan ``last`` (the head holds scalars only); ``top``:
    the spec's top-level part (which holds the head) when :data:`PARTS` validated it."""
    if top is not None:
        return (top, last.family, last.cls_token, last.dist_token)
    return (
        *head.__dict__.values(),
        frozenset(head.__pydantic_fields_set__),
        last.family,
        last.cls_token,
        last.dist_token,
    )
