"""Calibration anchors: a few of a latency table's own members, kept whole, timed again to calibrate.

The fixed reference (:mod:`._latency_reference`) is small (~1 ms): on a loaded 2-core VM it
slowed differently from 80 MB CvT members at 224 px, and its ratio mis-scaled their predictions
(factor 0.85 where the raw error was 2.6 %; ``benchmarks/latency_model.py``). A table therefore
also keeps ``anchors``: :data:`ANCHORS` of the whole members it was fitted with, spread over their
times (the fastest, the slowest and those between), each as its canonical spec (which normalises
back to the same plan: :func:`archsearch.spec.canonical_spec`), its spec hash and its time at the
table's speed in the table's statistic. Calibrating re-times them (beside the reference) and
scales predictions by ``sum(now) / sum(in the table)``: the models timed are the space's own, at
its size. A table without anchors (written before them, or with no whole member yet) calibrates
with the reference alone. Anchors are timed with :data:`ANCHOR_HARNESS`, not the table's own
harness: three cvt13_nas members at 224 px, 50 forward passes each, made a predicted-latency
search start 96-113 s later on the 2-core VM under load 3-5 (10-24 s with 10 passes each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..core import NormalizedSpec
from ..spec import Spec, canonical_spec, normalize, spec_hash

__all__ = ["ANCHORS", "ANCHOR_HARNESS", "anchor_entries", "anchor_plans"]

ANCHORS = 3
"""Members a table keeps as calibration anchors."""

ANCHOR_HARNESS: Mapping[str, int] = MappingProxyType({"warmup": 1, "runs": 6, "rounds": 3})
"""How calibration times the anchors unless told otherwise
(:meth:`~archsearch.cost.LatencyPredictor.calibrate`): 1 untimed run, then 6 timed ones in 3
interleaved rounds, each round after one more untimed run, 10 forward passes of each anchor
(the table's default harness, 10 and 30 in 10 rounds, is 50). The factor is the sum over the
anchors of each one's statistic of 6 runs."""


def anchor_entries(
    members: Sequence[tuple[NormalizedSpec, str, float]], k: int = ANCHORS
) -> list[dict[str, Any]]:
    """``k`` of ``(plan, spec hash, ms at the table's speed)`` spread over their times (the fastest,
    the slowest, evenly between), as a table stores them: ``{"hash", "ms", "spec"}`` with the
    plan's canonical spec (a JSON-ready dict)."""
    ordered = sorted(members, key=lambda m: m[2])
    if len(ordered) <= k:
        picked = ordered
    else:
        picked = (
            [ordered[round(i * (len(ordered) - 1) / (k - 1))] for i in range(k)] if k > 1 else ordered[-1:]
        )
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
