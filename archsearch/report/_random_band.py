"""The band random search reaches on the same space: what a study's hypervolume curve is judged by.

Random search with the same number of evaluations is the baseline every NAS result must beat
(Li and Talwalkar, "Random Search and Reproducibility for Neural Architecture Search", UAI 2019;
Lindauer and Hutter, "Best Practices for Scientific Research on NAS", JMLR 2020). Where every
objective is an analytic cost of the space (``macs``, ``params``: :mod:`archsearch.cost`, nothing
built), the band is estimated by sampling: ``repeats`` runs of uniform draws of distinct members
that pass the space's checks, each scored with the analytic costs, their hypervolume after each
member under the report's reference point, and the median and interquartile range over runs. Where
an objective needs an evaluation (accuracy, latency, a zero-cost score), sampling it would cost a
search of its own: the band is stated as unavailable, with why.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..pareto import Direction, hypervolume_history
from ..space import RandomSuggest, SearchSpace

__all__ = ["ANALYTIC_OBJECTIVES", "random_band"]

#: Objectives known from the space alone (the analytic cost model).
ANALYTIC_OBJECTIVES = ("macs", "params")


def random_band(
    space: SearchSpace | None,
    metrics: Sequence[str],
    directions: Sequence[Direction],
    reference: np.ndarray | None,
    trials: np.ndarray,
    *,
    repeats: int = 10,
    seed: int = 0,
    max_members: int = 500,
) -> tuple[pd.DataFrame | None, str]:
    """Random search's hypervolume band on ``space`` for a study of objectives ``metrics`` (one
    direction each) whose hypervolume is taken at ``reference``; ``trials`` are the study's scored
    trial numbers, in order.

    Returns ``(band, note)``: ``band`` has one row per scored trial (the k-th row: after k members),
    columns ``trial`` (the study's k-th scored trial, to draw beside its curve), ``low``,
    ``median``, ``high`` (quartiles over ``repeats`` runs), or None with ``note`` saying why it is
    unavailable (no space given, an objective that needs an evaluation, no hypervolume). Runs stop
    early where the space has fewer valid members than trials; at most ``max_members`` members per
    run are drawn."""
    if space is None:
        return None, "the report was written without the search space (it is drawn by `archsearch search`)"
    if reference is None or len(trials) == 0 or len(metrics) < 2:
        return None, "it needs a hypervolume (two or more objectives and a complete trial)"
    needs = [m for m in metrics if m not in ANALYTIC_OBJECTIVES]
    if needs:
        return None, (
            f"objective {', '.join(needs)} needs an evaluation; only {', '.join(ANALYTIC_OBJECTIVES)} "
            "are known from the space without one"
        )
    n = min(len(trials), max_members)
    rng = np.random.default_rng(seed)
    curves = []
    for _ in range(repeats):
        seen: set[str] = set()
        points: list[list[float]] = []
        tries = 0
        while len(points) < n and tries < 20 * n:
            tries += 1
            c = space.candidate(RandomSuggest(rng))
            if c.rejected is not None or c.costs is None or c.plan is None:
                continue
            key = repr(c.sample.params)
            if key in seen:
                continue
            seen.add(key)
            points.append([float(getattr(c.costs, m)) for m in metrics])
        if points:
            curves.append(hypervolume_history(np.asarray(points), directions, reference))
    if not curves:
        return None, "no member of the space passed its checks"
    k = min(len(c) for c in curves)
    arr = np.stack([c[:k] for c in curves])
    low, median, high = np.percentile(arr, [25, 50, 75], axis=0)
    band = pd.DataFrame({"trial": trials[:k], "low": low, "median": median, "high": high})
    return band, f"random search on the same space: median and interquartile range of {len(curves)} runs"
