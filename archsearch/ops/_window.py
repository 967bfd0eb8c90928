"""Swin: shifted-window attention on the token map, and 2x2 patch merging.

Both follow timm 1.0.31's ``swin_transformer.py`` (itself microsoft/Swin-Transformer) exactly, so
the reference weights load and give the same outputs, including where the map is not a multiple of
the window: there timm rolls the unpadded map, zero-pads it at the bottom/right and labels the
shift regions on the padded grid, and padded tokens take part in attention (they are not masked).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ._attention import attend

if TYPE_CHECKING:  # the schema sits above this layer
    from ..spec import MergeEmbed

__all__ = [
    "PatchMerging",
    "WindowAttention",
    "WindowLayout",
    "merge_embed",
    "relative_position_index",
    "shift_mask",
    "window_order",
]

#: The additive logit mask of pairs a shift brought together (timm, official Swin: -100, not -inf).
MASKED = -100.0


def relative_position_index(win_h: int, win_w: int) -> torch.Tensor:
    """``(N, N)`` index into the ``(2*win_h - 1) * (2*win_w - 1)`` bias table of the offset of key
    ``j`` from query ``i`` (tokens in row-major window order), as timm/official Swin number it."""
    rows = torch.arange(win_h).repeat_interleave(win_w)
    cols = torch.arange(win_w).repeat(win_h)
    dy = rows[:, None] - rows[None, :] + win_h - 1
    dx = cols[:, None] - cols[None, :] + win_w - 1
    return dy * (2 * win_w - 1) + dx


def _region_labels(size: int, window: int, shift: int) -> torch.Tensor:
    """Shift regions along one side of the padded map: [0, size-window), [size-window, size-shift),
    [size-shift, size) get labels 0, 1, 2 (all 0 where the side is not shifted)."""
    labels = torch.zeros(size, dtype=torch.long)
    if shift:
        labels[size - window :] = 1
        labels[size - shift :] = 2
    return labels


def window_order(
    size: tuple[int, int], padded: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]
) -> torch.Tensor:
    """``(H*W,)``: where each token of the row-major ``size`` map lands among the windows of the
    rolled (by ``-shift``) and zero-padded map, windows row-major, tokens row-major in each."""
    (h, w), wp, (wh, ww) = size, padded[1], window
    rows = (torch.arange(h) - shift[0]) % h  # the row each token is rolled to
    cols = (torch.arange(w) - shift[1]) % w
    win = (rows // wh)[:, None] * (wp // ww) + (cols // ww)[None, :]
    within = (rows % wh)[:, None] * ww + (cols % ww)[None, :]
    return (win * (wh * ww) + within).reshape(-1)


def shift_mask(padded: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor:
    """``(windows, N, N)`` additive mask: ``MASKED`` where query and key lie in different shift
    regions of the ``padded`` map (timm's ``get_attn_mask``), 0 elsewhere."""
    (hp, wp), (wh, ww) = padded, window
    labels = _region_labels(hp, wh, shift[0])[:, None] * 3 + _region_labels(wp, ww, shift[1])[None, :]
    windows = labels.view(hp // wh, wh, wp // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    different = windows[:, :, None] != windows[:, None, :]
    return torch.zeros(different.shape).masked_fill(different, MASKED)


@dataclass(frozen=True)
class WindowLayout:
    """Where the tokens of one map go among the windows: ``order`` (token -> place among the
    windows), ``source`` (place -> token, where nothing is padded), both ``None`` where the windows
    are the map's own order; the bottom/right ``pad``, the ``grid`` of windows, the number of
    ``padded_tokens`` and the ``(windows, 1, N, N)`` shift ``mask`` (``None`` without a shift)."""

    order: torch.Tensor | None
    source: torch.Tensor | None
    pad: tuple[int, int]
    grid: tuple[int, int]
    padded_tokens: int
    mask: torch.Tensor | None

    @classmethod
    def of(cls, size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> WindowLayout:
        """The layout of ``window`` x ``shift`` windows on a ``size`` map (timm's roll, pad and
        partition)."""
        (h, w), (wh, ww) = size, window
        pad = (-h % wh, -w % ww)
        padded = (h + pad[0], w + pad[1])
        order = source = None
        if any(shift) or any(pad) or ww != w:
            order = window_order(size, padded, window, shift)
            if not any(pad):
                source = torch.empty_like(order).index_copy_(0, order, torch.arange(order.numel()))
        mask = shift_mask(padded, window, shift)[:, None] if any(shift) else None
        grid = (padded[0] // wh, padded[1] // ww)
        return cls(order, source, pad, grid, padded[0] * padded[1], mask)

    def to(self, device: torch.device, dtype: torch.dtype) -> WindowLayout:
        """The layout on ``device``, its mask in ``dtype`` (the indices stay integers)."""

        def move(t: torch.Tensor | None, dtype: torch.dtype | None = None) -> torch.Tensor | None:
            return None if t is None else t.to(device, dtype)

        return replace(self, order=move(self.order), source=move(self.source), mask=move(self.mask, dtype))


class WindowAttention(nn.Module):
    """Multi-head attention within (shifted) windows of a ``(B, H*W, C)`` token map.

    ``window`` and ``shift`` are the effective (height, width) values for the ``size`` map the
    block is built for (:func:`archsearch.core.window_geometry`). The relative position bias table
    (``relative``) and, for shifted blocks, the region mask are added to the logits; the mask and
    the table index are buffers, computed once. Rolling, padding and partitioning the map is one
    gather of the tokens into window order (and its inverse one gather back), by a precomputed index.

    On another map the module raises ``ValueError`` unless ``dynamic_size`` is set (the model's
    ``dynamic_size: true``): then the same window, shift and bias table are laid out on that map
    (:meth:`layout`), zero-padded where the windows do not tile it, as timm's Swin with
    ``strict_img_size=False`` (``dynamic_mask``) does.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        size: tuple[int, int],
        window: tuple[int, int],
        shift: tuple[int, int],
        *,
        relative: bool = True,
        qkv_bias: bool = True,
    ):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.size, self.window, self.shift = size, window, shift
        self.tokens = window[0] * window[1]
        self.dynamic_size = False
        layout = WindowLayout.of(size, window, shift)
        self.pad, self.grid, self.padded_tokens = layout.pad, layout.grid, layout.padded_tokens
        # window_order: token -> its place among the windows; window_source: place -> token (no
        # padding). Both None where the windows are the map's own order (no shift or padding, and
        # windows spanning whole rows).
        self.window_order: torch.Tensor | None
        self.window_source: torch.Tensor | None
        self.register_buffer("window_order", layout.order, persistent=False)
        self.register_buffer("window_source", layout.source, persistent=False)
        self._layouts: dict[tuple[int, int, torch.device, torch.dtype], WindowLayout] = {}
        self.relative_position_bias_table: nn.Parameter | None = None
        self.relative_position_index: torch.Tensor | None
        if relative:
            wh, ww = window
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", relative_position_index(wh, ww), persistent=False)
        else:
            self.relative_position_index = None
        self.attn_mask: torch.Tensor | None
        self.register_buffer("attn_mask", layout.mask, persistent=False)  # (windows, 1, N, N)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def logit_bias(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        """``(1 or windows, heads, N, N)``: relative position bias plus the shift ``mask`` (the
        built map's ``attn_mask`` or a :class:`WindowLayout`'s)."""
        bias = None
        if self.relative_position_bias_table is not None:
            assert self.relative_position_index is not None
            n = self.tokens
            table = self.relative_position_bias_table[self.relative_position_index.view(-1)]
            # contiguous while small, so that the sum with the mask and SDPA need no copy
            bias = table.view(n, n, self.heads).permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            bias = mask if bias is None else bias + mask
        return bias

    def layout(self, hw: tuple[int, int], device: torch.device, dtype: torch.dtype) -> WindowLayout:
        """The layout of the windows on an ``hw`` map other than the built one (``dynamic_size``):
        the built window and shift (as timm's ``dynamic_mask``), padding where they do not tile;
        computed once per map size, device and dtype (of the mask)."""
        key = (hw[0], hw[1], device, dtype)
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= 8:  # a few sizes in turn (multi-scale training) stay cached
                self._layouts.clear()
            layout = self._layouts[key] = WindowLayout.of(hw, self.window, self.shift).to(device, dtype)
        return layout

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, _, c = x.shape
        h, w = hw
        if hw == self.size:
            order, source, grid, padded_tokens = (
                self.window_order,
                self.window_source,
                self.grid,
                self.padded_tokens,
            )
            mask = self.attn_mask
        elif self.dynamic_size:
            layout = self.layout(hw, x.device, x.dtype)
            order, source, grid, padded_tokens = (
                layout.order,
                layout.source,
                layout.grid,
                layout.padded_tokens,
            )
            mask = layout.mask
        else:
            raise ValueError(
                f"window attention was built for a {self.size[0]}x{self.size[1]} map but got {h}x{w}; "
                "build the model at this input size or set dynamic_size: true in the spec"
            )
        if order is None:
            windows = x
        elif source is not None:
            windows = x.index_select(1, source)  # roll + partition in one copy
        else:  # roll + pad + partition: padded places stay zero
            windows = x.new_zeros(b, padded_tokens, c).index_copy_(1, order, x)
        count = grid[0] * grid[1]
        qkv = self.qkv(windows).view(b * count, self.tokens, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B * windows, heads, N, head_dim)
        bias = self.logit_bias(mask)
        if bias is not None and bias.shape[0] > 1:  # per-window mask: one copy per image (a view at batch 1)
            bias = bias.expand(b, *bias.shape).reshape(-1, *bias.shape[1:])
        out = attend(q, k, v, self.scale, bias).transpose(1, 2).reshape(b, padded_tokens, c)
        if order is not None:  # back to map order: unpartition, crop, roll back
            out = out.index_select(1, order)
        # the projection is per token: after cropping, so padded tokens cost nothing
        return self.proj(out)


class PatchMerging(nn.Module):
    """Swin's 2x2 patch merging on a ``(B, C, H, W)`` map: concatenate each 2x2 neighbourhood
    (timm's order: (0,0), (1,0), (0,1), (1,1)), LayerNorm(4C), Linear(4C -> dim, no bias).
    An odd side is zero-padded at the bottom/right first."""

    def __init__(self, in_channels: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels, eps=eps)
        self.reduction = nn.Linear(4 * in_channels, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.permute(0, 2, 3, 1)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        h2, w2 = x.shape[1] // 2, x.shape[2] // 2
        x = x.reshape(b, h2, 2, w2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, h2, w2, 4 * c)
        return self.reduction(self.norm(x)).permute(0, 3, 1, 2)


def merge_embed(embed: MergeEmbed, in_channels: int, dim: int, eps: float) -> nn.Module:
    return PatchMerging(in_channels, dim, eps)
