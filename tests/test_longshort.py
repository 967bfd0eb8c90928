"""``mixer: longshort`` (Transformer-LS): the attention against a dense re-statement of the paper's
definition, its checks, its costs, and its use in a search space. The zoo model against the
official code: tests/test_zoo.py (parameters), benchmarks/longshort_reference.py (outputs, MACs)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import archsearch
from archsearch import SpecError
from archsearch.ops import LongShortAttention, ViLAttention, long_short_geometry, ls_relative_index
from archsearch.space import RandomSuggest, load_space

from .helpers import costs_agree


def _spec(stage: dict[str, Any], size: int = 32, **extra: Any) -> dict[str, Any]:
    return {"input": {"size": size}, "stages": [stage], "head": {"num_classes": 10}, **extra}


def _stage(mixer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    embed = {"kind": "patch", "stride": 2, "norm": "layer"}
    return {"embed": embed, "dim": 16, "depth": 2, "mixer": {"kind": "longshort", **mixer}, **extra}


def dense_long_short(attn: LongShortAttention, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Long-short attention written densely from its definition: every map query scores the
    landmarks, every map key (masked outside its segment's neighbourhood, biased by the table) and
    the class key in one softmax; the class query attends to its key and the map outputs."""
    b, n, c = x.shape
    g, heads, w, r = attn.cls_tokens, attn.heads, attn.window, attn.rank
    d, (h, wd) = c // heads, hw
    q, k, v = attn.qkv(x).chunk(3, dim=2)
    k, v = attn.dual_ln_full(k), attn.dual_ln_full(v)
    q, k, v = ((t.reshape(b, n, heads, d).transpose(1, 2)) for t in (q * attn.scale, k, v))
    (q_cls, q), (k_cls, k), (v_cls, v) = ((t[:, :, :g], t[:, :, g:]) for t in (q, k, v))
    logits, values = [], []
    if r:
        p = attn.to_dynamic_projection(x[:, g:]).transpose(1, 2).reshape(b, heads, r, -1).softmax(-1)
        k_lm = (
            attn.dual_ln_dp((p @ k).transpose(1, 2).reshape(b, r, c)).reshape(b, r, heads, d).transpose(1, 2)
        )
        v_lm = (
            attn.dual_ln_dp((p @ v).transpose(1, 2).reshape(b, r, c)).reshape(b, r, heads, d).transpose(1, 2)
        )
        logits.append(q @ k_lm.transpose(-1, -2))
        values.append(v_lm)
    if w:
        side, kv_width, _ = long_short_geometry(w)
        index = ls_relative_index(w)
        bias = torch.full((heads, h * wd, h * wd), float("-inf"))
        for y in range(h):
            for x_ in range(wd):
                oy, ox = y // w * w - side, x_ // w * w - side  # the neighbourhood's top-left
                for ky in range(max(oy, 0), min(oy + kv_width, h)):
                    for kx in range(max(ox, 0), min(ox + kv_width, wd)):
                        # window 1: the official table has one entry, added to all 9 keys
                        i = index[(y % w) * w + x_ % w, (ky - oy) * kv_width + kx - ox] if w > 1 else 0
                        table = attn.local_relative_position_bias_table
                        bias[:, y * wd + x_, ky * wd + kx] = table[i] if table is not None else 0.0
        logits.append(q @ k.transpose(-1, -2) + bias)
        values.append(v)
    if g:
        logits.append(q @ k_cls.transpose(-1, -2))
        values.append(v_cls)
    a = torch.cat(logits, dim=-1).softmax(-1)
    out = a @ torch.cat(values, dim=2)
    if g:
        cls_attn = torch.cat((q_cls @ k_cls.transpose(-1, -2), q_cls @ out.transpose(-1, -2)), -1).softmax(-1)
        out = torch.cat((cls_attn[..., g:] @ out + cls_attn[..., :g] @ v_cls, out), dim=2)
    return attn.proj(out.transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize(
    ("window", "rank", "cls", "hw"),
    [
        (2, 3, 1, (4, 6)),
        (3, 2, 1, (5, 7)),
        (2, 0, 0, (4, 4)),
        (0, 2, 1, (3, 5)),
        (4, 1, 0, (3, 9)),
        (1, 2, 1, (3, 3)),
    ],
)
def test_long_short_attention_equals_its_dense_definition(window, rank, cls, hw):
    """Whole segments (as the official code) and maps padded to them alike; the class token and
    either branch on or off; window 1 (one shared bias, as the official table of one entry)."""
    torch.manual_seed(0)
    attn = LongShortAttention(16, 2, window, rank, cls).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        x = torch.randn(2, cls + hw[0] * hw[1], 16)
        torch.testing.assert_close(attn(x, hw), dense_long_short(attn, x, hw), atol=1e-5, rtol=1e-5)


def test_official_table_size_and_index():
    """The official bias table: ``2 (w + w_pad - 1)(2 w_pad + w + 1) + 1`` rows for w = 7 (253),
    and the index's largest entry is its last row."""
    side, kv_width, size = long_short_geometry(7)
    assert (side, kv_width, size) == (3, 13, 253)
    index = ls_relative_index(7)
    assert index.shape == (49, 169) and int(index.min()) >= 0 and int(index.max()) == size - 1


def test_vil_full_attention_bias_places_the_class_token_terms():
    attn = ViLAttention(8, 2, (2, 3), 1)
    with torch.no_grad():
        attn.g2l_relative_position_bias.copy_(torch.tensor([[[1.0], [2.0]], [[3.0], [4.0]]]))
        attn.g2g_relative_position_bias.fill_(5.0)
    bias = attn.position_bias((2, 3))
    assert bias.shape == (2, 7, 7)
    assert bias[:, 0, 0].tolist() == [5.0, 5.0]  # class -> class
    # g2l row 0: class query -> map keys, row 1: map queries -> class key, per head
    assert [bias[i, 0, 1:].unique().tolist() for i in range(2)] == [[1.0], [2.0]]
    assert [bias[i, 1:, 0].unique().tolist() for i in range(2)] == [[3.0], [4.0]]
    with pytest.raises(ValueError, match=r"built for a 2x3 map but got 3x3"):
        attn.position_bias((3, 3))
    attn.dynamic_size = True
    assert attn.position_bias((3, 3)).shape == (2, 10, 10)


@pytest.mark.parametrize(
    ("mixer", "extra"),
    [
        ({"heads": 2, "window": 2, "rank": 3}, {"cls_token": True}),
        ({"heads": 4, "window": 3, "rank": 2}, {}),  # an 8x8 map padded to 9x9
        ({"heads": 2, "window": 0, "rank": 4}, {"cls_token": True, "pos_embed": "absolute"}),
        ({"heads": 1, "window": 4, "rank": 0}, {"pos_embed": "none"}),
        ({"heads": 2, "attention": "full"}, {"cls_token": True}),
        ({"heads": 2, "attention": "full", "qkv_bias": False}, {"pos_embed": "none"}),
    ],
)
def test_costs_agree_and_the_model_trains(mixer, extra):
    model = costs_agree(_spec(_stage(mixer, **extra), size=16))
    out = model(torch.randn(2, 3, 16, 16))
    out.sum().backward()
    # rank 0: the official code makes dual_ln_dp all the same, unused
    unused = "dual_ln_dp" if mixer.get("rank") == 0 else "-"
    grads = [p.grad is not None for name, p in model.named_parameters() if unused not in name]
    assert out.shape == (2, 10) and all(grads)


def test_the_checks_name_the_field():
    with pytest.raises(
        SpecError, match=r"stages\[0\]\.mixer\.window: .*neither a short-term nor a long-term"
    ):
        archsearch.load_spec(_spec(_stage({"window": 0, "rank": 0})))
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.rank: rank belongs to the long-short .*got 4"):
        archsearch.load_spec(_spec(_stage({"attention": "full", "rank": 4})))
    with pytest.raises(
        SpecError, match=r"stages\[0\]\.dist_token: long-short attention has one global token"
    ):
        archsearch.load_spec(_spec(_stage({}, cls_token=True, dist_token=True)))
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.heads: heads must divide the dim 16"):
        archsearch.load_spec(_spec(_stage({"heads": 3})))


def test_zoo_model_takes_other_sizes_with_dynamic_size():
    # maps 28, 14, 7 and 3 (floored)
    model = archsearch.create_model("transformer-ls-m", num_classes=10, input_size=112).eval()
    assert "relative position bias table for the 7x7 token map" in str(model.fixed_size)
    model.set_dynamic_size(True)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 128))  # 24x32: not whole 7x7 segments, padded
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_longshort_is_a_choice_in_a_space():
    space = load_space(
        {
            "input": {"size": 32, "channels": 3},
            "stages": [
                {
                    "embed": {"kind": "patch", "stride": 4, "norm": "layer"},
                    "dim": 16,
                    "depth": {"int": [1, 2]},
                    "cls_token": {"choice": [False, True]},
                    "mixer": {
                        "choice": [
                            {"kind": "attention", "heads": 2},
                            {
                                "kind": "longshort",
                                "heads": 2,
                                "window": {"choice": [2, 3]},
                                "rank": {"int": [1, 4]},
                            },
                            {"kind": "longshort", "heads": 2, "attention": "full"},
                        ]
                    },
                }
            ],
            "head": {"num_classes": 10},
        }
    )
    suggest, seen = RandomSuggest(0), set()
    for _ in range(12):
        spec = space.sample(suggest).spec()
        mixer = spec.stages[0].mixer
        seen.add((mixer.kind, getattr(mixer, "attention", None)))
        costs_agree(spec.model_dump(mode="json", exclude_unset=True))
    assert {("longshort", "long_short"), ("longshort", "full"), ("attention", None)} <= seen


def test_a_space_with_longshort_searches_digits_end_to_end(tmp_path):
    import yaml

    from archsearch.search import load_experiment, run_search

    space = {
        "input": {"size": 32, "channels": 3},
        "stages": [
            {
                "embed": {"kind": "conv", "kernel": 3, "stride": 2, "norm": "none"},
                "dim": 16,
                "depth": 1,
                "mixer": {"choice": ["conv", "pool"]},
            },
            {
                "embed": {"kind": "conv", "kernel": 2, "stride": 2, "padding": 0, "norm": "layer"},
                "dim": 32,
                "depth": {"int": [1, 2]},
                "cls_token": {"choice": [False, True]},
                "mixer": {
                    "choice": [
                        {"kind": "longshort", "heads": 2, "window": {"choice": [3, 4]}, "rank": 4},
                        {"kind": "longshort", "heads": 2, "attention": "full"},
                    ]
                },
            },
        ],
        "head": {"num_classes": 10},
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    experiment = load_experiment(
        {
            "name": "longshort",
            "space": str(tmp_path / "space.yaml"),
            "data": {"kind": "digits"},
            "evaluator": {"kind": "train", "epochs": 1, "batch_size": 256, "flip": False},
            "objectives": [{"metric": "accuracy"}, {"metric": "macs"}],
            "sampler": {"kind": "random", "seed": 1},
            "trials": 3,
            "run_dir": str(tmp_path / "run"),
        }
    )
    trials = [t for t in run_search(experiment).study.trials if t.user_attrs.get("outcome") == "complete"]
    assert len(trials) == 3 and all(0.0 <= t.values[0] <= 1.0 for t in trials)


def test_members_through_a_supernet_equal_standalone():
    from archsearch.supernet import Supernet

    stage = {
        "embed": {"kind": "patch", "stride": 4, "norm": "layer"},
        "dim": {"choice": [16, 32]},
        "depth": {"int": [1, 2]},
        "cls_token": {"choice": [False, True]},
        "mixer": {
            "choice": [
                {"kind": "longshort", "heads": 2, "window": {"choice": [2, 3]}, "rank": {"int": [1, 4]}},
                {"kind": "longshort", "heads": 2, "attention": "full"},
            ]
        },
    }
    space = load_space({"input": {"size": 32, "channels": 3}, "stages": [stage], "head": {"num_classes": 10}})
    net, suggest = Supernet(space).eval(), RandomSuggest(3)
    for _ in range(4):
        plan = space.candidate(suggest).plan
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert (net(x, plan) - net.member(plan).eval()(x)).abs().max().item() <= 1e-5
