"""Loading, shorthands, overrides and the schema."""

from __future__ import annotations

import itertools
import json

import pydantic
import pytest
import torch

import archsearch
from archsearch import SpecError
from archsearch.spec import Spec, load_yaml_text, normalize
from archsearch.spec._normalize import FAMILY_MIXERS


def test_yaml_floats_in_exponent_form_are_numbers():
    data, _ = load_yaml_text("a: 1e-5\nb: 1.0e-6\nc: 3\nd: '1e-5'\n")
    assert data == {"a": 1e-5, "b": 1e-6, "c": 3, "d": "1e-5"}


def test_source_map_records_lines_of_nested_values():
    text = "stages:\n  - dim: 8\n    mixer:\n      kind: conv\n"
    _, source = load_yaml_text(text, file="x.yaml")
    assert source.line_of(("stages", 0, "mixer", "kind")) == 4
    assert source.line_of(("stages", 0, "dim")) == 2
    assert source.line_of(("stages", 0, "mixer", "kernel")) == 3  # absent: its parent's line


def test_merge_keys_and_shorthands(tmp_path):
    path = tmp_path / "m.yaml"
    # a YAML anchor on an unknown top-level key is still an unknown key
    path.write_text("input: {size: 32}\nx-base: &b {dim: 16, depth: 1, mixer: conv}\n")
    with pytest.raises(SpecError, match="unknown key 'x-base'"):
        archsearch.load_spec(path)
    path.write_text("input: {size: 32}\nstages:\n  - {<<: {dim: 16, depth: 1}, mixer: conv, embed: none}\n")
    spec = archsearch.load_spec(path)
    assert spec.stages[0].mixer.kind == "conv" and spec.stages[0].embed.kind == "none"
    assert spec.name == "m"  # the file name when the spec has none


def test_depths_shorthand_equals_stage_depths():
    a = archsearch.load_spec("cvt-13").model_dump()
    stages = [dict(s, depth=d) for s, d in zip(a["stages"], a.pop("depths"), strict=True)]
    b = archsearch.load_spec({**a, "stages": stages})
    with torch.device("meta"):
        pa = sum(p.numel() for p in archsearch.create_model("cvt-13").parameters())
        pb = sum(p.numel() for p in archsearch.build(b).parameters())
    assert pa == pb
    assert [s.depth for s in normalize(b).stages] == [1, 2, 10]


def test_specs_are_frozen_and_strict():
    spec = archsearch.load_spec("deit-ti")
    with pytest.raises(pydantic.ValidationError):
        spec.norm_eps = 1.0  # type: ignore[misc]
    data = spec.model_dump()
    data["stages"][0]["depth"] = "12"  # strings are not coerced into numbers
    with pytest.raises(SpecError, match=r"stages\[0\]\.depth"):
        archsearch.load_spec(data)


def test_json_schema_documents_defaults_and_forbids_extras():
    schema = Spec.model_json_schema()
    attention = schema["$defs"]["AttentionMixer"]
    assert attention["additionalProperties"] is False
    assert attention["properties"]["kv_stride"]["default"] == 1
    assert "key/value" in attention["properties"]["kv_stride"]["description"]
    # every mixer the schema accepts belongs to exactly one block family of the normaliser
    # a stage's mixer: one mixer (discriminated on kind) or a list of them, one per block
    one, per_block = schema["$defs"]["Stage"]["properties"]["mixer"]["anyOf"][:2]
    mixers = set(one["discriminator"]["mapping"])
    assert per_block["type"] == "array" and set(per_block["items"]["discriminator"]["mapping"]) == mixers
    family_mixers = [k for kinds in FAMILY_MIXERS.values() for k in kinds]
    assert mixers == set(family_mixers) and len(family_mixers) == len(set(family_mixers))
    assert {"conv", "mhsa", "attention", "window", "dwconv", "mbconv", "mobilevit"} <= mixers
    json.dumps(schema)


def test_normalised_blocks_are_flat_and_resolved():
    plan = normalize(archsearch.load_spec("cvt-13"))
    assert len(plan.blocks) == 13
    assert [b.index for b in plan.blocks] == list(range(13))
    assert {b.mixer.kv_stride for b in plan.blocks} == {2}
    assert {b.mlp_ratio for b in plan.blocks} == {4.0}
    assert plan.stages[2].out_shape.tokens == 14 * 14 + 1
    assert [s.reduction for s in plan.stages] == [4, 8, 16]


def test_drop_path_rises_linearly_over_blocks():
    spec = archsearch.load_spec("deit-ti").model_dump()
    spec["drop_path"] = 0.1
    plan = normalize(archsearch.load_spec(spec))
    rates = [b.drop_path for b in plan.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
    assert all(b > a for a, b in itertools.pairwise(rates))


def test_overrides_reject_unknown_names():
    with pytest.raises(SpecError, match="unknown override"):
        archsearch.load_spec("cvt-13", num_class=10)
