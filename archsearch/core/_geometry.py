"""Geometry of convolutions, pools and windows on a feature map (sizes in pixels or tokens)."""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "and_words",
    "as_list",
    "conv_out",
    "make_divisible",
    "pool_out_ceil",
    "scalar",
    "window_geometry",
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, at least ``divisor`` and never
    below 90% of ``value`` (MobileNetV2's and timm's rule for channel counts)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def pool_out_ceil(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a ``ceil_mode=True`` pooling, as PyTorch computes it."""
    out = math.ceil((size + 2 * padding - kernel) / stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def window_geometry(
    window: int, shift: bool, height: int, width: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The (height, width) window and (height, width) shift a window-attention block uses on a
    ``height`` x ``width`` map, as timm's ``_calc_window_shift``: a side no larger than the window
    makes the window that side and is not shifted; otherwise the shift is ``window // 2``."""
    shift_by = window // 2 if shift else 0
    return (
        (min(window, height), min(window, width)),
        (shift_by if height > window else 0, shift_by if width > window else 0),
    )


def and_words(words: tuple[str, ...] | list[str]) -> str:
    """``("a", "b", "c")`` -> ``"a, b and c"``."""
    return " and ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " and " + words[-1]


def scalar(value: int | list[int]) -> int:
    """A per-block value after normalisation resolved it to this block's scalar."""
    assert not isinstance(value, list), "per-block lists are resolved by normalisation"
    return value


def as_list(value: Any) -> list[Any]:
    """``value`` itself if a list, else ``[value]``."""
    return value if isinstance(value, list) else [value]
