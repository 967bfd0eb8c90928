"""Hybrids beyond the zoo: families, mixers, strides and per-block values mixed in one net."""

from __future__ import annotations

import pytest
import torch

import archsearch
from archsearch.ops import Attention, MHSA2d, TransformerBlock
from archsearch.spec import normalize

from .helpers import write_file

HYBRID = """
name: four-mixers
input: {size: 64, channels: 3}
stages:
  - {embed: {kind: conv, kernel: 3, stride: 2, norm: batch}, dim: 32, depth: 1, mixer: conv}
  - {embed: {kind: block, stride: 1}, dim: 64, depth: 2, mixer: {kind: mhsa, heads: 2}}
  - embed: {kind: conv, kernel: 3, stride: 4}
    dim: 96
    depth: 2
    mixer: {kind: attention, heads: 3, qkv: dw_bn, kv_stride: 2}
    pos_embed: absolute
  - embed: {kind: patch, stride: 8}
    dim: 128
    depth: 1
    mixer: {kind: attention, heads: 4}
    pos_embed: none
    cls_token: true
head: {pool: cls, num_classes: 10}
"""


def test_four_stage_hybrid_builds_and_trains(tmp_path):
    spec = archsearch.load_spec(write_file(tmp_path, HYBRID))
    plan = normalize(spec)
    assert [s.family for s in plan.stages] == ["bottleneck", "bottleneck", "transformer", "transformer"]
    assert [b.mixer.kind for b in plan.blocks] == [
        "conv",
        "mhsa",
        "mhsa",
        "attention",
        "attention",
        "attention",
    ]
    strides = [s.in_shape.height // s.embed_shape.height for s in plan.stages]
    assert strides == [2, 1, 4, 8] and len(set(strides)) == 4
    assert [s.out_shape.as_tuple() for s in plan.stages] == [
        (32, 32, 32),
        (64, 32, 32),
        (96, 8, 8),
        (128, 1, 1),
    ]

    model = archsearch.build(spec)
    assert sum(isinstance(m, MHSA2d) for m in model.modules()) == 2
    attn = [m for m in model.modules() if isinstance(m, Attention)]
    assert [a.method for a in attn] == ["dw_bn", "dw_bn", "linear"]
    assert attn[0].conv_k.conv.stride == (2, 2) and attn[0].conv_q.conv.stride == (1, 1)
    assert model.stages[2].pos_embed is not None and model.stages[3].pos_embed is None

    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)
    out.logsumexp(dim=1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_per_block_values_reach_each_block(tmp_path):
    text = """
input: {size: 32}
stages:
  - embed: {kind: conv, kernel: 3, stride: 2}
    dim: 48
    depth: 3
    mixer: {kind: attention, heads: 2, qkv: dw_bn, kv_stride: [1, 2, 4]}
    mlp_ratio: [2, 4, 1.5]
"""
    model = archsearch.build(archsearch.load_spec(write_file(tmp_path, text)))
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    assert [b.attn.conv_k.conv.stride[0] for b in blocks] == [1, 2, 4]
    assert [b.mlp.fc1.out_features for b in blocks] == [96, 192, 72]
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_q_stride_shrinks_the_token_map(tmp_path):
    text = """
input: {size: 32}
stages:
  - embed: {kind: conv, kernel: 3, stride: 2}
    dim: 32
    depth: 2
    mixer: {kind: attention, heads: 2, qkv: dw_bn, q_stride: [2, 1]}
    cls_token: true
head: {pool: cls, num_classes: 5}
"""
    spec = archsearch.load_spec(write_file(tmp_path, text))
    plan = normalize(spec)
    assert [b.out_shape.as_tuple() for b in plan.blocks] == [(32, 8, 8), (32, 8, 8)]
    assert plan.blocks[0].out_shape.cls_tokens == 1
    model = archsearch.build(spec)
    fmap, cls = model.forward_features(torch.randn(2, 3, 32, 32))
    assert fmap.shape == (2, 32, 8, 8) and cls.shape == (2, 1, 32)


MIXERS = ["conv", "mhsa", "attention", "mbconv", "mobilevit"]


@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("after", MIXERS)
def test_any_mixer_follows_any_mixer(tmp_path, mixer, after):
    """Stages hand a map to the next whatever their families: every ordered pair builds and runs."""

    def stage(kind, stride):
        embed = f"{{kind: conv, kernel: 3, stride: {stride}}}"
        mix = {
            "conv": "conv",
            "mhsa": "{kind: mhsa, heads: 2}",
            "attention": "{kind: attention, heads: 2}",
            "mbconv": "mbconv",
            "mobilevit": "{kind: mobilevit, heads: 2}",
        }[kind]
        return f"  - {{embed: {embed}, dim: 32, depth: 1, mixer: {mix}}}\n"

    text = "input: {size: 32}\nhead: {num_classes: 3}\nstages:\n" + stage(mixer, 2) + stage(after, 2)
    model = archsearch.build(archsearch.load_spec(write_file(tmp_path, text)))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


WINDOW_ATTENTION_DWCONV = """
name: window-global-dwconv
input: {size: 64}
stages:
  - {embed: {kind: patch, stride: 4, norm: layer}, dim: 32, depth: 2, mixer: {kind: window, heads: 2,
     window: 4}}
  - {embed: merge, dim: 64, depth: 2, mixer: {kind: window, heads: 4, window: 4}}
  - {embed: {kind: conv, kernel: 3, stride: 2}, dim: 96, depth: 2, mixer: {kind: attention, heads: 3}}
  - {embed: {kind: conv, kernel: 2, stride: 2, padding: 0, norm_first: true}, dim: 128, depth: 2,
     mixer: dwconv}
head: {num_classes: 10}
"""


def test_window_then_global_attention_then_dwconv(tmp_path):
    """Swin windows in stages 1-2, global attention in stage 3, ConvNeXt blocks in stage 4."""
    from archsearch.cost import analytic_costs, count_traced
    from archsearch.ops import ConvNeXtBlock, WindowAttention

    spec = archsearch.load_spec(write_file(tmp_path, WINDOW_ATTENTION_DWCONV))
    plan = normalize(spec)
    assert [s.family for s in plan.stages] == ["transformer", "transformer", "transformer", "convnext"]
    assert [b.mixer.kind for b in plan.blocks] == ["window"] * 4 + ["attention"] * 2 + ["dwconv"] * 2
    assert [s.out_shape.as_tuple() for s in plan.stages] == [
        (32, 16, 16),
        (64, 8, 8),
        (96, 4, 4),
        (128, 2, 2),
    ]
    model = archsearch.build(spec)
    windows = [m for m in model.modules() if isinstance(m, WindowAttention)]
    assert len(windows) == 4 and sum(isinstance(m, ConvNeXtBlock) for m in model.modules()) == 2
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)
    out.logsumexp(dim=1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    traced, analytic = count_traced(model, (1, 3, 64, 64)), analytic_costs(plan)
    assert (traced.params, traced.macs) == (analytic.params, analytic.macs)
