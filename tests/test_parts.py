"""Specs validated from memoised parts (spec._parts) are the specs pydantic gives, errors included."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import archsearch
from archsearch import SpecError
from archsearch.cost import analytic_costs
from archsearch.kinds import MIXERS
from archsearch.spec import Spec, Stage, normalize, spec_from_dict, spec_hash, zoo_names
from archsearch.spec._schema import PARTS, _from_parts

from .random_specs import random_spec_dict


def _pydantic(data: Any) -> Spec:
    """The spec pydantic itself validates (no parts)."""
    return Spec.__pydantic_validator__.validate_python(data)  # type: ignore[no-any-return]


def _same(a: Any, b: Any, where: str = "spec") -> None:
    """``a`` and ``b`` are equal down to the types of values, which fields were given and the
    private attributes."""
    assert type(a) is type(b), where
    if isinstance(a, BaseModel):
        assert list(a.__dict__) == list(b.__dict__), where
        assert a.__pydantic_fields_set__ == b.__pydantic_fields_set__, where
        assert a.__pydantic_private__ == b.__pydantic_private__, where
        assert a.__pydantic_extra__ == b.__pydantic_extra__, where
        for name in a.__dict__:
            _same(a.__dict__[name], b.__dict__[name], f"{where}.{name}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _dicts() -> Iterator[dict[str, Any]]:
    for name in zoo_names():
        yield archsearch.load_spec(name).model_dump(exclude_none=True)
        yield archsearch.load_spec(name).model_dump(exclude_unset=True)
    for seed in range(60):
        yield random_spec_dict(seed)


def _valid(data: dict[str, Any]) -> bool:
    try:
        _pydantic(data)
    except ValidationError:
        return False
    return True


def _variants(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``data`` with other per-block values in each stage: lists of other lengths and values,
    scalars, and values pydantic refuses (each one is checked against pydantic itself)."""
    for i, stage in enumerate(data["stages"]):
        mixer = stage.get("mixer")
        fields = MIXERS.get(mixer["kind"]).per_block_fields if isinstance(mixer, dict) else ()
        for value in ([2, 1], 2, [1] * 3, 1.5, [True], "2", (1, 2), [0], [2.0], None, [], [1, "1"]):
            for name in fields:
                out = copy.deepcopy(data)
                out["stages"][i]["mixer"][name] = value
                yield out
            out = copy.deepcopy(data)
            out["stages"][i]["mlp_ratio"] = value
            yield out
        for name, value in (("dim", 64.0), ("dim", True), ("depth", "2"), ("act", "tanh"), ("block", 1)):
            out = copy.deepcopy(data)
            out["stages"][i][name] = value
            yield out


def test_the_spec_is_the_one_pydantic_gives() -> None:
    seen = 0
    for data in _dicts():
        for variant in (data, *_variants(data)):
            if not _valid(variant):
                continue
            for _ in range(2):  # the first time whole, then from parts
                _same(Spec.model_validate(copy.deepcopy(variant)), _pydantic(variant))
            seen += 1
    assert seen > 500


def test_errors_are_the_ones_without_parts() -> None:
    checked = 0
    for data in _dicts():
        if not _valid(data):
            continue
        for variant in _variants(data):
            PARTS.clear()
            try:
                spec_from_dict(copy.deepcopy(variant), shapes=False)
                continue
            except SpecError as exc:
                expected = str(exc)
            spec_from_dict(copy.deepcopy(data), shapes=False)  # the parts are memoised now
            with pytest.raises(SpecError) as raised:
                spec_from_dict(copy.deepcopy(variant), shapes=False)
            assert str(raised.value) == expected
            checked += 1
    assert checked > 300


@pytest.mark.parametrize(
    "path, value",
    [
        (("stages", 0, "dim"), 64.0),  # pickle tells 64, 64.0 and True apart
        (("stages", 0, "dim"), True),
        (("input", "size"), (224, 224)),  # and a tuple from a list
        (("stages", 0, "mixer", "kind"), type("Str", (str,), {})("attention")),
    ],
)
def test_values_equal_in_python_but_not_in_the_schema_do_not_share_a_part(
    path: tuple[Any, ...], value: Any
) -> None:
    good = archsearch.load_spec("cvt-13").model_dump(exclude_none=True)
    good["input"]["size"] = [224, 224]
    Spec.model_validate(good)
    Spec.model_validate(copy.deepcopy(good))
    bad = copy.deepcopy(good)
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        expected: Any = _pydantic(bad)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as raised:
            Spec.model_validate(bad)
        assert str(raised.value) == str(exc)
    else:
        _same(Spec.model_validate(bad), expected)


def test_plans_costs_and_hashes_from_parts_equal_those_without() -> None:
    for data in _dicts():
        if not _valid(data):
            continue
        for variant in (data, *_variants(data)):
            if not _valid(variant):
                continue
            with_parts = _from_parts(copy.deepcopy(variant))  # the parts memo behind the fast path
            assert PARTS.parts_of(with_parts) is not None
            plain = _pydantic(variant)
            assert PARTS.parts_of(plain) is None
            try:
                a = normalize(with_parts)
            except SpecError as exc:
                with pytest.raises(SpecError) as raised:
                    normalize(plain)
                assert str(raised.value) == str(exc)
                continue
            b = normalize(plain)
            assert a == b
            assert analytic_costs(a) == analytic_costs(b)
            assert spec_hash(a) == spec_hash(b)


def test_the_validators_read_one_field_at_a_time() -> None:
    """What makes parts exact: the only validators of the spec, its stages and the mixers (whose
    per-block fields are validated apart) are the ``mixer: conv`` / ``stem: conv`` shorthands.
    A new validator must keep to one field, or the parts memo must learn of it."""

    def validators(model: type[BaseModel]) -> set[tuple[str, str]]:
        decorators = model.__pydantic_decorators__
        found = {(name, d.info.mode) for name, d in decorators.model_validators.items()}
        found |= {(name, "field") for name in decorators.field_validators}
        return found

    assert validators(Spec) == {("_shorthands", "before")}
    assert validators(Stage) == {("_shorthands", "before")}
    for kind in MIXERS.values():
        assert validators(kind.schema) == set(), kind.name


def test_the_memos_are_bounded() -> None:
    from archsearch.spec._parts import PARTS_SIZE

    base = archsearch.load_spec("cvt-13").model_dump(exclude_none=True)
    for dim in range(1, PARTS_SIZE + 50):
        data = copy.deepcopy(base)
        data["stages"][0]["dim"] = dim
        data["stages"][0]["mixer"]["heads"] = 1
        data["name"] = f"n{dim}"  # a new top-level part too
        Spec.model_validate(data)
        Spec.model_validate(copy.deepcopy(data))
    assert len(PARTS._stages) <= PARTS_SIZE
    assert len(PARTS._tops) <= PARTS_SIZE
    assert len(PARTS._recent) <= 8
