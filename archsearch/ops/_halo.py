"""HaloNet's blocked local self-attention (Vaswani et al., CVPR 2021, "Scaling Local Self-Attention
for Parameter Efficient Visual Backbones"; timm ``layers/halo_attn.py``), with BoTNet's relative
position logits (:func:`relative_logits`), in timm's module order."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._attention import attend, relative_logits, relative_offsets

__all__ = ["HaloAttention", "RelativeTables"]


class RelativeTables(nn.Module):
    """Learned relative embeddings along height and width (``2 * keys - 1`` rows of ``dim``
    each, normal with std ``scale``) and the index of each (query, key) pair into them."""

    def __init__(self, queries: int, keys: int, dim: int, scale: float):
        super().__init__()
        self.rel_h = nn.Parameter(torch.randn(2 * keys - 1, dim) * scale)
        self.rel_w = nn.Parameter(torch.randn(2 * keys - 1, dim) * scale)
        self.index: torch.Tensor
        self.register_buffer("index", relative_offsets(queries, keys), persistent=False)

    def forward(self, q: torch.Tensor, q_size: tuple[int, int]) -> torch.Tensor:
        """``(..., qh * qw, d)`` queries -> ``(..., qh * qw, keys * keys)`` logits."""
        return relative_logits(q, self.rel_h[self.index], self.rel_w[self.index], q_size)


class HaloAttention(nn.Module):
    """Multi-head attention of each ``block`` x ``block`` block of the map to its block widened by
    ``halo`` pixels on every side (zero-padded at the borders), with relative position logits.

    ``(B, dim, H, W)`` -> ``(B, dim, ceil(H / stride), ceil(W / stride))``. ``stride`` (1 or 2)
    must divide ``block``: a downsampling layer strides its query projection, so each block holds
    ``block / stride`` queries (timm ``HaloAttn`` with ``avg_down=False``). A map whose sides are
    not multiples of ``block`` (timm asserts they are) is zero-padded at the bottom and right to
    the next multiple, as the halo pads the borders, and the output cropped. Queries and keys have
    ``dim / heads`` channels (timm's default ``qk_ratio`` 1 on a width that is a multiple of 8 x
    heads), scale ``head_dim ** -0.5`` on the content logits only.
    """

    def __init__(self, dim: int, heads: int, block: int, halo: int, stride: int = 1, qkv_bias: bool = False):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.block, self.halo, self.stride = block, halo, stride
        self.window = block + 2 * halo
        self.queries = block // stride
        self.scale = self.head_dim**-0.5
        self.q = nn.Conv2d(dim, dim, 1, stride=stride, bias=qkv_bias)
        self.kv = nn.Conv2d(dim, 2 * dim, 1, bias=qkv_bias)
        self.pos_embed = RelativeTables(self.queries, self.window, self.head_dim, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h0, w0 = x.shape
        pad_h, pad_w = -h0 % self.block, -w0 % self.block
        if pad_h or pad_w:
            x = F.pad(x, [0, pad_w, 0, pad_h])
        h, w = h0 + pad_h, w0 + pad_w
        nh, nw, bq, heads, d = h // self.block, w // self.block, self.queries, self.heads, self.head_dim
        n = nh * nw
        q = self.q(x).reshape(b * heads, d, nh, bq, nw, bq).permute(0, 1, 3, 5, 2, 4)
        # (B*heads, blocks, queries, d), head_dim contiguous: the fused CPU kernel needs it (strided,
        # it silently falls back to the math path and materialises the logits; see MHSA2d)
        q = q.reshape(b * heads, d, bq * bq, n).transpose(1, 3).contiguous()
        kv = F.pad(self.kv(x), [self.halo] * 4)
        kv = kv.unfold(2, self.window, self.block).unfold(3, self.window, self.block)
        kv = kv.reshape(b * heads, 2 * d, n, -1).permute(0, 2, 3, 1)  # (B*heads, blocks, window², 2d)
        k, v = (t.contiguous() for t in kv.split([d, d], dim=-1))
        bias = self.pos_embed(q, (bq, bq))
        out = attend(q, k, v, self.scale, bias).transpose(1, 3)  # (B*heads, d, queries, blocks)
        out = out.reshape(b * heads * d, bq, bq, nh, nw).permute(0, 3, 1, 4, 2)
        out = out.reshape(b, c, h // self.stride, w // self.stride)
        if pad_h or pad_w:
            out = out[:, :, : -(-h0 // self.stride), : -(-w0 // self.stride)]
        return out
