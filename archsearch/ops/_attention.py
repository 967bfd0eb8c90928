"""Attention: the fused/explicit switch, global token attention (ViT, CvT) and BoTNet's MHSA."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import tokens_to_map
from ._resample import resample_rel_embed

__all__ = [
    "Attention",
    "MHSA2d",
    "attend",
    "fused_attention",
    "relative_logits",
    "relative_offsets",
    "set_fused_attention",
    "uses_fused_attention",
]

_FUSED = os.environ.get("ARCHSEARCH_FUSED_ATTN", "1") not in ("0", "false", "False")


def set_fused_attention(enabled: bool) -> None:
    """Run attention through ``F.scaled_dot_product_attention`` (True, the default) or the
    explicit softmax path (False). ``ARCHSEARCH_FUSED_ATTN=0`` sets the default off."""
    global _FUSED
    _FUSED = bool(enabled)


def uses_fused_attention() -> bool:
    return _FUSED


@contextlib.contextmanager
def fused_attention(enabled: bool) -> Iterator[None]:
    """Context manager form of :func:`set_fused_attention`."""
    previous = _FUSED
    set_fused_attention(enabled)
    try:
        yield
    finally:
        set_fused_attention(previous)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q k^T * scale + bias) v`` over ``(B, heads, tokens, head_dim)`` tensors."""
    if _FUSED:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    logits = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1) @ v


class _ConvProjection(nn.Module):
    """CvT's projection of a token map before the Linear: depthwise conv + BN, or avg-pool."""

    def __init__(self, method: str, dim: int, kernel: int, stride: int):
        super().__init__()
        if method == "dw_bn":
            self.conv: nn.Module = nn.Conv2d(dim, dim, kernel, stride, kernel // 2, groups=dim, bias=False)
            self.bn: nn.Module = nn.BatchNorm2d(dim)
        else:
            self.conv = nn.AvgPool2d(kernel, stride, kernel // 2, ceil_mode=True)
            self.bn = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Global multi-head attention over ``(B, cls + H*W, C)`` tokens.

    ``qkv='linear'`` is ViT's single fused Linear. ``dw_bn``/``avg`` follow official CvT: the
    map tokens go through a conv projection (strided for keys/values by ``kv_stride``, for
    queries by ``q_stride``), the class tokens bypass it and are re-attached in front, then
    separate Linear layers project q, k and v. ``sr`` is PVT v2's spatial reduction (timm
    ``pvt_v2.Attention``, ``linear=False``): ``q = Linear(x)``; for keys and values the map is
    reduced by a ``kv_stride`` x ``kv_stride`` conv of the same stride (with bias) and a
    LayerNorm (none of it at stride 1), the class tokens re-attached in front, then
    ``k, v = Linear(C, 2C)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        qkv: str = "linear",
        kernel: int = 3,
        kv_stride: int = 1,
        q_stride: int = 1,
        qkv_bias: bool = True,
        scale: str = "head",
        cls_tokens: int = 0,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.heads = heads
        self.cls_tokens = cls_tokens
        self.scale = (dim if scale == "dim" else dim // heads) ** -0.5
        self.method = qkv
        if qkv == "linear":
            self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        elif qkv == "sr":
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        else:
            self.conv_q = _ConvProjection("dw_bn", dim, kernel, q_stride) if qkv == "dw_bn" else None
            self.conv_k = _ConvProjection(qkv, dim, kernel, kv_stride)
            self.conv_v = _ConvProjection(qkv, dim, kernel, kv_stride)
            self.proj_q = nn.Linear(dim, dim, bias=qkv_bias)
            self.proj_k = nn.Linear(dim, dim, bias=qkv_bias)
            self.proj_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr: nn.Module | None = None
        self.sr_norm: nn.Module | None = None
        if qkv == "sr" and kv_stride > 1:  # registered after proj, in timm's order
            self.sr = nn.Conv2d(dim, dim, kv_stride, kv_stride)
            self.sr_norm = nn.LayerNorm(dim, eps=norm_eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        if self.method == "linear":
            q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        elif self.method == "sr":
            q = self._heads(self.q(x))
            kv_in = x
            if self.sr is not None:
                assert self.sr_norm is not None
                cls, tokens = x[:, : self.cls_tokens], x[:, self.cls_tokens :]
                fmap = tokens.transpose(1, 2).reshape(b, c, hw[0], hw[1])
                kv_in = self.sr_norm(self.sr(fmap).flatten(2).transpose(1, 2))
                if self.cls_tokens:
                    kv_in = torch.cat((cls, kv_in), dim=1)
            k, v = self.kv(kv_in).view(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        else:
            cls, tokens = x[:, : self.cls_tokens], x[:, self.cls_tokens :]
            fmap = tokens_to_map(tokens, hw)

            def project(conv: nn.Module | None, linear: nn.Module) -> torch.Tensor:
                t = tokens if conv is None else conv(fmap)
                if self.cls_tokens:
                    t = torch.cat((cls, t), dim=1)
                return self._heads(linear(t))

            q = project(self.conv_q, self.proj_q)
            k = project(self.conv_k, self.proj_k)
            v = project(self.conv_v, self.proj_v)
        out = attend(q, k, v, self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, -1, c))


class MHSA2d(nn.Module):
    """BoTNet multi-head self-attention on a ``(B, C, H, W)`` map.

    Logits are content-content ``q.k * head_dim**-0.5`` plus content-position ``q.r`` where
    ``r`` for a (query, key) pair is ``rel_h[dy] + rel_w[dx]``, learned per relative offset.

    The relative embeddings are learned for the ``size`` map the module is built for; on another
    map it raises ``ValueError`` unless ``dynamic_size`` is set (the model's ``dynamic_size:
    true``): then ``rel_h`` and ``rel_w`` are resized linearly to the map's offsets
    (:func:`resample_rel_embed`, timm's ``get_rel_pos``). Without them (``relative=False``) any
    map goes.
    """

    def __init__(
        self, dim: int, heads: int, size: tuple[int, int], *, relative: bool = True, qkv_bias: bool = False
    ):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.size = size
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=qkv_bias)
        self.relative = relative
        self.dynamic_size = False
        if relative:
            h, w = size
            self.rel_h = nn.Parameter(torch.randn(2 * h - 1, self.head_dim) * self.scale)
            self.rel_w = nn.Parameter(torch.randn(2 * w - 1, self.head_dim) * self.scale)
            # index[i, j] = j - i + (n - 1): the offset of key j from query i
            self.index_h: torch.Tensor
            self.index_w: torch.Tensor
            self.register_buffer("index_h", relative_offsets(h), persistent=False)
            self.register_buffer("index_w", relative_offsets(w), persistent=False)

    def position_logits(self, q: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """``(B, heads, H*W, H*W)`` logits of each query against each key position of the
        ``size`` map (default: the built one)."""
        b, heads, _, d = q.shape
        h, w = size or self.size
        if (h, w) == self.size:
            rel_h = self.rel_h[self.index_h]  # (H query rows, H key rows, d)
            rel_w = self.rel_w[self.index_w]
        else:
            rel_h = resample_rel_embed(self.rel_h, 2 * h - 1)[relative_offsets(h).to(q.device)]
            rel_w = resample_rel_embed(self.rel_w, 2 * w - 1)[relative_offsets(w).to(q.device)]
        return relative_logits(q.reshape(b, heads, h * w, d), rel_h, rel_w, (h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if self.relative and (h, w) != self.size and not self.dynamic_size:
            raise ValueError(
                f"MHSA's relative position logits were built for a {self.size[0]}x{self.size[1]} map but "
                f"got {h}x{w}; build the model at this input size or set dynamic_size: true in the spec"
            )
        # (B, 3, heads, tokens, head_dim) with head_dim contiguous: the fused CPU kernel needs it
        # (a strided head_dim silently falls back to the math path and materialises the logits).
        qkv = self.qkv(x).view(b, 3, self.heads, self.head_dim, h * w).transpose(-2, -1).contiguous()
        q, k, v = qkv.unbind(1)
        bias = self.position_logits(q, (h, w)) if self.relative else None
        out = attend(q, k, v, self.scale, bias)
        return out.transpose(-2, -1).reshape(b, c, h, w)


def relative_offsets(queries: int, keys: int | None = None) -> torch.Tensor:
    """``(queries, keys)`` indices into a table of ``2 * keys - 1`` relative embeddings along one
    side: ``index[i, j] = j - i + keys - 1`` for query ``i`` and key ``j`` (timm's
    ``rel_logits_1d``; ``keys`` defaults to ``queries``, BoTNet's whole map; HaloNet's windows are
    wider than their query blocks)."""
    keys = queries if keys is None else keys
    return torch.arange(keys)[None, :] - torch.arange(queries)[:, None] + keys - 1


def relative_logits(
    q: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor, q_size: tuple[int, int]
) -> torch.Tensor:
    """2-D relative position logits (BoTNet, HaloNet; Bello et al. 2019): the logit of a query
    at ``(y, x)`` against a key at ``(ky, kx)`` is ``q . (rel_h[y, ky] + rel_w[x, kx])``.

    ``q``: ``(..., qh * qw, d)`` queries of a ``q_size`` grid; ``rel_h``: ``(qh, kh, d)`` and
    ``rel_w``: ``(qw, kw, d)``, the tables already indexed per (query, key) pair (with
    :func:`relative_offsets`). Returns ``(..., qh * qw, kh * kw)``."""
    (qh, qw), d = q_size, q.shape[-1]
    kh, kw = rel_h.shape[1], rel_w.shape[1]
    q = q.reshape(*q.shape[:-2], qh, qw, d)
    if d == 1:
        # einsum contracts a size-1 dim as a broadcast multiply, which no MAC counter (ours,
        # fvcore, torch's) sees as a matmul; the same products as explicit batched matmuls
        lead = q.shape[:-3]
        rows = q.movedim(-3, 0).reshape(qh, -1, 1)  # (qh, ...*qw, 1)
        logits_h = torch.bmm(rows, rel_h.transpose(1, 2)).reshape(qh, *lead, qw, kh).movedim(0, -3)
        cols = q.movedim(-2, 0).reshape(qw, -1, 1)  # (qw, ...*qh, 1)
        logits_w = torch.bmm(cols, rel_w.transpose(1, 2)).reshape(qw, *lead, qh, kw).movedim(0, -2)
    else:
        logits_h = torch.einsum("...xyd,xpd->...xyp", q, rel_h)
        logits_w = torch.einsum("...xyd,yqd->...xyq", q, rel_w)
    logits = logits_h[..., :, None] + logits_w[..., None, :]
    return logits.reshape(*q.shape[:-3], qh * qw, kh * kw)
