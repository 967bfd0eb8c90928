"""What a latency prediction adds to the sum of its pieces, fitted on whole members.

Two fits (:class:`Overhead` holds either):

* :func:`fit_overhead`: ``overhead = a + b * n_pieces + c * weights`` on the residuals
  ``measured - sum of pieces`` of whole members (the predictor's module docstring says why these
  terms, after nn-Meter). Used for a table without enough *non-host* members (below).
* :func:`fit_correction`: ``measured = a + scale * sum of pieces + sum over piece kinds of
  (d_kind * count_kind)`` or ``sum over kinds of (s_kind * ms_kind)``, on whole members that did
  not host any piece's in-place timing (``archsearch latency-table`` times them after the pieces).
  A host's pieces add up to its own time by construction (they were timed inside it), so hosts
  cannot show what the table misses on other members: on hybrid_small (2-core VM, 32 px), 100
  members that hosted nothing ran 11 % slower than the sum of their pieces (ratio 0.99-1.23 from
  the 10th to the 90th percentile), more so the more transformer blocks and stages they had
  (correlation of the log ratio with their count +0.55, with bottleneck blocks -0.50). Offline
  on those 100 members (24 fitted, 76 held out, 200 splits), a global scale alone gave a median
  error of 4.8 %, p90 13.9 %, Kendall tau 0.885; the scale plus a term per piece kind 4.1 %,
  9.9 %, 0.911. In a later run whose pieces' sums missed the fresh members by only 1.4 %,
  :func:`fit_correction` on 24 of them (60 splits) gave 3.4 %, 9.4 %, 0.923 against the plain
  sum's 3.2 %, 10.4 %, 0.922 (those splits share the fresh members' timing, so no drift): the
  kind terms help little; the scale is what matters. The kind of a piece is its description's
  first two words (:func:`piece_kind`: ``block transformer/attention``, ``stage bottleneck``,
  ``head avg``).

Both choose their terms by leave-one-out error, the simplest near the best, so a few noisy
members add no terms they cannot support: :func:`fit_overhead` then leaves the plain sum,
:func:`fit_correction` a scale alone (from four members; why, in its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FLOOR_OF_SUM", "MIN_NON_HOSTS", "Overhead", "fit_correction", "fit_overhead", "piece_kind"]

MIN_NON_HOSTS = 6
FLOOR_OF_SUM = 0.5
"""No prediction is below this share of its pieces' plain sum: a fit that would take a fitted
member below it is refused (:func:`fit_correction`), and :meth:`LatencyPredictor.predict` keeps
every prediction above it (a negative intercept or per-kind term must not predict a small member
far outside the fitted range at 0 ms or less)."""
"""Non-host members a table needs before its overhead is fitted on them alone
(:func:`fit_correction`); with fewer, :func:`fit_overhead` on all its members."""


def piece_kind(what: str) -> str:
    """A piece's kind for :func:`fit_correction`: the first two words of its description
    (``block transformer/attention 64x8x8`` -> ``block transformer/attention``)."""
    return " ".join(what.split()[:2])


@dataclass(frozen=True)
class Overhead:
    """The part of a prediction the pieces leave out:
    ``intercept_ms + per_piece_ms * n_pieces + per_mweight_ms * weights / 1e6``."""

    intercept_ms: float = 0.0
    per_piece_ms: float = 0.0
    per_mweight_ms: float = 0.0
    members: int = 0
    """Whole members it was fitted on (0: not fitted)."""
    scale: float = 1.0
    """Every piece's time is multiplied by this (:func:`fit_correction`; 1 otherwise)."""
    kind_scales: Mapping[str, float] = field(default_factory=dict)
    """:func:`piece_kind` -> a further factor on the time of each piece of that kind (1 if absent)."""
    kind_ms: Mapping[str, float] = field(default_factory=dict)
    """:func:`piece_kind` -> ms added for each piece of that kind (0 if absent)."""
    terms: tuple[str, ...] = ()
    """The terms fitted (e.g. ``("scale", "kind_ms")``; ``()``: the plain sum)."""
    on: str = "all members"
    """What it was fitted on: ``all members`` (:func:`fit_overhead`) or ``non-host members``
    (:func:`fit_correction`)."""

    def __call__(self, n_pieces: int, mweights: float = 0.0) -> float:
        return self.intercept_ms + self.per_piece_ms * n_pieces + self.per_mweight_ms * mweights

    def piece_ms(self, kind: str, ms: float) -> float:
        """A piece's time in a prediction: ``scale * kind scale * ms + kind ms`` (``ms`` itself
        unless fitted by :func:`fit_correction`)."""
        return self.scale * self.kind_scales.get(kind, 1.0) * ms + self.kind_ms.get(kind, 0.0)

    def as_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (``archsearch latency-table --json``, the benchmark)."""
        return {
            "intercept_ms": self.intercept_ms,
            "per_piece_ms": self.per_piece_ms,
            "per_mweight_ms": self.per_mweight_ms,
            "scale": self.scale,
            "kind_scales": dict(self.kind_scales),
            "kind_ms": dict(self.kind_ms),
            "terms": list(self.terms),
            "members": self.members,
            "on": self.on,
        }

    def describe(self) -> str:
        """One line: the terms and what they were fitted on."""
        parts = [f"{self.intercept_ms:+.3f} ms per model"]
        if self.per_piece_ms or self.per_mweight_ms:
            parts.append(
                f"{self.per_piece_ms:+.4f} ms per piece, {self.per_mweight_ms:+.4f} ms per million weights"
            )
        if self.scale != 1.0:
            parts.append(f"pieces x {self.scale:.3f}")
        if self.kind_scales:
            parts.append(", ".join(f"{k} x {v:.3f}" for k, v in sorted(self.kind_scales.items())))
        if self.kind_ms:
            parts.append(", ".join(f"{k} {v:+.4f} ms each" for k, v in sorted(self.kind_ms.items())))
        return f"{'; '.join(parts)} (fitted on {self.members} {self.on})"


def fit_overhead(rows: Iterable[Sequence[float]]) -> Overhead:
    """Least squares of ``measured - pieces_sum ~ a + b * n_pieces + c * mweights`` over
    ``(pieces_sum_ms, n_pieces, mweights, measured_ms)`` rows (``mweights``: the pieces' weights in
    millions), with the terms chosen by leave-one-out error.

    The candidates are: no overhead, ``a`` alone, ``a + b``, ``a + c`` (from 3 rows, each only where
    its feature varies) and ``a + b + c`` (from 4 rows), less those fitting a negative ``b`` or
    ``c``; the simplest whose leave-one-out predictions miss the measured latencies (mean relative
    error) by at most 10% more than the best one's is fitted on every row. Noisy members so tend
    to leave the plain sum of pieces as it is. With one or two
    rows, ``a`` is their mean residual; without rows, everything is 0.
    """
    data = np.array([tuple(float(v) for v in row) for row in rows], dtype=float).reshape(-1, 4)
    n = len(data)
    if n == 0:
        return Overhead()
    residual, measured = data[:, 3] - data[:, 0], data[:, 3]
    if n < 3:
        return Overhead(float(residual.mean()), 0.0, 0.0, n)
    features = {"b": data[:, 1], "c": data[:, 2]}
    varies = {k: np.ptp(v) > 1e-9 * max(1.0, float(np.abs(v).max())) for k, v in features.items()}
    candidates: list[tuple[str, ...]] = [(), ("a",)]
    candidates += [("a", k) for k in ("b", "c") if varies[k]]
    if n >= 4 and all(varies.values()):
        candidates.append(("a", "b", "c"))

    def design(terms: tuple[str, ...], index: np.ndarray) -> np.ndarray:
        cols = [np.ones(len(index)) if t == "a" else features[t][index] for t in terms]
        return np.stack(cols, axis=1)

    def loo_error(terms: tuple[str, ...]) -> float:
        if not terms:
            return float(np.mean(np.abs(residual) / measured))
        errors = []
        for i in range(n):
            rest = np.arange(n) != i
            coef, *_ = np.linalg.lstsq(design(terms, np.flatnonzero(rest)), residual[rest], rcond=None)
            guess = float((design(terms, np.array([i])) @ coef)[0])
            errors.append(abs(guess - residual[i]) / measured[i])
        return float(np.mean(errors))

    def fit(terms: tuple[str, ...]) -> np.ndarray:
        if not terms:
            return np.zeros(0)
        coef, *_ = np.linalg.lstsq(design(terms, np.arange(n)), residual, rcond=None)
        return np.asarray(coef)

    # a per-piece or per-weight cost is never negative: a fit that says so is fitting noise
    physical = [
        t for t in candidates if all(c >= 0 for term, c in zip(t, fit(t), strict=True) if term != "a")
    ]
    errors = {t: loo_error(t) for t in physical}
    # the simplest candidate within 10% of the best leave-one-out error (noise favours extra terms)
    floor = min(errors.values())
    best = min((t for t in physical if errors[t] <= 1.1 * floor + 1e-12), key=len)
    if not best:
        return Overhead(members=n)
    coef = fit(best)
    fitted = dict(zip(best, (float(c) for c in coef), strict=True))
    return Overhead(fitted["a"], fitted.get("b", 0.0), fitted.get("c", 0.0), n)


def _choose(
    candidates: Mapping[tuple[str, ...], np.ndarray],
    y: np.ndarray,
    plain: np.ndarray | None,
    physical: Callable[[tuple[str, ...], np.ndarray], bool],
    tolerance: float,
) -> tuple[tuple[str, ...], np.ndarray]:
    """Of ``candidates`` (terms -> design matrix ``x``, ``y ~ x @ coef``) and, when given, ``plain``
    (no terms: ``y ~ plain``),
    the one with the fewest columns whose leave-one-out error (mean of ``|guess - y| / y``) is
    within ``tolerance`` of the best, among those whose fit on all rows is ``physical``. Each fit
    is the least squares of the relative error, ``sum(((x @ coef - y) / y) ** 2)`` (every ``y``
    must be > 0).

    Why relative: members of a space run several times apart (hybrid_small's 100 benchmark
    members 0.4-2.9 ms, 7.5x), and plain least squares lets the slowest decide the fit while the
    error is judged in %. Refitted on the
    tables and timings of five full runs of ``benchmarks/latency_model.py`` on the 2-core VM
    (2026-12-01; 100 fresh hybrid_small members each), the 90th percentile of the calibrated
    error went from 9.2, 9.1, 10.0, 8.9 and 11.6 % to 7.7, 8.5, 9.8, 7.7 and 9.1 % (medians
    3.8, 4.1, 2.9, 3.5, 3.1 % -> 3.7, 3.8, 3.9, 3.7, 3.2 %; Kendall's tau is the same); the
    cvt13_nas fits (members 1.3-1.4x apart at 192-224 px) hardly moved."""
    n = len(y)

    def fit(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        # least squares of the relative error (each row divided by its y): members 6x apart in
        # time count alike, as the error is judged (in %), instead of the slowest ones deciding
        weighted = x[rows] / y[rows, None]
        coef, *_ = np.linalg.lstsq(weighted, np.ones(len(weighted)), rcond=None)
        return np.asarray(coef)

    errors: dict[tuple[str, ...], float] = {}
    coefs: dict[tuple[str, ...], np.ndarray] = {}
    if plain is not None:
        errors[()], coefs[()] = float(np.mean(np.abs(plain - y) / y)), np.zeros(0)
    for terms, x in candidates.items():
        coef = fit(x, np.arange(n))
        if not terms or not physical(terms, coef):
            continue
        coefs[terms] = coef
        loo = [abs(float(x[i] @ fit(x, np.arange(n) != i)) - y[i]) / y[i] for i in range(n)]
        errors[terms] = float(np.mean(loo))
    if not errors:  # no physical candidate: the plain sum
        return (), np.zeros(0)
    floor = min(errors.values())
    near = [t for t in errors if errors[t] <= (1 + tolerance) * floor + 1e-12]
    best = min(near, key=lambda t: (len(coefs[t]), errors[t]))
    return best, coefs[best]


def fit_correction(rows: Iterable[tuple[Mapping[str, tuple[float, int]], float]]) -> Overhead:
    """The correction of the sum of pieces fitted on whole members that hosted no piece's timing:
    ``rows`` of ``({piece kind: (ms of its pieces, how many)}, measured ms)``.

    Candidates (each only where it has at least three more rows than terms, and where its
    features vary): ``scale * sum`` (the plain sum only where no other candidate is left: fewer
    than four rows); ``a + scale * sum``; ``sum over kinds of
    s_kind * ms_kind``; ``scale * sum + sum over kinds of d_kind * count_kind`` with and without
    ``a``, less those fitting a scale at or below 0 or predicting a member below half its sum.
    Members measured at 0 ms (or not a number) are left out. The one with the fewest terms whose
    leave-one-out mean relative error is within 5 % of the best is fitted on every row. Without
    rows, everything is 0 (the plain sum).

    Why a scale always: it is what hosts cannot show (the drift between the pieces' fill and the
    non-host members' timing among it), and 24 members fix it to about 1 %. When the plain sum
    was a candidate, a full run on the 2-core VM (hybrid_small, load 2.5-3.0) kept it (its
    leave-one-out error within 5 % of the scale's), though the non-host members ran 2.1 % slower
    than their sums: calibrated median error 5.5 % on 100 fresh members, 4.4 % with the scale
    fitted on the same table offline (``benchmarks/results/latency_model_nonhost_run2.*``).
    """
    # a member timed at 0 ms or not at all (a hand-edited or damaged table) says nothing
    data = [(parts, m) for parts, m in rows if math.isfinite(m) and m > 0]
    n = len(data)
    if n == 0:
        return Overhead(on="non-host members")
    kinds = sorted({k for parts, _ in data for k in parts})
    ms = np.array([[parts.get(k, (0.0, 0))[0] for k in kinds] for parts, _ in data], dtype=float)
    counts = np.array([[parts.get(k, (0.0, 0))[1] for k in kinds] for parts, _ in data], dtype=float)
    y = np.array([float(m) for _, m in data])
    total = ms.sum(axis=1)
    ones = np.ones((n, 1))
    varying = [j for j in range(len(kinds)) if np.ptp(counts[:, j]) > 0]
    present = [j for j in range(len(kinds)) if ms[:, j].any()]
    candidates: dict[tuple[str, ...], np.ndarray] = {}
    options = {
        ("scale",): total[:, None],
        ("a", "scale"): np.hstack([ones, total[:, None]]),
        ("kind_scales",): ms[:, present],
        ("scale", "kind_ms"): np.hstack([total[:, None], counts[:, varying]]),
        ("a", "scale", "kind_ms"): np.hstack([ones, total[:, None], counts[:, varying]]),
    }
    for terms, x in options.items():
        if x.shape[1] and n >= x.shape[1] + 3 and ("kind_ms" not in terms or varying):
            candidates[terms] = x
    plain = total if not candidates else None

    def physical(terms: tuple[str, ...], coef: np.ndarray) -> bool:
        # a negative intercept or per-kind term may fit; one that takes a fitted member below half
        # its pieces' sum (the floor :meth:`LatencyPredictor.predict` keeps) fits noise
        if (candidates[terms] @ coef < FLOOR_OF_SUM * total).any():
            return False
        if terms == ("kind_scales",):
            return bool((coef > 0).all())
        return "scale" not in terms or float(coef[terms.index("scale")]) > 0

    best, coef = _choose(candidates, y, plain, physical, 0.05)
    if not best:
        return Overhead(members=n, on="non-host members")
    values = list(coef)
    a = float(values.pop(0)) if best[0] == "a" else 0.0
    if best == ("kind_scales",):
        scales = {kinds[j]: float(c) for j, c in zip(present, values, strict=True)}
        return Overhead(members=n, kind_scales=scales, terms=best, on="non-host members")
    scale = float(values.pop(0))
    extra = {kinds[j]: float(c) for j, c in zip(varying, values, strict=True)} if "kind_ms" in best else {}
    return Overhead(a, members=n, scale=scale, kind_ms=extra, terms=best, on="non-host members")
