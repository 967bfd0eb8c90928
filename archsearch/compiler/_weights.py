"""Loading weights saved at another input size: position and bias tables resampled to the model's.

Fine-tuning at a higher resolution (DeiT and Swin at 224 -> 384) starts from weights trained at
the lower one; everything but the size-dependent tables loads as it is. timm does this in each
model's ``checkpoint_filter_fn``; here one function walks the model's modules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from ..ops import (
    MHSA2d,
    TokenStage,
    WindowAttention,
    resample_abs_pos_embed,
    resample_bias_table,
    resample_rel_embed,
)
from ..spec import load_spec, normalize
from ._model import ArchNet

__all__ = ["resample_state_dict"]

InputSize = int | tuple[int, int] | list[int]


def resample_state_dict(
    model: ArchNet, state_dict: Mapping[str, torch.Tensor], *, input_size: InputSize | None = None
) -> dict[str, torch.Tensor]:
    """``state_dict`` (of a model of the same spec saved at another input size) with its
    size-dependent tables made to fit ``model``; every other entry as it is.

    * ``absolute`` position tables ``stages.i.pos_embed``, ``(1, cls + h*w, C)``: the grid
      resampled to the model's by bicubic interpolation with antialiasing, class tokens kept
      (:func:`archsearch.ops.resample_abs_pos_embed`, timm's ``resample_abs_pos_embed``);
    * ``sinusoidal`` tables: the model's own (they are computed, not learned);
    * Swin ``relative_position_bias_table``, ``((2wh-1)(2ww-1), heads)``, where the model's window
      differs (a spec with ``window: 12`` at 384 px; a window that shrank to a small map): bicubic
      (:func:`archsearch.ops.resample_bias_table`, official Swin's fine-tuning recipe);
    * BoTNet ``rel_h`` / ``rel_w``, ``(2n-1, d)``: linear (:func:`archsearch.ops.resample_rel_embed`).

    ``input_size``: the ``(height, width)`` (or side) the weights were saved at; the old grids and
    windows are then those of the spec built at that size. Without it, they are taken to be square,
    as timm assumes (a non-square table raises ``ValueError`` asking for ``input_size``). A table
    whose channels or heads differ from the model's raises ``ValueError`` (another architecture).
    """
    old: dict[str, nn.Module] = {}
    if input_size is not None:
        spec = load_spec(model.plan.spec, input_size=input_size)
        with torch.device("meta"):  # only the old geometry is needed, no memory
            old = dict(ArchNet(normalize(spec)).named_modules())
    out = dict(state_dict)
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, TokenStage) and module.pos_embed is not None:
            key, was = prefix + "pos_embed", old.get(name)
            table = out.get(key)
            known = was.grid if isinstance(was, TokenStage) else None
            if table is None or (table.shape == module.pos_embed.shape and known in (None, module.grid)):
                continue
            _check_channels(key, table, module.pos_embed)
            if module.pos_kind == "sinusoidal":
                out[key] = module.pos_embed.detach().clone()
                continue
            before = known or _square_grid(key, table, module.cls_tokens)
            out[key] = resample_abs_pos_embed(table, module.grid, before, module.cls_tokens)
        elif isinstance(module, WindowAttention) and module.relative_position_bias_table is not None:
            key, was = prefix + "relative_position_bias_table", old.get(name)
            table = out.get(key)
            own = module.relative_position_bias_table
            known = was.window if isinstance(was, WindowAttention) else None
            if table is None or (table.shape == own.shape and known in (None, module.window)):
                continue
            _check_channels(key, table, own)
            out[key] = resample_bias_table(table, known or _square_window(key, table), module.window)
        elif isinstance(module, MHSA2d) and module.relative:
            for side, n in (("rel_h", module.size[0]), ("rel_w", module.size[1])):
                key = prefix + side
                table = out.get(key)
                if table is not None and table.shape[0] != 2 * n - 1:
                    _check_channels(key, table, getattr(module, side))
                    out[key] = resample_rel_embed(table, 2 * n - 1)
    return out


def _check_channels(key: str, table: torch.Tensor, own: torch.Tensor) -> None:
    if table.ndim != own.ndim or table.shape[-1] != own.shape[-1]:
        raise ValueError(
            f"{key}: the weights hold a {tuple(table.shape)} table where the model has "
            f"{tuple(own.shape)}; only the positions may differ (the weights are of another architecture)"
        )


def _square_grid(key: str, table: torch.Tensor, prefix: int) -> tuple[int, int]:
    positions = table.shape[1] - prefix
    side = math.isqrt(max(positions, 0))
    if side * side != positions or side == 0:
        raise ValueError(
            f"{key}: the weights' table has {positions} grid positions (after {prefix} class tokens), "
            "not a square grid; pass input_size= the size the weights were saved at"
        )
    return side, side


def _square_window(key: str, table: torch.Tensor) -> tuple[int, int]:
    offsets = table.shape[0]
    side = math.isqrt(offsets)
    if side * side != offsets or side % 2 == 0:
        raise ValueError(
            f"{key}: the weights' table has {offsets} offsets, not those of a square window "
            "((2w-1)^2); pass input_size= the size the weights were saved at"
        )
    return (side + 1) // 2, (side + 1) // 2
