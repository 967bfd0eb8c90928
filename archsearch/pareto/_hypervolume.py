"""Hypervolume: exact for any number of objectives, its default reference point, and its history.

Internally every objective is minimised (maximised ones are negated, reference included), and the
hypervolume is the volume of the union of the boxes ``[point, reference]`` over the points that
strictly dominate the reference. Only the distinct non-dominated points matter, so they are
filtered first.

* 1 objective: ``reference - min``.
* 2 objectives: sort and sweep, ``O(n log n)``.
* 3 objectives: slice along the third objective; each slab's area is the 2-D hypervolume of the
  points below it, and all slabs are computed at once as running minima over a points-by-slabs
  matrix: ``O(n^2)`` time, vectorised, memory bounded by blocks of slabs.
* 4 or more: the recursion of WFG (While et al., 2012) with dimension reduction: points are taken
  worst-first in the last objective, each contributes its exclusive volume, which is its box minus
  the hypervolume of the later points limited to that box; those share its last value, so each
  term is an ``(m - 1)``-objective problem on a usually small front. Exponential in the worst case:
  fine for 4 objectives and a few hundred points, slow beyond. Optuna 5 has no public hypervolume
  function (only the private ``optuna._hypervolume``), so this package keeps its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ._sort import front_min
from ._validate import Direction, check_reference, check_values

__all__ = ["hypervolume", "hypervolume_history", "reference_point"]

# Cells of the 3-D points-by-slabs matrix held at once (8 bytes each).
_CELLS_3D = 1 << 22


def hypervolume(values: npt.ArrayLike, directions: Sequence[Direction], reference: npt.ArrayLike) -> float:
    """The exact hypervolume dominated by ``values`` and bounded by ``reference``.

    Args:
        values: ``[n_points, n_objectives]``, finite; dominated points and duplicates are allowed.
        directions: ``"minimize"`` or ``"maximize"`` per objective.
        reference: one value per objective, worse than the points that should count (larger where
            minimised, smaller where maximised); see ``reference_point`` for the default.

    Returns:
        The volume, ``0.0`` when no point strictly dominates the reference.
    """
    minimised, sign = check_values(values, directions)
    ref = check_reference(reference, minimised.shape[1]) * sign
    inside = minimised[(minimised < ref).all(axis=1)]
    return hypervolume_min(front_min(inside), ref)


def reference_point(
    values: npt.ArrayLike, directions: Sequence[Direction], margin: float = 0.1
) -> npt.NDArray[np.float64]:
    """The default reference point: the worst value per objective, pushed outwards by ``margin``.

    The worst value is taken over all the given points (the nadir of the whole set, not of its front),
    so every point counts towards the hypervolume, boundary points included. It is moved away from
    the points by ``margin`` times the objective's range, or, where the range is zero, by ``margin``
    times the absolute value (``margin`` times 1.0 when that value is 0).

    Args:
        values: ``[n_points, n_objectives]``, finite, at least one point.
        directions: per objective; a minimised objective's reference lies above its maximum, a
            maximised one's below its minimum.
        margin: non-negative fraction; 0 puts the reference on the nadir.

    Returns:
        ``[n_objectives]`` floats, in the objectives' own (not negated) units.
    """
    minimised, sign = check_values(values, directions)
    if len(minimised) == 0:
        raise ValueError("`values` must hold at least one point to derive a reference point, but got none")
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"`margin` must be finite and >= 0, but got {margin}")
    worst = minimised.max(axis=0)
    span = worst - minimised.min(axis=0)
    scale = np.where(span > 0, span, np.where(worst != 0, np.abs(worst), 1.0))
    return (worst + margin * scale) * sign + 0.0


def hypervolume_history(
    values: npt.ArrayLike, directions: Sequence[Direction], reference: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """``out[k - 1]`` is the hypervolume of the first ``k`` points, for ``k = 1 .. n_points``.

    Points are taken in order (trial order). Rows holding NaN (failed trials) are skipped, as are
    points outside the reference and points weakly dominated by the front so far: for those the
    value stays flat at no cost. A new front point adds its exclusive volume (its box minus the
    hypervolume of the current front limited to that box), so the front is never recomputed whole.
    The last value equals ``hypervolume`` of the complete rows up to rounding.

    Args:
        values: ``[n_points, n_objectives]`` in trial order; finite, or NaN for failed trials.
        directions: ``"minimize"`` or ``"maximize"`` per objective.
        reference: one value per objective; ``reference_point`` of the complete rows is the default
            choice (it rejects NaN, so drop failed rows first).

    Returns:
        ``[n_points]`` non-decreasing floats.
    """
    minimised, sign = check_values(values, directions, allow_nan_rows=True)
    n, m = minimised.shape
    ref = check_reference(reference, m) * sign
    history = np.zeros(n, dtype=np.float64)
    front = np.zeros((0, m), dtype=np.float64)
    volume = 0.0
    for i, point in enumerate(minimised):
        counts = not np.isnan(point).any() and bool((point < ref).all())
        if counts and not (front <= point).all(axis=1).any():
            box = float(np.prod(ref - point))
            shadow = front_min(np.maximum(front, point))
            volume += box - hypervolume_min(shadow, ref)
            front = np.vstack([front[~(point <= front).all(axis=1)], point])
        history[i] = volume
    return history


def hypervolume_min(front: npt.NDArray[np.float64], ref: npt.NDArray[np.float64]) -> float:
    """Hypervolume of distinct non-dominated minimised points, all strictly below ``ref``."""
    n, m = front.shape
    if n == 0:
        return 0.0
    if n == 1:
        return float(np.prod(ref - front[0]))
    if m == 1:
        return float(ref[0] - front[:, 0].min())
    if m == 2:
        return _hv_2d(front, ref)
    if m == 3:
        return _hv_3d(front, ref)
    return _hv_recursive(front, ref)


def _hv_2d(points: npt.NDArray[np.float64], ref: npt.NDArray[np.float64]) -> float:
    """Sweep along the first objective; correct for any points below ``ref``, dominated or not."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    x = points[order, 0]
    best_y = np.minimum.accumulate(points[order, 1])
    widths = np.diff(np.append(x, ref[0]))
    return float(widths @ (ref[1] - best_y))


def _hv_3d(points: npt.NDArray[np.float64], ref: npt.NDArray[np.float64]) -> float:
    """Slice along the third objective; every slab's area is a 2-D sweep over the points below it.

    Points are sorted by the first objective (columns) and slabs by the third (rows); row ``s`` keeps
    the second objective of the points whose third value is among the ``s + 1`` smallest, and a
    running minimum along the row gives that slab's 2-D staircase. Correct for dominated points too.
    """
    n = len(points)
    by_x = np.argsort(points[:, 0], kind="stable")
    x, y, z = points[by_x, 0], points[by_x, 1], points[by_x, 2]
    widths = np.diff(np.append(x, ref[0]))
    by_z = np.argsort(z, kind="stable")
    z_rank = np.empty(n, dtype=np.intp)
    z_rank[by_z] = np.arange(n)
    heights = np.diff(np.append(z[by_z], ref[2]))
    slabs = np.flatnonzero(heights > 0)
    rows = max(1, _CELLS_3D // n)
    total = 0.0
    for start in range(0, len(slabs), rows):
        chunk = slabs[start : start + rows]
        staircase = np.where(z_rank[None, :] <= chunk[:, None], y[None, :], ref[1])
        np.minimum.accumulate(staircase, axis=1, out=staircase)
        areas = (ref[1] - staircase) @ widths
        total += float(areas @ heights[chunk])
    return total


def _hv_recursive(front: npt.NDArray[np.float64], ref: npt.NDArray[np.float64]) -> float:
    """WFG with dimension reduction, for 4 or more objectives (see the module docstring)."""
    front = front[np.argsort(-front[:, -1], kind="stable")]
    lower, lower_ref = front[:, :-1], ref[:-1]
    total = 0.0
    for k in range(len(front)):
        exclusive = float(np.prod(lower_ref - lower[k]))
        if k + 1 < len(front):
            limited = front_min(np.maximum(lower[k + 1 :], lower[k]))
            exclusive -= hypervolume_min(limited, lower_ref)
        total += (ref[-1] - front[k, -1]) * exclusive
    return total
