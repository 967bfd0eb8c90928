"""PVT v2: spatial-reduction attention, the depthwise-conv MLP, the stage output norm, the zoo model.

The ops are checked against straightforward implementations written here from timm's
``pvt_v2.py`` description (never imported); malformed uses of the new fields must name the YAML
path and line.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import archsearch
from archsearch.cost import analytic_costs, count_traced
from archsearch.ops import Attention, MlpDwConv, fused_attention
from archsearch.spec import normalize

from .helpers import randomise_


def _randomise(module: torch.nn.Module) -> None:
    """Non-trivial values everywhere (LayerNorm weights 1 and biases 0 would hide a missing norm)."""
    randomise_(module, 0.1, add=True)


# --------------------------------------------------------------------------- spatial-reduction attention


def sr_attention_reference(
    attn: Attention, x: torch.Tensor, h: int, w: int, cls_tokens: int, sr: int
) -> torch.Tensor:
    """PVT v2 attention, one head and one query at a time: q from every token; keys and values
    from the map cut into sr x sr cells, each cell a dot product with the conv kernel plus bias,
    LayerNorm over channels, class tokens in front; the first C outputs of kv are k, the rest v."""
    b, _, c = x.shape
    heads, d = attn.heads, c // attn.heads
    cls, tokens = x[:, :cls_tokens], x[:, cls_tokens:]
    fmap = tokens.transpose(1, 2).reshape(b, c, h, w)
    if sr > 1:
        assert attn.sr is not None and attn.sr_norm is not None
        hk, wk = h // sr, w // sr  # the conv floors: trailing rows/columns are dropped
        cells = []
        for i in range(hk):
            for j in range(wk):
                patch = fmap[:, :, i * sr : (i + 1) * sr, j * sr : (j + 1) * sr]  # (b, c, sr, sr)
                cells.append(torch.einsum("bcyx,ocyx->bo", patch, attn.sr.weight) + attn.sr.bias)
        reduced = torch.stack(cells, dim=1)  # (b, hk*wk, c)
        mean = reduced.mean(-1, keepdim=True)
        var = reduced.var(-1, keepdim=True, unbiased=False)
        reduced = (reduced - mean) / torch.sqrt(var + attn.sr_norm.eps)
        reduced = reduced * attn.sr_norm.weight + attn.sr_norm.bias
        kv_in = torch.cat((cls, reduced), dim=1)
    else:
        kv_in = x
    q = x @ attn.q.weight.T + attn.q.bias
    kv = kv_in @ attn.kv.weight.T + attn.kv.bias
    k, v = kv[..., :c], kv[..., c:]
    out = torch.zeros_like(q)
    for n in range(heads):
        sl = slice(n * d, (n + 1) * d)
        for t in range(q.shape[1]):
            logits = torch.einsum("bd,bkd->bk", q[:, t, sl], k[:, :, sl]) / math.sqrt(d)
            out[:, t, sl] = torch.einsum("bk,bkd->bd", logits.softmax(-1), v[:, :, sl])
    return out @ attn.proj.weight.T + attn.proj.bias


@pytest.mark.parametrize("sr", [1, 2, 3])
@pytest.mark.parametrize("cls_tokens", [0, 1])
@pytest.mark.parametrize("fused", [True, False])
def test_sr_attention_matches_straightforward_implementation(sr, cls_tokens, fused):
    dim, heads, h, w = 24, 3, 7, 6  # 7 rows: with sr 2 and 3 the last row is dropped, as in PVT
    attn = Attention(dim, heads, qkv="sr", kv_stride=sr, cls_tokens=cls_tokens, norm_eps=1e-5).eval()
    _randomise(attn)
    x = torch.randn(2, cls_tokens + h * w, dim)
    with torch.no_grad(), fused_attention(fused):
        ours = attn(x, (h, w))
        expected = sr_attention_reference(attn, x, h, w, cls_tokens, sr)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_sr_attention_modules_follow_timm():
    """q and kv Linear layers; at stride > 1 a conv with kernel = stride and bias, then LayerNorm."""
    attn = Attention(64, 1, qkv="sr", kv_stride=8, qkv_bias=True, norm_eps=1e-5)
    assert [name for name, _ in attn.named_children()] == ["q", "kv", "proj", "sr", "sr_norm"]
    assert attn.kv.weight.shape == (128, 64)
    assert attn.sr is not None and attn.sr.kernel_size == (8, 8) and attn.sr.stride == (8, 8)
    assert attn.sr.bias is not None and attn.sr_norm is not None and attn.sr_norm.eps == 1e-5
    plain = Attention(64, 1, qkv="sr", kv_stride=1, qkv_bias=False)
    assert plain.sr is None and plain.sr_norm is None and plain.q.bias is None
    # q/k/v reach the attention kernel contiguous in the last dim (the fused CPU kernel needs it)
    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.extend(t.stride(-1) for t in (q, k, v))
        return real(q, k, v, **kwargs)

    with torch.no_grad(), fused_attention(True), pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "scaled_dot_product_attention", spy)
        attn(torch.randn(1, 16 * 16, 64), (16, 16))
    assert seen == [1, 1, 1]


# --------------------------------------------------------------------------- depthwise-conv MLP


@pytest.mark.parametrize("cls_tokens", [0, 1])
def test_dwconv_mlp_matches_straightforward_implementation(cls_tokens):
    dim, hidden, h, w = 8, 12, 5, 4
    mlp = MlpDwConv(dim, hidden, "gelu", cls_tokens).eval()
    _randomise(mlp)
    x = torch.randn(2, cls_tokens + h * w, dim)
    with torch.no_grad():
        ours = mlp(x, (h, w))
        y = x @ mlp.fc1.weight.T + mlp.fc1.bias
        cls, tokens = y[:, :cls_tokens], y[:, cls_tokens:]
        fmap = tokens.transpose(1, 2).reshape(2, hidden, h, w)
        padded = torch.zeros(2, hidden, h + 2, w + 2)
        padded[:, :, 1:-1, 1:-1] = fmap
        conv = mlp.dwconv.bias[None, :, None, None].expand(2, hidden, h, w).clone()
        for dy in range(3):
            for dx in range(3):
                conv += (
                    mlp.dwconv.weight[None, :, 0, dy, dx, None, None] * padded[:, :, dy : dy + h, dx : dx + w]
                )
        y = torch.cat((cls, conv.flatten(2).transpose(1, 2)), dim=1)
        expected = F.gelu(y) @ mlp.fc2.weight.T + mlp.fc2.bias
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def _small(**stage: object) -> dict[str, object]:
    base = {"embed": {"kind": "conv", "kernel": 3, "stride": 2}, "dim": 16, "depth": 2}
    base["mixer"] = {"kind": "attention", "heads": 2, "qkv": "sr", "kv_stride": 2}
    return {"input": {"size": 16}, "stages": [{**base, **stage}], "head": {"num_classes": 5}}


def test_mlp_dwconv_and_norm_out_reach_the_model_and_the_costs():
    plain = archsearch.build(archsearch.load_spec(_small()))
    pvt = archsearch.build(archsearch.load_spec(_small(mlp_dwconv=True, norm_out=True)))
    hidden = 16 * 4
    # two depthwise 3x3 convs with bias, one LayerNorm of 16 channels
    extra = 2 * (hidden * 9 + hidden) + 2 * 16
    count = sum(p.numel() for p in pvt.parameters())
    assert count - sum(p.numel() for p in plain.parameters()) == extra
    assert all(isinstance(b.mlp, MlpDwConv) for b in pvt.stages[0].blocks)
    assert pvt.stages[0].norm_out is not None and plain.stages[0].norm_out is None
    traced = count_traced(pvt, (1, 3, 16, 16))
    analytic = analytic_costs(pvt.plan)
    assert (analytic.params, analytic.macs, analytic.activations) == (
        traced.params,
        traced.macs,
        traced.activations,
    )


@pytest.mark.parametrize("cls_token", [False, True])
def test_norm_out_normalises_every_output_token(cls_token):
    model = archsearch.build(archsearch.load_spec(_small(norm_out=True, cls_token=cls_token))).eval()
    _randomise(model)
    stage = model.stages[0]
    x = torch.randn(2, 3, 16, 16)

    def tokens(fmap: torch.Tensor, cls: torch.Tensor | None) -> torch.Tensor:
        t = fmap.flatten(2).transpose(1, 2)
        return torch.cat((cls, t), dim=1) if cls_token else t

    with torch.no_grad():
        ours = tokens(*stage(x))
        norm, stage.norm_out = stage.norm_out, None
        raw = tokens(*stage(x))
        mean, var = raw.mean(-1, keepdim=True), raw.var(-1, keepdim=True, unbiased=False)
        expected = (raw - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias
    assert norm.eps == model.plan.spec.norm_eps
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- the zoo model


def test_zoo_pvt_v2_b1_is_timm_pvt_v2_b1():
    plan = normalize(archsearch.load_spec("pvt-v2-b1"))
    assert [s.out_shape.as_tuple() for s in plan.stages] == [
        (64, 56, 56),
        (128, 28, 28),
        (320, 14, 14),
        (512, 7, 7),
    ]
    assert [b.kv_stride for b in plan.blocks] == [8, 8, 4, 4, 2, 2, 1, 1]
    assert [b.mlp_ratio for b in plan.blocks] == [8, 8, 8, 8, 4, 4, 4, 4]
    assert all(s.norm_out for s in plan.stages) and all(b.mlp_dwconv for b in plan.blocks)
    assert plan.head.norm is False and plan.head.pool == "avg"
    costs = analytic_costs(plan)
    assert costs.params == 14_009_000
    assert costs.macs / 1e9 == pytest.approx(2.120, abs=5e-4)


@pytest.mark.parametrize("size", [224, 160])
def test_zoo_pvt_v2_b1_keys_and_values_are_a_fixed_grid(size):
    """Spatial reduction leaves a 7x7 (224 px) or 5x5 (160 px) key grid in every stage."""
    model = archsearch.create_model("pvt-v2-b1", input_size=size, num_classes=10).eval()
    grid = size // 32
    kv_tokens = []
    for stage in model.stages:
        for block in stage.blocks:
            block.attn.kv.register_forward_hook(lambda m, i, o: kv_tokens.append(o.shape[1]))
    with torch.inference_mode():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 10)
    assert kv_tokens == [grid * grid] * 6 + [grid * grid] * 2


def test_zoo_pvt_v2_b1_head_is_the_mean_of_the_last_map_then_linear():
    model = archsearch.create_model("pvt-v2-b1", input_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fmap, _ = model.forward_features(x)
        expected = F.linear(fmap.mean(dim=(-1, -2)), model.head.fc.weight, model.head.fc.bias)
        torch.testing.assert_close(model(x), expected)
    assert model.head.norm is None


# --------------------------------------------------------------------------- malformed fields
# The malformed PVT specs are data: tests/data/bad_specs/pvt/, run by tests/test_spec_errors.py.


def test_sr_with_a_map_that_is_not_a_multiple_of_the_stride_floors_like_pvt():
    spec = archsearch.load_spec(_small(mixer={"kind": "attention", "heads": 2, "qkv": "sr", "kv_stride": 3}))
    model = archsearch.build(spec).eval()  # an 8x8 map, a 3x3/3 conv: 2x2 keys
    with torch.no_grad():
        keys = model.stages[0].blocks[0].attn.sr(torch.randn(1, 16, 8, 8))
    assert keys.shape[-2:] == (2, 2)
    traced = count_traced(model, (1, 3, 16, 16))
    assert analytic_costs(model.plan).macs == traced.macs


@pytest.mark.parametrize(
    ("kv_stride", "q_stride", "says"),
    [
        (
            9,
            1,
            "kv_stride 9 is larger than the 8x8 token map block 0 sees, so the 9x9 spatial-reduction conv",
        ),
        # the stride at fault is q_stride: the message names it and its value, not kv_stride's conv
        (2, 16, "q_stride 16 is larger than the 8x8 token map block 0 sees, so the projection would only"),
    ],
)
def test_a_stride_larger_than_the_map_names_the_stride_at_fault(kv_stride, q_stride, says):
    from archsearch.core import CheckContext, FeatureShape, SourceMap
    from archsearch.kinds import MIXERS, AttentionMixer

    spec = archsearch.load_spec("pvt-v2-b1")
    mixer = AttentionMixer(kind="attention", heads=2, qkv="sr", kv_stride=kv_stride, q_stride=q_stride)
    ctx = CheckContext(spec, SourceMap())
    path = ("stages", 0, "mixer")
    assert MIXERS.get("attention").block_shape(ctx, path, 0, mixer, 1, 32, FeatureShape(32, 8, 8, 0)) is None
    (issue,) = ctx.issues
    assert says in issue.message
    assert (
        issue.value == max(kv_stride, q_stride) and issue.path[-1] == ("kv_stride", "q_stride")[q_stride > 8]
    )
    if q_stride > 8:
        assert "spatial-reduction" not in issue.message and f"{kv_stride}x{kv_stride}" not in issue.message
