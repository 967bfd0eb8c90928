"""Multi-objective maths for search results: fronts, crowding, hypervolume. No plotting here.

Every function takes ``values`` of shape ``[n_points, n_objectives]`` and one direction per
objective, ``"minimize"`` or ``"maximize"`` (mixed directions are fine), and returns plain numpy
data for a report or plot backend to draw.

>>> from archsearch.pareto import non_dominated_sort, hypervolume, reference_point
>>> values = [[1.0, 80.0], [2.0, 85.0], [2.0, 70.0]]   # latency (ms), accuracy (%)
>>> directions = ["minimize", "maximize"]
>>> non_dominated_sort(values, directions).tolist()
[0, 0, 1]
>>> reference_point(values, directions).tolist()        # latency 2.1 ms, accuracy 68.5 %
[2.1, 68.5]

Dominance: a point dominates another when it is no worse in every objective and strictly better in
at least one, so duplicates share a front.

The default reference point (``reference_point``): the worst value of each objective over all
the given points (the nadir of the whole set, not only of its Pareto front), pushed outwards by
``margin`` (default 0.1) times that objective's range; where the range is zero, by ``margin`` times
the absolute value, or by ``margin`` when the value is 0. Every given point therefore strictly
dominates it and adds volume, boundary points included. Hypervolumes are only comparable under the
same reference point: to compare runs, derive one reference from all their points together, or
pass a fixed one (``hypervolume`` and ``hypervolume_history`` take any reference).

Hypervolume is exact for any number of objectives: a sweep for 2, slicing for 3, and a WFG-style
recursion for 4 or more (exponential in the worst case; see ``archsearch.pareto._hypervolume``).
"""

from ._crowding import crowding_distance
from ._hypervolume import hypervolume, hypervolume_history, reference_point
from ._sort import non_dominated_sort, pareto_mask
from ._validate import Direction

__all__ = [
    "Direction",
    "crowding_distance",
    "hypervolume",
    "hypervolume_history",
    "non_dominated_sort",
    "pareto_mask",
    "reference_point",
]
