"""Transformer-LS attention for vision (Zhu et al., NeurIPS 2021, "Long-Short Transformer: Efficient
Transformers for Language and Vision"), exactly as the official NVIDIA/transformer-ls ImageNet
models compute it: ``imagenet/models/layers/transformer_ls.py::AttentionLS`` (long-short attention)
and ``imagenet/models/layers/full_attention.py::Attention`` (ViL's full attention with 2-D relative
position bias, which those models use in their stages with the arch flag ``s0``).

Parameter names are the official ones, so an official checkpoint's attention weights load by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._attention import attend
from ._resample import resample_bias_table
from ._window import relative_position_index

__all__ = ["DUAL_LN_EPS", "LongShortAttention", "ViLAttention", "long_short_geometry", "ls_relative_index"]

#: LayerNorm eps of the DualLN pair: the official ``nn.LayerNorm(dim)`` default, whatever the
#: model's ``norm_eps``.
DUAL_LN_EPS = 1e-5


def long_short_geometry(window: int) -> tuple[int, int, int]:
    """``(side, kv_width, table_size)`` of the short-term branch for segment size ``window``:
    each ``window`` x ``window`` segment of queries attends to the ``kv_width`` x ``kv_width``
    keys around it (``side = max(window // 2, 1)`` tokens on each side, zero-padded and masked at
    the border), and the relative position bias table has ``table_size`` rows (the official
    ``2 * (w + w_pad - 1) * (2 * w_pad + w + 1) + 1``, ``w_pad = window // 2``)."""
    side = max(window // 2, 1)
    pad = window // 2
    return side, window + 2 * side, 2 * (window + pad - 1) * (2 * pad + window + 1) + 1


def ls_relative_index(window: int) -> torch.Tensor:
    """``(window^2, kv_width^2)`` index into the long-short bias table of each (query, key) pair of a
    segment, numbered as the official code numbers them: the row offset is multiplied by
    ``2 * w_pad + window`` (less than the column offsets' range, so some offsets share an entry,
    as they do there)."""
    pad = window // 2
    kv = torch.arange(-pad, pad + window)
    q = torch.arange(window)
    n = kv.numel()
    ky, kx = kv.repeat_interleave(n), kv.repeat(n)
    qy, qx = q.repeat_interleave(window), q.repeat(window)
    shift = pad + window - 1
    dy = qy[:, None] - ky[None, :] + shift
    dx = qx[:, None] - kx[None, :] + shift
    return dy * (2 * pad + window) + dx


def _border_mask(hw: tuple[int, int], window: int, like: torch.Tensor) -> torch.Tensor:
    """``(gh, gw, 1, kv_width^2)`` additive mask of each segment's neighbourhood: ``-inf`` where a
    key lies outside the ``H x W`` map (the zero padding), 0 elsewhere. Where the map tiles into
    segments this is the official ``fill_(float('-inf'))`` of the first and last segments' sides."""
    side, kv_width, _ = long_short_geometry(window)
    masks = []
    for size in hw:
        groups = -(-size // window)
        pos = torch.arange(groups, device=like.device)[:, None] * window - side
        pos = pos + torch.arange(kv_width, device=like.device)[None, :]
        zeros = torch.zeros(pos.shape, device=like.device, dtype=like.dtype)
        masks.append(zeros.masked_fill(pos < 0, -torch.inf).masked_fill(pos >= size, -torch.inf))
    rows, cols = masks
    mask = rows[:, None, :, None] + cols[None, :, None, :]
    return mask.reshape(rows.shape[0], cols.shape[0], 1, kv_width * kv_width)


class LongShortAttention(nn.Module):
    """Long-short attention over ``(B, cls + H*W, C)`` tokens (``cls`` is 0 or 1).

    Queries are scaled by ``head_dim ** -0.5``; keys and values go through one LayerNorm
    (``dual_ln_full``). Each map token attends jointly (one softmax) to

    * long term: ``rank`` landmarks per head, ``P k`` and ``P v`` with ``P = softmax`` over the map
      tokens of a Linear of the input (``to_dynamic_projection``), LayerNormed (``dual_ln_dp``);
    * short term: the ``kv_width`` x ``kv_width`` keys around its ``window`` x ``window`` segment
      (:func:`long_short_geometry`), with a relative position bias where ``relative``;
    * the class token's key.

    The class token attends to its own key and to the map tokens' outputs (the official
    "post_cls" variant). A map that does not tile into segments is zero-padded at the bottom/right
    to whole segments (the padded keys masked, the padded queries cropped; the official code
    requires whole segments). ``window=0`` drops the short branch and
    ``rank=0`` the long one. Output: the Linear ``proj`` of the heads' concatenation.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        rank: int,
        cls_tokens: int,
        *,
        relative: bool = True,
        qkv_bias: bool = True,
    ):
        super().__init__()
        self.heads, self.window, self.rank, self.cls_tokens = heads, window, rank, cls_tokens
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if rank > 0:
            self.to_dynamic_projection = nn.Linear(dim, rank * heads)
        self.dual_ln_dp = nn.LayerNorm(dim, eps=DUAL_LN_EPS)
        self.dual_ln_full = nn.LayerNorm(dim, eps=DUAL_LN_EPS)
        self.relative = relative and window > 0
        self.local_relative_position_bias_table: nn.Parameter | None = None
        self.relative_position_index: torch.Tensor | None
        if self.relative:
            _, _, size = long_short_geometry(window)
            self.local_relative_position_bias_table = nn.Parameter(torch.zeros(size, heads))
            nn.init.trunc_normal_(self.local_relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", ls_relative_index(window), persistent=False)
        else:
            self.relative_position_index = None

    def _segments(self, t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """``(B, h, H*W, d)`` -> ``(B, h, gh, gw, window^2, d)``, the map zero-padded at the
        bottom/right to whole segments (one group of all tokens without a short branch)."""
        b, heads, n, d = t.shape
        w = self.window
        if not w:
            return t.reshape(b, heads, 1, 1, n, d)
        (h, wd), (gh, gw) = hw, (-(-hw[0] // w), -(-hw[1] // w))
        t = t.reshape(b, heads, h, wd, d)
        if (gh * w, gw * w) != hw:
            t = F.pad(t, (0, 0, 0, gw * w - wd, 0, gh * w - h))
        t = t.reshape(b, heads, gh, w, gw, w, d).permute(0, 1, 2, 4, 3, 5, 6)
        return t.reshape(b, heads, gh, gw, w * w, d)

    def _tiles(self, t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """``(B, h, H*W, d)`` -> ``(B, h, gh, gw, kv_width^2, d)``: the zero-padded keys or values
        around each segment (the official ``get_overlapping_tiles``)."""
        b, heads, _, d = t.shape
        w = self.window
        side, kv_width, _ = long_short_geometry(w)
        (h, wd), (gh, gw) = hw, (-(-hw[0] // w), -(-hw[1] // w))
        pad = (0, 0, side, side + gw * w - wd, side, side + gh * w - h)
        t = F.pad(t.reshape(b, heads, h, wd, d), pad)
        t = t.unfold(2, kv_width, w).unfold(3, kv_width, w)  # (B, h, gh, gw, d, K, K)
        return t.permute(0, 1, 2, 3, 5, 6, 4).reshape(b, heads, gh, gw, kv_width * kv_width, d)

    def _merge(self, t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Inverse of :meth:`_segments`: ``(B, h, gh, gw, w^2, d)`` -> ``(B, h, H*W, d)``, the
        padding cropped."""
        b, heads, gh, gw, _, d = t.shape
        w = self.window
        if not w:
            return t.reshape(b, heads, -1, d)
        t = t.reshape(b, heads, gh, gw, w, w, d).permute(0, 1, 2, 4, 3, 5, 6)
        t = t.reshape(b, heads, gh * w, gw * w, d)
        if (gh * w, gw * w) != hw:
            t = t[:, :, : hw[0], : hw[1]]
        return t.reshape(b, heads, hw[0] * hw[1], d)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        g, heads, w, r = self.cls_tokens, self.heads, self.window, self.rank
        q, k, v = self.qkv(x).chunk(3, dim=2)
        q = q.mul(self.scale)
        k, v = self.dual_ln_full(k), self.dual_ln_full(v)
        q, k, v = (t.reshape(b, n, heads, c // heads).transpose(1, 2) for t in (q, k, v))
        q_cls, q = q[:, :, :g], q[:, :, g:]
        k_cls, k = k[:, :, :g], k[:, :, g:]
        v_cls, v = v[:, :, :g], v[:, :, g:]
        q_seg = self._segments(q, hw)  # (B, h, gh, gw, w^2, d)
        dots, split = [], []
        if r:  # long term: dynamic projection to r landmarks
            p = self.to_dynamic_projection(x[:, g:]).transpose(1, 2).reshape(b, heads, r, -1)
            p = p.softmax(dim=-1, dtype=torch.float32).to(x.dtype)
            k_lm = self.dual_ln_dp((p @ k).transpose(1, 2).reshape(b, r, c)).reshape(b, r, heads, -1)
            v_lm = self.dual_ln_dp((p @ v).transpose(1, 2).reshape(b, r, c)).reshape(b, r, heads, -1)
            dots.append(q_seg @ k_lm.permute(0, 2, 3, 1)[:, :, None, None])
            split.append(r)
        if w:  # short term: the segment's neighbourhood
            kv_width = long_short_geometry(w)[1]
            v_tiles = self._tiles(v, hw)
            win = q_seg @ self._tiles(k, hw).transpose(-1, -2)
            win.add_(_border_mask(hw, w, win))
            if self.local_relative_position_bias_table is not None:
                assert self.relative_position_index is not None
                bias = self.local_relative_position_bias_table[self.relative_position_index]  # (w^2, K^2, h)
                win.add_(bias.permute(2, 0, 1)[:, None, None])
            dots.append(win)
            split.append(kv_width * kv_width)
        if g:
            dots.append(q_seg @ k_cls.transpose(-1, -2)[:, :, None, None])
            split.append(g)
        attn = torch.cat(dots, dim=-1).softmax(dim=-1, dtype=torch.float32).to(x.dtype)
        pieces = list(attn.split(split, dim=-1))
        attn_lm = pieces.pop(0) if r else None
        attn_win = pieces.pop(0) if w else None
        out = attn_win @ v_tiles if attn_win is not None else 0
        if attn_lm is not None:
            out = out + attn_lm @ v_lm.transpose(1, 2)[:, :, None, None]
        if g:
            out = out + pieces.pop(0) * v_cls[:, :, None, None]
        assert isinstance(out, torch.Tensor)
        out = self._merge(out, hw)  # (B, h, H*W, d)
        if g:  # the class token attends to its key and to the map tokens' outputs
            cls_dots = torch.cat((q_cls @ k_cls.transpose(-1, -2), q_cls @ out.transpose(-1, -2)), dim=-1)
            cls_attn = cls_dots.softmax(dim=-1, dtype=torch.float32).to(x.dtype)
            cls_next = cls_attn[..., g:] @ out + cls_attn[..., :g] @ v_cls
            out = torch.cat((cls_next, out), dim=2)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class ViLAttention(nn.Module):
    """ViL's full attention over ``(B, cls + H*W, C)`` tokens with a 2-D relative position bias
    (official ``full_attention.py::Attention``, which the Transformer-LS ImageNet models use where
    their arch flag is ``s0``): ``softmax(q k^T * head_dim**-0.5 + bias) v``, then ``proj``.

    The bias (``relative``) is a Swin-style ``(2H-1)(2W-1)`` x heads table for map-token pairs,
    plus, with class tokens, ``g2l_relative_position_bias`` ``(2, heads, cls)`` (row 0: class
    query -> map key, row 1: map query -> class key) and ``g2g_relative_position_bias``
    ``(heads, cls, cls)``. The table is made for the ``size`` map; on another map the module raises
    ``ValueError`` unless ``dynamic_size`` is set, when the table is resized bicubically
    (:func:`resample_bias_table`).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        size: tuple[int, int],
        cls_tokens: int,
        *,
        relative: bool = True,
        qkv_bias: bool = True,
    ):
        super().__init__()
        self.heads, self.size, self.cls_tokens = heads, size, cls_tokens
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.relative = relative
        self.dynamic_size = False
        self.relative_position_index: torch.Tensor
        self.local_relative_position_bias_table: nn.Parameter | None = None
        self.g2l_relative_position_bias: nn.Parameter | None = None
        self.g2g_relative_position_bias: nn.Parameter | None = None
        if relative:
            h, w = size
            table = torch.zeros((2 * h - 1) * (2 * w - 1), heads)
            self.local_relative_position_bias_table = nn.Parameter(table)
            nn.init.trunc_normal_(self.local_relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", relative_position_index(h, w), persistent=False)
            if cls_tokens:
                self.g2l_relative_position_bias = nn.Parameter(torch.zeros(2, heads, cls_tokens))
                self.g2g_relative_position_bias = nn.Parameter(torch.zeros(heads, cls_tokens, cls_tokens))
                nn.init.trunc_normal_(self.g2l_relative_position_bias, std=0.02)
                nn.init.trunc_normal_(self.g2g_relative_position_bias, std=0.02)

    def position_bias(self, hw: tuple[int, int]) -> torch.Tensor:
        """``(heads, N, N)`` bias of every (query, key) pair of ``cls + H*W`` tokens."""
        assert self.local_relative_position_bias_table is not None
        table: torch.Tensor = self.local_relative_position_bias_table
        if hw != self.size:
            if not self.dynamic_size:
                raise ValueError(
                    f"ViL attention's relative position bias was built for a {self.size[0]}x{self.size[1]} "
                    f"map but got {hw[0]}x{hw[1]}; build the model at this input size or set "
                    "dynamic_size: true in the spec"
                )
            table = resample_bias_table(table, self.size, hw)
            index = relative_position_index(*hw).to(table.device)
        else:
            index = self.relative_position_index
        n = hw[0] * hw[1]
        bias = table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)  # (heads, n, n)
        if not self.cls_tokens:
            return bias
        g2l, g2g = self.g2l_relative_position_bias, self.g2g_relative_position_bias
        assert g2l is not None and g2g is not None
        top = torch.cat((g2g, g2l[0].unsqueeze(-1).expand(-1, -1, n)), dim=-1)
        rest = torch.cat((g2l[1].unsqueeze(1).expand(-1, n, -1), bias), dim=-1)
        return torch.cat((top, rest), dim=1)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = self.position_bias(hw).unsqueeze(0) if self.relative else None
        out = attend(q, k, v, self.scale, bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))
