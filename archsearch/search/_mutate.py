"""Mutations of a sampled architecture that respect the space's structure.

A space names each of its draws (:mod:`archsearch.space`): ``stages.1.mixer``, a per-block
``stages.2.blocks.7.mlp_ratio``, a nested ``stages.1.mixer[window].window``. A mutation copies a
parent's parameters and draws a few names anew, always to a value other than the parent's where the
domain has one. Nothing else is needed to respect per-block, nested and conditional choices: the
space asks for names one by one and only for the branches the draws open, so a per-block choice
mutates one block, and a name the parent never drew (a branch the mutation opened, a block a
deeper stage added) is drawn at random. Mutating one thing at a time is the mutation of
regularized evolution (Real et al., "Regularized Evolution for Image Classifier Architecture
Search", AAAI 2019, section 2).

Two users: the trial ledger redraws a duplicate proposal as a mutant (:func:`redraw`), and the
``evolution`` sampler (:mod:`._evolution`) mutates the winner of a tournament.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ..space import RandomSuggest, Scalar, SearchSpace
from ._candidate import Checked, check_candidate

__all__ = ["MAX_REDRAWS", "MutateSuggest", "draw", "redraw"]

#: Mutants (then random draws) tried for a duplicate proposal before the ledger gives up on it.
MAX_REDRAWS = 48


def draw(dist: BaseDistribution, rng: np.random.Generator, avoid: Any = None) -> Any:
    """A uniform draw from Optuna's distribution ``dist`` (log-uniform where it is ``log``),
    other than ``avoid`` when the domain has another value.

    Raises:
        TypeError: an unknown distribution type."""
    if isinstance(dist, CategoricalDistribution):
        choices = [c for c in dist.choices if not _same(c, avoid)] or list(dist.choices)
        return choices[int(rng.integers(len(choices)))]
    if isinstance(dist, IntDistribution):
        if dist.log:
            value = round(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high + 1)) - 0.5))
            value = min(dist.high, max(dist.low, value))
            if value == avoid and dist.high > dist.low:
                value = dist.low if value != dist.low else dist.high
            return value
        count = (dist.high - dist.low) // dist.step + 1
        values = [dist.low + dist.step * i for i in range(count)] if count <= 4096 else None
        if values is not None:
            others = [v for v in values if v != avoid] or values
            return others[int(rng.integers(len(others)))]
        return dist.low + dist.step * int(rng.integers(count))
    if isinstance(dist, FloatDistribution):
        if dist.step is not None:
            count = round((dist.high - dist.low) / dist.step) + 1
            return float(dist.low + dist.step * int(rng.integers(count)))
        if dist.log:
            return float(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high))))
        return float(rng.uniform(dist.low, dist.high))
    raise TypeError(f"cannot draw from {type(dist).__name__}")


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


class MutateSuggest:
    """A :class:`~archsearch.space.Suggest` that copies ``parent`` (a sample's parameters) except
    the names in ``flip`` (drawn to another value); names the parent lacks are drawn at random."""

    def __init__(self, parent: Mapping[str, Any], flip: set[str], rng: np.random.Generator):
        self.parent, self.flip, self.rng = dict(parent), set(flip), rng

    def _value(self, name: str, dist: BaseDistribution) -> Any:
        if name in self.parent and name not in self.flip and _contains(dist, self.parent[name]):
            return self.parent[name]
        return draw(dist, self.rng, avoid=self.parent.get(name))

    def categorical(self, name: str, choices: Sequence[Scalar]) -> Scalar:
        return self._value(name, CategoricalDistribution(list(choices)))

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self._value(name, IntDistribution(low, high, step=step, log=log)))

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self._value(name, FloatDistribution(low, high, step=step, log=log)))


def redraw(
    space: SearchSpace,
    params: Mapping[str, Any],
    known: Callable[[str], bool],
    rng: np.random.Generator,
    *,
    name: str = "redraw",
    tries: int = MAX_REDRAWS,
) -> Checked | None:
    """A new member near ``params`` (a duplicate proposal's parameters): mutants of one, then two,
    ... names, and in the last third of the ``tries`` uniform draws; the first that passes the
    space's checks (shapes, constraints) and whose spec hash is not ``known``, or None."""
    names = sorted(params)
    for attempt in range(tries):
        if attempt < 2 * tries // 3 and names:
            k = min(len(names), 1 + attempt // 8)
            flip = {names[int(i)] for i in rng.choice(len(names), size=k, replace=False)}
            suggest: Any = MutateSuggest(params, flip, rng)
        else:
            suggest = RandomSuggest(rng)
        checked = check_candidate(space, suggest, name)
        if not isinstance(checked, str) and not known(checked.spec_hash):
            return checked
    return None
