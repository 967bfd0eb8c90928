"""The fast path's structure check (spec._fast_key): a candidate that ``==`` the last template's
structure but differs in type (1, 1.0, True), zero sign, subclass or key order gets what the
general path gives, not the template's spec."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from archsearch.spec import Spec, normalize
from archsearch.spec._fast_key import exact_checker
from archsearch.spec._schema import FAST

from .test_fast_path import _check, _cvt13_nas


class _Str(str):
    pass


class _Dict(dict):  # type: ignore[type-arg]
    pass


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    owner = out
    for key in path[:-1]:
        owner = owner[key]
    owner[path[-1]] = value
    return out


@pytest.mark.parametrize(
    "path, values",
    [
        (("stages", 0, "dim"), [64, 64.0, True, 64]),
        (("stages", 0, "embed", "stride"), [4, 4.0, 4]),
        (("stages", 2, "cls_token"), [True, 1, 1.0, True]),
        (("stages", 2, "mixer", "heads"), [6, 6.0, 6]),
        (("head", "dropout"), [0.0, -0.0, 0, False, 0.0]),
        (("drop_path",), [0.1, 0.1, 1e-1]),
        (("stages", 0, "mixer", "qkv"), ["dw_bn", _Str("dw_bn"), "dw_bn"]),
        (("head",), [{"pool": "cls"}, _Dict(pool="cls"), {"pool": "cls"}]),
        (("input", "size"), [224, [224, 224], [224.0, 224], [224, 224], (224, 224)]),
    ],
)
def test_values_equal_in_python_but_not_in_the_schema_are_other_structures(
    path: tuple[Any, ...], values: list[Any]
) -> None:
    FAST.clear()
    members = _cvt13_nas(12, seed=7)
    for data in members:  # a template for the structure, learnt and last
        normalize(Spec.model_validate(copy.deepcopy(data)))
    for value in values:  # each right after the last, whose template is compared first
        for data in members[:3]:
            _check(_set(data, path, value))


def test_key_order_and_the_sign_of_zero_are_seen() -> None:
    raw = {"a": 1, "b": {"c": 0.0, "d": [1, 2.5, None]}, "e": "x"}
    check = exact_checker(copy.deepcopy(raw))
    assert check is not None
    assert check(copy.deepcopy(raw))
    assert not check({"b": {"c": 0.0, "d": [1, 2.5, None]}, "a": 1, "e": "x"})  # == raw, other order
    assert not check({"a": 1, "b": {"c": -0.0, "d": [1, 2.5, None]}, "e": "x"})
    assert not check({"a": True, "b": {"c": 0.0, "d": [1, 2.5, None]}, "e": "x"})
    assert not check({"a": 1, "b": {"c": 0.0, "d": [1.0, 2.5, None]}, "e": "x"})
    assert not check({"a": 1, "b": {"c": 0.0, "d": [1, 2.5, None]}, "e": _Str("x")})
    assert not check({"a": 1, "b": _Dict({"c": 0.0, "d": [1, 2.5, None]}), "e": "x"})
    assert exact_checker({"a": (1, 2)}) is None  # a tuple: only the pickle key takes it
    assert exact_checker({1: 2}) is None


def test_the_order_of_keys_in_a_candidate_gives_the_general_result() -> None:
    FAST.clear()
    members = _cvt13_nas(12, seed=8)
    for data in members:
        normalize(Spec.model_validate(copy.deepcopy(data)))
    for data in members[:3]:
        reordered = dict(reversed(list(copy.deepcopy(data).items())))
        assert _check(reordered) == "ok"
        _check(data)
