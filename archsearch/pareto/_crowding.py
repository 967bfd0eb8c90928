"""NSGA-II crowding distance, computed within each front."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ._sort import ranks_min
from ._validate import Direction, check_values

__all__ = ["crowding_distance"]


def crowding_distance(
    values: npt.ArrayLike, directions: Sequence[Direction], ranks: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """The NSGA-II crowding distance of every point within its front (Deb et al., 2002).

    Per front and per objective, the points are sorted by that objective; the first and last get
    ``inf`` and every other point adds the gap between its two neighbours divided by the front's range
    in that objective. The distance is the sum over objectives. Choices where the definition is silent:

    * fronts of one or two points: every point is a boundary point, ``inf``;
    * an objective with zero range inside a front adds nothing to any of its points (no point is an
      extreme, and there is no ``0 / 0``), as Optuna's NSGA-II does;
    * ties are broken by input order (a stable sort), so among equal extreme values the first gets
      ``inf`` at the low end and the last at the high end.

    Args:
        values: ``[n_points, n_objectives]``, finite.
        directions: per objective; they only matter for computing ``ranks`` (a distance has no
            direction).
        ranks: front label per point, e.g. from ``non_dominated_sort``; computed when omitted. Any
            integer labels work: points with the same label form one group.

    Returns:
        ``[n_points]`` non-negative floats, ``inf`` for boundary points, never NaN.
    """
    minimised, sign = check_values(values, directions)
    raw = minimised * sign
    n, m = raw.shape
    if ranks is None:
        labels = ranks_min(minimised)
    else:
        labels = np.asarray(ranks)
        if labels.shape != (n,) or (n and not np.issubdtype(labels.dtype, np.integer)):
            raise ValueError(
                f"`ranks` must be {n} integers, one per point, but got shape {labels.shape} "
                f"of dtype {labels.dtype}"
            )
    distance = np.zeros(n, dtype=np.float64)
    if n == 0:
        return distance
    for k in range(m):
        # Sorted by front, then by the objective; lexsort is stable, so ties keep input order.
        order = np.lexsort((raw[:, k], labels))
        group = labels[order]
        value = raw[order, k]
        first = np.concatenate([[True], group[1:] != group[:-1]])
        last = np.concatenate([group[1:] != group[:-1], [True]])
        starts = np.flatnonzero(first)
        ends = np.flatnonzero(last)
        sizes = ends - starts + 1
        width = np.repeat(value[ends] - value[starts], sizes)
        small = np.repeat(sizes <= 2, sizes)
        interior = ~first & ~last & (width > 0)
        gap = np.zeros(n)
        positions = np.flatnonzero(interior)
        gap[positions] = (value[positions + 1] - value[positions - 1]) / width[positions]
        gap[(first | last) & ((width > 0) | small)] = np.inf
        distance[order] += gap
    return distance
