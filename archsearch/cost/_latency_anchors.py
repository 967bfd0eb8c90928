"""Calibration anchors: some of a latency table's own members, kept whole, timed again to calibrate.

The fixed reference (:mod:`._latency_reference`) is small (~1 ms): on a loaded 2-core VM it
slowed differently from 80 MB CvT members at 224 px, and its ratio mis-scaled their predictions
(factor 0.85 where the raw error was 2.6 %; ``benchmarks/latency_model.py``). A table therefore
also keeps ``anchors``: :data:`ANCHORS` of the whole members it was fitted with (its non-host
members, which hosted no piece's timing, where it has them: :mod:`._overhead`), spread over their
times (the fastest, the slowest and those between), each as its canonical spec (which normalises
back to the same plan: :func:`archsearch.spec.canonical_spec`), its spec hash and its time at the
table's speed in the table's statistic. Calibrating re-times them (beside the reference) and
scales predictions by the median over the anchors of ``now / in the table`` (:func:`anchor_factor`):
the models timed are the space's own, at its size. A table without anchors (written before them,
or with no whole member yet) calibrates with the reference alone.

Why eight, and a median. Each anchor's ratio is one member timed twice, minutes apart: on this
2-core VM (hybrid_small, 30 fit members re-timed beside 100 fresh ones, three timings, load 2.6)
one ratio was off the factor that best fits the fresh members by 2-2.5 % (standard deviation of
its logarithm); three anchors' summed times missed that factor by more than 3.0-3.5 % one time in
ten, eight anchors' median ratio by more than 2.0-2.4 %; and one anchor timed off cannot move a
median. (Tables of three anchors, written before, keep their three.) Anchors are timed with
:data:`ANCHOR_HARNESS`, not the table's own harness: three cvt13_nas members at 224 px, 50 forward
passes each, made a predicted-latency search start 96-113 s later on the 2-core VM under load
3-5 (10-24 s with 10 passes each); :func:`calibration_anchors` therefore times fewer of them
(at least three, spread over their times) where all would take more than
:data:`ANCHOR_BUDGET_MS` at the table's speed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..core import NormalizedSpec
from ..spec import Spec, canonical_spec, normalize, spec_hash

__all__ = [
    "ANCHORS",
    "ANCHOR_BUDGET_MS",
    "ANCHOR_HARNESS",
    "anchor_entries",
    "anchor_factor",
    "anchor_plans",
    "calibration_anchors",
]

ANCHORS = 8
"""Members a table keeps as calibration anchors."""

ANCHOR_BUDGET_MS = 2000.0
"""The forward passes calibration spends on anchors, at most (ms at the table's speed), unless
that leaves fewer than three (:func:`calibration_anchors`): eight hybrid_small members take about
0.1 s, three cvt13_nas members at 224 px about 2 s on the 2-core VM."""

ANCHOR_HARNESS: Mapping[str, int] = MappingProxyType({"warmup": 1, "runs": 6, "rounds": 3})
"""How calibration times the anchors unless told otherwise
(:meth:`~archsearch.cost.LatencyPredictor.calibrate`): 1 untimed run, then 6 timed ones in 3
interleaved rounds, each round after one more untimed run, 10 forward passes of each anchor
(the table's default harness, 10 and 30 in 10 rounds, is 50). The factor is the median over the
anchors of each one's statistic of 6 runs over its table time (:func:`anchor_factor`)."""


def anchor_entries(
    members: Sequence[tuple[NormalizedSpec, str, float]], k: int = ANCHORS
) -> list[dict[str, Any]]:
    """``k`` of ``(plan, spec hash, ms at the table's speed)`` spread over their times (the fastest,
    the slowest, evenly between), as a table stores them: ``{"hash", "ms", "spec"}`` with the
    plan's canonical spec (a JSON-ready dict)."""
    picked = _spread(sorted(members, key=lambda m: m[2]), k)
    return [{"hash": digest, "ms": float(ms), "spec": canonical_spec(plan)} for plan, digest, ms in picked]


def anchor_plans(anchors: Sequence[dict[str, Any]]) -> list[tuple[NormalizedSpec, float]]:
    """The anchors' plans (each normalised from its stored spec) and table times (ms). An anchor
    whose spec no longer normalises to its hash (archsearch changed the grammar or the plan) or
    cannot be read is left out: its stored time belongs to another model."""
    out = []
    for entry in anchors:
        try:
            plan = normalize(Spec.model_validate(entry["spec"]))
            ms = float(entry["ms"])
        except (KeyError, TypeError, ValueError):
            continue
        if spec_hash(plan) == entry.get("hash") and ms > 0:
            out.append((plan, ms))
    return out


def _spread(ordered: Sequence[Any], k: int) -> list[Any]:
    """``k`` of ``ordered`` evenly spread: the first, the last and those between (the last alone
    for ``k == 1``; all of them when there are ``k`` or fewer)."""
    if len(ordered) <= k:
        return list(ordered)
    if k <= 1:
        return list(ordered[-1:])
    return [ordered[round(i * (len(ordered) - 1) / (k - 1))] for i in range(k)]


def calibration_anchors(
    anchors: Sequence[tuple[NormalizedSpec, float]], passes: int, budget_ms: float = ANCHOR_BUDGET_MS
) -> list[tuple[NormalizedSpec, float]]:
    """The anchors (``(plan, table ms)``) that calibration times with ``passes`` forward passes of
    each: all of them when their passes take at most ``budget_ms`` at the table's speed, else as
    many as fit (at least three; fewer only where the table has fewer), spread over their times."""
    ordered = sorted(anchors, key=lambda a: a[1])
    k = len(ordered)
    while k > 3 and passes * sum(ms for _, ms in _spread(ordered, k)) > budget_ms:
        k -= 1
    return _spread(ordered, k)


def anchor_factor(now_ms: Sequence[float], table_ms: Sequence[float]) -> float:
    """The calibration factor from anchors timed now (``now_ms``) and in the table (``table_ms``,
    in the same order, both in the table's statistic): the median of ``now / table``.

    Raises:
        ValueError: no anchors, lists of different lengths, or a time that is not above 0.
    """
    if not now_ms or len(now_ms) != len(table_ms):
        raise ValueError(
            f"anchor_factor needs one time now for each table time, but got {len(now_ms)} and {len(table_ms)}"
        )
    if not all(t > 0 for t in (*now_ms, *table_ms)):
        raise ValueError("anchor_factor: every anchor time must be above 0 ms")
    return statistics.median(n / t for n, t in zip(now_ms, table_ms, strict=True))
