"""The normalisation and cost memos (spec._memo, cost._memo) never change a result or an error."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import archsearch
from archsearch import SpecError
from archsearch.cost import analytic_costs
from archsearch.spec import Spec, normalize


def _cvt13() -> dict[str, Any]:
    return archsearch.load_spec("cvt-13").model_dump(exclude_none=True)


def _sr_stage(kernel: bool) -> dict[str, Any]:
    mixer: dict[str, Any] = {"kind": "attention", "heads": 1, "qkv": "sr", "kv_stride": 2}
    if kernel:
        mixer["kernel"] = 3  # the default value, but given: the sr projection rejects it
    return {
        "input": {"size": 32},
        "stages": [{"embed": {"kind": "patch", "stride": 4}, "dim": 16, "depth": 2, "mixer": mixer}],
    }


def test_a_memoised_stage_does_not_hide_an_error_that_depends_on_which_keys_were_given() -> None:
    normalize(Spec.model_validate(_sr_stage(kernel=False)))
    normalize(Spec.model_validate(_sr_stage(kernel=False)))  # now memoised
    with pytest.raises(SpecError, match="kernel = stride = kv_stride"):
        normalize(Spec.model_validate(_sr_stage(kernel=True)))


def test_errors_after_memoised_stages_are_the_ones_without_memo() -> None:
    good = _cvt13()
    normalize(Spec.model_validate(good))
    normalize(Spec.model_validate(good))
    bad = copy.deepcopy(good)
    bad["stages"][2]["mixer"]["kv_stride"] = [2] * (good["depths"][2] - 1)
    with pytest.raises(SpecError, match="exactly depth=10 items") as first:
        normalize(Spec.model_validate(bad))
    with pytest.raises(SpecError) as second:
        normalize(Spec.model_validate(bad))
    assert str(first.value) == str(second.value)


@pytest.mark.parametrize("field, value", [("drop_path", 0.3), ("norm_eps", 1e-6)])
def test_spec_level_values_reach_memoised_blocks(field: str, value: float) -> None:
    base = _cvt13()
    plain = normalize(Spec.model_validate(base))
    normalize(Spec.model_validate(base))
    changed = normalize(Spec.model_validate({**base, field: value}))
    assert [getattr(b, field) for b in changed.blocks] != [getattr(b, field) for b in plain.blocks]
    fresh = normalize(Spec.model_validate({**base, field: value}))
    assert changed == fresh


def test_costs_equal_with_and_without_memo_hits() -> None:
    base = _cvt13()
    variant = copy.deepcopy(base)
    variant["stages"][2]["mlp_ratio"] = [2.0] * 10
    first = [analytic_costs(normalize(Spec.model_validate(d))) for d in (base, variant)]
    again = [analytic_costs(normalize(Spec.model_validate(d))) for d in (base, variant)]
    for a, b in zip(first, again, strict=True):
        assert (a.params, a.macs, a.activations) == (b.params, b.macs, b.activations)
    assert first[0].params != first[1].params
