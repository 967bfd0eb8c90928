"""MViT v2's pooling attention (``mixer: pooling``, ``block: multiscale``): what the zoo test
(parameters, output equal to timm's ``mvitv2_tiny``, analytic == traced) does not cover: its
offsets, the fused and explicit paths, the shape checks, other input sizes and search spaces."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import archsearch
from archsearch import SpecError
from archsearch.cost import count_traced
from archsearch.ops import mvit_offsets, mvit_table_length

from .helpers import costs_agree


def _spec(*stages: dict[str, Any], size: int = 32, **head: Any) -> dict[str, Any]:
    return {"input": {"size": size}, "stages": list(stages), "head": {"num_classes": 10, **head}}


FIRST = {"embed": {"kind": "conv", "kernel": 3, "stride": 2, "norm": "none"}, "dim": 16, "depth": 1}


def _pooling(**mixer: Any) -> dict[str, Any]:
    return {"kind": "pooling", "heads": 2, **mixer}


def test_offsets_and_table_sizes_are_timms():
    """timm's ``cal_rel_pos_type``: the finer grid steps by the coarser one's spacing; its table
    has ``2 * max(size // q_stride, size // kv_stride) - 1`` rows, more only where timm's is too
    short (an odd map pooled on both sides, where timm fails)."""
    index = mvit_offsets(2, 4)  # queries at stride 2 of keys: i * 2 - j + 3
    assert index.tolist() == [[3, 2, 1, 0], [5, 4, 3, 2]]
    assert mvit_offsets(4, 2).tolist() == [[2, 0], [3, 1], [4, 2], [5, 3]]  # i - 2 j + 2
    assert mvit_offsets(3, 3).tolist() == [[2, 1, 0], [3, 2, 1], [4, 3, 2]]
    assert [mvit_table_length(56, 1, 4, 56, 14), mvit_table_length(56, 2, 2, 28, 28)] == [111, 55]
    assert mvit_table_length(7, 2, 1, 4, 7) == 13  # timm: 2 * max(3, 7) - 1, long enough
    assert mvit_table_length(7, 2, 2, 4, 4) == 7  # timm's 5 rows cannot hold offsets up to 6
    assert int(mvit_offsets(4, 4).max()) == 6


@pytest.mark.parametrize("cls_token", [False, True])
def test_fused_attention_equals_the_explicit_path(cls_token):
    """The relative position bias as SDPA's mask gives the explicit softmax's output; class tokens
    bypass pooling and get no bias; the first block of a later stage widens and pools queries."""
    mixer = _pooling(q_stride=[2, 1], kv_stride=2)
    second = {"embed": "none", "dim": 32, "depth": 2, "mixer": mixer, "cls_token": cls_token}
    model = costs_agree(_spec({**FIRST, "mixer": _pooling(kv_stride=4), "cls_token": cls_token}, second))
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), archsearch.fused_attention(True):
        fused = model(x)
    with torch.no_grad(), archsearch.fused_attention(False):
        explicit = model(x)
    assert (fused - explicit).abs().max().item() <= 1e-5
    block = model.stages[1].blocks[0]
    assert block.shortcut_proj is not None and block.shortcut_pool.kernel_size == 3
    assert model.plan.stages[1].blocks[0].out_shape.as_tuple() == (32, 8, 8)
    assert model.stages[1].cls_token is None or model.stages[1].cls_token.shape == (1, 1, 16)


def test_residual_pooling_and_relative_positions_can_be_turned_off():
    plain = costs_agree(_spec({**FIRST, "mixer": _pooling(residual_pooling=False, rel_pos=False, kernel=1)}))
    attn = plain.stages[0].blocks[0].attn
    assert attn.pool_q is None and attn.pool_k is None and not hasattr(attn, "rel_pos_h")
    assert plain.fixed_size is None  # nothing made for the built map
    full = costs_agree(_spec({**FIRST, "mixer": _pooling(kernel=5, kv_stride=3)}))
    attn = full.stages[0].blocks[0].attn
    assert attn.pool_q.kernel_size == (5, 5) and attn.pool_k.stride == (3, 3)
    assert attn.rel_pos_h.shape == (2 * 16 - 1, 8)


def test_shape_checks_name_the_field():
    odd = r"stages\[0\]\.mixer\.q_stride: on the 18x18 map block 0 sees, the queries pool to 6x6 but the "
    with pytest.raises(SpecError, match=odd + r"shortcut's 4x4 max pool to 7x7"):
        archsearch.load_spec(_spec({**FIRST, "mixer": _pooling(q_stride=3)}, size=36))
    archsearch.load_spec(_spec({**FIRST, "mixer": _pooling(q_stride=3)}, size=32))  # 16: 6x6 both
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.kernel: the kernel must be odd"):
        archsearch.load_spec(_spec({**FIRST, "mixer": _pooling(kernel=2)}))
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.heads: heads must divide the dim 16"):
        archsearch.load_spec(_spec({**FIRST, "mixer": _pooling(heads=3)}))


def test_other_input_sizes_need_dynamic_size():
    """The relative position tables are made for the built map: another size is an error unless
    ``dynamic_size``, which resizes them (linearly, as timm's checkpoint filter) to the tables a
    model built at that size has."""
    spec = _spec({**FIRST, "mixer": _pooling(kv_stride=2)})
    model = archsearch.build(archsearch.load_spec(spec)).eval()
    with pytest.raises(ValueError, match="sizes its relative position tables for the 16x16 token map"):
        model(torch.randn(1, 3, 48, 48))
    model.set_dynamic_size(True)
    assert model(torch.randn(1, 3, 48, 48)).shape == (1, 10)
    same = archsearch.build(archsearch.load_spec({**spec, "dynamic_size": True})).eval()
    same.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(same(x), model(x))  # at the built size the tables are used as they are


def test_pooling_keys_are_search_choices():
    """A space choosing the pooling mixer's keys, per block where they may differ: its members
    build, run and cost as traced."""
    from archsearch.space import RandomSuggest, load_space

    mixer = {
        "kind": "pooling",
        "heads": {"choice": [1, 2]},
        "kernel": {"choice": [1, 3]},
        "q_stride": {"choice": [1, 2], "per_block": True},
        "kv_stride": {"choice": [1, 2, 4], "per_block": True},
        "residual_pooling": {"choice": [True, False]},
        "rel_pos": {"choice": [True, False]},
    }
    widen = {"embed": "none", "dim": {"choice": [16, 32]}, "depth": 1, "mixer": {**mixer, "q_stride": 1}}
    stages = [{**FIRST, "depth": 2, "mixer": mixer}, widen]
    space = load_space(_spec(*stages))
    seen: set[tuple[Any, ...]] = set()
    for seed in range(10):
        candidate = space.candidate(RandomSuggest(seed))
        assert candidate.spec is not None and candidate.costs is not None and candidate.plan is not None
        model = archsearch.build(candidate.spec)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        traced = count_traced(model, (1, 3, 32, 32))
        assert (traced.params, traced.macs) == (candidate.costs.params, candidate.costs.macs)
        seen |= {(b.q_stride, b.kv_stride, b.mixer.residual_pooling) for b in candidate.plan.blocks}
    assert {s[0] for s in seen} == {1, 2} and {s[1] for s in seen} == {1, 2, 4}
    assert {s[2] for s in seen} == {True, False}


def test_supernet_shares_pooling_blocks_and_refuses_stride_choices():
    """Members of a supernet over heads, kernel, widths, residual pooling, relative positions and
    the embedding's stride equal the stand-alone members (relative position tables: the centre of
    the largest); a choice of query or key/value stride is refused, naming the field."""
    from archsearch.space import RandomSuggest, load_space
    from archsearch.supernet import Supernet

    first = {**FIRST, "embed": {**FIRST["embed"], "stride": {"choice": [1, 2]}}, "depth": 2}
    mixer: dict[str, Any] = {
        "kind": "pooling",
        "heads": {"choice": [1, 2]},
        "kernel": {"choice": [1, 3]},
        "q_stride": [1, 2],
        "kv_stride": 2,
        "residual_pooling": {"choice": [True, False]},
        "rel_pos": {"choice": [True, False]},
    }
    widen = {"embed": "none", "dim": {"choice": [16, 32]}, "depth": 1, "mixer": {**mixer, "q_stride": 1}}
    space = load_space(_spec({**first, "mixer": mixer}, widen))
    net = Supernet(space).eval()
    suggest = RandomSuggest(3)
    for _ in range(6):
        plan = space.candidate(suggest).plan
        assert plan is not None
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert (net(x, plan) - net.member(plan).eval()(x)).abs().max().item() <= 1e-5
    strided = {**mixer, "q_stride": {"choice": [1, 2], "per_block": True}}
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.q_stride: a supernet cannot share this choice"):
        Supernet(load_space(_spec({**first, "mixer": strided}, widen)))
