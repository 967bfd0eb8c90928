"""Drift calibration: a fixed reference timed with a latency table and again when predicting.

A machine's speed moves: a laptop throttles when hot and speeds up on power, a shared cloud VM
follows its neighbours' load (on the 2-core VM here, by tens of percent over seconds to minutes).
A latency table is filled at one speed and read at another, so every prediction is off by one
common factor, the ratio of the two speeds. The reference measures that factor: a small fixed
model (:func:`reference_call`: plain torch convolutions, attention and an MLP, about 27 million
multiply-accumulates per image, ~1 ms on one CPU core at batch 1; it does not depend on the space
or on archsearch's own blocks, so a table's reference stays comparable while archsearch changes)
is timed

* with the table: in every interleaved round that times pieces or whole members for it, at
  several places in each round (:data:`COPIES`), so its median is the machine's speed over that
  timing; the first timing's median becomes the table's ``reference``, and the times of every
  later one are scaled by ``table reference / that timing's reference`` before they are stored,
  so a table filled over several minutes holds all its entries at one speed;
* when predicting: :meth:`~archsearch.cost.LatencyPredictor.calibrate` times it again now, and
  predictions are multiplied by ``now / table`` (:class:`Calibration`), or, to check predictions
  against members timed together, in the same interleaved rounds as those members
  (:meth:`~archsearch.cost.LatencyPredictor.calibrate_with`).

This is the common trick of benchmark suites that time a fixed workload beside the measured one
(e.g. the "calibration loop" of ``pyperformance``/``perf`` and the reference runs of SPEC), made
per table. It corrects a speed shared by everything the machine runs; it cannot correct what
slows some pieces and not others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._latency import DEFAULT_STATISTIC, LatencyResult, Timed

__all__ = ["COPIES", "REFERENCE", "Calibration", "reference_call", "reference_entry", "reference_item"]

REFERENCE = "conv-attention-mlp-v1"
"""The reference's name, stored with its time: a table whose reference has another name (another
reference model) is re-referenced, not compared."""

COPIES = 8
"""Places the reference takes in each interleaved round (at most; one per four other items)."""


class _Reference(nn.Module):
    """``(B, 3, 32, 32)`` -> conv 3x3 to 32 channels -> conv 3x3 stride 2 to 64 -> 256 tokens of 64
    -> LayerNorm, q/k/v, 4-head attention, projection -> LayerNorm, MLP 64-256-64 (GELU)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.norm1, self.norm2 = nn.LayerNorm(64), nn.LayerNorm(64)
        self.qkv, self.proj = nn.Linear(64, 192), nn.Linear(64, 64)
        self.fc1, self.fc2 = nn.Linear(64, 256), nn.Linear(256, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(F.relu(self.conv1(x)))
        t = x.flatten(2).transpose(1, 2)
        b, n, c = t.shape
        q, k, v = self.qkv(self.norm1(t)).reshape(b, n, 3, 4, c // 4).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        t = t + self.proj(a)
        return t + self.fc2(F.gelu(self.fc1(self.norm2(t))))


def reference_call(batch: int, device: str, dtype: torch.dtype) -> Callable[[], Any]:
    """The reference's forward pass at ``batch`` on ``device`` in ``dtype`` (weights and input
    seeded, made once): the call to time. The torch random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _Reference().eval().to(device=device, dtype=dtype)
        x = torch.randn(batch, 3, 32, 32).to(device=device, dtype=dtype)
    return lambda: model(x)


def reference_item(batch: int, device: str, dtype: torch.dtype, others: int) -> Timed:
    """The reference as an item of :func:`~archsearch.cost.time_interleaved` beside ``others``
    items: :data:`COPIES` places a round at most, one per four other items, at least one."""
    copies = max(1, min(COPIES, math.ceil(others / 4)))
    return Timed(reference_call(batch, device, dtype), copies=copies)


def reference_entry(result: LatencyResult, statistic: str = DEFAULT_STATISTIC) -> dict[str, Any]:
    """A reference timing as a table stores it: ``{"name", "ms", "iqr_ms", "runs"}``, ``ms`` the
    ``statistic`` of its runs (the table's, :data:`~archsearch.cost.STATISTICS`)."""
    return {
        "name": REFERENCE,
        "ms": result.statistic(statistic),
        "iqr_ms": result.iqr_ms,
        "runs": result.runs,
    }


@dataclass(frozen=True)
class Calibration:
    """How fast the machine runs now against when its latency table was timed.

    ``factor = now_ms / table_ms``: predictions (in the table's time) are multiplied by it. A
    table without a reference of this name takes the one timed now as its own (``adopted``: the
    factor is 1, and later calibrations compare with it)."""

    table_ms: float
    """The reference's median when the table was timed (ms)."""
    now_ms: float
    """The reference's median now (ms)."""
    runs: int
    """Timed runs of the reference now."""
    adopted: bool = False
    """The table had no reference (an older table): the one timed now became its reference."""
    anchors: int = 0
    """Table members re-timed instead of the reference (:mod:`._latency_anchors`; then ``table_ms``
    and ``now_ms`` are the sums of their times, which the factor is not); 0: the reference."""
    median_ratio: float | None = None
    """With anchors: the median over them of ``now / table`` (:func:`._latency_anchors.anchor_factor`),
    which is the factor; ``None``: the factor is ``now_ms / table_ms``."""
    ratio_low: float | None = None
    """With anchors: the lowest of their ratios ``now / table``; ``None`` without anchors."""
    ratio_high: float | None = None
    """With anchors: the highest of their ratios ``now / table``; ``None`` without anchors."""

    @property
    def factor(self) -> float:
        if self.median_ratio is not None:
            return self.median_ratio
        return self.now_ms / self.table_ms if self.table_ms > 0 else 1.0

    @staticmethod
    def figures(data: Mapping[str, Any], now: str = "now") -> str:
        """The figures a calibration's factor comes from, from its :meth:`to_dict` (as a study
        keeps it): ``median ratio of 8 table members' times now / in the table (0.962-1.107)``
        with anchors (the range of their ratios; left out for a calibration kept before it was
        stored), ``reference 1.203 ms now, 1.074 ms in the table`` without. ``now`` names when the
        times were taken (``then`` for a factor a resumed study reuses)."""
        anchors = data.get("anchors") or 0
        if not anchors:
            return (
                f"reference {data['reference_now_ms']:.3f} ms {now}, "
                f"{data['reference_table_ms']:.3f} ms in the table"
            )
        low, high = data.get("ratio_low"), data.get("ratio_high")
        spread = f" ({low:.3f}-{high:.3f})" if low is not None and high is not None else ""
        return f"median ratio of {anchors} table members' times {now} / in the table{spread}"

    def describe(self) -> str:
        """``machine at 1.120x the table's time: reference 1.203 ms now, 1.074 ms in the table;
        predictions scaled by 1.120``; with anchors ``machine at 1.025x the table's time: median
        ratio of 8 table members' times now / in the table (0.962-1.107); ...``."""
        if self.adopted:
            return (
                f"the table had no reference: timed now ({self.now_ms:.3f} ms) and kept as its reference; "
                "predictions are not scaled this time"
            )
        return (
            f"machine at {self.factor:.3f}x the table's time: {self.figures(self.to_dict())}; "
            f"predictions scaled by {self.factor:.3f}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "reference_table_ms": self.table_ms,
            "reference_now_ms": self.now_ms,
            "runs": self.runs,
            "adopted": self.adopted,
            "anchors": self.anchors,
            "median_ratio": self.median_ratio,
            "ratio_low": self.ratio_low,
            "ratio_high": self.ratio_high,
        }
