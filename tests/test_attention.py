"""Attention against independent, straightforward implementations written here."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
import torch.nn.functional as F

import archsearch
from archsearch.ops import Attention, MHSA2d, fused_attention

ZOO = archsearch.zoo_names()


def _randomise_batchnorm(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()


def cvt_attention_reference(
    attn: Attention,
    x: torch.Tensor,
    h: int,
    w: int,
    cls_tokens: int,
    kernel: int,
    kv_stride: int,
    q_stride: int,
) -> torch.Tensor:
    """Official CvT ``Attention.forward`` re-written from its description (REFERENCE.md)."""
    b, _n, c = x.shape
    heads = attn.heads
    cls, tokens = torch.split(x, [cls_tokens, h * w], dim=1)
    fmap = tokens.transpose(1, 2).reshape(b, c, h, w)

    def conv_bn(proj, stride):
        if proj is None:
            return tokens
        if attn.method == "avg":
            y = F.avg_pool2d(fmap, kernel, stride, kernel // 2, ceil_mode=True)
        else:
            y = F.conv2d(fmap, proj.conv.weight, None, stride, kernel // 2, groups=c)
            bn = proj.bn
            y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return y.flatten(2).transpose(1, 2)

    q = torch.cat([cls, conv_bn(attn.conv_q, q_stride)], dim=1)
    k = torch.cat([cls, conv_bn(attn.conv_k, kv_stride)], dim=1)
    v = torch.cat([cls, conv_bn(attn.conv_v, kv_stride)], dim=1)

    def split(t, linear):
        return F.linear(t, linear.weight, linear.bias).reshape(b, -1, heads, c // heads).permute(0, 2, 1, 3)

    q, k, v = split(q, attn.proj_q), split(k, attn.proj_k), split(v, attn.proj_v)
    score = torch.einsum("bhlk,bhtk->bhlt", q, k) * c**-0.5  # official CvT: scale by the whole dim
    out = torch.einsum("bhlt,bhtv->bhlv", score.softmax(dim=-1), v)
    out = out.permute(0, 2, 1, 3).reshape(b, -1, c)
    return F.linear(out, attn.proj.weight, attn.proj.bias)


@pytest.mark.parametrize("qkv", ["dw_bn", "avg"])
@pytest.mark.parametrize("kv_stride", [1, 2, 3])
@pytest.mark.parametrize("cls_tokens", [0, 1])
@pytest.mark.parametrize("fused", [True, False])
def test_cvt_attention_matches_official_semantics(qkv, kv_stride, cls_tokens, fused):
    dim, heads, h, w = 24, 3, 7, 5
    q_stride = 2 if qkv == "dw_bn" and kv_stride == 3 else 1
    attn = Attention(
        dim, heads, qkv=qkv, kv_stride=kv_stride, q_stride=q_stride, scale="dim", cls_tokens=cls_tokens
    ).eval()
    _randomise_batchnorm(attn)
    x = torch.randn(2, cls_tokens + h * w, dim)
    with torch.no_grad(), fused_attention(fused):
        ours = attn(x, (h, w))
        expected = cvt_attention_reference(attn, x, h, w, cls_tokens, 3, kv_stride, q_stride)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_vit_attention_matches_explicit_formula():
    dim, heads = 32, 4
    attn = Attention(dim, heads).eval()
    x = torch.randn(2, 10, dim)
    with torch.no_grad():
        q, k, v = F.linear(x, attn.qkv.weight, attn.qkv.bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(2, 10, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
        p = (q @ k.transpose(-1, -2) * (dim // heads) ** -0.5).softmax(-1)
        expected = F.linear((p @ v).transpose(1, 2).reshape(2, 10, dim), attn.proj.weight, attn.proj.bias)
        torch.testing.assert_close(attn(x, (2, 5)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("relative", [True, False])
def test_botnet_mhsa_matches_per_position_loop(fused, relative):
    dim, heads, h, w = 16, 2, 3, 4
    d = dim // heads
    mhsa = MHSA2d(dim, heads, (h, w), relative=relative).eval()
    x = torch.randn(1, dim, h, w)
    with torch.no_grad(), fused_attention(fused):
        ours = mhsa(x)
        qkv = F.conv2d(x, mhsa.qkv.weight)[0]  # (3*dim, h, w)
        q, k, v = qkv.reshape(3, heads, d, h, w)
        expected = torch.zeros(heads, d, h, w)
        for n in range(heads):
            for y0 in range(h):
                for x0 in range(w):
                    logits = torch.zeros(h, w)
                    for y1 in range(h):
                        for x1 in range(w):
                            qv = q[n, :, y0, x0]
                            logits[y1, x1] = qv @ k[n, :, y1, x1] * d**-0.5
                            if relative:
                                r = mhsa.rel_h[y1 - y0 + h - 1] + mhsa.rel_w[x1 - x0 + w - 1]
                                logits[y1, x1] += qv @ r
                    p = logits.flatten().softmax(0).reshape(h, w)
                    expected[n, :, y0, x0] = (v[n] * p).sum(dim=(1, 2))
    torch.testing.assert_close(ours[0], expected.reshape(dim, h, w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ZOO)
def test_fused_and_explicit_attention_agree_on_the_zoo(name):
    spec = archsearch.load_spec(name, input_size=64 if name.startswith(("resnet", "bot")) else 112)
    model = archsearch.build(spec).eval()
    _randomise_batchnorm(model)
    x = torch.randn(2, 3, *spec.input.hw)
    has_attention = any(
        b.mixer.kind in ("attention", "mhsa", "window", "mobilevit", "halo", "pooling")
        or (b.mixer.kind == "longshort" and b.mixer.attention == "full")  # ViL's; long-short has its own
        for b in model.plan.blocks
    )
    with (
        torch.no_grad(),
        mock.patch.object(F, "scaled_dot_product_attention", wraps=F.scaled_dot_product_attention) as sdpa,
    ):
        with fused_attention(True):
            fused = model(x)
        assert sdpa.called == has_attention
        if not has_attention:  # the flag changes nothing here: the explicit pass would rerun the same
            return  # code (and RedNet's involutions, second order, overflow here)
        sdpa.reset_mock()
        with fused_attention(False):
            explicit = model(x)
        assert not sdpa.called
    # the fused kernels block the softmax differently: agree to float32 rounding, scaled to the output
    scale = explicit.abs().max().item()
    torch.testing.assert_close(fused, explicit, rtol=1e-4, atol=1e-5 * max(scale, 1.0))
