"""MBConv and MobileViT: patch unfolding, the blocks against plain re-implementations, hybrids, errors."""

from __future__ import annotations

import re
import textwrap

import pytest
import torch
import torch.nn.functional as F

import archsearch
from archsearch import SpecError
from archsearch.cost import analytic_costs, count_traced
from archsearch.errors import format_path
from archsearch.kinds import FAMILY_EMBEDS, FAMILY_MIXERS
from archsearch.ops import InvertedResidual, MobileViTStage, fold_patches, unfold_patches
from archsearch.spec import normalize

from .helpers import perturb_

# fvcore MACs per stage of timm mobilevit_s at 256 px (TIMM_FUSED_ATTN=0, FlopCountAnalysis.by_module).
TIMM_MOBILEVIT_S_STAGE_MACS = {
    "stages.0": 65_011_712,
    "stages.1": 407_896_064,
    "stages.2": 875_577_344,
    "stages.3": 507_658_240,
    "stages.4": 162_362_368,
}


def _load(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return archsearch.load_spec(path), path


# --------------------------------------------------------------------------- unfold / fold


def test_unfold_gathers_one_pixel_of_every_patch_per_sequence():
    x = torch.randn(2, 5, 6, 8)
    t = unfold_patches(x, 2)
    assert t.shape == (2 * 4, 3 * 4, 5)
    for b, c, i, j in [(0, 0, 0, 0), (1, 4, 5, 7), (0, 2, 3, 4), (1, 1, 4, 1)]:
        seq = b * 4 + (i % 2) * 2 + (j % 2)  # position inside the patch
        token = (i // 2) * 4 + j // 2  # which patch, row-major
        assert t[seq, token, c] == x[b, c, i, j]


@pytest.mark.parametrize(("shape", "patch"), [((2, 5, 6, 8), 2), ((1, 3, 9, 6), 3), ((3, 4, 4, 4), 1)])
def test_fold_inverts_unfold(shape, patch):
    x = torch.randn(shape)
    t = unfold_patches(x, patch)
    assert t.shape == (shape[0] * patch**2, shape[2] * shape[3] // patch**2, shape[1])
    assert torch.equal(fold_patches(t, shape[0], (shape[2], shape[3]), patch), x)


# --------------------------------------------------------------------------- the blocks, explicitly


def _conv_bn_act(x, block, act=True, stride=1, groups=1):
    conv, bn = block.conv, block.bn
    k = conv.weight.shape[-1]
    y = F.conv2d(x, conv.weight, None, stride, k // 2, 1, groups)
    y = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    y = y * bn.weight[:, None, None] + bn.bias[:, None, None]
    return y * torch.sigmoid(y) if act else y


def _layer_norm(x, norm):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _transformer_layer(tokens, layer, heads):
    """One pre-norm layer over (B, N, d) tokens: per-head softmax(q k^T / sqrt(hd)) v, then the MLP."""
    d = tokens.shape[-1]
    hd = d // heads
    q, k, v = F.linear(_layer_norm(tokens, layer.norm1), layer.attn.qkv.weight, layer.attn.qkv.bias).split(
        d, -1
    )
    outs = []
    for h in range(heads):
        sl = slice(h * hd, (h + 1) * hd)
        logits = q[..., sl] @ k[..., sl].transpose(-2, -1) / hd**0.5
        outs.append(torch.softmax(logits, dim=-1) @ v[..., sl])
    tokens = tokens + F.linear(torch.cat(outs, -1), layer.attn.proj.weight, layer.attn.proj.bias)
    hidden = F.linear(_layer_norm(tokens, layer.norm2), layer.mlp.fc1.weight, layer.mlp.fc1.bias)
    hidden = hidden * torch.sigmoid(hidden)
    return tokens + F.linear(hidden, layer.mlp.fc2.weight, layer.mlp.fc2.bias)


def _mobilevit_reference(stage: MobileViTStage, x: torch.Tensor, heads: int, patch: int) -> torch.Tensor:
    """The MobileViT block written out: attention among the pixels at one position of every patch,
    gathered with strided slicing, one position at a time."""
    y = _conv_bn_act(x, stage.conv_kxk)
    y = F.conv2d(y, stage.conv_1x1.weight)
    h, w = y.shape[-2:]
    hp, wp = -(-h // patch) * patch, -(-w // patch) * patch
    if (hp, wp) != (h, w):
        y = F.interpolate(y, size=(hp, wp), mode="bilinear", align_corners=False)
    out = torch.empty_like(y)
    for pi in range(patch):
        for pj in range(patch):
            pixels = y[:, :, pi::patch, pj::patch]  # (B, d, H/p, W/p): this position of every patch
            tokens = pixels.flatten(2).transpose(1, 2)
            for layer in stage.blocks:
                tokens = _transformer_layer(tokens, layer, heads)
            tokens = _layer_norm(tokens, stage.norm)
            out[:, :, pi::patch, pj::patch] = tokens.transpose(1, 2).reshape(pixels.shape)
    if (hp, wp) != (h, w):
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
    out = _conv_bn_act(out, stage.conv_proj)
    return _conv_bn_act(torch.cat((x, out), 1), stage.conv_fusion)


MOBILEVIT_STAGE = """
input: {size: SIZE, channels: 3}
stem: {kind: conv, channels: 8, stride: 1, act: silu}
stages:
  - embed: none
    dim: 12
    depth: 2
    mixer: {kind: mobilevit, transformer_dim: 16, heads: 2, patch: PATCH}
head: {num_classes: 0}
"""


@pytest.mark.parametrize(("size", "patch"), [(8, 2), ([6, 10], 2), (7, 2), (9, 3)])
def test_mobilevit_block_matches_a_plain_implementation(tmp_path, size, patch):
    spec, _ = _load(tmp_path, MOBILEVIT_STAGE.replace("SIZE", str(size)).replace("PATCH", str(patch)))
    model = archsearch.build(spec).eval()
    perturb_(model)
    stage = model.stages[0]
    assert isinstance(stage, MobileViTStage) and len(stage.blocks) == 2
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.randn(2, 8, h, w)  # the stage input: channels differ from the stage dim (fusion 8 + 12)
    for fused in (True, False):
        with archsearch.fused_attention(fused), torch.no_grad():
            ours, _ = stage(x)
            expected = _mobilevit_reference(stage, x, heads=2, patch=patch)
        assert ours.shape == (2, 12, h, w)
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    resized = h % patch or w % patch
    plan = normalize(spec).stages[0]
    assert plan.blocks[0].in_shape.as_tuple() == (16, -(-h // patch) * patch, -(-w // patch) * patch)
    assert plan.out_shape.as_tuple() == (12, h, w)
    assert bool(resized) == ((plan.blocks[0].in_shape.height, plan.blocks[0].in_shape.width) != (h, w))


def _inverted_residual_reference(block: InvertedResidual, x: torch.Tensor, stride: int) -> torch.Tensor:
    hidden = block.conv1.conv.out_channels
    y = _conv_bn_act(x, block.conv1)
    y = _conv_bn_act(y, block.conv2, stride=stride, groups=hidden)
    y = _conv_bn_act(y, block.conv3, act=False)
    return x + y if stride == 1 and x.shape[1] == y.shape[1] else y


def test_mbconv_stage_matches_a_plain_implementation(tmp_path):
    spec, _ = _load(
        tmp_path,
        """
        input: {size: 16, channels: 3}
        stages:
          - {embed: {kind: block, stride: 2}, dim: 12, depth: 3, mixer: mbconv, expansion: 3}
        head: {num_classes: 0}
        """,
    )
    plan = normalize(spec)
    # hidden width: input channels x expansion, rounded to a multiple of 8 (timm's make_divisible)
    assert [b.width for b in plan.blocks] == [16, 40, 40]  # 9 -> 8 would lose over 10%: 16; 36 -> 40
    assert [b.stride for b in plan.blocks] == [2, 1, 1]
    model = archsearch.build(spec).eval()
    perturb_(model)
    blocks = list(model.stages[0].blocks)
    assert [b.residual for b in blocks] == [False, True, True]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ours = model.stages[0](x)[0]
        expected = x
        for block, stride in zip(blocks, (2, 1, 1), strict=True):
            expected = _inverted_residual_reference(block, expected, stride)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- the zoo


def test_mobilevit_s_stage_macs_equal_timm():
    model = archsearch.create_model("mobilevit-s")
    traced = count_traced(model, (1, 3, 256, 256))
    assert {k: v for k, v in traced.by_scope.items() if k.startswith("stages")} == TIMM_MOBILEVIT_S_STAGE_MACS
    assert analytic_costs(model.plan).by_scope == traced.by_scope


@pytest.mark.parametrize("name", ["mobilevit-s", "mobilevit-xxs"])
def test_mobilevit_zoo_shapes(name):
    plan = normalize(archsearch.load_spec(name))
    assert [s.reduction for s in plan.stages] == [2, 4, 8, 16, 32]
    assert [s.family for s in plan.stages] == ["mbconv", "mbconv", "mobilevit", "mobilevit", "mobilevit"]
    assert [s.depth for s in plan.stages] == [1, 3, 2, 4, 3]
    assert plan.head.conv == {"mobilevit-s": 640, "mobilevit-xxs": 320}[name]


def test_mobilevit_at_160_resizes_the_last_map():
    """At 160 px the last map is 5x5: like timm, it is resized to 6x6 for the 2x2 patches and back."""
    plan = normalize(archsearch.load_spec("mobilevit-s", input_size=160))
    last = plan.stages[-1]
    assert last.embed_shape.as_tuple() == (160, 5, 5)
    assert last.blocks[0].in_shape.as_tuple() == (240, 6, 6)
    assert last.out_shape.as_tuple() == (160, 5, 5)
    model = archsearch.build(plan)
    traced = count_traced(model, (1, 3, 160, 160))
    assert "upsample_bilinear2d" in traced.by_op
    assert analytic_costs(plan).macs == traced.macs


# --------------------------------------------------------------------------- hybrids


def test_mbconv_stage_feeds_attention_and_mobilevit_stages(tmp_path):
    spec, _ = _load(
        tmp_path,
        """
        input: {size: 32}
        stem: {kind: conv, channels: 16, act: silu}
        stages:
          - {embed: {kind: block, stride: 2}, dim: 24, depth: 2, mixer: mbconv, expansion: 4}
          - embed: {kind: mbconv, stride: 1, expansion: 2}
            dim: 32
            depth: 1
            mixer: {kind: mobilevit, transformer_dim: 48, heads: 2}
          - embed: {kind: conv, kernel: 3, stride: 2}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4, qkv: dw_bn, kv_stride: 2}
            cls_token: true
          - {embed: {kind: mbconv, stride: 2}, dim: 64, depth: 1, mixer: {kind: attention, heads: 4}}
        head: {pool: avg, conv: 96, num_classes: 10}
        """,
    )
    plan = normalize(spec)
    assert [s.family for s in plan.stages] == ["mbconv", "mobilevit", "transformer", "transformer"]
    assert [s.out_shape.as_tuple() for s in plan.stages] == [(24, 8, 8), (32, 8, 8), (64, 4, 4), (64, 2, 2)]
    model = archsearch.build(spec)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.logsumexp(dim=1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    traced, analytic = count_traced(model, (1, 3, 32, 32)), analytic_costs(plan)
    assert (analytic.params, analytic.macs, analytic.activations) == (
        traced.params,
        traced.macs,
        traced.activations,
    )
    assert analytic.by_scope == traced.by_scope


# --------------------------------------------------------------------------- malformed specs


def _issue(tmp_path, text, path):
    """The issue raised at ``path`` (every issue of a spec is reported at once)."""
    with pytest.raises(SpecError) as info:
        _load(tmp_path, text)
    found = [i for i in info.value.issues if format_path(i.path) == path]
    assert found, [str(i) for i in info.value.issues]
    return found[0]


MOBILE = """
input: {size: 32}
stages:
  - {embed: {kind: block, stride: 2}, dim: 16, depth: 1, mixer: mbconv}
  - embed: {kind: mbconv, stride: 2}
    dim: 24
    depth: 2
    mixer: {kind: mobilevit, transformer_dim: 32, heads: 4, patch: 2}
    mlp_ratio: 2
head: {num_classes: 10}
"""


@pytest.mark.parametrize(
    ("old", "new", "path", "line", "match"),
    [
        (
            "heads: 4",
            "heads: 5",
            "stages[1].mixer.heads",
            7,
            r"heads must divide the transformer_dim 32 \(got 5\)",
        ),
        ("patch: 2}", "patch: 2, kernel: 4}", "stages[1].mixer.kernel", 7, r"kernel must be odd"),
        (
            "patch: 2}",
            "patch_size: 2}",
            "stages[1].mixer.patch_size",
            7,
            r"unknown key 'patch_size' in "
            r"MobileViTMixer \(kind 'mobilevit'\).*did you mean 'patch'",
        ),
        ("transformer_dim: 32", "transformer_dim: '32'", "stages[1].mixer.transformer_dim", 7, r"expected"),
        (
            "{kind: mbconv, stride: 2}",
            "{kind: mbconv, stride: 2, kernel: 2}",
            "stages[1].embed.kernel",
            4,
            r"depthwise kernel must be odd \(padding kernel // 2\) \(got 2\)",
        ),
        (
            "{kind: mbconv, stride: 2}",
            "{kind: block, stride: 2}",
            "stages[1].embed.kind",
            4,
            r"embedding 'block' does not fit a mobilevit stage \(got 'block'\); allowed: "
            + re.escape(", ".join(FAMILY_EMBEDS["mobilevit"]))
            + "$",
        ),
        (
            "    mlp_ratio: 2",
            "    mlp_ratio: 2\n    cls_token: true",
            "stages[1].cls_token",
            9,
            r"cls_token applies to transformer and multiscale stages, but this stage is a mobilevit stage",
        ),
        (
            "    mlp_ratio: 2",
            "    mlp_ratio: 2\n    expansion: 4",
            "stages[1].expansion",
            9,
            r"expansion applies to bottleneck and mbconv stages, but this stage is a mobilevit stage",
        ),
        (
            "    mlp_ratio: 2",
            "    mlp_ratio: 2\n    pos_embed: absolute",
            "stages[1].pos_embed",
            9,
            r"position embedding 'absolute' does not fit mixer 'mobilevit' \(got 'absolute'\); "
            r"allowed: none$",
        ),
        (
            "mixer: mbconv}",
            "mixer: mbconv, mlp_ratio: 4}",
            "stages[0].mlp_ratio",
            3,
            r"mlp_ratio applies to transformer, convnext, mobilevit, metaformer and multiscale stages, "
            r"but this stage is a mbconv stage",
        ),
        (
            "mixer: mbconv}",
            "mixer: mbconv, block: transformer}",
            "stages[0].mixer.kind",
            3,
            r"mixer 'mbconv' does not fit a transformer block \(got 'mbconv'\); allowed: "
            + re.escape(", ".join(FAMILY_MIXERS["transformer"]))
            + "$",
        ),
        (
            "mixer: mbconv}",
            "mixer: {kind: mbconv, kernel: 2}}",
            "stages[0].mixer.kernel",
            3,
            r"kernel must be odd",
        ),
        (
            "mixer: mbconv}",
            "mixer: mbconv, expansion: 0}",
            "stages[0].expansion",
            3,
            r"at least 1|greater than 0",
        ),
        (
            "head: {num_classes: 10}",
            "head: {num_classes: 10, conv: 64, pool: cls}",
            "head.conv",
            9,
            r"the final conv works on the map, but pool 'cls' takes the class token",
        ),
        (
            "input: {size: 32}",
            "input: {size: 32}\nstem: {kind: conv, channels: 8, act: tanh}",
            "stem.act",
            2,
            r"not an allowed value.*allowed: relu, gelu, quick_gelu, silu",
        ),
    ],
)
def test_malformed_mobile_specs_name_path_and_line(tmp_path, old, new, path, line, match):
    assert old in MOBILE
    issue = _issue(tmp_path, MOBILE.replace(old, new, 1), path)
    assert issue.line == line
    assert re.search(match, str(issue)), str(issue)


def test_the_unmodified_mobile_spec_is_valid(tmp_path):
    spec, _ = _load(tmp_path, MOBILE)
    assert archsearch.build(spec)(torch.randn(1, 3, 32, 32)).shape == (1, 10)
