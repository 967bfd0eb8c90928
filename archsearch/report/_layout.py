"""Geometry the figures need so that no text is cut or collides: text widths, bounded axis ranges,
whole-number ticks, and the parallel-coordinates layout."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BOUNDS", "ParallelLayout", "axis_range", "integer_step", "parallel_layout", "text_px"]

#: Metrics with hard bounds in the unit the figures show them in: accuracy is a percentage.
BOUNDS: dict[str, tuple[float, float]] = {"accuracy": (0.0, 100.0)}
#: Average advance of a character in the report's sans-serif font, as a share of the font size
#: (DejaVu Sans, which headless Chromium falls back to, measures 0.51–0.56 for lower-case text and
#: digits; Segoe UI and SF a little less).
_EM = 0.56


def text_px(text: str, size: float) -> float:
    """Estimated width in pixels of ``text`` at font ``size`` (upper case and ``m``/``w`` wider)."""
    wide = sum(c.isupper() or c in "mwMW@%" for c in text)
    return (len(text) + 0.35 * wide) * _EM * size


def axis_range(values: Iterable[float], metric: str, pad: float = 0.05) -> list[float] | None:
    """``[lo, hi]`` around ``values`` padded by ``pad`` of their span, never past the metric's
    bounds (:data:`BOUNDS`: an accuracy axis never shows more than 100%); None for a metric
    without bounds (the plotting library's own range is fine) or without finite values."""
    if metric not in BOUNDS:
        return None
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return None
    lo, hi = min(finite), max(finite)
    margin = (hi - lo) * pad if hi > lo else 1.0
    low, high = BOUNDS[metric]
    return [max(low, lo - margin), min(high, hi + margin)]


def integer_step(lo: float, hi: float, ticks: int = 10) -> int:
    """A whole tick step (1, 2, 5, 10, 20, 50, ...) giving about ``ticks`` ticks over
    ``[lo, hi]``: trial numbers are whole, so their axis never shows 0.5."""
    raw = max((hi - lo) / max(ticks, 1), 1.0)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)  # pragma: no cover


@dataclass(frozen=True)
class ParallelLayout:
    """Label angle, margins and the least width of a parallel-coordinates plot."""

    label_angle: int
    """0 (horizontal labels) when every label fits between its neighbours, else -90 (vertical)."""
    margin: dict[str, int]
    min_width: int
    """Pixels the plot needs so that no axis' tick labels reach the axis to its left."""


def parallel_layout(
    dimensions: Sequence[dict[str, Any]],
    *,
    label_size: float,
    tick_size: float,
    colorbar_px: int = 110,
    available_px: int = 1100,
) -> ParallelLayout:
    """Where the axes of a ``go.Parcoords`` with these ``dimensions`` must go.

    Plotly spaces the axes evenly over the plot width, draws each axis' tick labels to its left
    and its range labels (the extreme values, on numeric axes) centred above and below it. Each
    gap must hold the tick labels of the axis on its right and half of both axes' range labels;
    the left margin holds the first axis' tick labels, the right margin the colour bar. Labels
    are horizontal when each fits in a gap (and the first and last in their margins), else
    vertical, with a top margin as tall as the longest.
    """
    ticks = [max((text_px(t, tick_size) for t in _tick_texts(d)), default=0.0) for d in dimensions]
    extents = [max((text_px(t, tick_size) for t in _extent_texts(d)), default=0.0) for d in dimensions]
    labels = [text_px(str(d.get("label", "")), label_size) for d in dimensions]
    gaps = [
        max(ticks[i] + 16, (extents[i - 1] + extents[i]) / 2 + 12, 34.0) for i in range(1, len(dimensions))
    ]
    gap = max(gaps, default=0.0)
    left = int(max(ticks[0] if ticks else 0.0, (extents[0] if extents else 0.0) / 2) + 24)
    horizontal_gap = (available_px - left - colorbar_px) / max(len(dimensions) - 1, 1)
    fits = all(w + 12 <= max(gap, horizontal_gap) for w in labels) and (
        not labels or (labels[0] / 2 <= left and labels[-1] / 2 + 10 <= colorbar_px)
    )
    if fits:
        top = int(label_size * 1.6 + tick_size * 1.6 + 24)
        angle = 0
    else:
        top = int(max(labels, default=0.0) + tick_size * 1.6 + 30)
        angle = -90
    width = int(left + gap * max(len(dimensions) - 1, 1) + colorbar_px)
    return ParallelLayout(angle, {"l": left, "r": colorbar_px, "t": top, "b": 40}, width)


def _tick_texts(dimension: dict[str, Any]) -> list[str]:
    if "ticktext" in dimension:
        return [str(t) for t in dimension["ticktext"]]
    return _extent_texts(dimension)  # plotly's own ticks lie between the extremes


def _extent_texts(dimension: dict[str, Any]) -> list[str]:
    if "ticktext" in dimension:
        return []  # a category axis shows its categories, no range labels
    values = _finite(dimension.get("values", []))
    return [_short(min(values)), _short(max(values))] if values else []


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            out.append(x)
    return out


def _short(value: float) -> str:
    """A number as the ``.3~r`` tick format writes it (three significant digits), with a spare
    character for a thousands separator."""
    if value == 0:
        return "0"
    digits = max(3, math.floor(math.log10(abs(value))) + 1)
    return f"{value:,.{max(0, 3 - digits)}f}" + ("," if abs(value) >= 1000 else "")
