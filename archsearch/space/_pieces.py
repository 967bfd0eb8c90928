"""The latency pieces a space's members use, found without enumerating the space.

A piece (:mod:`archsearch.cost`'s ``plan_pieces``: a stem, a stage entry, a block, a head) depends
only on its own options and its input shape, so the pieces of a space are found stage by stage:

1. the space-level draws (anything not under ``stages.i``) are enumerated, each assignment a
   *prefix*;
2. for stage ``i`` and each prefix that reaches a distinct input (the previous stage's output
   shape and family), every assignment of stage ``i``'s own draws is enumerated, including draws
   that exist only under an option (``stages.1.mixer[attention].kv_stride``); per-block draws
   (``stages.2.blocks.7.mlp_ratio``) are enumerated one block at a time, the other blocks at their
   first option; the stages after ``i`` take their first options (random ones when those give no
   valid spec);
3. each assignment is normalised and its pieces collected; the distinct outputs of stage ``i``
   become the prefixes of stage ``i + 1``;
4. a few random members are added, for pieces that depend on several stages at once.

The work grows with the sum over stages of (reachable inputs x the stage's own options), not with
their product: hybrid_small (1.3 million members) takes a few thousand normalisations.
A piece missed here (a block whose per-block option changes the shape the next block sees) is
measured when a prediction first needs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..cost import LatencyPredictor, Piece, piece_keys, plan_pieces
from ..errors import SpecError
from ..spec import NormalizedSpec, normalize
from ._space import SearchSpace

__all__ = ["fill_table", "space_pieces"]

_STAGE = re.compile(r"^stages\.(\d+)\.(?:blocks\.(\d+)\.)?")
#: Assignments one expansion may enumerate before giving up on it (the caller samples instead).
MAX_ASSIGNMENTS = 20_000
#: Members timed together in interleaved rounds by :func:`fill_table` (the table is saved after
#: each such group, so an interrupted fill resumes from there).
HOSTS_AT_ONCE = 64
#: Added to the seed for the non-host members :func:`fill_table` draws.
NON_HOST_SEED = 7919
#: Integer ranges wider than this are covered by their ends and a few points between.
MAX_RANGE = 16


def _where(name: str) -> tuple[int, int | None] | None:
    """``stages.2.blocks.7.mlp_ratio`` -> ``(2, 7)``; ``stages.1.mixer`` -> ``(1, None)``; a
    space-level draw -> ``None``."""
    m = _STAGE.match(name)
    if m is None:
        return None
    return int(m.group(1)), None if m.group(2) is None else int(m.group(2))


def _at(where: tuple[int, int | None] | None) -> Callable[[str], bool]:
    """Selects the draws of one place: space-level (``None``), a stage, or a block of a stage."""
    return lambda name: _where(name) == where


class _Explore:
    """A suggest that takes fixed values where given, else the first option (or a random one),
    and records every draw's domain in order."""

    def __init__(self, fixed: dict[str, Any], rng: np.random.Generator | None = None):
        self.fixed, self.rng = fixed, rng
        self.domains: dict[str, list[Any]] = {}

    def _pick(self, name: str, domain: list[Any]) -> Any:
        self.domains[name] = domain
        if name in self.fixed:
            return self.fixed[name]
        if self.rng is not None:
            return domain[int(self.rng.integers(len(domain)))]
        return domain[0]

    def categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._pick(name, list(choices))

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        values = list(range(low, high + 1, step))
        if len(values) > MAX_RANGE:
            idx = np.linspace(0, len(values) - 1, MAX_RANGE).round().astype(int)
            values = sorted({values[i] for i in idx})
        return int(self._pick(name, values))

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self._pick(name, [low, high]))  # continuous: ends here, the rest by sampling


class _TooMany(Exception):
    pass


def _explore(space: SearchSpace, fixed: dict[str, Any]) -> _Explore:
    ex = _Explore(fixed)
    space.sample(ex)
    return ex


def _expand(space: SearchSpace, base: dict[str, Any], select: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Every assignment of the draws ``select`` picks, given ``base`` (draws that appear only under
    an option are enumerated where that option is chosen)."""
    out: list[dict[str, Any]] = []
    stack: list[dict[str, Any]] = [{}]
    while stack:
        partial = stack.pop()
        ex = _explore(space, {**base, **partial})
        free = [n for n in ex.domains if select(n) and n not in partial]
        if not free:
            out.append(partial)
            if len(out) > MAX_ASSIGNMENTS:
                raise _TooMany
            continue
        name = free[0]
        stack.extend({**partial, name: v} for v in reversed(ex.domains[name]))
    return out


def _plan(space: SearchSpace, fixed: dict[str, Any], tries: int = 8) -> NormalizedSpec | None:
    """The member ``fixed`` gives with the other draws at their first option, or random ones when
    that is not a valid spec (``None`` after ``tries``)."""
    for attempt in range(tries):
        rng = None if attempt == 0 else np.random.default_rng(attempt)
        sample = space.sample(_Explore(fixed, rng))
        try:
            return normalize(sample.spec(shapes=False), sample.source)
        except SpecError:
            continue
    return None


def space_pieces(
    space: SearchSpace, *, samples: int = 100, seed: int = 0, on_plan: Callable[[int], None] | None = None
) -> dict[str, Piece]:
    """Key -> piece for every distinct piece the members of ``space`` use (see the module's
    docstring for how they are found), in the order they were found. ``samples`` random members
    are added at the end (all of the coverage when the stage-wise enumeration would be too large);
    ``on_plan(n)`` is told how many members were normalised so far."""
    found: dict[str, Piece] = {}
    count = 0

    def collect(plan: NormalizedSpec | None) -> None:
        nonlocal count
        count += 1
        if on_plan is not None:
            on_plan(count)
        if plan is None:
            return
        for piece in plan_pieces(plan):
            found.setdefault(piece.key, piece)

    try:
        for plan in _stagewise(space):
            collect(plan)
    except _TooMany:
        samples = max(samples, 1000)
    rng = np.random.default_rng(seed)
    for _ in range(samples):
        sample = space.sample(_Explore({}, rng))
        try:
            collect(normalize(sample.spec(shapes=False), sample.source))
        except SpecError:
            continue
    return found


def _stagewise(space: SearchSpace) -> Iterator[NormalizedSpec | None]:
    """The members the stage-wise enumeration normalises (``None`` where none was valid)."""
    prefixes = _expand(space, {}, _at(None))
    stages = len(space.default().data.get("stages") or [])
    for i in range(stages):
        reached: dict[Any, dict[str, Any]] = {}
        for prefix in prefixes:
            for own in _expand(space, prefix, _at((i, None))):
                base = {**prefix, **own}
                blocks = sorted(
                    {
                        w[1]
                        for n in _explore(space, base).domains
                        if (w := _where(n)) and w[0] == i and w[1] is not None
                    }
                )
                variants = [base]
                for j in blocks:
                    variants += [{**base, **b} for b in _expand(space, base, _at((i, j))) if b]
                for fixed in variants:
                    plan = _plan(space, fixed)
                    yield plan
                    if plan is not None and i < len(plan.stages):
                        stage = plan.stages[i]
                        reached.setdefault((stage.out_shape, stage.family), base)
        prefixes = list(reached.values())


def _cover(pieces: dict[str, Piece], todo: set[str]) -> list[NormalizedSpec]:
    """Members that together use every key of ``todo`` (greedy: the member with the most keys not
    yet covered first), among the members that brought the pieces."""
    plans = {id(p.plan): p.plan for k, p in pieces.items() if k in todo}
    uses = {i: set(piece_keys(plan)) & todo for i, plan in plans.items()}
    left, out = set(todo), []
    while left:
        best = max(uses, key=lambda i: len(uses[i] & left))
        out.append(plans[best])
        left -= uses.pop(best)
    return out


def fill_table(
    space: SearchSpace,
    predictor: LatencyPredictor,
    *,
    members: int = 48,
    samples: int = 100,
    seed: int = 0,
    in_situ: bool = True,
    on_found: Callable[[int], None] | None = None,
    on_piece: Callable[[int, int], None] | None = None,
    on_member: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Measure into ``predictor``'s table every piece of ``space`` it lacks (:func:`space_pieces`),
    then random members whole, none of which hosted a piece's timing, until the table holds
    ``members`` such *non-host* members: the overhead is fitted on them
    (:func:`~archsearch.cost.fit_correction`), and they become the table's calibration anchors.

    With ``in_situ`` (the default) the pieces are timed in place, inside whole members that
    together use them all (:meth:`LatencyPredictor.measure_in_situ`; each such *host* is kept too,
    for the fit of a table with fewer than six non-host members); otherwise each is built and
    timed alone. The table is saved after each step when it has a file, so an interrupted run
    resumes where it stopped. Callbacks: ``on_found(n)`` while members are normalised,
    ``on_piece(done, total)`` as pieces are timed, ``on_member(done, total)`` after each group of
    non-host members. Returns counts: ``pieces`` (the
    space's), ``measured``, ``skipped`` (already in the table), ``members`` (non-host members timed
    whole this time), ``hosts`` (members the pieces were timed in).
    """
    from ..spec import spec_hash

    table = predictor.table
    pieces = space_pieces(space, samples=samples, seed=seed, on_plan=on_found)
    todo = [k for k in pieces if k not in table]
    hosts = 0
    if in_situ:
        covered: set[str] = set()
        cover = _cover(pieces, set(todo))
        for start in range(0, len(cover), HOSTS_AT_ONCE):
            chunk = cover[start : start + HOSTS_AT_ONCE]
            predictor.measure_in_situ_many([(host, spec_hash(host)) for host in chunk])
            hosts += len(chunk)
            for host in chunk:
                covered |= set(piece_keys(host)) & set(todo)
            if table.path is not None:
                table.save()
            if on_piece is not None:
                on_piece(len(covered), len(todo))
    else:
        for done, key in enumerate(todo, 1):
            predictor.measure(pieces[key])
            if table.path is not None:
                table.save()
            if on_piece is not None:
                on_piece(done, len(todo))
    if space.name not in table.spaces:
        table.spaces.append(space.name)
    known = {m.get("hash") for m in table.members}
    need = max(0, members - sum(m.get("host") is False for m in table.members))
    chosen: list[tuple[NormalizedSpec, str]] = []
    # another stream than the enumeration's random members (:func:`space_pieces`), many of which host
    for candidate in space.random_samples(need * 4 + len(known), seed=seed + NON_HOST_SEED):
        plan = candidate.plan
        if plan is None or candidate.rejected is not None:
            continue
        digest = spec_hash(plan)
        if digest not in known and all(digest != d for _, d in chosen):
            chosen.append((plan, digest))
        if len(chosen) >= need:
            break
    for start in range(0, len(chosen), HOSTS_AT_ONCE):
        predictor.measure_members(chosen[start : start + HOSTS_AT_ONCE])
        if table.path is not None:
            table.save()
        if on_member is not None:
            on_member(min(start + HOSTS_AT_ONCE, len(chosen)), len(chosen))
    if table.path is not None:
        table.save()
    return {
        "pieces": len(pieces),
        "measured": len(todo),
        "skipped": len(pieces) - len(todo),
        "members": len(chosen),
        "hosts": hosts,
    }
