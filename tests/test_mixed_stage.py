"""Stages whose blocks use different mixers (``mixer: [conv, {kind: mhsa, heads: 4}]``): the
checks, the plan, costs, hashing, latency pieces, search spaces and the supernet (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import archsearch
from archsearch import SpecError
from archsearch.kinds import FAMILY_MIXERS, MIXERS, mixable
from archsearch.space import RandomSuggest, load_space
from archsearch.spec import spec_hash

from .helpers import costs_agree


def _spec(*stages: dict[str, Any]) -> dict[str, Any]:
    return {"input": {"size": 32}, "stages": list(stages), "head": {"num_classes": 10}}


_BOT = {"embed": {"kind": "block", "stride": 2}, "dim": 64, "depth": 2}
_TWINS = {"embed": {"kind": "patch", "stride": 4}, "dim": 32, "depth": 3}


def _load_error(spec: dict[str, Any], tmp_path: Path) -> str:
    file = tmp_path / "spec.yaml"
    import yaml

    file.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SpecError) as info:
        archsearch.build(archsearch.load_spec(file))
    return str(info.value)


def test_blocks_take_their_own_mixer_and_position_embedding():
    spec = _spec({**_BOT, "mixer": ["conv", {"kind": "mhsa", "heads": 4}]})
    model = costs_agree(spec)
    stage = model.plan.stages[0]
    assert [b.mixer.kind for b in stage.blocks] == ["conv", "mhsa"]
    assert [b.pos_embed for b in stage.blocks] == ["none", "relative"]  # each mixer's default
    assert stage.family == "bottleneck" and len(model.plan.stages) == 1


def test_transformer_blocks_alternate_window_and_global_attention():
    mixers = [{"kind": "window", "heads": 2, "window": 4}, {"kind": "attention", "heads": 2}] * 2
    spec = _spec({**_TWINS, "depth": 4, "mixer": mixers, "pos_embed": "none"})
    model = archsearch.build(archsearch.load_spec(spec))
    blocks = model.plan.stages[0].blocks
    assert [b.mixer.kind for b in blocks] == ["window", "attention"] * 2
    # a window's shift: true shifts the odd blocks of the stage, wherever the window blocks sit
    assert [b.mixer.shift for b in blocks if b.mixer.kind == "window"] == [False, False]
    y = model(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10)


def test_a_list_of_one_mixer_builds_and_hashes_as_that_mixer():
    one = archsearch.load_spec(_spec({**_BOT, "mixer": "conv"}))
    listed = archsearch.load_spec(_spec({**_BOT, "mixer": ["conv", {"kind": "conv"}]}))
    mixed = archsearch.load_spec(_spec({**_BOT, "mixer": ["conv", {"kind": "mhsa", "heads": 4}]}))
    assert spec_hash(one) == spec_hash(listed) != spec_hash(mixed)
    torch.manual_seed(0)
    a = archsearch.build(one)
    torch.manual_seed(0)
    b = archsearch.build(listed)
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]


def test_list_length_must_be_the_depth(tmp_path):
    text = _load_error(_spec({**_BOT, "mixer": ["conv"]}), tmp_path)
    assert "spec.yaml:" in text and "stages[0].mixer" in text
    assert "needs exactly depth=2 items" in text


def test_every_mixer_belongs_to_the_stage_family(tmp_path):
    spec = _spec({**_TWINS, "mixer": [{"kind": "attention", "heads": 2}, "conv", "pool"]})
    text = _load_error(spec, tmp_path)
    assert "stages[0].mixer[1].kind" in text and "block 1's mixer 'conv' is a bottleneck mixer" in text
    allowed = ", ".join(n for n in FAMILY_MIXERS["transformer"] if mixable(MIXERS.get(n)))
    assert f"allowed: {allowed}" in text
    assert "mixer[2].kind" in text  # every block at fault is named
    assert "spec.yaml:" in text


def test_stage_level_mixers_and_lists_inside_items_are_refused(tmp_path):
    mvit = {"kind": "mobilevit", "heads": 2, "transformer_dim": 32}
    stage = {"embed": {"kind": "conv", "kernel": 3, "stride": 2, "padding": 1}, "dim": 32, "depth": 2}
    text = _load_error(_spec({**stage, "block": "mobilevit", "mixer": [mvit, mvit]}), tmp_path)
    assert "acts on the whole stage" in text and "mixer[0].kind" in text
    listed = {"kind": "attention", "heads": 2, "kv_stride": [1, 2, 1]}
    text = _load_error(_spec({**_TWINS, "mixer": [listed, listed, listed]}), tmp_path)
    assert "stages[0].mixer[0].kv_stride" in text and "block 0's alone" in text


def test_a_stage_position_embedding_must_fit_every_block(tmp_path):
    spec = _spec({**_BOT, "mixer": ["conv", {"kind": "mhsa", "heads": 4}], "pos_embed": "relative"})
    text = _load_error(spec, tmp_path)
    assert "stages[0].pos_embed" in text and "block 0's mixer 'conv'" in text


def test_latency_pieces_follow_each_block_mixer():
    from archsearch.cost import measure_piece, plan_pieces

    mixers = ["conv", {"kind": "mhsa", "heads": 4}, "conv"]
    plan = archsearch.normalize(archsearch.load_spec(_spec({**_BOT, "depth": 3, "mixer": mixers})))
    blocks = [p for p in plan_pieces(plan) if p.kind == "block"]
    assert len({p.key for p in blocks}) == 3 and "bottleneck/mhsa" in blocks[1].what
    for piece in blocks:  # each block piece builds its own mixer
        assert measure_piece(piece, warmup=0, runs=4).result.median_ms > 0


_SPACE = """\
input: {size: 32, channels: 3}
stages:
  - embed: {kind: conv, kernel: 3, stride: 2, padding: 1}
    dim: 16
    depth: 3
    mixer: {choice: [{kind: attention, heads: 2}, {kind: window, heads: 2, window: 4}], per_block: true}
  - embed: {kind: block, stride: 2}
    dim: 32
    depth: 2
    mixer: {choice: [conv, {kind: mhsa, heads: 2}], per_block: true}
head: {num_classes: 10}
"""


def test_a_space_draws_one_mixer_per_block_and_the_supernet_shares_them(tmp_path):
    from archsearch.supernet import Supernet

    file = tmp_path / "space.yaml"
    file.write_text(_SPACE)
    space = load_space(file)
    assert space.size() == 2**3 * 2**2
    names = {d.name for d in space.dimensions()}
    assert {"stages.0.blocks.*.mixer", "stages.1.blocks.*.mixer"} <= names
    net = Supernet(space).eval()
    suggest = RandomSuggest(1)
    seen = set()
    for _ in range(6):
        plan = space.candidate(suggest).plan
        assert plan is not None
        seen |= {tuple(b.mixer.kind for b in stage.blocks) for stage in plan.stages}
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            assert (net(x, plan) - net.member(plan).eval()(x)).abs().max().item() <= 1e-5
    assert any(len(set(kinds)) > 1 for kinds in seen)  # mixed stages were drawn


def test_supernet_refuses_per_block_mixers_of_several_families(tmp_path):
    from archsearch.supernet import Supernet

    file = tmp_path / "space.yaml"
    file.write_text(_SPACE.replace("[conv, {kind: mhsa, heads: 2}]", "[conv, {kind: attention, heads: 2}]"))
    with pytest.raises(SpecError, match=r"space\.yaml:10: .*several families \(bottleneck, transformer\)"):
        Supernet(load_space(file))


def test_per_block_mixer_options_hold_no_choices(tmp_path):
    file = tmp_path / "space.yaml"
    file.write_text(_SPACE.replace("{kind: mhsa, heads: 2}", "{kind: mhsa, heads: {choice: [1, 2]}}"))
    with pytest.raises(SpecError, match=r"space\.yaml:10: .*or mixers without choices inside them"):
        load_space(file)


def test_a_too_large_kv_stride_in_a_mixed_stage_names_its_block(tmp_path: Path) -> None:
    """The shape check of one block's attention reads that block's own mixer (it used to read the
    stage's mixer as one mapping and crash on the list)."""
    embed = {"kind": "conv", "kernel": 8, "stride": 8, "padding": 0}
    attention = {"kind": "attention", "heads": 2, "qkv": "dw_bn", "kv_stride": 8}
    mixers = [{"kind": "window", "heads": 2, "window": 2}, attention]
    stage = {"embed": embed, "dim": 16, "depth": 2, "mixer": mixers}
    message = _load_error(_spec(stage), tmp_path)
    expected = "stages[0].mixer[1].kv_stride: kv_stride 8 is larger than the 4x4 token map block 1 sees"
    assert expected in message
