"""ConvNeXt: the ``dwconv`` mixer / ``convnext`` block, ``norm_first`` embeddings, the pooled head norm.

The block and a whole small ConvNeXt are checked against a straightforward implementation written
here (NCHW convolutions, layer norm spelled out, plain matmuls), with the model's own weights.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

import archsearch
from archsearch import SpecError
from archsearch.cost import analytic_costs, count_traced
from archsearch.errors import format_path
from archsearch.kinds import FAMILY_EMBEDS, FAMILY_MIXERS
from archsearch.ops import ConvNeXtBlock
from archsearch.ops._layers import LayerNorm2d
from archsearch.spec import normalize

from .helpers import randomise_, write_file

SMALL = """
input: {size: 32, channels: 3}
norm_eps: 1.0e-6
stages:
  - {embed: {kind: patch, stride: 4, norm: layer}, dim: 16, depth: 2, mixer: {kind: dwconv, kernel: 7}}
  - embed: {kind: patch, stride: 2, norm: layer, norm_first: true}
    dim: 24
    depth: 2
    mixer: {kind: dwconv, kernel: 5, layer_scale: 0.5}
    mlp_ratio: [3, 2]
head: {num_classes: 10}
"""


def _randomise(model: torch.nn.Module) -> None:
    """Non-trivial values everywhere, so zero biases or a 1e-6 layer scale hide nothing."""
    randomise_(model, 0.3, vector_mean=1.0, seed=1)


# --------------------------------------------------------------------------- the reference


def _layer_norm_channels(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """LayerNorm over dim 1 of a (B, C, H, W) map, written out."""
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight[:, None, None] + bias[:, None, None]


def _reference_block(block: ConvNeXtBlock, x: torch.Tensor, eps: float) -> torch.Tensor:
    """dwconv -> LN -> W1 x + b1 -> GELU -> W2 h + b2 -> gamma -> + x, all on the NCHW map."""
    conv = block.conv_dw
    k = conv.kernel_size[0]
    y = F.conv2d(x, conv.weight, conv.bias, padding=k // 2, groups=x.shape[1])
    y = _layer_norm_channels(y, block.norm.weight, block.norm.bias, eps)
    fc1, fc2 = block.mlp.fc1, block.mlp.fc2
    h = torch.einsum("oc,bchw->bohw", fc1.weight, y) + fc1.bias[:, None, None]
    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
    y = torch.einsum("oc,bchw->bohw", fc2.weight, h) + fc2.bias[:, None, None]
    if block.gamma is not None:
        y = y * block.gamma[:, None, None]
    return x + y


def _reference_model(model: archsearch.ArchNet, x: torch.Tensor) -> torch.Tensor:
    """The whole small ConvNeXt: patchify + LN stem, LN + 2x2/2 conv downsampling, pooled-norm head."""
    eps = model.plan.spec.norm_eps
    for stage in model.stages:
        layers = list(stage.embed)
        if isinstance(layers[0], torch.nn.Conv2d):  # conv, then norm (the stem)
            conv, norm = layers
            x = F.conv2d(x, conv.weight, conv.bias, stride=conv.stride)
            x = _layer_norm_channels(x, norm.weight, norm.bias, eps)
        else:  # norm, then conv (norm_first downsampling)
            norm, conv = layers
            x = _layer_norm_channels(x, norm.weight, norm.bias, eps)
            x = F.conv2d(x, conv.weight, conv.bias, stride=conv.stride)
        for block in stage.blocks:
            x = _reference_block(block, x, eps)
    pooled = x.mean(dim=(2, 3))
    head = model.head
    mean = pooled.mean(dim=1, keepdim=True)
    var = ((pooled - mean) ** 2).mean(dim=1, keepdim=True)
    pooled = (pooled - mean) / torch.sqrt(var + eps) * head.norm.weight + head.norm.bias
    return pooled @ head.fc.weight.T + head.fc.bias


# --------------------------------------------------------------------------- the block


def test_the_family_follows_from_the_mixer_with_its_defaults(tmp_path):
    plan = normalize(archsearch.load_spec(write_file(tmp_path, SMALL)))
    assert [s.family for s in plan.stages] == ["convnext", "convnext"]
    first, later = plan.stages[0].blocks[0], plan.stages[1].blocks
    assert first.mlp_ratio == 4 and first.act == "gelu" and first.expansion is None
    assert first.mixer.layer_scale == 1e-6 and first.mixer.kernel == 7
    assert [b.mlp_ratio for b in later] == [3, 2]
    assert first.in_shape == first.out_shape  # a ConvNeXt block keeps the map
    assert plan.head.norm == "pooled"


def test_block_matches_a_straightforward_implementation(tmp_path):
    model = archsearch.build(archsearch.load_spec(write_file(tmp_path, SMALL))).eval()
    _randomise(model)
    for stage in model.stages:
        for block in stage.blocks:
            c = block.conv_dw.in_channels
            x = torch.randn(2, c, 5, 6)
            with torch.no_grad():
                expected = _reference_block(block, x, 1e-6)
                assert torch.allclose(block(x), expected, atol=1e-5, rtol=1e-5)
                # a channels-last map (what a LayerNorm2d hands on) gives the same numbers
                x_cl = x.contiguous(memory_format=torch.channels_last)
                assert torch.allclose(block(x_cl), expected, atol=1e-5, rtol=1e-5)


def test_whole_network_matches_a_straightforward_implementation(tmp_path):
    model = archsearch.build(archsearch.load_spec(write_file(tmp_path, SMALL))).eval()
    _randomise(model)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out, expected = model(x), _reference_model(model, x)
    assert out.shape == (3, 10)
    assert torch.allclose(out, expected, atol=1e-4, rtol=1e-4), (out - expected).abs().max()


@pytest.mark.parametrize("layer_scale", [1e-6, 0.5, 0, None])
def test_layer_scale_on_and_off(tmp_path, layer_scale):
    text = SMALL.replace("layer_scale: 0.5", f"layer_scale: {'null' if layer_scale is None else layer_scale}")
    model = archsearch.build(archsearch.load_spec(write_file(tmp_path, text)))
    blocks = list(model.stages[1].blocks)
    if layer_scale:
        assert all(torch.equal(b.gamma, torch.full((24,), float(layer_scale))) for b in blocks)
    else:
        assert all(b.gamma is None for b in blocks)
    # the first stage keeps the default scale; the analytic model follows the parameter count
    assert all(b.gamma is not None for b in model.stages[0].blocks)
    traced = count_traced(model, (1, 3, 32, 32))
    analytic = analytic_costs(model.plan)
    assert analytic.params == traced.params and analytic.macs == traced.macs
    with_scale = normalize(archsearch.load_spec(write_file(tmp_path, SMALL, "on.yaml")))
    assert analytic_costs(with_scale).params - analytic.params == (0 if layer_scale else 2 * 24)


def test_without_layer_scale_the_branch_is_added_unscaled(tmp_path):
    text = SMALL.replace("layer_scale: 0.5", "layer_scale: null")
    model = archsearch.build(archsearch.load_spec(write_file(tmp_path, text))).eval()
    _randomise(model)
    block = model.stages[1].blocks[0]
    x = torch.randn(1, 24, 4, 4)
    with torch.no_grad():
        assert torch.allclose(block(x), _reference_block(block, x, 1e-6), atol=1e-5, rtol=1e-5)


def test_drop_path_drops_the_branch_in_training_only(tmp_path):
    text = SMALL.replace("head:", "drop_path: 0.9\nhead:")
    model = archsearch.build(archsearch.load_spec(write_file(tmp_path, text)))
    _randomise(model)
    block = model.stages[1].blocks[1]
    assert block.drop_path.p == pytest.approx(0.9)
    x = torch.randn(64, 24, 4, 4)
    with torch.no_grad():
        model.eval()
        assert torch.allclose(block(x), _reference_block(block, x, 1e-6), atol=1e-5, rtol=1e-5)
        model.train()
        out = block(x)
    kept = [not torch.equal(out[i], x[i]) for i in range(64)]
    assert 0 < sum(kept) < 64  # some samples keep the branch, the others pass through unchanged


# --------------------------------------------------------------------------- norm_first embeddings


@pytest.mark.parametrize("kind", ["patch", "conv"])
@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_norm_first_normalises_the_incoming_channels_before_the_conv(tmp_path, kind, norm):
    embed = f"{{kind: {kind}, stride: 2, norm: {norm}, norm_first: true}}"
    text = f"""
input: {{size: 16, channels: 3}}
stages:
  - {{embed: {{kind: patch, stride: 2, norm: layer}}, dim: 8, depth: 1, mixer: dwconv}}
  - {{embed: {embed}, dim: 12, depth: 1, mixer: dwconv}}
"""
    model = archsearch.build(archsearch.load_spec(write_file(tmp_path, text))).eval()
    _randomise(model)
    first, conv = list(model.stages[1].embed)
    assert isinstance(conv, torch.nn.Conv2d) and conv.in_channels == 8 and conv.out_channels == 12
    assert isinstance(first, LayerNorm2d if norm == "layer" else torch.nn.BatchNorm2d)
    assert first.weight.shape == (8,)  # the norm sees the incoming channels
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        if norm == "layer":
            normed = _layer_norm_channels(x, first.weight, first.bias, 1e-5)
        else:
            normed = F.batch_norm(
                x, first.running_mean, first.running_var, first.weight, first.bias, eps=first.eps
            )
        expected = F.conv2d(normed, conv.weight, conv.bias, stride=2, padding=conv.padding)
        assert torch.allclose(model.stages[1].embed(x), expected, atol=1e-5, rtol=1e-5)
    traced = count_traced(model, (1, 3, 16, 16))
    analytic = analytic_costs(model.plan)
    assert (analytic.params, analytic.macs, analytic.activations) == (
        traced.params,
        traced.macs,
        traced.activations,
    )
    assert analytic.by_scope == traced.by_scope


def test_norm_first_is_off_by_default_and_keeps_existing_embeddings():
    model = archsearch.create_model("cvt-13", input_size=64)
    conv, norm = list(model.stages[0].embed)
    assert isinstance(conv, torch.nn.Conv2d) and isinstance(norm, LayerNorm2d)


# --------------------------------------------------------------------------- the head


def _head_spec(
    tmp_path, mixer: str, norm: str | None, pool: str = "avg", cls: bool = False
) -> archsearch.Spec:
    norm_key = "" if norm is None else f", norm: {norm}"
    extra = ", cls_token: true" if cls else ""
    text = f"""
input: {{size: 16}}
stages:
  - {{embed: {{kind: patch, stride: 4}}, dim: 8, depth: 1, mixer: {mixer}{extra}}}
head: {{pool: {pool}, num_classes: 5{norm_key}}}
"""
    return archsearch.load_spec(write_file(tmp_path, text))


@pytest.mark.parametrize(
    ("mixer", "norm", "pool", "cls", "resolved"),
    [
        ("dwconv", None, "avg", False, "pooled"),
        ("dwconv", "true", "avg", False, "pooled"),
        ("dwconv", "tokens", "avg", False, "tokens"),
        ("dwconv", "false", "avg", False, False),
        ("{kind: attention, heads: 2}", None, "avg", False, "tokens"),
        ("{kind: attention, heads: 2}", "true", "avg", False, "tokens"),
        ("{kind: attention, heads: 2}", "pooled", "avg", False, "pooled"),
        ("{kind: attention, heads: 2}", "pooled", "cls", True, "tokens"),  # one token: the same thing
        ("conv", None, "avg", False, False),
        ("conv", "true", "avg", False, "tokens"),
        ("conv", "pooled", "avg", False, "pooled"),
    ],
)
def test_head_norm_resolves_to_a_placement(tmp_path, mixer, norm, pool, cls, resolved):
    assert normalize(_head_spec(tmp_path, mixer, norm, pool, cls)).head.norm == resolved


@pytest.mark.parametrize("norm", ["pooled", "tokens"])
def test_head_norm_on_the_pooled_vector_or_on_every_token(tmp_path, norm):
    model = archsearch.build(_head_spec(tmp_path, "dwconv", norm)).eval()
    _randomise(model)
    head = model.head
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        w, b, eps = head.norm.weight, head.norm.bias, head.norm.eps
        if norm == "pooled":
            pooled = _layer_norm_channels(x.mean(dim=(2, 3))[:, :, None, None], w, b, eps)[:, :, 0, 0]
        else:
            pooled = _layer_norm_channels(x, w, b, eps).mean(dim=(2, 3))
        expected = pooled @ head.fc.weight.T + head.fc.bias
        assert torch.allclose(head(x, None), expected, atol=1e-5, rtol=1e-5)
    traced = count_traced(model, (1, 3, 16, 16))
    analytic = analytic_costs(model.plan)
    assert analytic.by_scope["head"] == traced.by_scope["head"]
    assert analytic.activations == traced.activations
    # pooled: average (1 per element) then LayerNorm on C values (5 each); tokens: LayerNorm on every token
    assert analytic.head.macs == (8 * 16 + 5 * 8 if norm == "pooled" else 5 * 8 * 16) + 8 * 5


def test_existing_heads_are_unchanged():
    """Per-token norm then average (the transformer default) computes what it did before."""
    model = archsearch.create_model("deit-ti", input_size=32, num_classes=3).eval()
    assert model.plan.head.norm == "tokens"
    model = archsearch.create_model("resnet-50", input_size=64).eval()
    assert model.plan.head.norm is False and model.head.norm is None


# --------------------------------------------------------------------------- the zoo model


@pytest.mark.parametrize("size", [224, 160, 112])  # 112: the last map floors 7 -> 3, as in timm
def test_convnext_t_shapes_and_costs(size):
    model = archsearch.create_model("convnext-t", input_size=size)
    plan = model.plan
    side = size // 4
    assert [s.out_shape.as_tuple() for s in plan.stages] == [
        (96, side, side),
        (192, side // 2, side // 2),
        (384, side // 4, side // 4),
        (768, side // 8, side // 8),
    ]
    if size % 32 == 0:  # (feature_info's reduction is input / map side, rounded)
        assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    assert sum(p.numel() for p in model.parameters()) == 28_589_128
    traced = count_traced(model, (1, 3, size, size))
    analytic = analytic_costs(plan)
    assert analytic.params == traced.params and analytic.macs == traced.macs
    assert analytic.by_scope == traced.by_scope and analytic.activations == traced.activations
    if size == 224:
        assert traced.macs == 4_470_437_376  # fvcore on timm convnext_tiny: 4.470437376 G
    with torch.inference_mode():
        assert model.eval()(torch.randn(1, 3, size, size)).shape == (1, 1000)


# --------------------------------------------------------------------------- malformed specs

STAGE0 = "  - {embed: {kind: patch, stride: 4, norm: layer}, dim: 16, depth: 2, mixer: dwconv}\n"
P2 = "{kind: patch, stride: 2}"


@pytest.mark.parametrize(
    ("stage1", "head", "path", "line", "match"),
    [
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 1, mixer: {kind: dwconv, kernel: 4}}",
            "{}",
            "stages[1].mixer.kernel",
            4,
            r"the kernel must be odd.*\(got 4\); allowed: odd kernels",
        ),
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 1, mixer: {kind: dwconv, kernel: 0}}",
            "{}",
            "stages[1].mixer.kernel",
            4,
            r"must be greater than 0 \(got 0\)",
        ),
        (
            f"  - {{embed: {P2}, dim: 32, depth: 1, mixer: {{kind: dwconv, layer_scale: -1}}}}",
            "{}",
            "stages[1].mixer.layer_scale",
            4,
            r"must be at least 0 \(got -1\)",
        ),
        (
            f"  - {{embed: {P2}, dim: 32, depth: 1, mixer: {{kind: dwconv, layer_scale: yes}}}}",
            "{}",
            "stages[1].mixer.layer_scale",
            4,
            r"expected a number",
        ),
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 1, mixer: {kind: dwconv, heads: 2}}",
            "{}",
            "stages[1].mixer.heads",
            4,
            r"unknown key 'heads' in DwConvMixer \(kind 'dwconv'\); allowed: kind, kernel, layer_scale$",
        ),
        (
            "  - {embed: {kind: patch, stride: 2, norm_first: true}, dim: 32, depth: 1, mixer: dwconv}",
            "{}",
            "stages[1].embed.norm_first",
            4,
            r"norm_first puts the norm before the conv, but this embedding has no norm.*allowed: norm: layer",
        ),
        (
            "  - {embed: {kind: conv, norm: none, norm_first: true}, dim: 32, depth: 1, mixer: dwconv}",
            "{}",
            "stages[1].embed.norm_first",
            4,
            r"has no norm",
        ),
        (
            "  - {embed: {kind: conv, norm_first: 1}, dim: 32, depth: 1, mixer: dwconv}",
            "{}",
            "stages[1].embed.norm_first",
            4,
            r"expected true or false, not a number \(got 1\)",
        ),
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 1, mixer: dwconv}",
            "{norm: pool}",
            "head.norm",
            5,
            r"not an allowed value \(did you mean 'pooled'\?\) \(got 'pool'\); allowed: tokens, pooled$",
        ),
        (
            "  - {embed: {kind: block, stride: 2}, dim: 32, depth: 1, mixer: dwconv}",
            "{}",
            "stages[1].embed.kind",
            4,
            r"embedding 'block' does not fit a convnext stage \(got 'block'\); allowed: "
            + re.escape(", ".join(FAMILY_EMBEDS["convnext"]))
            + "$",
        ),
        (
            "  - {dim: 32, depth: 1, mixer: dwconv}",
            "{}",
            "stages[1].dim",
            4,
            r"embed 'none' keeps the 16 incoming channels, so dim must be 16",
        ),
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 1, mixer: dwconv, expansion: 2}",
            "{}",
            "stages[1].expansion",
            4,
            r"expansion applies to bottleneck and mbconv stages, "
            r"but this stage is a convnext stage \(mixer 'dwconv'\)",
        ),
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 1, mixer: dwconv, cls_token: true}",
            "{}",
            "stages[1].cls_token",
            4,
            r"cls_token applies to transformer and multiscale stages, but this stage is a convnext stage",
        ),
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 1, mixer: dwconv, pos_embed: absolute}",
            "{}",
            "stages[1].pos_embed",
            4,
            r"position embedding 'absolute' does not fit mixer 'dwconv' \(got 'absolute'\); allowed: none$",
        ),
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 2, mixer: dwconv, mlp_ratio: [4]}",
            "{}",
            "stages[1].mlp_ratio",
            4,
            r"a per-block list needs exactly depth=2 items",
        ),
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 1, block: convnext, mixer: conv}",
            "{}",
            "stages[1].mixer.kind",
            4,
            r"mixer 'conv' does not fit a convnext block \(got 'conv'\); allowed: dwconv$",
        ),
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 1, block: transformer, mixer: dwconv}",
            "{}",
            "stages[1].mixer.kind",
            4,
            r"mixer 'dwconv' does not fit a transformer block \(got 'dwconv'\); allowed: "
            + re.escape(", ".join(FAMILY_MIXERS["transformer"]))
            + "$",
        ),
        (
            "  - {embed: {kind: patch, stride: 2}, dim: 32, depth: 1, mixer: {kind: dwconv, kernal: 3}}",
            "{}",
            "stages[1].mixer.kernal",
            4,
            r"unknown key 'kernal' in DwConvMixer \(kind 'dwconv'\) \(did you mean 'kernel'\?\)",
        ),
    ],
)
def test_malformed_convnext_fields_name_path_and_line(tmp_path, stage1, head, path, line, match):
    text = f"input: {{size: 32}}\nstages:\n{STAGE0}{stage1}\nhead: {head}\n"
    file = write_file(tmp_path, text)
    with pytest.raises(SpecError) as info:
        archsearch.load_spec(str(file))
    first = info.value.issues[0]
    assert format_path(first.path) == path
    assert (first.file, first.line) == (str(file), line)
    assert str(first).startswith(f"{file}:{line}: {path}: ")
    assert re.search(match, str(first)), f"{str(first)!r} does not match {match!r}"
