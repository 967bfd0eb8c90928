"""Small layers shared by the blocks: activations, norms, stochastic depth, the MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DropPath",
    "LayerNorm2d",
    "Mlp",
    "MlpDwConv",
    "QuickGELU",
    "SqueezeExcite",
    "make_act",
    "make_norm2d",
    "se_reduced",
    "tokens_to_map",
]


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the GELU approximation of CLIP and official CvT."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


_ACTS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "quick_gelu": QuickGELU,
    "silu": nn.SiLU,
}


def make_act(name: str, inplace: bool = False) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "silu":
        return nn.SiLU(inplace=inplace)
    return _ACTS[name]()


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def make_norm2d(kind: str, channels: int, eps: float) -> nn.Module:
    if kind == "layer":
        return LayerNorm2d(channels, eps=eps)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """Linear -> activation -> Linear, on tokens."""

    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = make_act(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def tokens_to_map(tokens: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """``(B, H*W, C)`` tokens -> a ``(B, C, H, W)`` view in channels-last memory.

    ``tokens.transpose(1, 2).reshape(...)`` gives the same values, but at batch 1 its batch stride
    is C, which makes PyTorch pick the channels-first conv path and copy (official CvT's einops
    rearrange keeps channels-last); this view keeps the batch stride H*W*C.
    """
    b, _, c = tokens.shape
    return tokens.reshape(b, hw[0], hw[1], c).permute(0, 3, 1, 2)


class MlpDwConv(nn.Module):
    """PVT v2's MLP on tokens: Linear -> depthwise 3x3 conv (with bias) on the map -> activation
    -> Linear (timm ``MlpWithDepthwiseConv``). Class tokens in front bypass the conv."""

    def __init__(self, dim: int, hidden: int, act: str, cls_tokens: int = 0):
        super().__init__()
        self.cls_tokens = cls_tokens
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = make_act(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = self.fc1(x)
        cls, tokens = x[:, : self.cls_tokens], x[:, self.cls_tokens :]
        tokens = self.dwconv(tokens_to_map(tokens, hw)).flatten(2).transpose(1, 2)
        x = torch.cat((cls, tokens), dim=1) if self.cls_tokens else tokens
        return self.fc2(self.act(x))


class PosConv(nn.Module):
    """Conditional position encoding: a PEG (Chu et al., "Conditional Positional Encodings for Vision
    Transformers", CPVT, 2021; Twins; timm ``twins.PosConv`` at stride 1). The ``(B, cls + H*W, C)``
    tokens as a ``(B, C, H, W)`` map, plus a depthwise 3x3 conv (with bias) of that map; class tokens
    in front pass unchanged."""

    def __init__(self, dim: int, cls_tokens: int = 0):
        super().__init__()
        self.cls_tokens = cls_tokens
        self.proj = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        cls, tokens = x[:, : self.cls_tokens], x[:, self.cls_tokens :]
        grid = tokens_to_map(tokens, hw)
        tokens = (self.proj(grid) + grid).flatten(2).transpose(1, 2)
        return torch.cat((cls, tokens), dim=1) if self.cls_tokens else tokens


class SqueezeExcite(nn.Module):
    """Squeeze-excitation (Hu et al. 2018; timm ``SEModule`` / ``SqueezeExcite``) on a
    ``(B, C, H, W)`` map: global average pool -> 1x1 conv (bias) to ``reduced`` channels ->
    activation -> 1x1 conv (bias) back to ``channels`` -> sigmoid, which scales each channel."""

    def __init__(self, channels: int, reduced: int, act: str):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = make_act(act, inplace=True)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * gate.sigmoid()


def se_reduced(c_in: int, ratio: float) -> int:
    """Reduced channels of a squeeze-excitation: ``round(ratio * c_in)`` of the block's *input*
    channels, as timm's RegNetY and EfficientNet count them (whatever width the SE sits on)."""
    return round(c_in * ratio)
