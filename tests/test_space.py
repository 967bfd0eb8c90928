"""Search spaces: node syntax, names, sizes, sampling, constraints, round trips, shipped spaces."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archsearch
from archsearch import SpecError
from archsearch.cost import analytic_costs, count_traced
from archsearch.space import DefaultSuggest, FixedSuggest, OptunaSuggest, RandomSuggest, load_space
from archsearch.spec import load_spec, normalize, spec_hash

ROOT = Path(__file__).resolve().parent.parent
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))

optuna.logging.set_verbosity(optuna.logging.WARNING)

TINY = {
    "input": {"size": 16, "channels": 1},
    "stages": [
        {
            "embed": {"kind": "conv", "kernel": 3, "stride": {"choice": [2, 4]}, "padding": 1},
            "dim": {"int": [8, 24], "step": 8},
            "depth": 2,
            "mixer": {
                "choice": [
                    "conv",
                    {"kind": "attention", "heads": 2, "qkv": "dw_bn", "kv_stride": {"choice": [1, 2]}},
                    {"kind": "window", "heads": 2, "window": {"choice": [2, 4]}},
                ]
            },
            "mlp_ratio": {"choice": [2, 4], "per_block": True},
            "pos_embed": {"choice": [True, False]},
        }
    ],
    "head": {"num_classes": 10},
    "drop_path": {"float": [0.01, 0.2], "log": True},
}


def _optuna_samples(space, n: int, seed: int = 0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        sample = space.sample(OptunaSuggest(trial))
        study.tell(trial, 0.0)
        out.append((study.trials[-1], sample))
    return out


def test_choice_kinds_reach_optuna_as_their_distributions():
    space = load_space(TINY)
    seen_mixers = set()
    for trial, sample in _optuna_samples(space, 40):
        dists = trial.distributions
        assert isinstance(dists["stages.0.embed.stride"], optuna.distributions.CategoricalDistribution)
        assert dists["stages.0.dim"] == optuna.distributions.IntDistribution(8, 24, step=8)
        assert dists["drop_path"] == optuna.distributions.FloatDistribution(0.01, 0.2, log=True)
        assert sample.data["stages"][0]["dim"] in (8, 16, 24)
        assert 0.01 <= sample.data["drop_path"] <= 0.2
        seen_mixers.add(trial.params["stages.0.mixer"])
    assert seen_mixers == {"conv", "attention", "window"}


def test_nested_choices_exist_only_under_their_option():
    space = load_space(TINY)
    for trial, sample in _optuna_samples(space, 40, seed=1):
        mixer = trial.params["stages.0.mixer"]
        assert ("stages.0.mixer[attention].kv_stride" in trial.params) == (mixer == "attention")
        assert ("stages.0.mixer[window].window" in trial.params) == (mixer == "window")
        stage = sample.data["stages"][0]
        # family-aware stage keys: a bottleneck conv stage draws no MLP ratio and no position embedding
        assert ("mlp_ratio" in stage) == (mixer != "conv")
        assert ("stages.0.pos_embed" in trial.params) == (mixer != "conv")
        if mixer == "window":
            assert stage["mixer"]["window"] == trial.params["stages.0.mixer[window].window"]
            assert stage["pos_embed"] == ("relative_bias" if trial.params["stages.0.pos_embed"] else "none")
        if mixer == "attention":
            assert stage["pos_embed"] == ("absolute" if trial.params["stages.0.pos_embed"] else "none")


def test_per_block_draws_one_value_per_block_with_readable_names():
    space = load_space(TINY)
    trial, sample = next(
        (t, s) for t, s in _optuna_samples(space, 20, seed=2) if "mlp_ratio" in s.data["stages"][0]
    )
    names = [n for n in trial.params if n.endswith("mlp_ratio")]
    assert names == ["stages.0.blocks.0.mlp_ratio", "stages.0.blocks.1.mlp_ratio"]
    assert sample.data["stages"][0]["mlp_ratio"] == [trial.params[n] for n in names]


def test_per_block_follows_a_sampled_depth():
    data = {
        "input": {"size": 16, "channels": 1},
        "stages": [
            {
                "embed": {"kind": "patch", "stride": 4},
                "dim": 16,
                "depth": {"int": [1, 3]},
                "mixer": {"kind": "attention", "heads": 2},
                "mlp_ratio": {"choice": [1, 2, 3], "per_block": True},
            }
        ],
    }
    space = load_space(data)
    assert space.size() == 3 + 3**2 + 3**3
    for seed in range(10):
        sample = space.sample(RandomSuggest(seed))
        depth = sample.data["stages"][0]["depth"]
        assert len(sample.data["stages"][0]["mlp_ratio"]) == depth
        assert sum(".mlp_ratio" in n for n in sample.params) == depth


def test_size_counts_nested_and_conditional_draws():
    space = load_space(TINY)
    stride, dims = 2, 3
    conv = 1  # no mlp_ratio, no pos_embed
    attention = 2 * 2**2 * 2  # kv_stride, mlp_ratio per block (depth 2), pos_embed
    window = 2 * 2**2 * 2  # window size, mlp_ratio per block, pos_embed
    assert space.size() == math.inf  # drop_path is a continuous range
    discrete = load_space({k: v for k, v in TINY.items() if k != "drop_path"})
    assert discrete.size() == stride * dims * (conv + attention + window)


def test_cvt13_nas_has_2_to_the_26_members_and_its_extreme_is_cvt13():
    space = load_space(ROOT / "search_spaces" / "cvt13_nas.yaml")
    assert space.size() == 2**26
    names = [d.name for d in space.dimensions()]
    assert sum(d.blocks for d in space.dimensions()) == 26
    assert "stages.2.blocks.*.mlp_ratio" in names
    params = space.default().params
    assert len(params) == 26 and "stages.2.blocks.7.mlp_ratio" in params
    extreme = {n: (2 if n.endswith("kv_stride") else 4) for n in params}
    spec = space.spec_from_params(extreme)
    assert spec_hash(spec) == spec_hash(load_spec("cvt-13"))
    costs, reference = analytic_costs(normalize(spec)), analytic_costs(normalize(load_spec("cvt-13")))
    assert (costs.params, costs.macs) == (reference.params, reference.macs)
    other = space.spec_from_params({**extreme, "stages.2.blocks.7.mlp_ratio": 2})
    assert spec_hash(other) != spec_hash(load_spec("cvt-13"))


def test_params_round_trip_to_yaml_and_the_same_model(tmp_path):
    space = load_space(TINY)
    for trial, sample in _optuna_samples(space, 12, seed=3):
        spec = space.spec_from_params(trial.params)
        path = tmp_path / f"t{trial.number}.yaml"
        path.write_text(yaml.safe_dump(sample.data))
        again = load_spec(path)
        assert spec_hash(again) == spec_hash(spec) == spec_hash(sample.spec())
        torch.manual_seed(0)
        a = archsearch.build(spec)
        torch.manual_seed(0)
        b = archsearch.build(again)
        x = torch.randn(2, 1, 16, 16)
        torch.testing.assert_close(a.eval()(x), b.eval()(x))


def test_replaying_wrong_params_is_a_clear_error():
    space = load_space(TINY)
    params = space.default().params
    with pytest.raises(SpecError, match=r"no value for 'stages\.0\.dim'"):
        space.spec_from_params({k: v for k, v in params.items() if k != "stages.0.dim"})
    with pytest.raises(SpecError, match="not one of its options"):
        space.spec_from_params({**params, "stages.0.mixer": "lstm"})
    with pytest.raises(SpecError, match="not in this space"):
        space.spec_from_params({**params, "stages.9.dim": 3})


def test_constraints_reject_with_the_analytic_cost_before_building():
    data = {**{k: v for k, v in TINY.items() if k != "drop_path"}, "constraints": {"macs": {"max": 150_000}}}
    space = load_space(data)
    candidates = [space.candidate(RandomSuggest(s)) for s in range(30)]
    rejected = [c for c in candidates if c.rejected]
    kept = [c for c in candidates if not c.rejected]
    assert rejected and kept
    for c in rejected:
        assert c.rejected.startswith("constraints: macs") and c.costs.macs > 150_000
    for c in kept:
        assert c.costs.macs <= 150_000
        traced = count_traced(archsearch.build(c.spec), (1, 1, 16, 16))
        assert traced.macs == c.costs.macs


def test_defaults_and_fixed_suggest_agree():
    space = load_space(TINY)
    default = space.default()
    assert space.sample(FixedSuggest(default.params)).data == default.data
    assert space.sample(DefaultSuggest()).params == default.params


# --------------------------------------------------------------------------- errors


def _space_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_space(path)
    return str(info.value)


BASE = """input: {size: 16, channels: 1}
stages:
  - embed: {kind: patch, stride: 4}
    dim: 16
    depth: 2
"""


@pytest.mark.parametrize(
    ("tail", "line", "message"),
    [
        ("    mixer: {choice: [conv], bogus: 1}\n", 6, "unknown key 'bogus' in a 'choice' node"),
        ("    mixer: {choice: []}\n", 6, "expected a non-empty list of options"),
        ("    mixer: conv\n    expansion: {int: [4, 2]}\n", 7, "`low <= high` must hold"),
        (
            "    mixer: conv\n    expansion: {int: [1, 4], log: true, step: 2}\n",
            7,
            "a log range takes no step",
        ),
        (
            "    mixer: {choice: [conv, {kind: attention, heads: 2, kv_strde: 1}]}\n",
            6,
            "unknown key 'kv_strde'",
        ),
        ("    mixer: {choice: [conv, {kind: lstm}]}\n", 6, "unknown kind 'lstm'"),
        ("    mixer: {choice: [conv, conv]}\n", 6, "the same option appears twice"),
        ("    mixer: {choice: [conv, mhsa], int: [1, 2]}\n", 6, "exactly one of choice, int, float"),
        (
            "    mixer: conv\nhead: {dropout: {float: [0.0, 0.5], per_block: true}}\n",
            7,
            "belongs inside a stage",
        ),
        ("    mixer: conv\nconstraints: {macs: {maximum: 3}}\n", 7, "unknown key"),
        (
            "    mixer: conv\nconstraints: {macs: {min: 1.0e+9, max: 1.0e+6}}\n",
            7,
            "constraints.macs: `min <= max` must hold, or no candidate fits (got {'min': 1000000000.0, "
            "'max': 1000000.0})",
        ),
        ("    mixer: conv\nconstraints: {params: {min: 5, max: 4}}\n", 7, "constraints.params: `min <= max`"),
        (
            "    mixer: conv\nconstraints:\n  latency_ms: {min: 9, max: 2}\n",
            8,
            "constraints.latency_ms: `min <= max` must hold",
        ),
        (
            "    mixer: conv\nconstraints: {macs: {max: 100}, flops: {min: 200}}\n",
            7,
            "constraints.flops: `flops` is a synonym of `macs`",
        ),
        # a limit's allowed range, not the constraint keys
        (
            "    mixer: conv\nconstraints:\n  latency_ms: {max: -5}\n",
            8,
            "constraints.latency_ms.max: must be greater than 0 (got -5)"
            "; allowed: a number > 0 (milliseconds",
        ),
        (
            "    mixer: conv\nconstraints: {params: {max: 0}}\n",
            7,
            "constraints.params.max: must be greater than 0 (got 0)"
            "; allowed: a number > 0 (a parameter count",
        ),
        (
            "    mixer: conv\nconstraints: {macs: {min: -1}}\n",
            7,
            "constraints.macs.min: must be at least 0 (got -1); allowed: a number >= 0 (multiply-accumulates",
        ),
        (
            "    mixer: conv\nconstraints: {flops: {max: ten}}\n",
            7,
            "constraints.flops.max: expected a number (got 'ten')"
            "; allowed: a number > 0 (multiply-accumulates",
        ),
        (
            "    mixer: conv\nconstraints: {latency_ms: {max: 5, batch: 0}}\n",
            7,
            "constraints.latency_ms.batch: must be greater than 0 (got 0); allowed: an integer >= 1",
        ),
        (
            "    mixer: conv\nconstraints: {memory: {max: 5}}\n",
            7,
            "constraints.memory: unknown key 'memory' in Constraints"
            "; allowed: params, macs, flops, latency_ms",
        ),
    ],
)
def test_space_errors_name_the_line_and_what_is_allowed(tmp_path, tail, line, message):
    text = _space_error(tmp_path, BASE + tail)
    assert f"space.yaml:{line}:" in text
    assert message in text


def test_an_impossible_member_is_rejected_with_the_line_of_its_option():
    data = {
        "input": {"size": 8, "channels": 1},
        "stages": [
            {
                "embed": {"kind": "patch", "stride": 4},
                "dim": 16,
                "depth": 1,
                "mixer": {"choice": [{"kind": "attention", "heads": 2}, {"kind": "attention", "heads": 3}]},
            }
        ],
    }
    space = load_space(data)
    bad = space.candidate(DefaultSuggest({"stages.0.mixer": "1:attention"}))
    assert bad.spec is None and "heads" in bad.rejected and bad.rejected.startswith("invalid:")


# --------------------------------------------------------------------------- the shipped spaces


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_shipped_spaces_load_and_describe_themselves(path):
    space = load_space(path)
    assert space.dimensions() and space.size() > 1
    valid = [c for c in space.random_samples(30) if c.spec is not None]
    assert len(valid) >= 20, "most members of a shipped space must have valid shapes"


@pytest.mark.slow
@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_any_member_of_a_shipped_space_builds_runs_and_costs_as_traced(path, seed):
    space = load_space(path)
    candidate = space.candidate(RandomSuggest(seed))
    if candidate.spec is None:  # an impossible combination is rejected, never built
        assert candidate.rejected and candidate.rejected.startswith("invalid:")
        return
    plan = normalize(candidate.spec)
    model = archsearch.build(plan)
    shape = (2, plan.input_shape.channels, plan.input_shape.height, plan.input_shape.width)
    out = model(torch.randn(shape))
    assert out.shape == (2, plan.num_classes) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    traced = count_traced(model, (1, *shape[1:]))
    assert (traced.macs, traced.params) == (candidate.costs.macs, candidate.costs.params)


#: spec_hash of every zoo model and of the first samples of every shipped space (RandomSuggest(0)),
#: computed before the block families and mixers owned their canonical form: moving code between
#: kinds must not change what a spec hashes to (trial ledgers and reports key on it).
ZOO_HASHES = {
    "bot-50": "7bba542866d4ddb5",
    "convnext-t": "6e43d84f8e614d84",
    "cvt-13": "195854193258993c",
    "cvt-21": "59e392b2b2ad5468",
    "deit-s": "0396fa3a0d1a1cbb",
    "deit-ti": "8dddcd09108261bf",
    "mobilevit-s": "e87432fb9747c6e8",
    "mobilevit-xxs": "ed53009bdbb973da",
    "pvt-v2-b1": "904404308aadd2a5",
    "resnet-50": "5d727eb00be96a72",
    "swin-t": "43ec94b06e2f84f6",
    "t2t-vit-t-14": "1e86e1b21359a777",
    "vit-b16": "23198767f9f9843d",
    # issue 14 (the kinds' new fields at their defaults leave the hashes above as they were)
    "regnety-016": "4751216f552e19b1",
    "efficientnet-b0": "374a6e64cb8b8d0e",
    "resnet-50d": "d8fca0695bd2612b",
    "botnet-26t": "a02d901e69b41819",  # one stage of a conv and an MHSA block (was two stages)
    "poolformer-s12": "399033c05fee4316",
    "deit-b-distilled": "881e91130bfbd75b",
    "lambda-resnet-26t": "ac796d9c5883f308",  # as botnet-26t
    "halonet-26t": "18cdca41bb71298d",  # as botnet-26t
    "twins-svt-s": "0abe4ef2cc8bcc7c",
    "convit-ti": "b3fe0b9a89fce032",
    "vit-b16-r50": "128ccff7cec2723c",
    "transformer-ls-m": "d2f64eb56f07b87d",
    "rednet-50": "05381992eacd8406",  # involution (issue 14)
    "mvitv2-t": "06759249e7c81434",
}
SPACE_HASHES = {
    "cvt13_nas": ["4a917e22db063851", "2d94c68f46100c50", "8af28f9e50bb760d", "2de216cc2e396a38"],
    "hybrid_small": ["fd0f45259e1610db", "b9308cb62d712874", "4892194773cb2cb4", "0332546de5ea3805"],
    "hybrid_kinds": ["d181f2292fd4e50a", "a268ea69f77714a1", "1a012e445d7f2642", "5b6fde870220bdbb"],
    "hybrid_stages": ["d19f27d84a63e93a", "a323c7a379b35d01", "a221f4eadc65c74c", "2e5a4c24d37efe4e"],
}


def test_spec_hashes_of_the_zoo_and_of_space_samples_are_pinned():
    zoo = sorted(p.stem for p in (ROOT / "archsearch" / "zoo").glob("*.yaml"))
    assert {name: spec_hash(load_spec(name)) for name in zoo} == ZOO_HASHES
    for path in SPACES:
        space, suggest = load_space(path), RandomSuggest(0)
        assert [spec_hash(space.sample(suggest).spec()) for _ in range(4)] == SPACE_HASHES[path.stem], (
            path.stem
        )
