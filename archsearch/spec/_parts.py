"""Validating spec dicts from memoised parts: each part's content is validated by pydantic once.

A search validates thousands of candidate dicts that differ in a few values, most often the
per-block lists (CvT-13-NAS: ``kv_stride`` and ``mlp_ratio``, one per block). :class:`PartsMemo`
assembles such a dict's :class:`~archsearch.spec.Spec` from parts validated before: the spec's
top-level keys (everything but ``stages``) and each stage without its per-block fields (the
stage's ``mlp_ratio``, a mixer kind's ``per_block_fields``), whose values are validated on their
own by the fields' own schemas. :meth:`Spec.model_validate <archsearch.spec.Spec.model_validate>`
goes through it. The spec is the one pydantic gives (field values, which fields were given,
private attributes). Why it is exact:

* a part's key is the :mod:`pickle` of its raw data (per-block fields left out, the names of those
  given kept): equal bytes mean equal data of the same types (``1``, ``1.0`` and ``True`` differ, a
  tuple is not a list, a ``str`` subclass names its class), and pydantic validates equal data to
  equal values;
* the schema validates fields independently: no validator of ``Spec``, ``Stage`` or a mixer reads
  two fields together (their only validators turn ``mixer: conv`` into ``{kind: conv}``;
  ``tests/test_parts.py`` pins that), so a stage whose other fields were valid once and whose
  per-block values are valid is valid, and validates to the same values;
* a part not seen before is validated by pydantic; whatever pickle refuses, anything but plain
  dicts for the spec and its stages, and every failure go pydantic's own way (``None`` here), so
  errors are unchanged.

Parts are shared: specs validated from the same parts hold the same (frozen) stage, embedding and
mixer objects, as plans share theirs. Do not mutate the lists inside a validated spec.

The memos are bounded (cleared when they outgrow :data:`PARTS_SIZE`). :meth:`PartsMemo.parts_of`
gives the normaliser, for the last specs validated, what keys its own memos without reading the
stages again (:mod:`archsearch.spec._memo`).
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Mapping
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

__all__ = ["PARTS_SIZE", "PartsMemo", "SpecParts", "StageParts", "fill_stage"]

PARTS_SIZE = 4096
"""Parts a memo holds before it is cleared."""
_RECENT = 8
"""Specs whose parts :meth:`PartsMemo.parts_of` still knows: the last ones validated (few, so that
no spec lives on because of it)."""
_FILLED = 256
"""Per-block value sets a memoised stage keeps its filled-in stage for."""
_STRICT = ConfigDict(strict=True)
_PROTOCOL = 4
_set = object.__setattr__


class StageParts(NamedTuple):
    """A validated stage as the memo knows it."""

    part: int
    """Id of the stage's content but its per-block values (a fresh int per part, never reused)."""
    holes: tuple[Any, ...]
    """The per-block fields given, in a fixed order: each scalar value, ``...`` for a list."""
    lists: tuple[tuple[Any, ...], ...]
    """The given per-block lists, in the same order, as tuples."""


class SpecParts(NamedTuple):
    top: int
    """Id of the spec's top-level content (all but ``stages``)."""
    stages: tuple[StageParts, ...]


class _Stage(NamedTuple):
    """A memoised stage: validated once, and how to put other per-block values in."""

    stage: Any
    part: int
    stage_names: tuple[str, ...]
    mixer_names: tuple[str, ...]
    holes: Any  # validator of the tuple of per-block values (stage's, then mixer's)
    filled: dict[bytes, tuple[Any, StageParts]]
    """The stage with per-block values seen twice (keyed by their pickle): shared."""
    seen: set[int]
    """Hashes of the per-block values seen once (second-sight admission, as in ``_memo``)."""


def _annotation(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields[name]
    return Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation


def _model(cls: type[BaseModel], values: dict[str, Any], given: set[str], private: Any) -> Any:
    """An instance of ``cls`` with these field values, as validation leaves it."""
    obj = cls.__new__(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(given))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None if private is None else dict(private))
    return obj


class PartsMemo:
    """Validates spec dicts from memoised parts (see the module docstring).

    ``spec_cls`` / ``stage_cls``: the Spec and Stage models; ``stage_fields``: the stage's
    per-block fields; ``mixer_fields``: mixer kind -> (its schema, its per-block fields)."""

    def __init__(
        self,
        spec_cls: type[BaseModel],
        stage_cls: type[BaseModel],
        stage_fields: tuple[str, ...],
        mixer_fields: Mapping[str, tuple[type[BaseModel], tuple[str, ...]]],
    ):
        attrs = spec_cls.__private_attributes__
        self._spec_cls = spec_cls
        self._spec_private = {n: a.get_default() for n, a in attrs.items()} if attrs else None
        self._stage_cls = stage_cls
        self._stage_fields = stage_fields
        self._mixers = {kind: (schema, fields) for kind, (schema, fields) in mixer_fields.items() if fields}
        for model in (stage_cls, *(schema for schema, _ in self._mixers.values())):
            if model.__private_attributes__:  # _model gives them none
                raise TypeError(f"{model.__name__} has private attributes: PartsMemo cannot build it")
        self._tops: dict[tuple[bytes, int], tuple[dict[str, Any], set[str], int]] = {}
        self._stages: dict[tuple[Any, ...], _Stage] = {}
        self._validators: dict[tuple[Any, ...], Any] = {}
        self._recent: dict[int, tuple[Any, SpecParts]] = {}
        self._ids = itertools.count()

    # ------------------------------------------------------------------ validation
    def validate(self, data: Any) -> Any:
        """The spec ``data`` validates to, or ``None`` where pydantic must say (a part fails, or
        the input is not plain dicts): the caller then validates ``data`` itself, so errors are
        pydantic's. A spec whose top-level part is new is validated by pydantic whole (raising
        its :class:`~pydantic.ValidationError`)."""
        if data.__class__ is not dict:
            return None
        raws = data.get("stages")
        if raws.__class__ is not list:
            return None
        top = data.copy()
        del top["stages"]
        try:
            top_key = (pickle.dumps(top, _PROTOCOL), len(raws))
            keys = [self._stage_key(raw) for raw in raws]
        except Exception:  # whatever pickle refuses goes pydantic's way
            return None
        found = self._tops.get(top_key)
        if found is None:
            return self._first(data, top_key, keys)
        values, given, top_id = found
        stages: list[Any] = []
        parts: list[StageParts] = []
        memo = self._stages
        for key, raw in zip(keys, raws, strict=True):
            if key is None:
                return None
            entry = memo.get(key[0])
            if entry is None:
                try:
                    entry = self._remember(key[0], self._stage_cls.model_validate(raw))
                except ValidationError:
                    return None
            if key[1]:
                done = entry.filled.get(key[2])
                if done is None:
                    try:
                        valid = entry.holes.validate_python(key[1])
                    except ValidationError:
                        return None
                    done = (self._fill(entry, valid), _stage_parts(entry.part, valid))
                    _second_sight(entry, key[2], done)
                stages.append(done[0])
                parts.append(done[1])
            else:
                stages.append(entry.stage)
                parts.append(StageParts(entry.part, (), ()))
        values = values.copy()
        values["stages"] = stages
        spec = _model(self._spec_cls, values, given, self._spec_private)
        self._note(spec, SpecParts(top_id, tuple(parts)))
        return spec

    def _stage_key(self, raw: Any) -> tuple[tuple[Any, ...], tuple[Any, ...], bytes] | None:
        """``(memo key, per-block values given, their pickle)`` of a raw stage (``None``: not a
        dict)."""
        if raw.__class__ is not dict:
            return None
        stage, values = raw, []
        given_stage: tuple[str, ...] = ()
        given_mixer: tuple[str, ...] = ()
        for name in self._stage_fields:
            if name in raw:
                if stage is raw:
                    stage = raw.copy()
                values.append(stage.pop(name))
                given_stage += (name,)
        mixer = raw.get("mixer")
        if mixer.__class__ is dict:
            kind = mixer.get("kind")
            found = self._mixers.get(kind) if kind.__class__ is str else None
            if found is not None:
                plain = mixer
                for name in found[1]:
                    if name in mixer:
                        if plain is mixer:
                            plain = mixer.copy()
                        values.append(plain.pop(name))
                        given_mixer += (name,)
                if plain is not mixer:
                    if stage is raw:
                        stage = raw.copy()
                    stage["mixer"] = plain
        holes = tuple(values)
        key = (pickle.dumps(stage, _PROTOCOL), given_stage, given_mixer)
        return key, holes, pickle.dumps(holes, _PROTOCOL) if holes else b""

    def _first(self, data: dict[str, Any], top_key: tuple[bytes, int], keys: list[Any]) -> Any:
        """Validate the whole spec (its top-level part is new; pydantic's errors are raised as
        they are) and remember its parts."""
        spec = self._spec_cls.__pydantic_validator__.validate_python(data)
        values = spec.__dict__.copy()
        values["stages"] = None
        top_id = next(self._ids)
        self._keep(self._tops, top_key, (values, set(spec.__pydantic_fields_set__), top_id))
        parts = []
        for key, stage in zip(keys, spec.stages, strict=True):
            if key is None:  # not a plain dict: validated, not memoised
                return spec
            entry = self._stages.get(key[0]) or self._remember(key[0], stage)
            names = [getattr(stage, name) for name in entry.stage_names]
            names += [getattr(stage.mixer, name) for name in entry.mixer_names]
            parts.append(_stage_parts(entry.part, names))
        self._note(spec, SpecParts(top_id, tuple(parts)))
        return spec

    def _remember(self, key: tuple[Any, ...], stage: Any) -> _Stage:
        _, stage_names, mixer_names = key
        annotations = [_annotation(self._stage_cls, name) for name in stage_names]
        if mixer_names:
            schema = self._mixers[stage.mixer.kind][0]
            annotations += [_annotation(schema, name) for name in mixer_names]
        signature = (stage_names, stage.mixer.__class__, mixer_names)
        holes = self._validators.get(signature)
        if holes is None and annotations:
            holes = TypeAdapter(tuple.__class_getitem__(tuple(annotations)), config=_STRICT).validator  # type: ignore[arg-type]
            self._validators[signature] = holes  # a few per mixer kind: never cleared
        entry = _Stage(stage, next(self._ids), stage_names, mixer_names, holes, {}, set())
        self._keep(self._stages, key, entry)
        return entry

    @staticmethod
    def _fill(entry: _Stage, valid: tuple[Any, ...]) -> Any:
        """The stage of ``entry`` with these (validated) per-block values."""
        return fill_stage(entry.stage, entry.stage_names, entry.mixer_names, valid)

    # ------------------------------------------------------------------ what the normaliser reads
    def _note(self, spec: Any, parts: SpecParts) -> None:
        recent = self._recent
        if len(recent) >= _RECENT:
            recent.clear()
        recent[id(spec)] = (spec, parts)

    def parts_of(self, spec: Any) -> SpecParts | None:
        """The parts of ``spec`` if it is one of the last specs validated here, else ``None``."""
        found = self._recent.get(id(spec))
        return found[1] if found is not None and found[0] is spec else None

    def clear(self) -> None:
        """Forget every part (the next specs are validated by pydantic whole, as the first are)."""
        self._tops.clear()
        self._stages.clear()
        self._recent.clear()

    @staticmethod
    def _keep(memo: dict[Any, Any], key: Any, value: Any) -> None:
        if len(memo) >= PARTS_SIZE:
            memo.clear()
        memo[key] = value


def fill_stage(
    stage: Any, stage_names: tuple[str, ...], mixer_names: tuple[str, ...], valid: tuple[Any, ...]
) -> Any:
    """``stage`` (validated) with other validated values of its per-block fields ``stage_names``,
    then its mixer's ``mixer_names``, in that order: what pydantic gives for that stage."""
    fields = stage.__dict__.copy()
    i = 0
    for name in stage_names:
        fields[name] = valid[i]
        i += 1
    if mixer_names:
        mixer = stage.mixer
        mixer_fields = mixer.__dict__.copy()
        for name in mixer_names:
            mixer_fields[name] = valid[i]
            i += 1
        fields["mixer"] = _model(mixer.__class__, mixer_fields, mixer.__pydantic_fields_set__, None)
    return _model(stage.__class__, fields, stage.__pydantic_fields_set__, None)


def _second_sight(entry: _Stage, key: bytes, done: tuple[Any, StageParts]) -> None:
    """Keep ``done`` for per-block values ``key`` the second time they come: the stages of a
    search's first stages come back, those of a long stage with per-block choices do not."""
    h = hash(key)
    if h not in entry.seen:
        if len(entry.seen) > 8 * _FILLED:
            entry.seen.clear()
        entry.seen.add(h)
        return
    if len(entry.filled) >= _FILLED:
        entry.filled.clear()
    entry.filled[key] = done


def _stage_parts(part: int, values: Any) -> StageParts:
    holes = tuple(... if v.__class__ is list else v for v in values)
    return StageParts(part, holes, tuple(tuple(v) for v in values if v.__class__ is list))
