"""ConViT's gated positional self-attention (d'Ascoli et al., "ConViT: Improving Vision Transformers
with Soft Convolutional Inductive Biases", ICML 2021; timm ``convit.GPSA``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GatedPositionalAttention", "relative_indices"]


def relative_indices(hw: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(1, N, N, 3)`` for the ``N = H*W`` tokens of a map (row-major): for query ``n`` and key
    ``m`` their offsets ``(x_m - x_n, y_m - y_n, dx**2 + dy**2)`` (timm ``GPSA.get_rel_indices`` on a
    square map; any ``H x W`` here)."""
    h, w = hw
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    x, y = xs.flatten().to(torch.float32), ys.flatten().to(torch.float32)
    dx, dy = x[None, :] - x[:, None], y[None, :] - y[:, None]
    return torch.stack((dx, dy, dx**2 + dy**2), dim=-1)[None].to(device=device, dtype=dtype)


class GatedPositionalAttention(nn.Module):
    """GPSA on ``(B, H*W, dim)`` tokens (no class tokens): per head, a softmax of content scores
    ``q k^T * head_dim**-0.5`` and a softmax of position scores (a Linear(3, heads) of each
    query-key offset, :func:`relative_indices`) mixed by a learned gate ``sigmoid(g)``,
    renormalised, applied to ``v``, then the output Linear. Parameters in timm's order
    (``gating_param``, ``qk``, ``v``, ``proj``, ``pos_proj``). ConViT's ``local_init`` (v as the
    identity, position scores as a local kernel) is an initialisation and not reproduced here."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = False):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.gating_param = nn.Parameter(torch.ones(heads))
        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.pos_proj = nn.Linear(3, heads)
        self._rel: tuple[tuple[object, ...], torch.Tensor] | None = None

    def _indices(self, hw: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        key = (hw, like.device, like.dtype)
        if self._rel is None or self._rel[0] != key:
            self._rel = (key, relative_indices(hw, like.device, like.dtype))
        return self._rel[1]

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        heads = self.heads
        qk = self.qk(x).reshape(b, n, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k = qk[0], qk[1]
        # per image, as timm (so costs scale with the batch like every other op)
        rel = self._indices(hw, x).expand(b, -1, -1, -1)
        pos = self.pos_proj(rel).permute(0, 3, 1, 2).softmax(dim=-1)  # (B, heads, N, N)
        content = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        gate = torch.sigmoid(self.gating_param).view(1, -1, 1, 1)
        attn = (1.0 - gate) * content + gate * pos
        attn = attn / attn.sum(dim=-1, keepdim=True)
        v = self.v(x).reshape(b, n, heads, c // heads).permute(0, 2, 1, 3)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))
