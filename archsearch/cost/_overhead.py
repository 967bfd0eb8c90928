"""The overhead a latency prediction adds to the sum of its pieces, fitted on whole members.

``overhead = a + b * n_pieces + c * weights`` (:class:`Overhead`), fitted by :func:`fit_overhead`
on the residuals ``measured - sum of pieces`` of whole members a latency table holds; the
predictor that adds it is :class:`~._predict.LatencyPredictor` (its module docstring says why
these terms, after nn-Meter).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Overhead", "fit_overhead"]


@dataclass(frozen=True)
class Overhead:
    """The part of a prediction the pieces leave out:
    ``intercept_ms + per_piece_ms * n_pieces + per_mweight_ms * weights / 1e6``."""

    intercept_ms: float = 0.0
    per_piece_ms: float = 0.0
    per_mweight_ms: float = 0.0
    members: int = 0
    """Whole members it was fitted on (0: not fitted)."""

    def __call__(self, n_pieces: int, mweights: float = 0.0) -> float:
        return self.intercept_ms + self.per_piece_ms * n_pieces + self.per_mweight_ms * mweights


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
