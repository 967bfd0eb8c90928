"""The kinds of issue 14 (squeeze-excitation, depthwise-separable MBConv, multi-conv stems, the
average-pool shortcut, the pooling mixer, the distillation token, the lambda, halo and gated
positional mixers, the PEG): their checks and their
behaviour beyond the zoo tests (parameter counts, analytic == traced) that cover their models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import archsearch
from archsearch import SpecError
from archsearch.cost import count_traced

from .helpers import costs_agree

ROOT = Path(__file__).resolve().parent.parent


def _spec(stage: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"input": {"size": 32}, "stages": [stage], "head": {"num_classes": 10}, **extra}


# --------------------------------------------------------------------------- squeeze-excitation


def test_squeeze_excitation_reduces_the_block_input_channels():
    stage = {"embed": {"kind": "block", "stride": 2}, "dim": 48, "depth": 2, "expansion": 1}
    model = costs_agree(_spec({**stage, "mixer": {"kind": "conv", "groups": 2, "se": 0.25}}))
    first, second = model.stages[0].blocks
    # RegNetY: round(0.25 x block input channels), on the bottleneck width
    assert (first.se.fc1.in_channels, first.se.fc1.out_channels) == (48, 1)  # 3 input channels
    assert (second.se.fc1.in_channels, second.se.fc1.out_channels) == (48, 12)


def test_squeeze_excitation_gates_channels():
    model = archsearch.build(
        archsearch.load_spec(
            _spec({"dim": 16, "depth": 1, "mixer": {"kind": "conv", "se": 0.5}, "expansion": 1})
        )
    ).eval()
    se = model.stages[0].blocks[0].se
    x = torch.randn(2, 16, 5, 5)
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(se(x), x * gate)


def test_squeeze_excitation_needs_a_reduced_channel():
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.se: .*= 0 channels.*got 0.1"):
        archsearch.load_spec(_spec({"dim": 16, "depth": 1, "mixer": {"kind": "conv", "se": 0.1}}))


def test_mbconv_without_expand_conv():
    stage = {
        "dim": 16,
        "depth": 2,
        "expansion": 1,
        "mixer": {"kind": "mbconv", "expand_conv": False, "se": 0.25},
    }
    model = costs_agree(_spec(stage, stem={"kind": "conv", "channels": 16}))
    block = model.stages[0].blocks[0]
    assert isinstance(block.conv1, torch.nn.Identity)
    assert block.conv2.conv.in_channels == 16 and block.residual
    with pytest.raises(SpecError, match=r"stages\[0\]\.expansion: expand_conv: false .* must be 1.*got 4"):
        archsearch.load_spec(_spec({**stage, "expansion": 4}))


def test_new_fields_leave_earlier_spec_hashes_alone():
    """Fields added to a kind are left out of the canonical form at their default: a spec that does
    not use them hashes as before (values recorded before issue 14)."""
    from archsearch.spec import spec_hash

    assert spec_hash(archsearch.load_spec("resnet-50")) == "5d727eb00be96a72"
    assert spec_hash(archsearch.load_spec("mobilevit-s")) == "e87432fb9747c6e8"
    stage = {"dim": 16, "depth": 1, "expansion": 1, "mixer": {"kind": "conv"}}
    with_se = {**stage, "mixer": {"kind": "conv", "se": 0.25}}
    assert spec_hash(archsearch.load_spec(_spec(stage))) != spec_hash(archsearch.load_spec(_spec(with_se)))


# --------------------------------------------------------------------------- stems and shortcuts


def test_deep_stem_shapes_and_costs():
    spec = _spec({"dim": 16, "depth": 1, "mixer": "conv"}, stem={"kind": "deep", "channels": [8, 8, 16]})
    model = costs_agree({**spec, "input": {"size": 33}})
    assert model.plan.stem_shape.as_tuple() == (16, 9, 9)  # 33 -> 17 (3x3/2) -> 9 (max-pool)
    spec["stem"]["pool"] = "none"
    assert archsearch.build(archsearch.load_spec(spec)).plan.stem_shape.as_tuple() == (16, 16, 16)


def test_average_pool_shortcut():
    stage = {
        "embed": {"kind": "block", "stride": 2, "shortcut": "avg"},
        "dim": 32,
        "depth": 2,
        "mixer": "conv",
    }
    model = costs_agree({**_spec(stage), "input": {"size": 15}})
    first, second = model.stages[0].blocks
    pool, conv, _ = first.shortcut
    assert isinstance(pool, torch.nn.AvgPool2d) and pool.ceil_mode and not pool.count_include_pad
    assert conv.stride == (1, 1)
    assert isinstance(second.shortcut, torch.nn.Identity)
    x = torch.randn(1, 3, 15, 15)
    torch.testing.assert_close(
        first.shortcut(x),
        first.shortcut[2](
            conv(torch.nn.functional.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False))
        ),
    )


def test_average_pool_shortcut_is_for_bottlenecks():
    stage = {"embed": {"kind": "block", "shortcut": "avg"}, "dim": 16, "depth": 1, "mixer": "mbconv"}
    with pytest.raises(SpecError, match=r"stages\[0\]\.embed\.shortcut: .*bottleneck stages.*mbconv stage"):
        archsearch.load_spec(_spec(stage))


# --------------------------------------------------------------------------- PoolFormer


def test_pool_mixer_block_and_costs():
    stage = {"embed": {"kind": "conv", "kernel": 3, "stride": 2, "norm": "none"}, "dim": 16, "depth": 2}
    model = costs_agree(_spec({**stage, "mixer": {"kind": "pool", "kernel": 3}}))
    assert model.plan.stages[0].family == "metaformer" and model.plan.head.norm == "pooled"
    block = model.stages[0].blocks[0]
    assert isinstance(block.norm1, torch.nn.GroupNorm) and block.norm1.num_groups == 1
    assert block.layer_scale1.scale.shape == (16,) and block.layer_scale1.scale[0].item() == pytest.approx(
        1e-5
    )
    # a constant map stays constant under the pool (padding not counted): the mixer gives zero
    assert block.token_mixer(torch.ones(1, 16, 5, 5)).abs().max() == 0
    plain = archsearch.build(
        archsearch.load_spec(_spec({**stage, "mixer": {"kind": "pool", "layer_scale": None}}))
    )
    assert isinstance(plain.stages[0].blocks[0].layer_scale2, torch.nn.Identity)


def test_pool_mixer_needs_an_odd_kernel_and_its_family():
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.kernel: the kernel must be odd"):
        archsearch.load_spec(
            _spec({"embed": "patch", "dim": 16, "depth": 1, "mixer": {"kind": "pool", "kernel": 2}})
        )
    with pytest.raises(SpecError, match=r"mixer 'pool' does not fit a transformer block.*allowed: attention"):
        archsearch.load_spec(
            _spec({"embed": "patch", "dim": 16, "depth": 1, "block": "transformer", "mixer": "pool"})
        )


# --------------------------------------------------------------------------- distillation token


def _deit(**head: Any) -> dict[str, Any]:
    stage = {
        "embed": {"kind": "patch", "stride": 8},
        "dim": 16,
        "depth": 1,
        "mixer": {"kind": "attention", "heads": 2},
    }
    stage.update(cls_token=True, dist_token=True, pos_embed="absolute")
    return _spec(stage, head={"pool": "cls", "num_classes": 10, **head})


def test_distillation_token_and_head():
    model = costs_agree(_deit())
    stage = model.stages[0]
    assert stage.cls_token.shape == stage.dist_token.shape == (1, 1, 16)
    assert stage.pos_embed.shape == (1, 2 + 16, 16)  # class + distillation + 4x4 patches
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    _, tokens = model.forward_features(x)
    head = model.head
    expected = (head.fc(head.norm(tokens[:, 0])) + head.fc_dist(head.norm(tokens[:, 1]))) / 2
    torch.testing.assert_close(model(x), expected)
    model.train()
    assert model(x).shape == (2, 10)  # training without distilled_training: the mean as well
    model.set_distilled_training(True)
    cls_logits, dist_logits = model(x)
    assert cls_logits.shape == dist_logits.shape == (2, 10)
    model.eval()
    assert model(x).shape == (2, 10)


def test_distillation_token_needs_a_class_token():
    data = _deit()
    data["stages"][0]["cls_token"] = False
    data["head"]["pool"] = "avg"
    with pytest.raises(
        SpecError, match=r"stages\[0\]\.dist_token: the distillation token goes after a class token"
    ):
        archsearch.load_spec(data)
    with pytest.raises(ValueError, match="no distillation head"):
        archsearch.create_model("deit-ti", input_size=32).set_distilled_training(True)


# --------------------------------------------------------------------------- lambda


def test_lambda_layer_shapes_costs_and_checks():
    stage = {"embed": {"kind": "block", "stride": 2}, "dim": 32, "depth": 2, "expansion": 1}
    model = costs_agree(
        {
            **_spec({**stage, "mixer": {"kind": "lambda", "heads": 4, "key_dim": 8, "radius": 3}}),
            "input": {"size": 15},
        }
    )
    assert model.plan.stages[0].out_shape.as_tuple() == (32, 8, 8)  # ceil-mode pool, as the shortcut
    layer = model.stages[0].blocks[0].mixer
    assert layer.qkv.out_channels == 4 * 8 + 8 + 32 // 4
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.radius: the radius must be odd.*got 4"):
        archsearch.load_spec(_spec({**stage, "mixer": {"kind": "lambda", "radius": 4}}))
    with pytest.raises(
        SpecError, match=r"stages\[0\]\.mixer\.heads: heads must divide the bottleneck width 32"
    ):
        archsearch.load_spec(_spec({**stage, "mixer": {"kind": "lambda", "heads": 3}}))


# --------------------------------------------------------------------------- search


def test_a_space_mixing_new_and_old_mixers_searches_digits_end_to_end(tmp_path):
    """Acceptance 5 of issue 14: the shipped ``hybrid_kinds`` space (lambda, pool, squeeze-
    excitation, MViT pooling attention, deep stem next to conv, MHSA and attention) runs a short
    search on digits."""
    from archsearch.search import load_experiment, run_search

    experiment = load_experiment(
        {
            "name": "kinds",
            "space": str(ROOT / "search_spaces" / "hybrid_kinds.yaml"),
            "data": {"kind": "digits"},
            "evaluator": {"kind": "train", "epochs": 1, "batch_size": 256, "flip": False},
            "objectives": [{"metric": "accuracy"}, {"metric": "macs"}],
            "sampler": {"kind": "random", "seed": 3},
            "trials": 4,
            "run_dir": str(tmp_path / "run"),
        }
    )
    summary = run_search(experiment)
    # every trial evaluated: complete, or stopped after its first epoch as dominated
    trials = [t for t in summary.study.trials if t.user_attrs.get("outcome") in ("complete", "early-stopped")]
    assert len(trials) == 4
    mixers = {v for t in trials for k, v in t.params.items() if k.endswith("mixer")}
    assert mixers & {"lambda", "pool", "mbconv", "pooling"} and mixers & {"conv", "mhsa", "attention"}, mixers
    assert all(0.0 <= t.user_attrs["accuracy"] <= 1.0 for t in trials)


# --------------------------------------------------------------------------- halo


def test_halo_attention_is_local_and_shares_botnet_relative_logits():
    stage = {"embed": {"kind": "block", "stride": 2}, "dim": 16, "depth": 2, "expansion": 1}
    mixer = {"kind": "halo", "heads": 2, "block": 4, "halo": 1}
    model = costs_agree({**_spec({**stage, "mixer": mixer}), "input": {"size": 16}})
    assert model.plan.stages[0].out_shape.as_tuple() == (16, 8, 8)
    attn = model.stages[0].blocks[1].mixer.eval()
    assert attn.pos_embed.rel_h.shape == (2 * 6 - 1, 8)  # window 4 + 2 x 1
    # a change of pixels that only the first block's window (its 4x4 block plus a 1-pixel halo)
    # covers reaches that block's outputs alone
    x = torch.randn(1, 16, 8, 8)
    y = x.clone()
    y[..., :3, :3] += 1.0
    with torch.no_grad():
        changed = (attn(x) - attn(y)).abs().sum(1)[0] > 0
    assert changed[:4, :4].all() and not changed[4:].any() and not changed[:, 4:].any()
    # a map not in whole blocks is padded to them (the output cropped), costs as traced
    odd = costs_agree({**_spec({**stage, "mixer": {**mixer, "block": 6}}), "input": {"size": 15}})
    assert odd(torch.randn(1, 3, 15, 15)).shape == (1, 10)
    assert odd.plan.stages[0].out_shape.as_tuple() == (16, 8, 8)
    with pytest.raises(SpecError, match=r"stages\[0\]\.embed\.stride: a halo block downsamples .*got 2"):
        archsearch.load_spec(_spec({**stage, "mixer": {**mixer, "block": 5}}))


# --------------------------------------------------------------------------- conditional position encoding


def _peg_stage(**extra: Any) -> dict[str, Any]:
    embed = {"kind": "conv", "kernel": 4, "stride": 4, "padding": 0}
    return {"embed": embed, "dim": 16, "depth": 2, "mixer": {"kind": "attention", "heads": 2}, **extra}


@pytest.mark.parametrize("cls_token", [False, True])
def test_peg_adds_a_depthwise_conv_of_the_map_after_its_block(cls_token):
    """CPVT's PEG: after block ``peg`` the tokens (class tokens aside) gain a depthwise 3x3 conv
    (with bias) of their map; analytic costs as traced, with and without a class token."""
    with_peg = costs_agree(_spec(_peg_stage(peg=1, cls_token=cls_token)))
    without = archsearch.build(archsearch.load_spec(_spec(_peg_stage(cls_token=cls_token))))
    extra = sum(p.numel() for p in with_peg.parameters()) - sum(p.numel() for p in without.parameters())
    assert extra == 16 * 9 + 16
    assert [b.peg for b in with_peg.plan.stages[0].blocks] == [False, True]
    peg = with_peg.stages[0].blocks[1].peg
    assert peg is not None and with_peg.stages[0].blocks[0].peg is None
    # zero conv: the PEG adds nothing, and the two models agree
    state = {k: v for k, v in with_peg.state_dict().items() if ".peg." not in k}
    without.load_state_dict(state)
    torch.nn.init.zeros_(peg.proj.weight)
    torch.nn.init.zeros_(peg.proj.bias)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(with_peg.eval()(x), without.eval()(x), atol=1e-6)
        # a bias alone shifts every map token (the class token passes unchanged)
        peg.proj.bias.fill_(1.0)
        tokens = torch.randn(2, (1 if cls_token else 0) + 64, 16)
        out = peg(tokens, (8, 8))
    cls = 1 if cls_token else 0
    assert torch.equal(out[:, :cls], tokens[:, :cls])
    assert torch.allclose(out[:, cls:], tokens[:, cls:] + 1.0)


def test_peg_needs_a_block_of_a_transformer_stage():
    with pytest.raises(
        SpecError, match=r"stages\[0\]\.peg: the position encoding goes after block 2, .* 2 blocks"
    ):
        archsearch.load_spec(_spec(_peg_stage(peg=2)))
    bottleneck = {"embed": {"kind": "block", "stride": 1}, "dim": 64, "depth": 1, "mixer": "conv", "peg": 0}
    with pytest.raises(SpecError, match=r"stages\[0\]\.peg: peg applies to transformer stages"):
        archsearch.load_spec(_spec(bottleneck))


# --------------------------------------------------------------------------- gated positional attention


def test_gpsa_offsets_and_gate():
    """ConViT's GPSA: the offsets are timm's (dx, dy, dx^2 + dy^2); a closed gate is plain softmax
    attention, an open one ignores the content; costs as traced; no class token."""
    from archsearch.ops import relative_indices

    rel = relative_indices((2, 3), torch.device("cpu"), torch.float32)[0]
    assert rel.shape == (6, 6, 3)
    assert rel[0, 5].tolist() == [2.0, 1.0, 5.0] and rel[5, 0].tolist() == [-2.0, -1.0, 5.0]
    stage = {"embed": {"kind": "patch", "stride": 4}, "dim": 16, "depth": 1, "pos_embed": "absolute"}
    model = costs_agree(_spec({**stage, "mixer": {"kind": "gpsa", "heads": 2}}))
    attn = model.stages[0].blocks[0].attn.eval()
    x = torch.randn(2, 64, 16)
    with torch.no_grad():
        attn.gating_param.fill_(-60.0)  # sigmoid ~ 0: content attention alone
        q, k = attn.qk(x).reshape(2, 64, 2, 2, 8).permute(2, 0, 3, 1, 4)
        v = attn.v(x).reshape(2, 64, 2, 8).transpose(1, 2)
        plain = ((q @ k.transpose(-2, -1)) * 8**-0.5).softmax(-1) @ v
        expected = attn.proj(plain.transpose(1, 2).reshape(2, 64, 16))
        assert torch.allclose(attn(x, (8, 8)), expected, atol=1e-5)
        attn.gating_param.fill_(60.0)  # sigmoid ~ 1: position attention alone
        before = attn(x, (8, 8))
        attn.qk.weight.normal_()
        assert torch.allclose(attn(x, (8, 8)), before, atol=1e-5)
    with pytest.raises(SpecError, match=r"stages\[0\]\.cls_token: gated positional attention has positions"):
        archsearch.load_spec(_spec({**stage, "mixer": {"kind": "gpsa"}, "cls_token": True}))


# --------------------------------------------------------------------------- ResNet v2 (ViT hybrids)

R50_MIXER = {"kind": "conv", "norm": "group", "norm_groups": 4, "weight_std": 1e-8, "padding": "same"}


def test_weight_standardised_conv_and_same_padding():
    from archsearch.ops import MaxPool2dSame, StdConv2d

    F = torch.nn.functional
    conv = StdConv2d(4, 6, 3, 2, std_eps=1e-8, same=True)
    x = torch.randn(2, 4, 9, 10)
    w = conv.weight
    standard = (w - w.mean((1, 2, 3), keepdim=True)) / (
        w.var((1, 2, 3), unbiased=False, keepdim=True) + 1e-8
    ).sqrt()
    # 9 -> 5 rows: 2 pixels of padding, one each side; 10 -> 5 columns: 1 pixel, on the right
    torch.testing.assert_close(conv(x), F.conv2d(F.pad(x, (0, 1, 1, 1)), standard, stride=2))
    assert StdConv2d(4, 6, 3, 1, same=True).padding == (1, 1)  # stride 1: padded kernel // 2
    y = -torch.rand(1, 2, 10, 10)  # all negative: padding by zeros would show
    expected = F.max_pool2d(F.pad(y, (0, 1, 0, 1), value=-float("inf")), 3, 2)
    torch.testing.assert_close(MaxPool2dSame(3, 2)(y), expected)
    assert (expected < 0).all()


@pytest.mark.parametrize("padding", ["same", "fixed", "symmetric"])
def test_resnetv2_stem_and_blocks_shapes_and_costs(padding):
    stage = {"embed": {"kind": "block", "stride": 2}, "dim": 32, "depth": 2, "mixer": R50_MIXER}
    stem = {"kind": "resnetv2", "channels": 16, "norm_groups": 4, "padding": padding}
    model = costs_agree({**_spec(stage, stem=stem), "input": {"size": 37}})
    assert model.plan.stem_shape.as_tuple() == (16, 10, 10)  # 37 -> 19 (7x7/2) -> 10 (3x3/2 pool)
    assert model.stem(torch.randn(1, 3, 37, 37)).shape == (1, 16, 10, 10)
    first = model.stages[0].blocks[0]
    assert isinstance(first.bn1, torch.nn.GroupNorm) and first.bn1.num_groups == 4
    assert first.mixer.std_eps == 1e-8 and first.mixer.dynamic_pad
    assert first.shortcut[0].stride == (2, 2) and isinstance(first.shortcut[1], torch.nn.GroupNorm)
    assert model.plan.stages[0].out_shape.as_tuple()[1:] == (5, 5)
    assert model(torch.randn(2, 3, 37, 37)).shape == (2, 10)


def test_group_norm_without_weight_standardisation_keeps_plain_convs():
    mixer = {"kind": "conv", "norm": "group", "norm_groups": 2}
    model = costs_agree(_spec({"dim": 32, "depth": 1, "mixer": mixer}))
    block = model.stages[0].blocks[0]
    assert type(block.conv1) is torch.nn.Conv2d and type(block.mixer) is torch.nn.Conv2d
    assert isinstance(block.bn3, torch.nn.GroupNorm) and block.bn3.num_groups == 2


def test_group_norm_groups_must_divide():
    mixer = {"kind": "conv", "norm": "group", "norm_groups": 5}
    with pytest.raises(
        SpecError, match=r"stages\[0\]\.mixer\.norm_groups: .*divide the bottleneck width 8.*got 5"
    ):
        archsearch.load_spec(_spec({"dim": 32, "depth": 1, "mixer": mixer}))
    with pytest.raises(SpecError, match=r"stem.*norm_groups 5 must divide channels 16"):
        archsearch.load_spec(
            _spec(
                {"dim": 32, "depth": 1, "mixer": "conv"},
                stem={"kind": "resnetv2", "channels": 16, "norm_groups": 5},
            )
        )


def _resnetv2_space(stem: Any) -> Any:
    """A space choosing the ResNet v2 block options (and feeding a token stage through a 1x1 patch
    embedding, as the ViT hybrids do) after ``stem``."""
    from archsearch.space import load_space

    mixer = {
        "kind": "conv",
        "norm": {"choice": ["batch", "group"]},
        "norm_groups": {"choice": [4, 8]},
        "weight_std": {"choice": [None, 1.0e-8]},
        "padding": {"choice": ["symmetric", "same"]},
    }
    stages = [
        {
            "embed": {"kind": "block", "stride": {"choice": [1, 2]}},
            "dim": 32,
            "depth": {"int": [1, 2]},
            "mixer": mixer,
        },
        {
            "embed": {"kind": "patch", "stride": 1},
            "dim": 16,
            "depth": 1,
            "mixer": {"kind": "attention", "heads": 2},
            "cls_token": True,
            "pos_embed": "absolute",
        },
    ]
    return load_space(
        {"input": {"size": 40}, "stem": stem, "stages": stages, "head": {"pool": "cls", "num_classes": 10}}
    )


RESNETV2_STEM = {
    "kind": "resnetv2",
    "channels": 16,
    "norm_groups": 8,
    "padding": {"choice": ["same", "fixed", "symmetric"]},
}


def test_resnetv2_options_are_search_choices():
    """The members of a space choosing the ResNet v2 stem and block options build, run and cost as
    traced."""
    from archsearch.space import RandomSuggest

    space = _resnetv2_space({"choice": [None, RESNETV2_STEM]})
    seen: set[tuple[Any, ...]] = set()
    for seed in range(12):
        candidate = space.candidate(RandomSuggest(seed))
        assert candidate.spec is not None and candidate.costs is not None
        model = archsearch.build(candidate.spec)
        assert model(torch.randn(2, 3, 40, 40)).shape == (2, 10)
        traced = count_traced(model, (1, 3, 40, 40))
        assert (traced.params, traced.macs) == (candidate.costs.params, candidate.costs.macs)
        m, stem_ = candidate.spec.stages[0].mixer, candidate.spec.stem
        seen.add((m.norm, m.weight_std, m.padding, stem_.padding if stem_ else None))
    assert {s[0] for s in seen} == {"batch", "group"} and {s[1] for s in seen} == {None, 1e-8}
    assert {s[2] for s in seen} == {"symmetric", "same"} and len({s[3] for s in seen}) >= 3


def test_resnetv2_options_share_weights_in_a_supernet():
    """Members run through a supernet of that space equal the stand-alone members."""
    from archsearch.space import RandomSuggest
    from archsearch.supernet import Supernet

    space = _resnetv2_space(RESNETV2_STEM)
    net = Supernet(space).eval()
    suggest = RandomSuggest(3)
    for _ in range(6):
        plan = space.candidate(suggest).plan
        assert plan is not None
        x = torch.randn(2, 3, 40, 40)
        with torch.no_grad():
            assert (net(x, plan) - net.member(plan).eval()(x)).abs().max().item() <= 1e-5
