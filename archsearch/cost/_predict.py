"""Latency predicted from a plan: the sum of its pieces' table entries plus a fitted overhead.

``predicted = sum(table[key].ms for key in piece_keys(plan)) + a + b * n_pieces + c * weights``

for a table with fewer than six *non-host* members; with them, each piece's entry is first
corrected by the fit on those members (:func:`~._overhead.fit_correction`: a scale and terms per
piece kind, folded into each entry as it is first read, so a prediction stays one sum):
``predicted = a + sum(scale * s_kind * ms + d_kind)``. Non-host members are whole members that
hosted no piece's in-place timing (``archsearch latency-table`` times them after the pieces):
a host's pieces add up to its own time by construction, so only they show what the sums miss.
In the first form, ``weights`` is the sum of the pieces' parameter and buffer counts in millions. ``a`` (per
model), ``b`` (per piece) and ``c`` (per million weights) are fitted by least squares on the
residuals ``measured - sum`` of a few whole members timed with the harness (the table's
``members``): the model's own calls and the dispatch between pieces are ``a`` and
``b``; ``c`` is what a piece timed alone does not pay, reading weights that a whole model has
pushed out of the caches (a large model at batch 1 streams its weights from memory on every
forward). With no member measured all are 0. This is Once-for-All's lookup-table predictor
(``LatencyTable.predict_network_latency``: a sum of per-block entries) with nn-Meter's lesson
that what the pieces leave out is best fitted, not guessed; which terms are fitted is chosen by
leave-one-out error (:func:`fit_overhead`), so noisy members cannot make it worse than the sum.

A piece missing from the table is built and timed on demand (:func:`~._pieces.measure_piece`)
and added; the table is saved after each such addition when it has a file. Keys are memoised per
plan object, so once the table holds a space's pieces a prediction builds nothing and takes
microseconds (``benchmarks/latency_model.py`` counts predictions per second).
"""

from __future__ import annotations

import copy
import functools
import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..core import NormalizedSpec
from ._insitu import time_in_situ_many
from ._latency import DEFAULT_STATISTIC, LatencyResult, Timed, statistic_ms, time_interleaved, torch_dtype
from ._latency_anchors import (
    ANCHOR_HARNESS,
    anchor_entries,
    anchor_factor,
    anchor_plans,
    calibration_anchors,
)
from ._latency_reference import REFERENCE, Calibration, reference_entry, reference_item
from ._latency_table import Fingerprint, LatencyTable
from ._overhead import FLOOR_OF_SUM, MIN_NON_HOSTS, Overhead, fit_correction, fit_overhead, piece_kind
from ._pieces import Piece, PieceTiming, measure_piece, piece_keys, plan_pieces

__all__ = ["LatencyPredictor"]


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
        self._flat: dict[str, tuple[float, float, float]] = {}
        """key -> (ms, weights in millions, ms in a prediction): the table's entries as the fast
        path reads them, the last with the fitted correction of its kind
        (:meth:`Overhead.piece_ms`)."""
        self.overhead = self._fit()
        self.calibration: Calibration | None = None
        """The last calibration (:meth:`calibrate`); ``None``: predictions are in the table's time."""
        self.factor = 1.0
        """What predictions are multiplied by: the machine's speed now against the table's
        (:attr:`Calibration.factor`; 1 until calibrated)."""
        self._anchors: tuple[list[dict[str, Any]], list[tuple[NormalizedSpec, float]]] | None = None
        """The table's anchors as last read (a copy) and their plans (:meth:`anchors`)."""

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None,
        fingerprint: Fingerprint,
        statistic: str = DEFAULT_STATISTIC,
        **kwargs: Callable[[PieceTiming], None],
    ) -> LatencyPredictor:
        """The predictor of the table at ``path`` (default: the fingerprint's file in the cache;
        a new table of ``statistic`` when there is none). Raises :class:`TableMismatch` for another
        setting's table or one of another statistic."""
        return cls(LatencyTable.open(path, fingerprint, statistic), **kwargs)

    @property
    def statistic(self) -> str:
        """The statistic of each timing's runs that the table holds and predictions are
        (:data:`~archsearch.cost.STATISTICS`)."""
        return self.table.statistic

    def _entry(self, key: str) -> tuple[float, float, float]:
        """(ms, weights in millions, ms in a prediction) of a piece in the table; ``KeyError``
        when it is not there."""
        entry = self.table.pieces[key]
        ms = float(entry["ms"])
        kind = piece_kind(str(entry.get("what", "")))
        value = self._flat[key] = (ms, float(entry.get("params", 0)) / 1e6, self.overhead.piece_ms(kind, ms))
        return value

    def _sums(self, keys: Sequence[str]) -> tuple[float, float, float]:
        """Sums of the pieces' ms, of their weights (millions) and of their ms in a prediction
        (corrected by kind); ``KeyError`` for a missing piece."""
        flat = self._flat
        ms = weights = adjusted = 0.0
        for key in keys:
            entry = flat.get(key)
            if entry is None:
                entry = self._entry(key)
            ms += entry[0]
            weights += entry[1]
            adjusted += entry[2]
        return ms, weights, adjusted

    def _fit(self) -> Overhead:
        """:func:`~._overhead.fit_correction` on the table's non-host members (whole members that
        hosted no piece's timing) when it has :data:`~._overhead.MIN_NON_HOSTS` of them, else
        :func:`~._overhead.fit_overhead` on all its members (a table written before non-host
        members were kept, or filled with ``--members 0``)."""
        pieces = self.table.pieces
        # a member without pieces (a hand-edited or damaged table) has no sum to correct
        usable = [m for m in self.table.members if m.get("pieces") and all(k in pieces for k in m["pieces"])]
        checks = [m for m in usable if m.get("host") is False]
        if len(checks) >= MIN_NON_HOSTS:
            rows = []
            for member in checks:
                parts: dict[str, tuple[float, int]] = {}
                for key in member["pieces"]:
                    kind = piece_kind(str(pieces[key].get("what", "")))
                    ms, count = parts.get(kind, (0.0, 0))
                    parts[kind] = (ms + float(pieces[key]["ms"]), count + 1)
                rows.append((parts, float(member["measured_ms"])))
            return fit_correction(rows)
        plain = []
        for member in usable:
            keys = member.get("pieces") or []
            ms = sum(float(pieces[k]["ms"]) for k in keys)
            weights = sum(float(pieces[k].get("params", 0)) for k in keys) / 1e6
            plain.append((ms, len(keys), weights, float(member["measured_ms"])))
        return fit_overhead(plain)

    def refit(self) -> Overhead:
        """Read the table's entries afresh (after changing it directly) and fit the overhead again
        from its measured members."""
        self.overhead = self._fit()
        self._flat.clear()
        return self.overhead

    # ------------------------------------------------------------------ prediction

    def pieces_ms(self, plan: NormalizedSpec) -> float:
        """The sum of ``plan``'s pieces in the table (measuring the missing ones), no overhead."""
        keys = piece_keys(plan)
        try:
            return self._sums(keys)[0]
        except KeyError:
            self.measure_missing(plan)
            return self._sums(keys)[0]

    def predict(self, plan: NormalizedSpec, *, raw: bool = False) -> float:
        """Predicted latency (ms) of the model ``plan`` compiles to, in the table's setting and
        :attr:`statistic` of the runs (by default ``fastest_quarter``):
        the sum of its pieces plus the fitted :class:`Overhead`, times the calibration
        :attr:`factor` (1 until :meth:`calibrate`; ``raw``: not applied, the table's own time).
        Pieces the table lacks are timed first (and added)."""
        keys = piece_keys(plan)
        try:
            ms, weights, adjusted = self._sums(keys)
        except KeyError:
            self.measure_missing(plan)
            ms, weights, adjusted = self._sums(keys)
        # a fitted intercept or per-kind term may be negative; a member far outside the fitted
        # range must not be predicted at less than half its pieces' sum (or below 0)
        total = max(adjusted + self.overhead(len(keys), weights), FLOOR_OF_SUM * ms)
        return total if raw else total * self.factor

    # ------------------------------------------------------------------ calibration

    def calibrate(
        self, runs: int | None = None, rounds: int | None = None, warmup: int | None = None
    ) -> Calibration:
        """Time what calibrates the table now and scale every later prediction by ``now / table``
        (:meth:`calibrate_with`): its anchors (:meth:`anchors`: whole members of its space, built
        and timed beside the reference; as many as :func:`~._latency_anchors.calibration_anchors`
        allows, at least three) where it has them, else its reference (:mod:`._latency_reference`).
        Each gets ``warmup`` untimed runs, then ``runs`` timed ones
        in ``rounds`` interleaved rounds (each round also starts with one untimed run); a count
        not given is the default for what is timed: :data:`~._latency_anchors.ANCHOR_HARNESS` for
        anchors (1; 6 in 3 rounds: 10 forward passes of each), 10; 240 in 24 rounds for the
        reference alone (~1 ms a run: a second or so on a CPU). The table's ``harness`` (what its
        entries were timed with, 50 forward passes of each anchor by default) is not used. A table
        without a reference takes this one (saved when the table has a file), and the factor stays 1.

        Raises:
            ValueError: ``runs < 4`` or ``rounds < 1``.
        """
        anchors = self.anchors()
        defaults = ANCHOR_HARNESS if anchors else {"warmup": 10, "runs": 240, "rounds": 24}
        harness = {
            "runs": defaults["runs"] if runs is None else runs,
            "rounds": defaults["rounds"] if rounds is None else rounds,
            "warmup": defaults["warmup"] if warmup is None else warmup,
        }
        if anchors:
            passes = harness["warmup"] + harness["rounds"] * (
                1 + -(-harness["runs"] // max(1, harness["rounds"]))
            )
            timed = calibration_anchors(anchors, passes)
            results = self.time_members_with_reference([plan for plan, _ in timed], **harness)[0]
            return self._calibrate_anchors(results, [ms for _, ms in timed])
        item = self._reference(0)
        setting = {**self._setting(), **harness}
        result = time_interleaved([item], batch=self.table.fingerprint.batch, **setting)[0]
        return self.calibrate_with(result)

    def anchors(self) -> list[tuple[NormalizedSpec, float]]:
        """The table's calibration anchors (:mod:`._latency_anchors`): plans and table times (ms).
        They are normalised once while the table's ``anchors`` stay the same (calibrating reads
        them twice: to time them and to compare with their table times)."""
        stored = self.table.anchors
        if self._anchors is None or self._anchors[0] != stored:
            self._anchors = (copy.deepcopy(stored), anchor_plans(stored))
        return list(self._anchors[1])

    def calibrate_with(self, reference: LatencyResult, anchors: Sequence[LatencyResult] = ()) -> Calibration:
        """Scale later predictions by ``reference``'s :attr:`statistic` over the table's reference (the
        reference timed elsewhere, e.g. in the same interleaved rounds as members that predictions
        are checked against: :meth:`time_members_with_reference`). A table without a reference (of
        this name) takes this one (saved when the table has a file; factor 1). ``anchors``: the
        results of all :meth:`anchors`' plans timed in the same rounds; when given (one per anchor),
        the factor is the median over them of their time now over the table's
        (:func:`~._latency_anchors.anchor_factor`) instead."""
        stored = self._table_reference_ms()
        kept = self.anchors() if anchors else []
        if anchors and len(anchors) == len(kept):
            return self._calibrate_anchors(anchors, [ms for _, ms in kept])
        if stored is None:
            self.table.reference = reference_entry(reference, self.statistic)
            if self.table.path is not None:
                self.table.save()
            now = reference.statistic(self.statistic)
            calibration = Calibration(now, now, reference.runs, adopted=True)
        else:
            calibration = Calibration(stored, reference.statistic(self.statistic), reference.runs)
        return self._use(calibration)

    def _calibrate_anchors(self, results: Sequence[LatencyResult], table_ms: Sequence[float]) -> Calibration:
        """Calibrate with anchors timed now (``results``) against their table times."""
        now = [r.statistic(self.statistic) for r in results]
        ratio = anchor_factor(now, table_ms)
        ratios = [n / t for n, t in zip(now, table_ms, strict=True)]
        return self._use(
            Calibration(
                sum(table_ms),
                sum(now),
                results[0].runs,
                anchors=len(now),
                median_ratio=ratio,
                ratio_low=min(ratios),
                ratio_high=max(ratios),
            )
        )

    def _use(self, calibration: Calibration) -> Calibration:
        self.calibration = calibration
        self.factor = calibration.factor
        return calibration

    def set_factor(self, factor: float) -> None:
        """Scale later predictions by ``factor`` (a calibration made earlier, e.g. the one a
        resumed study keeps, so that all its trials are predicted alike); ``ValueError`` unless it
        is a positive finite number."""
        if not (isinstance(factor, int | float) and 0 < factor < float("inf")):
            raise ValueError(f"a calibration factor must be a positive number, but got {factor!r}")
        self.factor = float(factor)

    def _reference(self, others: int) -> Timed:
        device, dtype = self._setting()["device"], torch_dtype(self.table.fingerprint.dtype)
        return reference_item(self.table.fingerprint.batch, device, dtype, others)

    def _to_table_time(self, reference_ms: Sequence[float]) -> float:
        """The factor that brings times taken beside the reference's runs ``reference_ms`` (timed
        in the same rounds) to the table's speed: ``table reference / their statistic`` (the
        table's). A table without a reference takes this one (factor 1)."""
        ms = statistic_ms(reference_ms, self.statistic)
        stored = self._table_reference_ms()
        if stored is None:
            q1, _, q3 = statistics.quantiles(reference_ms, n=4) if len(reference_ms) > 1 else (ms, ms, ms)
            self.table.reference = {"name": REFERENCE, "ms": ms, "iqr_ms": q3 - q1, "runs": len(reference_ms)}
            return 1.0
        return stored / ms

    def _table_reference_ms(self) -> float | None:
        """The table's reference time (ms), or ``None`` when it has none of this name (an older
        table, or another reference model): then the next reference timed becomes its own."""
        stored = self.table.reference
        return float(stored["ms"]) if stored is not None and stored.get("name") == REFERENCE else None

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

    def _setting(self) -> dict[str, Any]:
        """The harness's keyword arguments for the table's setting."""
        fp, harness = self.table.fingerprint, self.table.harness
        return {
            "device": "cuda" if fp.device.startswith("cuda") else "cpu",
            "dtype": fp.dtype,
            "threads": fp.threads,
            "warmup": harness.get("warmup", 10),
            "runs": harness.get("runs", 30),
        }

    def measure(self, piece: Piece) -> PieceTiming:
        """Time one piece in the table's setting and add it to the table (not saved), divided by
        the calibration :attr:`factor` (timed at today's speed, stored at the table's)."""
        timing = measure_piece(piece, batch=self.table.fingerprint.batch, **self._setting())
        r, f = timing.result, self.factor
        self.table.add(
            piece.key,
            ms=r.statistic(self.statistic) / f,
            iqr_ms=r.iqr_ms / f,
            min_ms=r.min_ms / f,
            params=timing.params,
            what=piece.what,
        )
        self._flat.pop(piece.key, None)
        self.measured += 1
        if self.on_measure is not None:
            self.on_measure(timing)
        return timing

    def measure_in_situ(self, plan: NormalizedSpec, spec_hash: str, seed: int = 0) -> float:
        """Time ``plan``'s pieces in place (:meth:`measure_in_situ_many` of one member) and return
        the member's :attr:`statistic` (ms)."""
        return self.measure_in_situ_many([(plan, spec_hash)], seed=seed)[0]

    def measure_in_situ_many(
        self, members: Sequence[tuple[NormalizedSpec, str]], seed: int = 0
    ) -> list[float]:
        """Time the pieces of each ``(plan, spec hash)`` in place, the members in interleaved
        rounds (:func:`~._insitu.time_in_situ_many`: inside the whole models, as ``archsearch
        latency-table`` fills tables; the table's ``harness`` gives ``rounds``), add each as an
        observation of its piece, add each whole member to the overhead fit, and return the
        members' :attr:`statistic` (ms, as timed); the table is not saved. The calibration reference is
        timed in the same rounds, and what is added is brought to the table's speed with it (a table
        without a reference takes this one)."""
        from ..compiler import build

        plans = [plan for plan, _ in members]
        reference = self._reference(2 * len(plans))
        results = time_in_situ_many(
            plans,
            build,
            batch=self.table.fingerprint.batch,
            seed=seed,
            rounds=self._rounds(),
            extra=[reference],
            statistic=self.statistic,
            **self._setting(),
        )
        scale = self._to_table_time(reference.samples)
        for result in results:
            for piece, ms, weights in result.pieces:
                self.table.observe(piece.key, ms * scale, params=weights, what=piece.what)
                self._flat.pop(piece.key, None)
        for (plan, digest), result in zip(members, results, strict=True):
            self._add_member(plan, digest, result.whole.statistic(self.statistic) * scale, host=True)
        self._keep_anchors(members, [r.whole.statistic(self.statistic) * scale for r in results], host=True)
        self.refit()
        return [r.whole.statistic(self.statistic) for r in results]

    def _rounds(self) -> int:
        return int(self.table.harness.get("rounds", 10))

    def time_members(self, plans: Sequence[NormalizedSpec], seed: int = 0) -> list[LatencyResult]:
        """Build the whole models ``plans`` compile to (weights seeded by ``seed``) and time them
        with the harness in the table's setting, in interleaved rounds
        (:func:`~._latency.time_interleaved`, ``rounds`` from the table's ``harness``); nothing is
        added to the table."""
        return self.time_members_with_reference(plans, seed)[0]

    def time_members_with_reference(
        self,
        plans: Sequence[NormalizedSpec],
        seed: int = 0,
        *,
        runs: int | None = None,
        rounds: int | None = None,
        warmup: int | None = None,
    ) -> tuple[list[LatencyResult], LatencyResult]:
        """:meth:`time_members`, with the calibration reference timed in the same rounds (at
        several places in each): the members' results and the reference's, which
        :meth:`calibrate_with` turns into the factor between the table's speed and theirs.
        ``runs``, ``rounds``, ``warmup``: the harness's counts (default: the table's ``harness``)."""
        from ..compiler import build

        fp = self.table.fingerprint
        setting = self._setting()
        if runs is not None:
            setting["runs"] = runs
        if warmup is not None:
            setting["warmup"] = warmup
        dev, dt = torch.device(setting["device"]), torch_dtype(setting["dtype"])
        items = []
        for plan in plans:
            torch.manual_seed(seed)
            model = build(plan).eval().to(device=dev, dtype=dt)
            x = plan.input_shape
            inp = torch.randn((fp.batch, x.channels, x.height, x.width), device=dev, dtype=dt)
            items.append(Timed(functools.partial(model, inp)))
        items.append(self._reference(len(items)))
        rounds = self._rounds() if rounds is None else rounds
        results = time_interleaved(items, batch=fp.batch, rounds=rounds, seed=seed, **setting)
        return results[:-1], results[-1]

    def time_member(self, plan: NormalizedSpec, seed: int = 0) -> LatencyResult:
        """Build the whole model ``plan`` compiles to (weights seeded by ``seed``) and time it with
        the harness in the table's setting (nothing is added to the table)."""
        return self.time_members([plan], seed)[0]

    def measure_member(self, plan: NormalizedSpec, spec_hash: str, seed: int = 0) -> float:
        """Time the whole model (:meth:`time_member`), add it to the overhead fit
        (:meth:`add_member`) and return its :attr:`statistic` (ms); the table is not saved."""
        return self.measure_members([(plan, spec_hash)], seed)[0]

    def measure_members(self, members: Sequence[tuple[NormalizedSpec, str]], seed: int = 0) -> list[float]:
        """Time whole members in interleaved rounds (:meth:`time_members`), add each to the
        overhead fit (brought to the table's speed by the reference timed in the same rounds) and
        return their :attr:`statistic` (ms, as timed); the table is not saved."""
        results, reference = self.time_members_with_reference([plan for plan, _ in members], seed)
        scale = self._to_table_time(reference.samples_ms)
        for (plan, digest), result in zip(members, results, strict=True):
            self._add_member(plan, digest, result.statistic(self.statistic) * scale, host=False)
        self._keep_anchors(members, [r.statistic(self.statistic) * scale for r in results], host=False)
        self.refit()
        return [r.statistic(self.statistic) for r in results]

    def _keep_anchors(
        self, members: Sequence[tuple[NormalizedSpec, str]], ms: Sequence[float], *, host: bool
    ) -> None:
        """A table without anchors keeps some of these members (times at the table's speed); so
        does one whose anchors are not all non-host members, when these are non-host members
        (anchors that hosted pieces agree with the table by construction; others show its gap)."""
        non_hosts = {m.get("hash") for m in self.table.members if m.get("host") is False}
        hosted = any(a.get("hash") not in non_hosts for a in self.table.anchors)
        if not self.table.anchors or (not host and hosted):
            rows = [(plan, digest, t) for (plan, digest), t in zip(members, ms, strict=True)]
            self.table.anchors = anchor_entries(rows)

    def add_member(
        self, plan: NormalizedSpec, spec_hash: str, measured_ms: float, *, host: bool = False
    ) -> None:
        """Record a whole member's measured latency (for the overhead fit; its pieces the table
        lacks are timed first) and refit. ``host``: whether any piece's entry was timed inside it
        (a non-host member is what :func:`~._overhead.fit_correction` fits on)."""
        self._add_member(plan, spec_hash, measured_ms, host=host)
        self.refit()

    def _add_member(self, plan: NormalizedSpec, spec_hash: str, measured_ms: float, *, host: bool) -> None:
        self.measure_missing(plan)
        keys = list(piece_keys(plan))
        self.table.members = [m for m in self.table.members if m.get("hash") != spec_hash]
        self.table.members.append(
            {"hash": spec_hash, "measured_ms": measured_ms, "pieces": keys, "host": host}
        )
