"""The lambda layer (Bello, ICLR 2021, "LambdaNetworks: Modeling Long-Range Interactions Without
Attention"; timm ``layers/lambda_layer.py``, intra-depth ``u = 1``), in timm's module order so
weights copy across in registration order."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LambdaLayer"]


class LambdaLayer(nn.Module):
    """Multi-query lambda layer with a local-context position lambda, on a ``(B, C, H, W)`` map.

    A 1x1 conv projects to ``heads`` queries and one key of ``key_dim`` channels each and one
    value of ``C / heads`` channels (queries and values BatchNorm-ed, keys softmax-ed over
    positions). The content lambda ``K^T V`` (``key_dim`` x ``C / heads``) is shared by every
    position; the position lambdas come from a ``radius`` x ``radius`` conv over the values
    (Conv3d with ``key_dim`` outputs, with bias: one lambda per position from its neighbourhood).
    Each head's query applies both: output ``(B, C, H, W)``, 2x2 average-pooled (ceil mode) when
    ``stride`` is 2.
    """

    def __init__(
        self, dim: int, heads: int, key_dim: int, radius: int, stride: int = 1, qkv_bias: bool = False
    ):
        super().__init__()
        self.heads, self.key_dim, self.value_dim = heads, key_dim, dim // heads
        self.qkv = nn.Conv2d(dim, heads * key_dim + key_dim + self.value_dim, 1, bias=qkv_bias)
        self.norm_q = nn.BatchNorm2d(heads * key_dim)
        self.norm_v = nn.BatchNorm2d(self.value_dim)
        self.conv_lambda = nn.Conv3d(1, key_dim, (radius, radius, 1), padding=(radius // 2, radius // 2, 0))
        self.pool: nn.Module = nn.AvgPool2d(2, 2, ceil_mode=True) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        m, heads, kd, vd = h * w, self.heads, self.key_dim, self.value_dim
        q, k, v = torch.split(self.qkv(x), [heads * kd, kd, vd], dim=1)
        q = self.norm_q(q).reshape(b, heads, kd, m).transpose(-1, -2)  # (B, heads, M, K)
        v = self.norm_v(v).reshape(b, vd, m).transpose(-1, -2)  # (B, M, V)
        k = F.softmax(k.reshape(b, kd, m), dim=-1)  # (B, K, M)
        content = q @ (k @ v).unsqueeze(1)  # (B, heads, M, V)
        position_lambda = self.conv_lambda(v.reshape(b, 1, h, w, vd))  # (B, K, H, W, V)
        position_lambda = position_lambda.reshape(b, 1, kd, m, vd).transpose(2, 3)  # (B, 1, M, K, V)
        position = (q.unsqueeze(-2) @ position_lambda).squeeze(-2)  # (B, heads, M, V)
        return self.pool((content + position).transpose(-1, -2).reshape(b, c, h, w))
