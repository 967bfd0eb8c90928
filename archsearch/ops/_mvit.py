"""MViT v2's pooling attention and its block (Li et al. 2022, "MViTv2: Improved Multiscale Vision
Transformers for Classification and Detection"; timm ``mvitv2.py``: ``MultiScaleAttention``,
``MultiScaleBlock``, ``cal_rel_pos_type``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core import BlockPlan
from ._attention import attend, relative_logits
from ._blocks import BuildMixer, pool_tokens
from ._layers import DropPath, Mlp
from ._resample import resample_rel_embed

__all__ = ["MultiScaleBlock", "PoolingAttention", "mvit_offsets", "mvit_table_length"]


def mvit_offsets(queries: int, keys: int) -> torch.Tensor:
    """``(queries, keys)`` indices into MViT v2's table of relative positions along one side
    (timm ``cal_rel_pos_type``): the finer of the two grids counts in steps of the coarser one's
    spacing, ``index[i, j] = i * rq - j * rk + (keys - 1) * rk`` truncated, where ``rq = max(keys /
    queries, 1)`` and ``rk = max(queries / keys, 1)``; computed as timm does (float32, then long)."""
    q_ratio, k_ratio = max(keys / queries, 1.0), max(queries / keys, 1.0)
    dist = torch.arange(queries).unsqueeze(-1) * q_ratio - torch.arange(keys).unsqueeze(0) * k_ratio
    dist += (keys - 1) * k_ratio
    return dist.long()


def mvit_table_length(size: int, q_stride: int, kv_stride: int, queries: int, keys: int) -> int:
    """Rows of MViT v2's relative-position table along one side of a ``size`` map whose queries are
    pooled to ``queries`` and keys to ``keys`` positions: timm's ``2 * max(size // q_stride, size //
    kv_stride) - 1``, or more where that is too short for the offsets (an odd map: timm fails there
    with an index error)."""
    timm = 2 * max(size // q_stride, size // kv_stride) - 1
    q_ratio, k_ratio = max(keys / queries, 1.0), max(queries / keys, 1.0)
    return max(timm, math.floor((queries - 1) * q_ratio + (keys - 1) * k_ratio) + 1)


class PoolingAttention(nn.Module):
    """MViT v2 pooling attention on tokens: ``(B, cls + H*W, dim_in)`` on an ``H x W`` map ->
    ``(B, cls + H'*W', dim)``, ``H' = ceil(H / q_stride)``.

    One Linear makes queries, keys and values at the output width ``dim`` (timm's
    ``expand_attn``); each is pooled per head on the map by a depthwise ``kernel`` x ``kernel`` conv
    (stride ``q_stride`` for queries, ``kv_stride`` for keys and values, padding ``kernel // 2``, no
    bias, shared by the heads) and a LayerNorm over the head dim (class tokens bypass the conv, not
    the norm); a kernel and stride of 1 skips both. The logits get the decomposed relative position
    bias ``q . rel_h[y, ky] + q . rel_w[x, kx]`` (tables sized for the built map, see
    :func:`mvit_table_length`); with ``residual_pooling`` the pooled queries are added to the
    attention's output before the output Linear. Attention runs through :func:`attend` (fused
    SDPA with the bias as mask, or the explicit path).
    """

    def __init__(
        self,
        dim_in: int,
        dim: int,
        heads: int,
        size: tuple[int, int],
        *,
        kernel: int = 3,
        q_stride: int = 1,
        kv_stride: int = 1,
        cls_tokens: int = 0,
        qkv_bias: bool = True,
        residual_pooling: bool = True,
        rel_pos: bool = True,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.heads, self.head_dim, self.dim = heads, dim // heads, dim
        self.scale = self.head_dim**-0.5
        self.cls_tokens = cls_tokens
        self.size = size
        self.residual_pooling = residual_pooling
        self.dynamic_size = False
        self.qkv = nn.Linear(dim_in, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        d = self.head_dim

        def pool(stride: int) -> tuple[nn.Module | None, nn.Module | None]:
            if kernel == 1 and stride == 1:
                return None, None
            conv = nn.Conv2d(d, d, kernel, stride, kernel // 2, groups=d, bias=False)
            return conv, nn.LayerNorm(d, eps=eps)

        self.pool_q, self.norm_q = pool(q_stride)
        self.pool_k, self.norm_k = pool(kv_stride)
        self.pool_v, self.norm_v = pool(kv_stride)
        self.strides = (q_stride, kv_stride)
        self.rel_pos = rel_pos
        if rel_pos:
            (h, w), pad = size, kernel // 2
            q_hw = [(n + 2 * pad - kernel) // q_stride + 1 for n in (h, w)]
            k_hw = [(n + 2 * pad - kernel) // kv_stride + 1 for n in (h, w)]
            rows = [
                mvit_table_length(n, q_stride, kv_stride, q, k)
                for n, q, k in zip(size, q_hw, k_hw, strict=True)
            ]
            self.built_hw = ((q_hw[0], q_hw[1]), (k_hw[0], k_hw[1]))
            self.rel_pos_h = nn.Parameter(torch.zeros(rows[0], d))
            self.rel_pos_w = nn.Parameter(torch.zeros(rows[1], d))
            nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
            nn.init.trunc_normal_(self.rel_pos_w, std=0.02)
            self.index_h: torch.Tensor
            self.index_w: torch.Tensor
            self.register_buffer("index_h", mvit_offsets(q_hw[0], k_hw[0]), persistent=False)
            self.register_buffer("index_w", mvit_offsets(q_hw[1], k_hw[1]), persistent=False)

    def _pool(
        self, t: torch.Tensor, hw: tuple[int, int], pool: nn.Module | None, norm: nn.Module | None
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(B, heads, cls + H*W, d)`` -> pooled and normed, with the pooled map's sides."""
        if pool is None or norm is None:
            return t, hw
        b, heads, _, d = t.shape
        c = self.cls_tokens
        fmap = t[:, :, c:].reshape(b * heads, hw[0], hw[1], d).permute(0, 3, 1, 2).contiguous()
        fmap = pool(fmap)
        out_hw = (fmap.shape[2], fmap.shape[3])
        t_out = fmap.reshape(b, heads, d, -1).transpose(2, 3)
        if c:
            t_out = torch.cat((t[:, :, :c], t_out), dim=2)
        return norm(t_out), out_hw

    def _bias(
        self, q: torch.Tensor, hw: tuple[int, int], q_hw: tuple[int, int], k_hw: tuple[int, int]
    ) -> torch.Tensor:
        """``(B, heads, Nq, Nk)`` relative position logits (zero on class-token rows and columns) of
        the queries pooled from an ``hw`` map."""
        if (q_hw, k_hw) == self.built_hw:
            rel_h, rel_w = self.rel_pos_h[self.index_h], self.rel_pos_w[self.index_w]
        elif self.dynamic_size:  # resized linearly to the table a model built at hw has (timm's
            # checkpoint_filter_fn does this when loading weights at another size)
            tables = []
            sides = ((self.rel_pos_h, hw[0], q_hw[0], k_hw[0]), (self.rel_pos_w, hw[1], q_hw[1], k_hw[1]))
            for table, side, nq, nk in sides:
                rows = mvit_table_length(side, *self.strides, nq, nk)
                tables.append(resample_rel_embed(table, rows)[mvit_offsets(nq, nk).to(table.device)])
            rel_h, rel_w = tables
        else:
            raise ValueError(
                f"MViT's relative position tables were built for a {self.size[0]}x{self.size[1]} map; build "
                "the model at this input size or set dynamic_size: true in the spec"
            )
        c = self.cls_tokens
        bias = relative_logits(q[:, :, c:], rel_h, rel_w, q_hw)
        return F.pad(bias, (c, 0, c, 0)) if c else bias

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, q_hw = self._pool(q, hw, self.pool_q, self.norm_q)
        k, k_hw = self._pool(k, hw, self.pool_k, self.norm_k)
        v, _ = self._pool(v, hw, self.pool_v, self.norm_v)
        out = attend(q, k, v, self.scale, self._bias(q, hw, q_hw, k_hw) if self.rel_pos else None)
        if self.residual_pooling:
            out = out + q
        return self.proj(out.transpose(1, 2).reshape(b, -1, self.dim))


class MultiScaleBlock(nn.Module):
    """MViT v2 block (timm ``MultiScaleBlock``, ``expand_attn=True``) on tokens: ``(tokens (B, cls +
    H*W, dim_in), (H, W))`` -> ``(tokens (B, cls + H'*W', dim), (H', W'))``.

    ``x = shortcut + attn(norm1(x))``, ``x = x + mlp(norm2(x))``; the shortcut is ``x`` itself, or
    a Linear of ``norm1(x)`` where the width changes (as the original), max-pooled (kernel
    ``q_stride + 1``, padding half that) where the queries are strided; class tokens skip the pool.
    """

    def __init__(self, plan: BlockPlan, build_mixer: BuildMixer):
        super().__init__()
        assert plan.mlp_ratio is not None
        c_in, c, s = plan.dim_in, plan.dim, plan.q_stride
        self.cls_tokens = plan.in_shape.cls_tokens
        self.norm1 = nn.LayerNorm(c_in, eps=plan.norm_eps)
        self.shortcut_proj = nn.Linear(c_in, c) if c_in != c else None
        self.shortcut_pool = nn.MaxPool2d(s + 1, s, (s + 1) // 2) if s > 1 else None
        self.attn = build_mixer(plan)  # (tokens, hw) -> tokens on the q_stride-pooled map, dim wide
        self.drop_path = DropPath(plan.drop_path)
        self.norm2 = nn.LayerNorm(c, eps=plan.norm_eps)
        self.mlp = Mlp(c, int(c * plan.mlp_ratio), plan.act)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        y = self.norm1(x)
        shortcut = x if self.shortcut_proj is None else self.shortcut_proj(y)
        out_hw = hw
        if self.shortcut_pool is not None:
            shortcut, out_hw = pool_tokens(self.shortcut_pool, shortcut, hw, self.cls_tokens)
        x = shortcut + self.drop_path(self.attn(y, hw))
        return x + self.drop_path(self.mlp(self.norm2(x))), out_hw
