"""Non-dominated sorting: the front rank of every point, and the Pareto front mask.

Everything here past the public functions works on minimised values (see ``check_values``). A point
dominates another when it is no worse in every objective and strictly better in at least one, so
exact duplicates never dominate each other and always share a front.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ._validate import Direction, check_values

__all__ = ["front_min", "non_dominated_sort", "pareto_mask", "ranks_min"]

# Points ranked per block; temporaries stay within about 8 x _BLOCK^2 x 9 bytes whatever n is.
_BLOCK = 512
# The mask compares a block with the front so far and with itself: small blocks suit small fronts.
_MASK_BLOCK = 64


def non_dominated_sort(values: npt.ArrayLike, directions: Sequence[Direction]) -> npt.NDArray[np.intp]:
    """The front rank of every point: 0 for the Pareto front, 1 for the front once it is removed, ...

    Args:
        values: ``[n_points, n_objectives]``, finite.
        directions: ``"minimize"`` or ``"maximize"`` per objective; mixed directions are fine.

    Returns:
        ``[n_points]`` integer ranks, in the order of ``values``. The rank of a point is the length of
        the longest chain of points dominating one another that ends in it, which is the front it is
        peeled off in. Duplicates share a rank.

    Two objectives take an ``O(n log n)`` sweep; more take ``O(n^2 m)`` vectorised comparisons in
    blocks of bounded memory (5,000 points of 3 objectives in well under a tenth of a second).
    """
    minimised, _ = check_values(values, directions)
    return ranks_min(minimised)


def pareto_mask(values: npt.ArrayLike, directions: Sequence[Direction]) -> npt.NDArray[np.bool_]:
    """``[n_points]`` booleans: True where no other point dominates (rank 0 of ``non_dominated_sort``)."""
    minimised, _ = check_values(values, directions)
    return _mask_min(minimised)


def ranks_min(values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Front ranks of minimised ``values`` (validated, finite)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.intp)
    unique, inverse = _unique_rows(values)
    if unique.shape[1] == 1:
        ranks = np.arange(len(unique), dtype=np.intp)
    elif unique.shape[1] == 2:
        ranks = _ranks_unique_2d(unique)
    else:
        ranks = _ranks_unique(unique)
    return ranks[inverse]


def front_min(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The distinct non-dominated rows of minimised ``values``, in lexicographic order."""
    if len(values) == 0:
        return values
    unique, _ = _unique_rows(values)
    return unique[_mask_unique(unique)]


def _mask_min(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    unique, inverse = _unique_rows(values)
    return _mask_unique(unique)[inverse]


def _unique_rows(
    values: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """Distinct rows in lexicographic order, and the index of each input row among them."""
    order = np.lexsort(values.T[::-1])
    ordered = values[order]
    new = np.ones(len(values), dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    inverse = np.empty(len(values), dtype=np.intp)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _ranks_unique_2d(unique: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Ranks of distinct, lexicographically sorted 2-D points by one sweep.

    Every dominator of a point comes before it. Front ``k`` dominates the next point exactly when the
    second objective of its latest member is no larger than the point's; those values increase with
    ``k``, so a binary search finds the point's front (patience sorting).
    """
    ranks = np.empty(len(unique), dtype=np.intp)
    latest: list[float] = []
    for i, y in enumerate(unique[:, 1].tolist()):
        k = bisect_right(latest, y)
        if k == len(latest):
            latest.append(y)
        else:
            latest[k] = y
        ranks[i] = k
    return ranks


def _earlier_dominates(
    earlier: npt.NDArray[np.float64], block: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """``out[i, j]``: ``earlier[i] <= block[j]`` in every objective (domination, for distinct points)."""
    out = earlier[:, None, 0] <= block[None, :, 0]
    for k in range(1, earlier.shape[1]):
        out &= earlier[:, None, k] <= block[None, :, k]
    return out


def _ranks_unique(unique: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Ranks of distinct, lexicographically sorted points: longest dominating chain, block by block.

    In lexicographic order every dominator of a point comes before it, so one pass suffices: a block
    first takes the best rank its earlier points imply, then resolves chains inside itself in order.
    """
    n = len(unique)
    ranks = np.zeros(n, dtype=np.intp)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        block = unique[start:stop]
        block_ranks = np.zeros(stop - start, dtype=np.intp)
        for low in range(0, start, 8 * _BLOCK):
            high = min(low + 8 * _BLOCK, start)
            dominated_by = _earlier_dominates(unique[low:high], block)
            implied = np.where(dominated_by, ranks[low:high, None] + 1, 0).max(axis=0)
            np.maximum(block_ranks, implied, out=block_ranks)
        inner = _earlier_dominates(block, block)
        for j in range(1, stop - start):
            column = inner[:j, j]
            if column.any():
                block_ranks[j] = max(block_ranks[j], block_ranks[:j][column].max() + 1)
        ranks[start:stop] = block_ranks
    return ranks


def _mask_unique(unique: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Pareto mask of distinct, lexicographically sorted points.

    A dominated point has a dominator on the front (dominance is transitive), and that dominator comes
    earlier, so each block is compared with the front found so far and with itself.
    """
    n, m = unique.shape
    if m == 1:
        mask = np.zeros(n, dtype=bool)
        mask[0] = True
        return mask
    if m == 2:
        # Sorted by the first objective, a point is on the front when it beats every earlier second value.
        best_before = np.minimum.accumulate(np.concatenate([[np.inf], unique[:-1, 1]]))
        return unique[:, 1] < best_before
    mask = np.zeros(n, dtype=bool)
    front = np.zeros(0, dtype=np.intp)
    for start in range(0, n, _MASK_BLOCK):
        stop = min(start + _MASK_BLOCK, n)
        block = unique[start:stop]
        dominated = _earlier_dominates(unique[front], block).any(axis=0)
        dominated |= np.triu(_earlier_dominates(block, block), k=1).any(axis=0)
        mask[start:stop] = ~dominated
        front = np.flatnonzero(mask[:stop])
    return mask
