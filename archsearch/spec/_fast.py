"""The fast path for candidates of one structure: a spec dict that differs from one seen before only
in its per-block values is validated and normalised from what that one taught.

A search's candidates share their structure (everything but the per-block values: the stage's
``mlp_ratio``, a mixer kind's ``per_block_fields``; CvT-13-NAS: ``kv_stride`` and ``mlp_ratio`` of
each of 13 blocks) and differ in those values. :class:`FastPath` keys a dict by its structure
(one :mod:`pickle` of the dict without its per-block values, and which of those it gives) and keeps, per
structure seen twice, a :class:`_Template`: the spec the general path validated, a validator of
the per-block values alone, and what normalisation gave for the stage plans, stage heads and blocks
seen so far. A new candidate of that structure then costs one pickle, one validation of its
per-block values, and dict lookups.

Why it is exact (the same spec, plan and errors as the general path):

* validation: the same argument as :mod:`archsearch.spec._parts` (equal pickles mean equal data
  of the same types; the schema's validators read one field at a time, pinned by
  ``tests/test_parts.py``), with the whole structure as one part. The per-block values are
  validated by their fields' own (strict) schemas; validated, they are plain ``int``/``float``
  (or ``None``), so they key memos exactly.
* normalisation: the memo contract of :mod:`archsearch.spec._memo` (a stage's plan depends only on
  its image, its context and its per-block lists; its checks before the blocks see a list only as
  its length and set of values; a block's plan depends on its position, its values, the shape it
  sees and its stride). A stage plan is taken whole when these per-block values were seen in this
  stage with this incoming shape, else assembled from the plans of its blocks when the stage's
  head signature (incoming shape, each value or set of list values) passed before and every block
  is known. Only plans the general path made without issues are learnt.
* anything else goes the general way: a structure seen once, dicts that pickle refuses or that are
  not plain dicts, a mixer that is not a mapping, per-block fields of other types, values the
  validator refuses (the general path raises pydantic's error), and plans not learnt yet (the
  general normaliser runs, raising its errors, and the template learns its plan).

Everything is bounded: templates, and each template's memos, are cleared when they outgrow
:data:`FAST_SIZE`; stage plans and stages are admitted on second sight (as in ``_memo``).
"""

from __future__ import annotations

import pickle
import typing
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from ..core import PerBlockFloat, PerBlockInt, FeatureShape, NormalizedSpec, SourceMap, StagePlan
from ..kinds import MIXERS
from ._parts import _annotation, _model

__all__ = ["FAST_SIZE", "FastPath"]

FAST_SIZE = 1024
"""Entries a memo of the fast path holds before it is cleared."""
_RECENT = 8
"""Specs whose template :meth:`FastPath.lookup` still knows (the last ones validated)."""
_PROTOCOL = 4
_STRICT = ConfigDict(strict=True)
#: Annotations of the per-block fields the fast path takes: they validate to exact int/float/None.
_KEYED = (PerBlockInt, PerBlockFloat, PerBlockInt | None, PerBlockFloat | None)
_STAGE_PLAN_FIELDS = (
    "index", "family", "embed", "dim", "depth", "cls_token", "pos_embed", "in_shape", "embed_shape",
    "out_shape", "reduction", "blocks", "norm_out", "dist_token",
)  # fmt: skip
if tuple(StagePlan.__dataclass_fields__) != _STAGE_PLAN_FIELDS:  # pragma: no cover
    raise RuntimeError("StagePlan gained or lost a field: update _StageTemplate.assemble in spec/_fast.py")

_Given = tuple[tuple[str, ...], tuple[str, ...]]
"""The per-block fields a raw stage gives: the stage's, then its mixer's."""


def _bounded_put(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= FAST_SIZE:
        memo.clear()
    memo[key] = value


def _second_sight(memo: dict[Any, Any], seen: set[int], key: Any, value: Any) -> None:
    """Store on the second sight of ``key`` (``seen`` holds hashes: a collision admits early)."""
    h = hash(key)
    if h in seen:
        _bounded_put(memo, key, value)
    elif len(seen) >= 8 * FAST_SIZE:
        seen.clear()
    else:
        seen.add(h)


def _hashable(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple([tuple(v) if v.__class__ is list else v for v in values])


class _StageTemplate:
    """One stage of a structure: its validated prototype and what its plans were made of."""

    def __init__(self, stage: Any, given: _Given, n: int):
        self.proto = stage
        self.stage_names, self.mixer_names = given
        self.n = n
        """How many per-block values the stage takes (its slice of the spec's)."""
        self.stages: dict[tuple[Any, ...], Any] = {}
        self.stages_seen: set[int] = set()
        self.plans: dict[tuple[Any, ...], StagePlan] = {}
        self.plans_seen: set[int] = set()
        self.heads: dict[tuple[Any, ...], tuple[StagePlan, Any]] = {}
        """(incoming shape, head signature) -> a plan of the stage with it (for its stage-level
        parts) and its mixer kind's ``stage_out``."""
        self.blocks: dict[tuple[Any, ...], Any] = {}
        """(position, incoming shape, stride, which values are lists, the block's values) -> its
        BlockPlan."""

    def stage(self, values: tuple[Any, ...], key: tuple[Any, ...]) -> Any:
        """The validated stage with these (validated) per-block ``values`` (``key``: hashable)."""
        if not values:
            return self.proto
        found = self.stages.get(key)
        if found is None:
            found = self.fill(values)
            _second_sight(self.stages, self.stages_seen, key, found)
        return found

    def fill(self, valid: tuple[Any, ...]) -> Any:
        """The prototype with other (validated) per-block values, as pydantic leaves a stage."""
        stage = self.proto
        fields = stage.__dict__.copy()
        i = 0
        for name in self.stage_names:
            fields[name] = valid[i]
            i += 1
        if self.mixer_names:
            mixer = stage.mixer
            mixer_fields = mixer.__dict__.copy()
            for name in self.mixer_names:
                mixer_fields[name] = valid[i]
                i += 1
            fields["mixer"] = _model(mixer.__class__, mixer_fields, mixer.__pydantic_fields_set__, None)
        return _model(stage.__class__, fields, stage.__pydantic_fields_set__, None)

    def plan(self, shape: FeatureShape, values: tuple[Any, ...], key: tuple[Any, ...], hw0: int) -> StagePlan | None:
        """The stage's plan on incoming ``shape``, or ``None`` where it was not learnt."""
        plan_key = (shape, key)
        found = self.plans.get(plan_key)
        if found is None:
            found = self.assemble(shape, values, hw0)
            if found is not None:
                _second_sight(self.plans, self.plans_seen, plan_key, found)
        return found

    def assemble(self, shape: FeatureShape, values: tuple[Any, ...], hw0: int) -> StagePlan | None:
        """The plan from a known head and known blocks (``None``: something is not known)."""
        head = self.heads.get((shape, _signature(values)))
        if head is None:
            return None
        proto, stage_out = head
        depth = proto.depth
        columns = []
        for v in values:
            if v.__class__ is list:
                if len(v) != depth:
                    return None  # the general normaliser words the error
                columns.append(v)
            else:
                columns.append((v,) * depth)
        pattern = tuple([v.__class__ is list for v in values])
        first = proto.blocks[0]
        current, stride = first.in_shape, first.stride
        known = self.blocks.get
        blocks = []
        for j, row in enumerate(zip(*columns) if columns else ((),) * depth):
            block = known((j, current, stride, pattern, row))
            if block is None:
                return None
            blocks.append(block)
            current = block.out_shape
            stride = 1
        out = stage_out(proto.dim, proto.embed_shape, current)
        return StagePlan(  # as _normalize.stage_blocks makes it (the fields are pinned above)
            proto.index, proto.family, proto.embed, proto.dim, depth, proto.cls_token, proto.pos_embed, shape,
            proto.embed_shape, out, max(1, round(hw0 / out.height)), tuple(blocks), proto.norm_out,
            dist_token=proto.dist_token,
        )  # fmt: skip

    def learn(self, plan: StagePlan, values: tuple[Any, ...], key: tuple[Any, ...]) -> None:
        """Remember what the general normaliser made of this stage with these values."""
        shape = plan.in_shape
        stage_out = MIXERS.get(plan.blocks[0].mixer.kind).stage_out
        _bounded_put(self.heads, (shape, _signature(values)), (plan, stage_out))
        pattern = tuple([v.__class__ is list for v in values])
        for j, block in enumerate(plan.blocks):
            row = tuple([v[j] if is_list else v for v, is_list in zip(values, pattern, strict=True)])
            _bounded_put(self.blocks, (j, block.in_shape, block.stride, pattern, row), block)
        _bounded_put(self.plans, (shape, key), plan)


def _signature(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """What a stage's checks before its blocks may see of its per-block values."""
    return tuple([frozenset(v) if v.__class__ is list else v for v in values])


class _Template:
    """A structure: its validated spec, the per-block values' validator and the stage templates."""

    def __init__(self, spec: Any, given: tuple[_Given, ...], fields: tuple[tuple[type, str], ...], private: Any):
        self.spec_cls = spec.__class__
        values = spec.__dict__.copy()
        values["stages"] = None
        self.values = values
        self.fields_set = spec.__pydantic_fields_set__
        self.private = private
        self.fields = fields
        """The per-block fields given, in order: (schema class, field name)."""
        self.stages = []
        for stage, names in zip(spec.stages, given, strict=True):
            self.stages.append(_StageTemplate(stage, names, len(names[0]) + len(names[1])))
        self.hw0 = spec.input.hw[0]
        self.learnt: tuple[FeatureShape, FeatureShape | None, Any] | None = None
        """The spec-level parts of a plan: input shape, stem shape, resolved head."""

    def split(self, spec: Any) -> tuple[tuple[tuple[Any, ...], ...], tuple[tuple[Any, ...], ...]]:
        """Per stage, the spec's per-block values and their hashable key."""
        values = []
        for st, stage in zip(self.stages, spec.stages, strict=True):
            vals = tuple([getattr(stage, n) for n in st.stage_names])
            vals += tuple([getattr(stage.mixer, n) for n in st.mixer_names])
            values.append(vals)
        return tuple(values), tuple([_hashable(v) for v in values])

    def validate(self, holes: tuple[Any, ...]) -> tuple[Any, Any, Any] | None:
        """The spec these raw per-block values give, with its values and keys per stage."""
        if holes:
            pattern = tuple([v.__class__ is list for v in holes])
            try:
                valid = _validator(self.fields, pattern).validate_python(holes)
            except ValidationError:
                return None
        else:
            valid = ()
        stages, values, keys = [], [], []
        i = 0
        for st in self.stages:
            vals = valid[i : i + st.n]
            i += st.n
            key = _hashable(vals)
            stages.append(st.stage(vals, key))
            values.append(vals)
            keys.append(key)
        fields = self.values.copy()
        fields["stages"] = stages
        spec = _model(self.spec_cls, fields, self.fields_set, self.private)
        return spec, tuple(values), tuple(keys)

    def normalize(self, spec: Any, values: Any, keys: Any, source: SourceMap, name: str) -> NormalizedSpec | None:
        """The plan of ``spec`` from what was learnt, or ``None``."""
        learnt = self.learnt
        if learnt is None:
            return None
        input_shape, stem_shape, head = learnt
        shape = stem_shape or input_shape
        stages = []
        for st, vals, key in zip(self.stages, values, keys, strict=True):
            plan = st.plan(shape, vals, key, self.hw0)
            if plan is None:
                return None
            stages.append(plan)
            shape = plan.out_shape
            if shape.cls_tokens:
                shape = FeatureShape(shape.channels, shape.height, shape.width)
        return NormalizedSpec(spec, name, input_shape, stem_shape, tuple(stages), head, source)

    def learn(self, plan: NormalizedSpec, values: Any, keys: Any) -> None:
        for st, stage_plan, vals, key in zip(self.stages, plan.stages, values, keys, strict=True):
            st.learn(stage_plan, vals, key)
        self.learnt = (plan.input_shape, plan.stem_shape, plan.head)


class _Recent(NamedTuple):
    spec: Any
    template: _Template
    values: tuple[tuple[Any, ...], ...]
    keys: tuple[tuple[Any, ...], ...]


class FastPath:
    """Validates and normalises candidates of structures seen before (see the module docstring).

    ``spec_cls``: the Spec model; ``stage_fields``: the stage's per-block fields; ``mixer_fields``:
    mixer kind -> its per-block fields."""

    def __init__(
        self, spec_cls: type[BaseModel], stage_fields: tuple[str, ...], mixer_fields: Mapping[str, tuple[str, ...]]
    ):
        attrs = spec_cls.__private_attributes__
        self._private = {n: a.get_default() for n, a in attrs.items()} if attrs else None
        self._stage_fields = stage_fields
        self._mixer_fields = {kind: fields for kind, fields in mixer_fields.items() if fields}
        self._templates: dict[tuple[Any, ...], _Template | None] = {}
        self._seen: set[int] = set()
        self._recent: dict[int, _Recent] = {}

    def validate(self, data: Any, general: Callable[[Any], Any]) -> Any:
        """The spec ``data`` validates to: from its structure's template, else ``general(data)``
        (which raises pydantic's errors)."""
        found = self._strip(data)
        if found is None:
            return general(data)
        key, holes, given = found
        template = self._templates.get(key)
        if template is not None:
            made = template.validate(holes)
            if made is not None:
                spec, values, keys = made
                self._note(_Recent(spec, template, values, keys))
                return spec
            return general(data)  # a value the validator refused: the general path raises
        spec = general(data)
        if key in self._templates:  # None: a structure the fast path does not take
            return spec
        h = hash(key)
        if h not in self._seen:
            if len(self._seen) >= 8 * FAST_SIZE:
                self._seen.clear()
            self._seen.add(h)
            return spec
        template = self._template(spec, given)
        _bounded_put(self._templates, key, template)
        if template is not None:
            self._note(_Recent(spec, template, *template.split(spec)))
        return spec

    def normalize(
        self,
        spec: Any,
        source: SourceMap | None,
        name: str | None,
        general: Callable[[Any, SourceMap | None, str | None], NormalizedSpec],
    ) -> NormalizedSpec:
        """The plan of ``spec``: from its template when one validated it and knows the plan, else
        ``general(spec, source, name)`` (which raises the normaliser's errors), whose plan the
        template learns. ``source``: default the spec's own, else empty; ``name``: default the
        spec's, else ``"spec"``."""
        recent = self._recent.get(id(spec))
        if recent is None or recent.spec is not spec:
            return general(spec, source, name)
        # the spec was made here: its private attributes are a dict holding ``_source``
        source = source or (spec.__pydantic_private__ or {}).get("_source") or SourceMap()
        name = name or spec.name or "spec"
        plan = recent.template.normalize(spec, recent.values, recent.keys, source, name)
        if plan is None:
            plan = general(spec, source, name)
            recent.template.learn(plan, recent.values, recent.keys)
        return plan

    def clear(self) -> None:
        """Forget every structure."""
        self._templates.clear()
        self._seen.clear()
        self._recent.clear()

    # ------------------------------------------------------------------ internals
    def _note(self, recent: _Recent) -> None:
        if len(self._recent) >= _RECENT:
            self._recent.clear()
        self._recent[id(recent.spec)] = recent

    def _strip(self, data: Any) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[_Given, ...]] | None:
        """``(structure key, per-block values, which per-block fields each stage gives)``, or
        ``None`` for input the fast path does not take. The key is the pickle of ``data`` without
        its per-block values, and the names of those given."""
        if data.__class__ is not dict:
            return None
        raws = data.get("stages")
        if raws.__class__ is not list:
            return None
        holes: list[Any] = []
        given: list[_Given] = []
        stages = []
        for raw in raws:
            if raw.__class__ is not dict:
                return None
            stage = raw.copy()
            stage_names: tuple[str, ...] = ()
            for name in self._stage_fields:
                if name in stage:
                    holes.append(stage.pop(name))
                    stage_names += (name,)
            mixer_names: tuple[str, ...] = ()
            mixer = stage.get("mixer")
            if mixer.__class__ is dict:
                kind = mixer.get("kind")
                fields = self._mixer_fields.get(kind, ()) if kind.__class__ is str else ()
                if fields:
                    mixer = stage["mixer"] = mixer.copy()
                    for name in fields:
                        if name in mixer:
                            holes.append(mixer.pop(name))
                            mixer_names += (name,)
            elif mixer.__class__ is not str:  # not a shorthand either: the general path words it
                return None
            stages.append(stage)
            given.append((stage_names, mixer_names))
        top = data.copy()
        top["stages"] = stages
        try:
            key = pickle.dumps(top, _PROTOCOL)
        except Exception:  # whatever pickle refuses goes the general way
            return None
        names = tuple(given)
        return (key, names), tuple(holes), names

    def _template(self, spec: Any, given: tuple[_Given, ...]) -> _Template | None:
        """A template from a spec the general path validated, or ``None`` where the fast path does
        not take its per-block fields."""
        fields: list[tuple[type[BaseModel], str]] = []
        for stage, (stage_names, mixer_names) in zip(spec.stages, given, strict=True):
            if stage.__class__.__private_attributes__ or stage.mixer.__class__.__private_attributes__:
                return None  # _model gives them none
            fields += [(stage.__class__, n) for n in stage_names]
            fields += [(stage.mixer.__class__, n) for n in mixer_names]
        if any(_annotation(cls, n) not in _KEYED for cls, n in fields):
            return None
        return _Template(spec, given, tuple(fields), self._private)


_VALIDATORS: dict[tuple[Any, ...], Any] = {}


def _validator(fields: tuple[tuple[type, str], ...], pattern: tuple[bool, ...]) -> Any:
    """A strict validator of the per-block values of ``fields``; where ``pattern`` says a value is
    a list, of the field's list branch alone. Validating a list against the whole union first fails
    the scalar branch (building an error); the result is the list branch's either way (no scalar
    branch takes a list in strict mode), and any failure goes the general way."""
    key = (fields, pattern)
    found = _VALIDATORS.get(key)
    if found is None:
        annotations = []
        for (cls, name), is_list in zip(fields, pattern, strict=True):
            annotation = _annotation(cls, name)  # type: ignore[arg-type]
            annotations.append(_list_branch(annotation) if is_list else annotation)
        adapter = TypeAdapter(tuple.__class_getitem__(tuple(annotations)), config=_STRICT)  # type: ignore[arg-type]
        if len(_VALIDATORS) >= FAST_SIZE:
            _VALIDATORS.clear()
        found = _VALIDATORS[key] = adapter.validator
    return found


def _list_branch(annotation: Any) -> Any:
    """The ``list[...]`` member of a union annotation (one of :data:`_KEYED`)."""
    for member in typing.get_args(annotation):
        inner = typing.get_args(member)[0] if typing.get_origin(member) is typing.Annotated else member
        if typing.get_origin(inner) is list:
            return member
    raise TypeError(f"no list in {annotation}")  # pragma: no cover: _KEYED all have one
