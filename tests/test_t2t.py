"""T2T-ViT: the token transformer, the soft splits and the sinusoidal table against straightforward
implementations written here; the t2t grammar and its errors."""

from __future__ import annotations

import math
import re
import textwrap

import pytest
import torch
import torch.nn.functional as F

import archsearch
from archsearch import SpecError
from archsearch.cost import analytic_costs, count_traced
from archsearch.errors import format_path
from archsearch.ops import TokensToToken, TokenTransformer, fused_attention, sinusoid_table
from archsearch.spec import T2TEmbed, load_spec, normalize

from .helpers import randomise_


def _randomise(module: torch.nn.Module) -> None:
    """Random weights everywhere, LayerNorm affine included, so no term is a silent identity."""
    randomise_(module, 0.2)


def token_transformer_reference(tt: TokenTransformer, x: torch.Tensor) -> torch.Tensor:
    """T2T-ViT's ``Token_transformer.forward`` re-written from its description: LayerNorm, q/k/v to
    ``token_dim``, per-head softmax attention scaled by ``(in_dim // heads) ** -0.5``, the skip
    connection through ``v``, then ``x + mlp(norm2(x))`` with GELU."""
    in_dim, td, heads = x.shape[-1], tt.token_dim, tt.heads
    hd = td // heads
    y = F.layer_norm(x, (in_dim,), tt.norm1.weight, tt.norm1.bias, tt.norm1.eps)
    qkv = y @ tt.qkv.weight.T
    if tt.qkv.bias is not None:
        qkv = qkv + tt.qkv.bias
    q, k, v = qkv[..., :td], qkv[..., td : 2 * td], qkv[..., 2 * td :]
    outs = []
    for i in range(heads):
        part = slice(i * hd, (i + 1) * hd)
        logits = q[..., part] @ k[..., part].transpose(-2, -1) * (in_dim // heads) ** -0.5
        outs.append(logits.softmax(dim=-1) @ v[..., part])
    x = v + torch.cat(outs, dim=-1) @ tt.proj.weight.T + tt.proj.bias
    z = F.layer_norm(x, (td,), tt.norm2.weight, tt.norm2.bias, tt.norm2.eps)
    hidden = F.gelu(z @ tt.mlp.fc1.weight.T + tt.mlp.fc1.bias)
    return x + hidden @ tt.mlp.fc2.weight.T + tt.mlp.fc2.bias


def soft_split_reference(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """One token per ``kernel x kernel`` window of the zero-padded map, channel-major within a
    token (nn.Unfold's order), windows in row-major order: ``(B, tokens, C * kernel**2)``."""
    b, _, h, w = x.shape
    xp = F.pad(x, (padding,) * 4)
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    tokens = [
        xp[:, :, i * stride : i * stride + kernel, j * stride : j * stride + kernel].reshape(b, -1)
        for i in range(oh)
        for j in range(ow)
    ]
    return torch.stack(tokens, dim=1)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(
    ("heads", "mlp_ratio", "qkv_bias"), [(1, 1.0, False), (2, 2.0, True), (4, 1.5, False)]
)
def test_token_transformer_matches_a_straightforward_implementation(fused, heads, mlp_ratio, qkv_bias):
    tt = TokenTransformer(27, 16, heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias).eval()
    _randomise(tt)
    x = torch.randn(2, 30, 27)
    with fused_attention(fused), torch.no_grad():
        out = tt(x)
        expected = token_transformer_reference(tt, x)
    assert out.shape == (2, 30, 16)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


def test_token_transformer_scale_follows_the_input_width():
    """The reference scales by ``(dim // heads) ** -0.5`` of the *input* width (147 for 3x7x7)."""
    assert TokenTransformer(147, 64, 1).scale == 147**-0.5
    assert TokenTransformer(576, 64, 2).scale == 288**-0.5


def test_soft_split_is_unfold_in_row_major_windows():
    x = torch.randn(2, 3, 9, 11)
    tokens = F.unfold(x, 3, padding=1, stride=2).transpose(1, 2)
    torch.testing.assert_close(tokens, soft_split_reference(x, 3, 2, 1), rtol=0, atol=0)


def test_t2t_embedding_matches_a_straightforward_implementation():
    """Soft split -> token transformer -> re-structurisation, iterated, then a Linear: on a
    non-square map, with two heads and an uneven split of strides."""
    embed = T2TEmbed(kernels=[5, 3, 3], strides=[2, 1, 2], paddings=[2, 1, 1], token_dim=8, heads=2)
    module = TokensToToken(embed, 3, 12, 1e-5).eval()
    _randomise(module)
    x = torch.randn(2, 3, 20, 12)
    with torch.no_grad():
        out = module(x)
        y = x
        for j, (k, s, p) in enumerate(zip(embed.kernels, embed.strides, embed.paddings or [], strict=True)):
            oh, ow = (y.shape[2] + 2 * p - k) // s + 1, (y.shape[3] + 2 * p - k) // s + 1
            t = soft_split_reference(y, k, s, p)
            if j < 2:
                t = token_transformer_reference(module.transformers[j], t)
            else:
                t = t @ module.project.weight.T + module.project.bias
            y = t.transpose(1, 2).reshape(2, -1, oh, ow)
    assert out.shape == (2, 12, 5, 3)
    torch.testing.assert_close(out, y, rtol=1e-4, atol=1e-5 * y.abs().max().item())


def test_t2t_vit_t_14_soft_split_shapes():
    model = archsearch.create_model("t2t-vit-t-14").eval()
    t2t = model.stages[0].embed
    seen = []
    for m in [*t2t.transformers, t2t.project]:
        m.register_forward_hook(lambda m, i, o: seen.append((tuple(i[0].shape), tuple(o.shape))))
    with torch.inference_mode():
        out = t2t(torch.randn(1, 3, 224, 224))
    assert seen == [
        ((1, 56 * 56, 3 * 7 * 7), (1, 56 * 56, 64)),
        ((1, 28 * 28, 64 * 3 * 3), (1, 28 * 28, 64)),
        ((1, 14 * 14, 64 * 3 * 3), (1, 14 * 14, 384)),
    ]
    assert out.shape == (1, 384, 14, 14)
    stage = model.plan.stages[0]
    assert stage.embed.stride == 16 and stage.reduction == 16
    assert stage.embed_shape.tokens == 14 * 14 + 1


def test_default_t2t_embedding_is_t2t_vits():
    spec = load_spec(
        {"input": {"size": 224}, "stages": [{"embed": "t2t", "dim": 384, "depth": 1, "mixer": "attention"}]}
    )
    embed = normalize(spec).stages[0].embed
    assert isinstance(embed, T2TEmbed)
    assert (embed.kernels, embed.strides, embed.paddings) == ([7, 3, 3], [4, 2, 2], [2, 1, 1])
    assert (embed.token_dim, embed.heads, embed.mlp_ratio, embed.qkv_bias) == (64, 1, 1.0, False)


# --------------------------------------------------------------------------- the sinusoidal table


def test_sinusoid_table_against_the_formula():
    tokens, dim = 12, 10
    table = sinusoid_table(tokens, dim)
    assert table.shape == (1, tokens, dim) and table.dtype == torch.float32
    for pos in range(tokens):
        for j in range(dim):
            angle = pos / 10000 ** (2 * (j // 2) / dim)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert table[0, pos, j].item() == pytest.approx(expected, abs=1e-6)
    assert torch.equal(table[0, 0, 0::2], torch.zeros(dim // 2))
    assert torch.equal(table[0, 0, 1::2], torch.ones(dim // 2))


def test_sinusoidal_position_embedding_is_frozen_and_follows_the_token_count():
    for size, grid in ((224, 14), (160, 10)):
        with torch.device("meta"):
            model = archsearch.create_model("t2t-vit-t-14", input_size=size)
        pos = model.stages[0].pos_embed
        assert pos.shape == (1, grid * grid + 1, 384) and not pos.requires_grad
    model = archsearch.create_model("t2t-vit-t-14", input_size=160, num_classes=10)
    # the table survives weight initialisation untouched
    assert torch.equal(model.stages[0].pos_embed, sinusoid_table(101, 384))


def test_a_training_step_leaves_the_table_unchanged():
    spec = {
        "input": {"size": 32},
        "stages": [
            {
                "embed": {"kind": "t2t", "kernels": [3, 3], "strides": [2, 2], "token_dim": 8},
                "dim": 16,
                "depth": 1,
                "mixer": {"kind": "attention", "heads": 2},
                "cls_token": True,
                "pos_embed": "sinusoidal",
            }
        ],
        "head": {"pool": "cls", "num_classes": 3},
    }
    model = archsearch.build(archsearch.load_spec(spec))
    before = model.stages[0].pos_embed.detach().clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    F.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 2])).backward()
    opt.step()
    assert model.stages[0].pos_embed.grad is None
    assert torch.equal(model.stages[0].pos_embed, before)
    assert torch.equal(before, sinusoid_table(8 * 8 + 1, 16))


# --------------------------------------------------------------------------- costs


def test_t2t_into_a_bottleneck_stage_counts_analytically_like_traced():
    """A t2t embedding feeding a ResNet stage, then a transformer with a sinusoidal table."""
    spec = archsearch.load_spec(
        {
            "input": {"size": [32, 48], "channels": 1},
            "stages": [
                {
                    "embed": {
                        "kind": "t2t",
                        "kernels": [3, 2],
                        "strides": [2, 2],
                        "heads": 2,
                        "token_dim": 8,
                    },
                    "dim": 32,
                    "depth": 1,
                    "mixer": "conv",
                },
                {
                    "embed": {"kind": "t2t", "kernels": [3], "strides": [2], "qkv_bias": True},
                    "dim": 24,
                    "depth": 2,
                    "mixer": {"kind": "attention", "heads": 3},
                    "pos_embed": "sinusoidal",
                },
            ],
        }
    )
    plan = normalize(spec)
    assert [s.out_shape.as_tuple() for s in plan.stages] == [(32, 8, 12), (24, 4, 6)]
    traced = count_traced(archsearch.build(plan), (1, 1, 32, 48))
    analytic = analytic_costs(plan)
    assert not traced.uncounted
    assert (analytic.params, analytic.trainable_params) == (traced.params, traced.trainable_params)
    assert analytic.frozen_params == 24 * 4 * 6
    assert analytic.macs == traced.macs and analytic.by_scope == traced.by_scope
    assert analytic.activations == traced.activations


# --------------------------------------------------------------------------- errors

BASE = """
input: {size: 32, channels: 3}
stages:
  - embed:
      kind: t2t
      EMBED
    dim: 16
    depth: 1
    mixer: {kind: attention, heads: 2}
    POS
"""


def _spec_text(embed: str, pos: str = "") -> str:
    return textwrap.dedent(BASE).lstrip("\n").replace("EMBED", embed).replace("POS", pos)


@pytest.mark.parametrize(
    ("embed", "path", "line", "match"),
    [
        (
            "kernels: [3, 3]\n      strides: [2, 2, 2]",
            "stages[0].embed.strides",
            6,
            r"needs one value per soft split: 2 kernels, 3 strides \(got \[2, 2, 2\]\)",
        ),
        (
            "kernels: [3, 3]\n      strides: [2, 2]\n      paddings: [1]",
            "stages[0].embed.paddings",
            7,
            r"needs one value per soft split: 2 kernels, 1 padding \(got \[1\]\)",
        ),
        (
            "token_dim: 30\n      heads: 4",
            "stages[0].embed.heads",
            6,
            r"heads must divide the token_dim 30 \(got 4\); allowed: 1, 2, 3, 5, 6, 10, 15, 30$",
        ),
        (
            "strides: [4, 4, 4]",
            "stages[0].embed.strides",
            5,
            r"the soft splits stride 64 in all .* must divide the 32x32 map \(got \[4, 4, 4\]\); "
            r"allowed: strides whose product divides both sides: 1, 2, 4, 8, 16, 32$",
        ),
        (
            "kernels: [7, 7, 7]\n      paddings: [0, 0, 0]",
            "stages[0].embed.kernels[2]",
            5,
            r"soft split 2: the 7x7 unfold with stride 2 and padding 0 leaves no tokens from the 1x1 map",
        ),
        (
            "kernels: [3, 3]\n      strides: [2, 2]\n      paddings: [1, -1]",
            "stages[0].embed.paddings[1]",
            7,
            r"must be at least 0 \(got -1\)",
        ),
        ("kernels: 7", "stages[0].embed.kernels", 5, r"expected a list \(got 7\)"),
        ("kernels: []", "stages[0].embed.kernels", 5, r"needs at least 1 item"),
        ("token_dim: 0", "stages[0].embed.token_dim", 5, r"must be greater than 0"),
        ("kernel: 3", "stages[0].embed.kernel", 5, r"unknown key 'kernel' .*did you mean 'kernels'"),
    ],
    ids=[
        "strides-length",
        "paddings-length",
        "heads-token-dim",
        "map-not-divisible",
        "no-tokens",
        "negative-padding",
        "kernels-not-a-list",
        "kernels-empty",
        "token-dim-zero",
        "unknown-key",
    ],
)
def test_malformed_t2t_fields_name_path_and_line(tmp_path, embed, path, line, match):
    file = tmp_path / "bad.yaml"
    file.write_text(_spec_text(embed))
    with pytest.raises(SpecError) as info:
        load_spec(str(file))
    first = info.value.issues[0]
    assert (format_path(first.path), first.line, first.file) == (path, line, str(file))
    assert re.search(match, str(first)), str(first)


def test_more_heads_than_a_token_is_wide_is_a_spec_error(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text(
        _spec_text("kernels: [1, 1]\n      strides: [2, 1]\n      token_dim: 4\n      heads: 2").replace(
            "channels: 3", "channels: 1"
        )
    )
    with pytest.raises(SpecError, match=r"soft split 0 makes 1-wide tokens, fewer than the heads") as info:
        load_spec(str(file))
    assert (format_path(info.value.issues[0].path), info.value.issues[0].line) == ("stages[0].embed.heads", 8)


def test_sinusoidal_needs_an_attention_stage(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text(
        _spec_text("kernels: [3]\n      strides: [2]", "pos_embed: sinusoidal").replace(
            "mixer: {kind: attention, heads: 2}", "mixer: conv"
        )
    )
    with pytest.raises(SpecError, match=r"position embedding 'sinusoidal' does not fit mixer 'conv'") as info:
        load_spec(str(file))
    assert (format_path(info.value.issues[0].path), info.value.issues[0].line) == ("stages[0].pos_embed", 10)
