"""The fast path (spec._fast) gives what the general path gives: the same spec, plan, costs, hash
and errors, on members of every shipped search space and on invalid variants of them."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from archsearch import SpecError
from archsearch.cost import _analytic, analytic_costs
from archsearch.kinds import MIXERS
from archsearch.space import RandomSuggest, load_space
from archsearch.spec import Spec, _memo, _normalize, normalize, spec_from_dict, spec_hash
from archsearch.spec._schema import FAST, STAGE_PER_BLOCK_FIELDS

from .test_parts import _pydantic, _same

SPACES = sorted((Path(__file__).resolve().parent.parent / "search_spaces").glob("*.yaml"))


def _fresh_reference(data: Any) -> tuple[str, Any]:
    """What the general path gives with every memo empty: ``("ok", (spec, plan, costs, hash))``,
    or ``("error", message)``."""
    for memo in (_memo.STAGE_PLANS, _memo.STAGE_HEADS, _memo.BLOCK_PLANS, _memo.HEADS, _memo.STAGE_SEEN):
        memo.clear()
    for memo in (_analytic._BLOCK_COSTS, _analytic._OWN):
        memo.clear()
    for object_memo in (_analytic._BY_BLOCK, _analytic._BY_STAGE, _analytic._BY_HEAD):
        object_memo.clear()
    try:
        spec = _pydantic(copy.deepcopy(data))
    except ValidationError as exc:
        return "error", str(exc)
    try:
        plan = _normalize._normalize(spec, None, None)
    except SpecError as exc:
        return "error", str(exc)
    return "ok", (spec, plan, analytic_costs(plan), spec_hash(plan))


def _through_the_fast_path(data: Any) -> tuple[str, Any]:
    try:
        spec = Spec.model_validate(copy.deepcopy(data))
    except ValidationError as exc:
        return "error", str(exc)
    try:
        plan = normalize(spec)
    except SpecError as exc:
        return "error", str(exc)
    return "ok", (spec, plan, analytic_costs(plan), spec_hash(plan))


def _check(data: Any) -> str:
    got, want = _through_the_fast_path(data), _fresh_reference(data)
    assert got[0] == want[0], (got, want)
    if got[0] == "error":
        assert got[1] == want[1]
    else:
        _same(got[1][0], want[1][0])
        assert got[1][1] == want[1][1]
        assert got[1][1].spec == want[1][1].spec
        assert got[1][2] == want[1][2]
        assert got[1][3] == want[1][3]
    return got[0]


def _per_block_fields(stage: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    for name in STAGE_PER_BLOCK_FIELDS:
        if name in stage:
            yield stage, name
    mixer = stage.get("mixer")
    if isinstance(mixer, dict) and mixer.get("kind") in MIXERS.names():
        for name in MIXERS.get(mixer["kind"]).per_block_fields:
            if name in mixer:
                yield mixer, name


def _siblings(data: dict[str, Any], rng: random.Random) -> Iterator[dict[str, Any]]:
    """``data`` with other per-block values (the same structure): lists shuffled, scalars as
    lists and lists as their first value."""
    for _ in range(3):
        out = copy.deepcopy(data)
        for stage in out["stages"]:
            for owner, name in _per_block_fields(stage):
                value = owner[name]
                if isinstance(value, list):
                    rng.shuffle(value)
                elif value is not None and isinstance(stage.get("depth"), int) and rng.random() < 0.5:
                    owner[name] = [value] * stage["depth"]
        yield out
    out = copy.deepcopy(data)
    for stage in out["stages"]:
        for owner, name in _per_block_fields(stage):
            if isinstance(owner[name], list) and owner[name]:
                owner[name] = owner[name][0]
    yield out


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_members_of_every_shipped_space_equal_the_general_path(path: Path) -> None:
    space = load_space(path)
    suggest = RandomSuggest(0)
    rng = random.Random(0)
    FAST.clear()
    counts = {"ok": 0, "error": 0}
    for _ in range(40):
        data = space.sample(suggest).data
        for variant in (data, data, *_siblings(data, rng)):
            counts[_check(variant)] += 1
    assert counts["ok"] > 40, counts
    assert FAST._templates, "the fast path never took a structure"


def _cvt13_nas(n: int, seed: int) -> list[dict[str, Any]]:
    space = load_space(next(p for p in SPACES if p.stem == "cvt13_nas"))
    suggest = RandomSuggest(seed)
    return [space.sample(suggest).data for _ in range(n)]


def test_the_fast_path_is_taken_and_normalises_once_learnt(monkeypatch: pytest.MonkeyPatch) -> None:
    FAST.clear()
    members = _cvt13_nas(400, seed=1)
    general = []
    real = _normalize._normalize
    monkeypatch.setattr(_normalize, "_normalize", lambda *a: general.append(1) or real(*a))
    for data in members:
        analytic_costs(normalize(Spec.model_validate(data)))
    assert len(general) < 60, len(general)  # the first ones teach the blocks, then none
    for data in members[-20:]:
        _check(data)


@pytest.mark.parametrize(
    "where, value",
    [
        ("mlp_ratio", "2"),
        ("mlp_ratio", [0]),
        ("mlp_ratio", [True]),
        ("mlp_ratio", 1e9),
        ("mlp_ratio", []),
        ("mlp_ratio", (2, 4)),
        ("mlp_ratio", [2, 4]),  # wrong length: the normaliser's error
        ("kv_stride", [1, 2.0]),
        ("kv_stride", [1] * 3),
        ("kv_stride", None),
        ("kv_stride", [3] * 10),
        ("q_stride", [2] * 10),  # valid values, impossible on the map: the normaliser's error
    ],
)
def test_invalid_per_block_values_give_the_general_errors(where: str, value: Any) -> None:
    FAST.clear()
    members = _cvt13_nas(30, seed=2)
    for data in members:  # the structure's template exists and knows the blocks
        analytic_costs(normalize(Spec.model_validate(data)))
    bad = copy.deepcopy(members[0])
    owner = bad["stages"][2] if where == "mlp_ratio" else bad["stages"][2]["mixer"]
    owner[where] = value
    assert _check(bad) in ("ok", "error")
    try:
        spec_from_dict(copy.deepcopy(bad))
    except SpecError as exc:
        expected = str(exc)
        FAST.clear()
        with pytest.raises(SpecError) as raised:
            spec_from_dict(copy.deepcopy(bad))
        assert str(raised.value) == expected


@pytest.mark.parametrize(
    "mixer",
    [
        [{"kind": "attention", "heads": 6}],  # a list of mixers: not the fast path's to read
        ("attention",),
        "attention",
    ],
)
def test_stages_the_fast_path_does_not_read_go_the_general_way(mixer: Any) -> None:
    FAST.clear()
    members = _cvt13_nas(5, seed=3)
    for data in members:
        Spec.model_validate(copy.deepcopy(data))
    for data in members:
        other = copy.deepcopy(data)
        other["stages"][2]["mixer"] = mixer
        _check(other)
        _check(other)


def test_blocks_that_change_the_shape_chain_as_the_normaliser_chains_them() -> None:
    """A per-block query stride shrinks the map at its block: learnt blocks only fit where the
    shapes before them are the same."""
    FAST.clear()
    members = _cvt13_nas(12, seed=4)
    rng = random.Random(4)
    outcomes = set()
    for data in members:
        for _ in range(4):
            variant = copy.deepcopy(data)
            variant["stages"][1]["mixer"]["q_stride"] = [rng.choice([1, 2]) for _ in range(2)]
            outcomes.add(_check(variant))
    assert "ok" in outcomes


def test_the_structure_key_keeps_which_per_block_fields_are_given_not_their_values() -> None:
    """Candidates that differ only in per-block values (lists or scalars) share a key; a per-block
    field left out is another structure; all give the general path's results."""
    FAST.clear()
    members = _cvt13_nas(8, seed=5)
    keys = {FAST._strip(data)[0] for data in members}  # type: ignore[index]
    assert len(keys) == 1
    others = []
    for data in members:
        other = copy.deepcopy(data)
        mixer = other["stages"][2]["mixer"]
        if "q_stride" in mixer:
            del mixer["q_stride"]
        else:
            mixer["q_stride"] = 1
        others.append(other)
    assert FAST._strip(others[0])[0] not in keys  # type: ignore[index]
    scalar = copy.deepcopy(members[0])
    scalar["stages"][2]["mlp_ratio"] = 4
    assert FAST._strip(scalar)[0] in keys  # type: ignore[index]
    for data in (*members, *others, *members, *others, scalar, scalar):
        assert _check(data) == "ok"
