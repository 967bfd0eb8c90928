"""Resampling of size-dependent tables to another grid: absolute position tables, Swin's relative
position bias tables and BoTNet's relative embeddings.

Used at run time by models with ``dynamic_size: true`` and when loading weights saved at another
input size (:func:`archsearch.load_weights`). Each follows the timm function named in its
docstring, so weights fine-tuned with timm's recipe (224 -> 384) resample to the same values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["resample_abs_pos_embed", "resample_bias_table", "resample_rel_embed"]


def resample_abs_pos_embed(
    table: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int],
    prefix_tokens: int = 0,
    *,
    antialias: bool = True,
) -> torch.Tensor:
    """An absolute position table on another token grid.

    ``table``: ``(1, prefix_tokens + old_h * old_w, C)``, the prefix (class / distillation tokens)
    first, the grid row-major. Returns ``(1, prefix_tokens + new_h * new_w, C)``: the prefix rows
    unchanged, the grid resampled by bicubic interpolation (``align_corners=False``,
    ``antialias=True`` by default) in float32, then cast back to the table's dtype. This is timm's
    ``resample_abs_pos_embed`` (``timm/layers/pos_embed.py``) with its defaults. Raises
    ``ValueError`` when the table does not hold ``prefix_tokens + old_h * old_w`` rows.
    """
    (oh, ow), (nh, nw) = old_grid, new_grid
    if table.ndim != 3 or table.shape[1] != prefix_tokens + oh * ow:
        raise ValueError(
            f"a position table for a {oh}x{ow} grid and {prefix_tokens} prefix tokens has shape "
            f"(1, {prefix_tokens + oh * ow}, C), got {tuple(table.shape)}"
        )
    if (oh, ow) == (nh, nw):
        return table
    prefix, grid = table[:, :prefix_tokens], table[:, prefix_tokens:]
    c = table.shape[-1]
    grid = grid.float().reshape(1, oh, ow, c).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(nh, nw), mode="bicubic", align_corners=False, antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, nh * nw, c).to(table.dtype)
    return torch.cat((prefix, grid), dim=1) if prefix_tokens else grid


def resample_bias_table(
    table: torch.Tensor, old_window: tuple[int, int], new_window: tuple[int, int]
) -> torch.Tensor:
    """A Swin relative position bias table for another window.

    ``table``: ``((2*old_h - 1) * (2*old_w - 1), heads)``, offsets row-major. Returns
    ``((2*new_h - 1) * (2*new_w - 1), heads)``: each head's ``(2h-1) x (2w-1)`` offset grid resized
    by bicubic interpolation, ``align_corners=False``, no antialiasing, in float32 and cast back.
    This is how official Swin (``utils.load_pretrained``) and timm's
    ``resize_rel_pos_bias_table_simple`` (``timm/layers/pos_embed_rel.py``) resize it for
    fine-tuning at another window (timm's Swin checkpoint filter uses BEiT's geometric
    ``resize_rel_pos_bias_table`` instead). Raises ``ValueError`` on a table of another length.
    """
    src = (2 * old_window[0] - 1, 2 * old_window[1] - 1)
    dst = (2 * new_window[0] - 1, 2 * new_window[1] - 1)
    if table.ndim != 2 or table.shape[0] != src[0] * src[1]:
        raise ValueError(
            f"a bias table for a {old_window[0]}x{old_window[1]} window has shape "
            f"({src[0] * src[1]}, heads), got {tuple(table.shape)}"
        )
    if src == dst:
        return table
    heads = table.shape[1]
    grid = table.float().transpose(0, 1).reshape(1, heads, *src)
    grid = F.interpolate(grid, size=dst, mode="bicubic", align_corners=False)
    return grid.reshape(heads, dst[0] * dst[1]).transpose(0, 1).to(table.dtype)


def resample_rel_embed(rel: torch.Tensor, length: int) -> torch.Tensor:
    """BoTNet's relative embeddings along one side for another map side.

    ``rel``: ``(2n - 1, d)``, one row per offset ``-(n-1) .. n-1``. Returns ``(length, d)``
    (``length = 2n' - 1``), each channel resized by linear interpolation (``align_corners=False``)
    in float32 and cast back, as timm's ``get_rel_pos`` (``timm/models/vision_transformer_sam.py``,
    from ViTDet) resizes its decomposed relative embeddings; timm's BoTNet (``PosEmbedRel``)
    itself only runs at its built size.
    """
    if rel.shape[0] == length:
        return rel
    resized = F.interpolate(
        rel.float().transpose(0, 1)[None], size=length, mode="linear", align_corners=False
    )
    return resized[0].transpose(0, 1).to(rel.dtype)
