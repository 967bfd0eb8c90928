"""Latency predicted from a plan: the sum of its pieces' table entries plus a fitted overhead.

``predicted = sum(table[key] for key in piece_keys(plan)) + a + b * n_pieces``

where ``a`` (per model) and ``b`` (per piece) are fitted by least squares on the residuals
``measured - sum`` of a few whole members timed with the harness (the table's ``members``). With
no member measured, both are 0; with one or two, ``b`` is 0 and ``a`` their mean residual. This is
Once-for-All's lookup-table predictor (``LatencyTable.predict_network_latency``: a sum of
per-block entries) with nn-Meter's lesson that what the pieces leave out (the model's own calls,
dispatch between kernels) is best fitted, not guessed.

A piece missing from the table is built and timed on demand (:func:`~._pieces.measure_piece`)
and added; the table is saved after each such addition when it has a file. Keys are memoised per
plan object, so once the table holds a space's pieces a prediction builds nothing and takes
microseconds (``benchmarks/latency_model.py`` counts predictions per second).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..core import NormalizedSpec
from ._latency_table import Fingerprint, LatencyTable
from ._pieces import Piece, PieceTiming, measure_piece, piece_keys, plan_pieces

__all__ = ["LatencyPredictor", "Overhead", "fit_overhead"]


@dataclass(frozen=True)
class Overhead:
    """The per-model part of a prediction: ``intercept_ms + per_piece_ms * n_pieces``."""

    intercept_ms: float = 0.0
    per_piece_ms: float = 0.0
    members: int = 0
    """Whole members it was fitted on (0: not fitted)."""

    def __call__(self, n_pieces: int) -> float:
        return self.intercept_ms + self.per_piece_ms * n_pieces


def fit_overhead(rows: Iterable[tuple[float, int, float]]) -> Overhead:
    """Least squares of ``measured - pieces_sum ~ a + b * n_pieces`` over ``(pieces_sum_ms,
    n_pieces, measured_ms)`` rows; ``b`` is fitted only from 3 rows on and when the piece counts
    differ (else ``a`` is the mean residual)."""
    data = list(rows)
    if not data:
        return Overhead()
    residuals = [m - s for s, _, m in data]
    counts = [float(n) for _, n, _ in data]
    mean_r = sum(residuals) / len(data)
    mean_n = sum(counts) / len(data)
    var_n = sum((n - mean_n) ** 2 for n in counts)
    if len(data) < 3 or var_n == 0:
        return Overhead(mean_r, 0.0, len(data))
    b = sum((n - mean_n) * (r - mean_r) for n, r in zip(counts, residuals, strict=True)) / var_n
    return Overhead(mean_r - b * mean_n, b, len(data))


class LatencyPredictor:
    """Predicts a plan's latency (ms) from a :class:`LatencyTable`, measuring missing pieces.

    ``LatencyPredictor.open(path, Fingerprint.here("cpu", threads=2))`` reads (or starts) the
    table for this setting; a table of another setting raises :class:`TableMismatch`.
    """

    def __init__(self, table: LatencyTable, *, on_measure: Callable[[PieceTiming], None] | None = None):
        self.table = table
        self.on_measure = on_measure
        self.measured = 0
        """Pieces this predictor timed on demand."""
        self.overhead = self._fit()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None,
        fingerprint: Fingerprint,
        **kwargs: Callable[[PieceTiming], None],
    ) -> LatencyPredictor:
        """The predictor of the table at ``path`` (default: the fingerprint's file in the cache;
        a new table when there is none). Raises :class:`TableMismatch` for another setting's table."""
        return cls(LatencyTable.open(path, fingerprint), **kwargs)

    def _fit(self) -> Overhead:
        rows = []
        for member in self.table.members:
            keys = member.get("pieces") or []
            if all(k in self.table for k in keys):
                rows.append((sum(self.table.ms(k) for k in keys), len(keys), float(member["measured_ms"])))
        return fit_overhead(rows)

    def refit(self) -> Overhead:
        """Fit the overhead again from the table's measured members."""
        self.overhead = self._fit()
        return self.overhead

    # ------------------------------------------------------------------ prediction

    def pieces_ms(self, plan: NormalizedSpec) -> float:
        """The sum of ``plan``'s pieces in the table (measuring the missing ones), no overhead."""
        keys = piece_keys(plan)
        pieces = self.table.pieces
        try:
            return sum(pieces[k]["ms"] for k in keys)
        except KeyError:
            self.measure_missing(plan)
            return sum(pieces[k]["ms"] for k in keys)

    def predict(self, plan: NormalizedSpec) -> float:
        """Predicted median latency (ms) of the model ``plan`` compiles to, in the table's setting."""
        keys = piece_keys(plan)
        pieces = self.table.pieces
        try:
            total = sum(pieces[k]["ms"] for k in keys)
        except KeyError:
            self.measure_missing(plan)
            total = sum(pieces[k]["ms"] for k in keys)
        return total + self.overhead(len(keys))

    def missing(self, plan: NormalizedSpec) -> list[Piece]:
        """``plan``'s pieces the table lacks (each key once)."""
        seen: set[str] = set()
        out = []
        for piece in plan_pieces(plan):
            if piece.key not in self.table and piece.key not in seen:
                seen.add(piece.key)
                out.append(piece)
        return out

    def measure_missing(self, plan: NormalizedSpec) -> int:
        """Time the pieces of ``plan`` that the table lacks, add them (saving the table when it has
        a file) and return how many were timed."""
        missing = self.missing(plan)
        for piece in missing:
            self.measure(piece)
        if missing and self.table.path is not None:
            self.table.save()
        return len(missing)

    def measure(self, piece: Piece) -> PieceTiming:
        """Time one piece in the table's setting and add it to the table (not saved)."""
        fp, harness = self.table.fingerprint, self.table.harness
        device = "cuda" if fp.device.startswith("cuda") else "cpu"
        timing = measure_piece(
            piece,
            device=device,
            dtype=fp.dtype,
            batch=fp.batch,
            threads=fp.threads,
            warmup=harness.get("warmup", 10),
            runs=harness.get("runs", 30),
        )
        r = timing.result
        self.table.add(piece.key, ms=r.median_ms, iqr_ms=r.iqr_ms, min_ms=r.min_ms, what=piece.what)
        self.measured += 1
        if self.on_measure is not None:
            self.on_measure(timing)
        return timing

    def add_member(self, plan: NormalizedSpec, spec_hash: str, measured_ms: float) -> None:
        """Record a whole member's measured latency (for the overhead fit) and refit."""
        keys = list(piece_keys(plan))
        self.table.members = [m for m in self.table.members if m.get("hash") != spec_hash]
        self.table.members.append({"hash": spec_hash, "measured_ms": measured_ms, "pieces": keys})
        self.refit()
