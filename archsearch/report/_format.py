"""How reports name and print metrics and choices."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

__all__ = [
    "choice_name",
    "format_metric",
    "format_value",
    "is_missing",
    "metric_label",
    "metric_title",
    "metric_unit_scale",
    "slug",
]

_LABELS = {
    "accuracy": "accuracy (%)",
    "retrained_accuracy": "retrained accuracy (%)",
    "macs": "MACs (M)",
    "params": "params (M)",
    "latency_ms": "latency (ms)",
    "latency_measured_ms": "measured latency (ms)",
    "memory_mb": "memory (MB)",
    "duration_s": "duration (s)",
}
#: Metrics shown scaled: accuracy as a percentage, MACs and params in millions.
_SCALES = {"accuracy": 100.0, "retrained_accuracy": 100.0, "macs": 1e-6, "params": 1e-6}


def is_missing(value: Any) -> bool:
    """None, NaN and pandas' NA are all "no value"."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA
    except (TypeError, ValueError):
        return False


def metric_label(metric: str) -> str:
    """``macs`` -> ``MACs (M)``: an axis title, in the unit :func:`metric_unit_scale` gives."""
    return _LABELS.get(metric, metric)


def metric_title(metric: str) -> str:
    """``macs`` -> ``MACs``: a table header (the cells carry their units)."""
    return _LABELS.get(metric, metric).split(" (")[0] if metric != "macs" else "MACs"


def metric_unit_scale(metric: str) -> float:
    """Factor from the stored value to the unit of :func:`metric_label` (accuracy 100, MACs 1e-6)."""
    return _SCALES.get(metric, 1.0)


def format_metric(metric: str, value: Any) -> str:
    """A metric for tables: ``accuracy 0.91234`` -> ``91.23%``, ``macs 12345678`` -> ``12.35 M``."""
    if is_missing(value):
        return "—"
    x = float(value)
    if metric in ("accuracy", "retrained_accuracy"):
        return f"{100 * x:.2f}%"
    if metric in ("macs", "params"):
        return _si(x)
    if metric in ("latency_ms", "latency_measured_ms"):
        return f"{x:.3g} ms"
    if metric == "memory_mb":
        return f"{x:.1f} MB"
    return f"{x:.4g}"


def _si(x: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.2f} {suffix}"
    return f"{x:.0f}"


def format_value(value: Any) -> str:
    """A choice's value as written in YAML: ``4.0`` -> ``4``, missing -> ``—``."""
    if is_missing(value):
        return "—"
    if isinstance(value, bool | np.bool_):  # pandas hands out NumPy booleans from a bool column
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def choice_name(column: str) -> str:
    """``choice.stages.1.mixer`` -> ``stages.1.mixer``."""
    return column.removeprefix("choice.")


def slug(text: str) -> str:
    """A file-name-safe version of a study name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "study"
