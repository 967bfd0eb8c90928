"""The fast path for candidates of one structure: a spec dict that differs from one seen before only
in its per-block values is validated and normalised from what that one taught.

A search's candidates share their structure (everything but the per-block values: the stage's
``mlp_ratio``, a mixer kind's ``per_block_fields``; CvT-13-NAS: ``kv_stride`` and ``mlp_ratio`` of
each of 13 blocks) and differ in those values. :class:`FastPath` keys a dict by its structure
(one :mod:`pickle` of the dict with each per-block value it gives replaced by ``None``) and
keeps, per structure seen twice, a :class:`_Template`: the spec the general path validated, a
validator of the per-block values alone, and what normalisation gave for the stage plans, stage
heads and blocks seen so far (:mod:`archsearch.spec._fast_stage`). A new candidate of that
structure then costs one pickle, one validation of its per-block values, and dict lookups.

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
:data:`FAST_SIZE`; stages with given values (and their plans) are admitted on second sight (as in
``_memo``), and a stage whose values seldom repeat (CvT-13-NAS's 10-block stage) is not memoised
whole at all: it is filled in and assembled from its blocks each time.
"""

from __future__ import annotations

import pickle
import typing
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from ..core import FeatureShape, NormalizedSpec, PerBlockFloat, PerBlockInt, SourceMap
from ._fast_stage import FAST_SIZE, Given, StageTemplate, Variant, bounded_put, make_frozen
from ._parts import _annotation, _model

__all__ = ["FAST_SIZE", "FastPath"]

_RECENT = 8
"""Specs whose template :meth:`FastPath.normalize` still knows (the last ones validated)."""
_PROTOCOL = 4
_STRICT = ConfigDict(strict=True)
#: Annotations of the per-block fields the fast path takes: they validate to exact int/float/None.
_KEYED = (PerBlockInt, PerBlockFloat, PerBlockInt | None, PerBlockFloat | None)


class _Template:
    """A structure: its validated spec, the per-block values' validator and the stage templates."""

    def __init__(
        self, spec: Any, given: tuple[Given, ...], fields: tuple[tuple[type, str], ...], private: Any
    ):
        self.spec_cls = spec.__class__
        values = spec.__dict__.copy()
        values["stages"] = None
        self.values = values
        self.fields_set = spec.__pydantic_fields_set__
        self.private = private
        self.fields = fields
        """The per-block fields given, in order: (schema class, field name)."""
        self.validators: dict[tuple[bool, ...], Any] = {}
        """Which per-block values are lists -> their validator."""
        self.stages = []
        for stage, names in zip(spec.stages, given, strict=True):
            self.stages.append(StageTemplate(stage, names, len(names[0]) + len(names[1])))
        self.hw0 = spec.input.hw[0]
        self.learnt: tuple[FeatureShape, FeatureShape | None, Any] | None = None
        """The spec-level parts of a plan: input shape, stem shape, resolved head."""

    def split(self, spec: Any) -> tuple[tuple[Any, ...], tuple[Variant, ...]]:
        """Per stage, the spec's per-block values and the stage as a variant (not memoised)."""
        values = []
        for st, stage in zip(self.stages, spec.stages, strict=True):
            vals = tuple([getattr(stage, n) for n in st.stage_names])
            values.append(vals + tuple([getattr(stage.mixer, n) for n in st.mixer_names]))
        return tuple(values), tuple([Variant(stage, None, None) for stage in spec.stages])

    def validate(self, holes: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...], tuple[Variant, ...]] | None:
        """The spec these raw per-block values give, with its values and variants per stage."""
        valid: tuple[Any, ...] = ()
        if holes:
            pattern = tuple([v.__class__ is list for v in holes])
            validator = self.validators.get(pattern) or self._validator(pattern)
            try:
                valid = validator.validate_python(holes)
            except ValidationError:
                return None
        stages, values, variants = [], [], []
        i = 0
        for st in self.stages:
            n = st.n
            if n:
                vals = valid[i : i + n]
                i += n
                variant = st.variant(vals)
            else:
                vals, variant = (), st.fixed
            stages.append(variant.stage)
            values.append(vals)
            variants.append(variant)
        fields = self.values.copy()
        fields["stages"] = stages
        spec = _model(self.spec_cls, fields, self.fields_set, self.private)
        return spec, tuple(values), tuple(variants)

    def _validator(self, pattern: tuple[bool, ...]) -> Any:
        found = self.validators[pattern] = _validator(self.fields, pattern)
        return found

    def normalize(
        self, spec: Any, values: Any, variants: Any, source: SourceMap, name: str
    ) -> NormalizedSpec | None:
        """The plan of ``spec`` from what was learnt, or ``None``."""
        learnt = self.learnt
        if learnt is None:
            return None
        input_shape, stem_shape, head = learnt
        shape = stem_shape or input_shape
        hw0 = self.hw0
        stages = []
        for st, vals, variant in zip(self.stages, values, variants, strict=True):
            plan = st.plan(shape, vals, variant, hw0)
            if plan is None:
                return None
            stages.append(plan)
            shape = plan.out_shape
            if shape.cls_tokens:
                shape = FeatureShape(shape.channels, shape.height, shape.width)
        return make_frozen(
            NormalizedSpec,
            {"spec": spec, "name": name, "input_shape": input_shape, "stem_shape": stem_shape,
             "stages": tuple(stages), "head": head, "source": source},
        )  # fmt: skip

    def learn(self, plan: NormalizedSpec, values: Any) -> None:
        """Remember what the general normaliser made of a spec of this structure."""
        for st, stage_plan, vals in zip(self.stages, plan.stages, values, strict=True):
            st.learn(stage_plan, vals)
        self.learnt = (plan.input_shape, plan.stem_shape, plan.head)


class _Recent(NamedTuple):
    spec: Any
    template: _Template
    values: tuple[tuple[Any, ...], ...]
    variants: tuple[Variant, ...]


class FastPath:
    """Validates and normalises candidates of structures seen before (see the module docstring).

    ``spec_cls``: the Spec model; ``stage_fields``: the stage's per-block fields; ``mixer_fields``:
    mixer kind -> its per-block fields."""

    def __init__(
        self,
        spec_cls: type[BaseModel],
        stage_fields: tuple[str, ...],
        mixer_fields: Mapping[str, tuple[str, ...]],
    ):
        attrs = spec_cls.__private_attributes__
        self._private = {n: a.get_default() for n, a in attrs.items()} if attrs else None
        self._stage_fields = stage_fields
        self._mixer_fields = {kind: fields for kind, fields in mixer_fields.items() if fields}
        self._templates: dict[bytes, _Template | None] = {}
        self._seen: set[int] = set()
        self._recent: dict[int, _Recent] = {}

    def validate(self, data: Any, general: Callable[[Any], Any]) -> Any:
        """The spec ``data`` validates to: from its structure's template, else ``general(data)``
        (which raises pydantic's errors)."""
        found = self._strip(data)
        if found is None:
            return general(data)
        key, holes = found
        template = self._templates.get(key)
        if template is not None:
            made = template.validate(holes)
            if made is not None:
                self._note(_Recent(made[0], template, made[1], made[2]))
                return made[0]
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
        template = self._template(spec, self._given(data))
        bounded_put(self._templates, key, template)
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
        plan = recent.template.normalize(spec, recent.values, recent.variants, source, name)
        if plan is None:
            plan = general(spec, source, name)
            recent.template.learn(plan, recent.values)
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

    def _strip(self, data: Any) -> tuple[bytes, tuple[Any, ...]] | None:
        """``(structure key, per-block values)``, or ``None`` for input the fast path does not take.
        The key is the pickle of ``data`` with the value of each per-block field it gives replaced
        by ``None``: it keeps which fields are given (and where), and nothing of their values."""
        if data.__class__ is not dict:
            return None
        raws = data.get("stages")
        if raws.__class__ is not list:
            return None
        holes: list[Any] = []
        stages = []
        stage_fields, mixer_fields = self._stage_fields, self._mixer_fields
        for raw in raws:
            if raw.__class__ is not dict:
                return None
            stage = raw.copy()
            for name in stage_fields:
                if name in stage:
                    holes.append(stage[name])
                    stage[name] = None
            mixer = stage.get("mixer")
            if mixer.__class__ is dict:
                kind = mixer.get("kind")
                fields = mixer_fields.get(kind, ()) if kind.__class__ is str else ()
                if fields:
                    mixer = stage["mixer"] = mixer.copy()
                    for name in fields:
                        if name in mixer:
                            holes.append(mixer[name])
                            mixer[name] = None
            elif mixer.__class__ is not str:  # not a shorthand either: the general path words it
                return None
            stages.append(stage)
        top = data.copy()
        top["stages"] = stages
        try:
            key = pickle.dumps(top, _PROTOCOL)
        except Exception:  # whatever pickle refuses goes the general way
            return None
        return key, tuple(holes)

    def _given(self, data: dict[str, Any]) -> tuple[Given, ...]:
        """Which per-block fields each stage of ``data`` gives (a dict :meth:`_strip` took): the
        stage's, then its mixer's, in the order :meth:`_strip` reads them."""
        given: list[Given] = []
        for raw in data["stages"]:
            mixer = raw.get("mixer")
            kind = mixer.get("kind") if mixer.__class__ is dict else None
            fields = self._mixer_fields.get(kind, ()) if kind.__class__ is str else ()
            stage_names = tuple([name for name in self._stage_fields if name in raw])
            given.append((stage_names, tuple([name for name in fields if name in mixer])))
        return tuple(given)

    def _template(self, spec: Any, given: tuple[Given, ...]) -> _Template | None:
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
            annotation = _annotation(cls, name)
            annotations.append(_list_branch(annotation) if is_list else annotation)
        adapter: TypeAdapter[Any] = TypeAdapter(tuple.__class_getitem__(tuple(annotations)), config=_STRICT)  # type: ignore[arg-type]
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
