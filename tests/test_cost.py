"""Costs: traced counts against the reference figures, torch's counter, and the analytic model."""

from __future__ import annotations

import functools
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import archsearch
from archsearch.cost import TracedCounts, UncountedOpsWarning, analytic_costs, count_traced, op_kind
from archsearch.spec import NormalizedSpec, WindowMixer, normalize, window_geometry
from archsearch.spec._normalize import FAMILY_MIXERS

from .random_specs import random_spec, random_spec_dict

ZOO = archsearch.zoo_names()

# GMACs of the reference implementations, fvcore with attention matmuls counted (REFERENCE.md).
REFERENCE_GMACS = {
    "resnet-50": 4.112,
    "vit-b16": 17.583,
    "deit-s": 4.608,
    "deit-ti": 1.258,
    "cvt-13": 4.585,
    "cvt-21": 7.206,
    "t2t-vit-t-14": 6.106,
    "pvt-v2-b1": 2.120,
    "convnext-t": 4.470,
    "swin-t": 4.509,
    "mobilevit-s": 2.033,
    "mobilevit-xxs": 0.418,
    "regnety-016": 1.628,
    "efficientnet-b0": 0.399,
    "resnet-50d": 4.353,
    "botnet-26t": 3.319,
    "poolformer-s12": 1.823,
    "deit-b-distilled": 17.676,
    "lambda-resnet-26t": 3.025,
    "halonet-26t": 3.194,
    "twins-svt-s": 2.942,
    "convit-ti": 1.257,
    "vit-b16-r50": 21.658,
    "transformer-ls-m": 8.722,  # fvcore on the official model (benchmarks/longshort_reference.py)
    # official RedNet-50 (d-li14/involution, benchmarks/_official_rednet.py): fvcore with the
    # involutions' weighted sums counted (2.602 G without them: fvcore skips aten::mul / sum)
    "rednet-50": 2.673,
    "mvitv2-t": 4.704,
}
MATMUL_OPS = ("mm", "addmm", "bmm", "baddbmm", "convolution")


def _native_input(model: torch.nn.Module) -> tuple[int, ...]:
    shape = model.plan.input_shape
    return (1, shape.channels, shape.height, shape.width)


@functools.cache
def _traced_at_native_size(name: str) -> tuple[NormalizedSpec, TracedCounts]:
    """The plan of zoo model ``name`` built at its own input size and its traced counts (batch 1),
    once per name: the reference test and the analytic test read the same count (each would
    otherwise build the model and trace a forward at 224 px)."""
    model = archsearch.create_model(name)
    return model.plan, count_traced(model, _native_input(model))


def test_every_reference_figure_names_a_zoo_model():
    assert set(REFERENCE_GMACS) <= set(ZOO)


@pytest.mark.parametrize("name", sorted(REFERENCE_GMACS))
def test_traced_macs_match_reference(name):
    _, counts = _traced_at_native_size(name)
    assert counts.macs / 1e9 == pytest.approx(REFERENCE_GMACS[name], rel=0.005)
    assert not counts.uncounted


@pytest.mark.parametrize("name", ZOO)
def test_fused_attention_is_counted_like_the_explicit_path(name):
    model = archsearch.create_model(name, input_size=96)
    sdpa = F.scaled_dot_product_attention
    with (
        archsearch.fused_attention(True),
        mock.patch.object(F, "scaled_dot_product_attention", wraps=sdpa) as called,
    ):
        fused = count_traced(model, (1, 3, 96, 96))
    if not called.called:  # no attention ran: the flag changes nothing, an explicit trace repeats this one
        return
    with archsearch.fused_attention(False):
        explicit = count_traced(model, (1, 3, 96, 96))
    assert fused.macs == explicit.macs
    assert fused.by_scope == explicit.by_scope


@pytest.mark.parametrize("name", ZOO)
def test_analytic_costs_equal_traced_on_the_zoo(name):
    plan, traced = _traced_at_native_size(name)
    analytic = analytic_costs(plan)
    assert analytic.params == traced.params
    assert analytic.trainable_params == traced.trainable_params
    assert analytic.macs == pytest.approx(traced.macs, rel=0.005)
    assert analytic.by_scope == pytest.approx(traced.by_scope, rel=0.005)
    assert analytic.activations == traced.activations


@pytest.mark.parametrize("name", ZOO)
def test_cross_check_against_torch_flop_counter(name):
    """torch.utils.flop_counter counts 2 per multiply-add, no norms, and (torch 2.13 on CPU) not
    the fused attention kernel: on the explicit path the matmul part must agree exactly."""
    model = archsearch.create_model(name, input_size=64).eval()
    x = torch.randn(1, 3, 64, 64)
    with archsearch.fused_attention(False):
        ours = count_traced(model, x)
        with torch.no_grad(), FlopCounterMode(display=False) as torch_counter:
            model(x)
    matmuls = sum(v for k, v in ours.by_op.items() if k in MATMUL_OPS)
    assert torch_counter.get_total_flops() == 2 * matmuls


@pytest.mark.parametrize("seed", range(200))
def test_analytic_equals_traced_on_random_hybrids(seed):
    spec = random_spec(seed)
    plan = normalize(spec)
    model = archsearch.build(plan)
    # traced at batch 2, so that what scales with the batch is checked; a weight-standardised
    # conv (ResNet v2) standardises its weight once per forward, whatever the batch: its cost is
    # per image at batch 1 only
    std = any(getattr(b.mixer, "weight_std", None) for b in plan.blocks)
    n = 1 if std or getattr(spec.stem, "weight_std", None) else 2
    shape = (n, plan.input_shape.channels, plan.input_shape.height, plan.input_shape.width)
    traced = count_traced(model, shape)
    analytic = analytic_costs(plan)
    assert analytic.params == traced.params
    assert analytic.trainable_params == traced.trainable_params
    assert analytic.macs * n == pytest.approx(traced.macs, rel=0.005)
    assert {k: n * v for k, v in analytic.by_scope.items()} == pytest.approx(traced.by_scope, rel=0.005)
    assert analytic.activations * n == traced.activations
    assert not traced.uncounted


def test_random_hybrids_cover_the_grammar():
    """The 200 random specs really vary what they claim to vary."""
    plans = [normalize(random_spec(seed)) for seed in range(200)]
    blocks = [b for p in plans for b in p.blocks]
    assert {b.mixer.kind for b in blocks} == {k for kinds in FAMILY_MIXERS.values() for k in kinds}
    assert {getattr(b.mixer, "layer_scale", 1) or None for b in blocks} >= {1e-6, 0.5, None}
    assert any(getattr(s.embed, "norm_first", False) for p in plans for s in p.stages)
    assert {p.head.norm for p in plans if p.head.pool == "avg"} == {"tokens", "pooled", False}
    assert {getattr(b.mixer, "qkv", None) for b in blocks} >= {"linear", "dw_bn", "avg", "sr"}
    assert {(b.mixer.qkv, b.kv_stride) for b in blocks if b.mixer.kind == "attention"} >= {
        ("sr", 1),
        ("sr", 2),
    }
    assert {b.mlp_dwconv for b in blocks} == {True, False}
    assert {(b.mixer.kind, getattr(b.mixer, "se", None)) for b in blocks} >= {
        ("conv", 0.25),
        ("mbconv", 0.25),
        ("conv", None),
    }
    assert any(not getattr(b.mixer, "expand_conv", True) for b in blocks)
    convs = [b.mixer for b in blocks if b.mixer.kind == "conv"]
    assert {(m.norm, m.padding) for m in convs} >= {
        ("group", "same"),
        ("batch", "same"),
        ("batch", "symmetric"),
    }
    assert {m.weight_std for m in convs} >= {None, 1e-8}
    assert {p.spec.stem.padding for p in plans if p.spec.stem and p.spec.stem.kind == "resnetv2"} >= {
        "same",
        "fixed",
    }
    assert any(p.stages[-1].dist_token and p.head.pool == "cls" for p in plans)
    assert {s.norm_out for p in plans for s in p.stages} == {True, False}
    assert {b.kv_stride for b in blocks} >= {1, 2, 3}
    assert {b.q_stride for b in blocks} >= {1, 2}
    assert {b.mlp_ratio for b in blocks} >= {1, 2, 3.5, 4}
    assert {s.embed.kind for p in plans for s in p.stages} == {
        "conv",
        "patch",
        "block",
        "t2t",
        "merge",
        "mbconv",
        "none",
    }
    assert {s.pos_embed for p in plans for s in p.stages} >= {
        "none",
        "absolute",
        "sinusoidal",
        "relative",
        "relative_bias",
    }
    windows = [b for b in blocks if isinstance(b.mixer, WindowMixer)]
    geometry = [window_geometry(b.mixer.window, b.mixer.shift, *b.in_shape.as_tuple()[1:]) for b in windows]
    assert any(any(shift) for _, shift in geometry)  # shifted windows
    sides = [(b.in_shape.height, b.in_shape.width) for b in windows]
    padded = [h % wh or w % ww for (h, w), ((wh, ww), _) in zip(sides, geometry, strict=True)]
    assert any(padded)  # windows on maps that are not a multiple of them
    assert any(
        b.in_shape.height != s.embed_shape.height
        for p in plans
        for s in p.stages
        if s.family == "mobilevit"
        for b in s.blocks[:1]
    )  # resized
    assert {p.input_shape.height for p in plans} >= {24, 32, 40, 48, 64}
    assert {len(p.stages) for p in plans} == {1, 2, 3, 4}
    involutions = [b for b in blocks if b.mixer.kind == "involution"]
    assert {b.stride for b in involutions} == {1, 2}
    assert {b.mixer.kernel for b in involutions} == {1, 3, 5, 7}  # 1x1: still one matrix product
    assert any(getattr(p.spec.stem, "involution", None) for p in plans)  # RedNet's stem
    assert {p.spec.stem.kind for p in plans if p.spec.stem is not None} == {
        "resnet",
        "conv",
        "deep",
        "resnetv2",
    }
    assert {b.shortcut for b in blocks if b.dim_in != b.dim or b.stride > 1} == {"conv", "avg"}
    assert any(p.head.conv for p in plans)
    pooling = [b for b in blocks if b.mixer.kind == "pooling"]  # MViT v2
    assert {(b.q_stride, b.dim_in != b.dim, b.in_shape.cls_tokens > 0) for b in pooling} >= {
        (2, True, False),
        (1, False, False),
        (1, False, True),
    }
    assert {(b.mixer.residual_pooling, b.mixer.rel_pos) for b in pooling} >= {(True, True), (False, False)}


@pytest.mark.parametrize("seed", range(40))
def test_invalid_random_specs_fail_with_spec_error_only(seed):
    """A generated spec is either valid and builds, or raises SpecError — never anything else."""
    data = random_spec_dict(seed)
    try:
        spec = archsearch.load_spec(data)
    except archsearch.SpecError:
        return
    model = archsearch.build(spec).eval()  # batch 1: BatchNorm on a 1x1 map cannot train
    size = spec.input.hw
    # batch 2: train-mode BatchNorm on a 1x1 map needs more than one value per channel
    assert model(torch.randn(2, spec.input.channels, *size)).shape[0] == 2


def test_ops_that_carry_compute_and_are_not_counted_are_named_in_a_warning():
    class Spectral(torch.nn.Module):
        def forward(self, x):
            return torch.fft.fft2(x).real.cumsum(dim=-1)

    with pytest.warns(UncountedOpsWarning, match=r"_fft_r2c.*\(x1\)|cumsum"):
        counts = count_traced(Spectral(), (1, 2, 8, 8))
    assert counts.macs == 0 and "cumsum" in counts.uncounted


def test_counting_restores_the_model_mode_and_counts_training_norms():
    model = archsearch.create_model("resnet-50", input_size=64).train()
    eval_counts = count_traced(model, (1, 3, 64, 64))
    assert model.training
    train_counts = count_traced(model, (2, 3, 64, 64), train=True)
    # batch norm counts 2 per element in eval, 5 in training (fvcore); everything else doubles with the batch
    assert train_counts.by_op["native_batch_norm"] == 5 * eval_counts.by_op["native_batch_norm"]
    assert train_counts.by_op["convolution"] == 2 * eval_counts.by_op["convolution"]


# ------------------------------------------------------------------------------------- in-place ops


class _AddmmInPlace(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(32, 48))
        self.b = torch.nn.Parameter(torch.randn(48))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b.expand(10, 48).clone().addmm_(x, self.w)


class _BaddbmmInPlace(torch.nn.Module):
    def forward(self, q: torch.Tensor) -> torch.Tensor:
        k = q * 2
        return torch.zeros(2, 64, 64).baddbmm_(q, k.transpose(1, 2))


def test_in_place_matrix_products_are_counted_like_their_out_of_place_op():
    counts = count_traced(_AddmmInPlace(), (10, 32))
    assert counts.macs == 10 * 32 * 48 == 15_360
    assert counts.by_op == {"addmm": 15_360} and not counts.uncounted
    counts = count_traced(_BaddbmmInPlace(), (2, 64, 16))
    assert counts.macs == 2 * 64 * 64 * 16 == 131_072
    assert counts.by_op == {"baddbmm": 131_072} and not counts.uncounted


@pytest.mark.parametrize(
    ("name", "kind", "base"),
    [
        ("addmm_", "counted", "addmm"),
        ("baddbmm_", "counted", "baddbmm"),
        ("addmm", "counted", "addmm"),
        ("add_", "zero", "add"),
        ("mul_", "zero", "mul"),
        ("relu_", "zero", "relu"),
        ("copy_", "zero", "copy"),
        ("fill_", "zero", "fill"),
        ("zero_", "zero", "zero"),
        ("cumsum_", "uncounted", "cumsum_"),
        ("cumsum", "uncounted", "cumsum"),
        ("index_copy_", "zero", "index_copy"),
        ("addbmm_", "uncounted", "addbmm_"),
        ("__and__", "uncounted", "__and__"),
    ],
)
def test_op_kind_treats_in_place_ops_like_their_out_of_place_op(name, kind, base):
    assert op_kind(name) == (kind, base)


def test_an_in_place_op_that_is_not_counted_is_reported():
    class Cumulative(torch.nn.Module):
        def forward(self, x):
            return x.clone().cumsum_(-1).mul_(2)

    with pytest.warns(UncountedOpsWarning, match=r"cumsum_ \(x1\)"):
        counts = count_traced(Cumulative(), (1, 8))
    assert counts.uncounted == {"cumsum_": 1}


class _OpNames(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_every_in_place_op_of_the_zoo_is_counted_or_zero_by_convention(name, train):
    """No op of a zoo forward (in eval or training mode: dropout, drop path, batch statistics) is
    dropped in silence: each in-place op is counted or explicitly free, like its out-of-place op."""
    model = archsearch.create_model(name, input_size=64).train(train)
    recorder = _OpNames()
    with torch.no_grad(), recorder:
        model(torch.randn(2, 3, 64, 64))
    in_place = {n for n in recorder.names if n.endswith("_") and not n.endswith("__")}
    assert {n: op_kind(n)[0] for n in in_place if op_kind(n)[0] == "uncounted"} == {}
    assert not count_traced(model, (2, 3, 64, 64), train=train).uncounted


@pytest.mark.parametrize(
    "mixer", ["{kind: mhsa, heads: 4}", "{kind: halo, heads: 4, block: 4, halo: 1}"], ids=["mhsa", "halo"]
)
def test_relative_attention_with_one_channel_per_head_counts_like_traced(tmp_path, mixer):
    """head_dim 1 (bottleneck width == heads): einsum would contract the size-1 dim of the
    relative logits as a broadcast multiply that no counter sees; the products stay matmuls."""
    path = tmp_path / "narrow.yaml"
    path.write_text(
        "input: {size: 32, channels: 3}\n"
        "stem: {kind: conv, channels: 16}\n"
        "stages:\n"
        f"  - {{embed: {{kind: block, stride: 1}}, dim: 16, depth: 1, mixer: {mixer}, pos_embed: relative}}\n"
        "head: {pool: avg, num_classes: 10}\n"
    )
    model = archsearch.create_model(str(path))
    assert {b.width // b.mixer.heads for b in model.plan.blocks} == {1}
    traced = count_traced(model, (2, 3, 32, 32))
    analytic = analytic_costs(model.plan)
    assert analytic.macs * 2 == traced.macs
    assert not traced.uncounted
