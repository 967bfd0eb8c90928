"""archsearch.pareto against brute force: peeled fronts, inclusion-exclusion volumes, Deb's loop."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.pareto import (
    _sort,
    crowding_distance,
    hypervolume,
    hypervolume_history,
    non_dominated_sort,
    pareto_mask,
    reference_point,
)

DIRECTIONS = ("minimize", "maximize")


# --- brute force -------------------------------------------------------------------------------


def _better_or_equal(a, b, directions):
    return all(x <= y if d == "minimize" else x >= y for x, y, d in zip(a, b, directions, strict=True))


def _dominates(a, b, directions):
    return _better_or_equal(a, b, directions) and tuple(a) != tuple(b)


def brute_ranks(values, directions):
    """Peel fronts: the points no remaining point dominates, again and again."""
    remaining = set(range(len(values)))
    ranks = [-1] * len(values)
    rank = 0
    while remaining:
        front = {
            i for i in remaining if not any(_dominates(values[j], values[i], directions) for j in remaining)
        }
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return ranks


def brute_hypervolume(values, directions, reference):
    """Inclusion-exclusion over every subset of the boxes between each point and the reference."""
    total = 0.0
    for size in range(1, len(values) + 1):
        for subset in itertools.combinations(values, size):
            volume = 1.0
            for k, d in enumerate(directions):
                column = [p[k] for p in subset]
                side = reference[k] - max(column) if d == "minimize" else min(column) - reference[k]
                volume *= max(side, 0.0)
            total += (-1) ** (size + 1) * volume
    return total


def grid_hypervolume(values, directions, reference):
    """Count the unit cells of an integer grid that lie inside some point's box."""
    lows = [min(min(p[k] for p in values), reference[k]) for k in range(len(directions))]
    highs = [max(max(p[k] for p in values), reference[k]) for k in range(len(directions))]
    cells = np.stack(np.meshgrid(*[np.arange(lo, hi) for lo, hi in zip(lows, highs, strict=True)]), -1)
    cells = cells.reshape(-1, len(directions))
    covered = np.zeros(len(cells), dtype=bool)
    for p in values:
        inside = np.ones(len(cells), dtype=bool)
        for k, d in enumerate(directions):
            if d == "minimize":  # cell [c, c + 1] within [p, ref]
                inside &= (p[k] <= cells[:, k]) & (cells[:, k] + 1 <= reference[k])
            else:  # within [ref, p]
                inside &= (reference[k] <= cells[:, k]) & (cells[:, k] + 1 <= p[k])
        covered |= inside
    return float(covered.sum())


def deb_crowding(values, ranks):
    """Deb et al.'s loop per front, with the package's stated tie and zero-range rules."""
    n, m = len(values), len(values[0])
    distance = [0.0] * n
    for rank in set(ranks):
        members = [i for i in range(n) if ranks[i] == rank]
        if len(members) <= 2:
            for i in members:
                distance[i] = math.inf
            continue
        for k in range(m):
            ordered = sorted(members, key=lambda i: values[i][k])  # stable: ties keep input order
            low, high = values[ordered[0]][k], values[ordered[-1]][k]
            if high == low:
                continue
            distance[ordered[0]] = distance[ordered[-1]] = math.inf
            for a, i, b in zip(ordered, ordered[1:], ordered[2:], strict=False):
                distance[i] += (values[b][k] - values[a][k]) / (high - low)
    return distance


# --- random inputs -----------------------------------------------------------------------------


def _points(rng, n, m, grid):
    """Integer points on a small grid (ties), with some rows repeated exactly (duplicates)."""
    values = rng.integers(0, grid, size=(n, m)).astype(float)
    if n > 2:
        values[rng.integers(0, n, size=n // 4)] = values[rng.integers(0, n, size=n // 4)]
    return values


def _directions(rng, m):
    return [DIRECTIONS[i] for i in rng.integers(0, 2, size=m)]


@st.composite
def point_sets(draw, max_points=8, max_objectives=4, grid=5):
    m = draw(st.integers(2, max_objectives))
    n = draw(st.integers(1, max_points))
    row = st.lists(st.integers(0, grid - 1), min_size=m, max_size=m)
    values = draw(st.lists(row, min_size=n, max_size=n))
    directions = draw(st.lists(st.sampled_from(DIRECTIONS), min_size=m, max_size=m))
    return np.array(values, dtype=float), directions


# --- non-dominated sorting ---------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("grid", [3, 6, 1000])
def test_non_dominated_sort_matches_peeling(m, grid):
    rng = np.random.default_rng(100 * m + grid)
    for _ in range(10):
        values = _points(rng, int(rng.integers(1, 60)), m, grid)
        directions = _directions(rng, m)
        ranks = non_dominated_sort(values, directions)
        assert ranks.tolist() == brute_ranks(values.tolist(), directions)
        assert pareto_mask(values, directions).tolist() == (ranks == 0).tolist()


@settings(max_examples=150, deadline=None)
@given(point_sets(max_points=12))
def test_non_dominated_sort_matches_peeling_hypothesis(case):
    values, directions = case
    assert non_dominated_sort(values, directions).tolist() == brute_ranks(values.tolist(), directions)


@pytest.mark.parametrize("m", [3, 4])
def test_non_dominated_sort_spans_blocks(monkeypatch, m):
    """Small comparison blocks, so ranks and the front carry across block boundaries."""
    monkeypatch.setattr(_sort, "_BLOCK", 16)
    monkeypatch.setattr(_sort, "_MASK_BLOCK", 8)
    rng = np.random.default_rng(7 + m)
    values = _points(rng, 150, m, 6)
    directions = _directions(rng, m)
    expected = brute_ranks(values.tolist(), directions)
    assert non_dominated_sort(values, directions).tolist() == expected
    assert pareto_mask(values, directions).tolist() == [rank == 0 for rank in expected]


def test_duplicates_share_the_front_and_a_chain_gets_one_rank_per_point():
    values = [[1, 1], [1, 1], [0, 2], [2, 2], [2, 2], [3, 3]]
    assert non_dominated_sort(values, ["minimize", "minimize"]).tolist() == [0, 0, 0, 1, 1, 2]
    chain = np.arange(5)[:, None] * [1.0, 1.0, 1.0]
    assert non_dominated_sort(chain, ["maximize"] * 3).tolist() == [4, 3, 2, 1, 0]
    assert non_dominated_sort(np.zeros((0, 3)), ["minimize"] * 3).tolist() == []


# --- hypervolume -------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_hypervolume_matches_inclusion_exclusion(m):
    rng = np.random.default_rng(m)
    for _ in range(25):
        values = _points(rng, int(rng.integers(1, 9)), m, 6) + rng.random() * 0.5
        directions = _directions(rng, m)
        # Some points sit on or beyond the reference in some objective: they must add nothing.
        reference = np.array([4.0 if d == "minimize" else 1.0 for d in directions])
        expected = brute_hypervolume(values.tolist(), directions, reference.tolist())
        assert hypervolume(values, directions, reference) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(point_sets(max_points=8, max_objectives=4, grid=6))
def test_hypervolume_counts_grid_cells(case):
    values, directions = case
    reference = [5 if d == "minimize" else 1 for d in directions]
    expected = grid_hypervolume(values.astype(int).tolist(), directions, reference)
    assert hypervolume(values, directions, reference) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_of_many_points_counts_grid_cells(m):
    """Larger sets than inclusion-exclusion allows, many ties: still the exact cell count."""
    rng = np.random.default_rng(11 * m)
    grid = {2: 40, 3: 12, 4: 7}[m]
    values = _points(rng, 60, m, grid)
    directions = _directions(rng, m)
    reference = [grid - 1 if d == "minimize" else 1 for d in directions]
    expected = grid_hypervolume(values.astype(int).tolist(), directions, reference)
    assert hypervolume(values, directions, reference) == pytest.approx(expected, abs=1e-9)


def test_hypervolume_edge_cases():
    assert hypervolume([[1.0, 1.0]], ["minimize", "minimize"], [3.0, 2.0]) == 2.0
    assert hypervolume([[3.0, 1.0]], ["minimize", "minimize"], [3.0, 2.0]) == 0.0  # on the reference
    assert hypervolume(np.zeros((0, 2)), ["minimize", "minimize"], [1.0, 1.0]) == 0.0
    assert hypervolume([[2.0], [5.0]], ["maximize"], [0.0]) == 5.0
    # Only the front matters: dominated points and duplicates change nothing.
    front = [[1.0, 3.0, 2.0], [2.0, 1.0, 3.0], [3.0, 2.0, 1.0]]
    noisy = [*front, *front, [3.0, 3.0, 3.0], [2.0, 3.0, 2.5]]
    reference = [4.0, 4.0, 4.0]
    assert hypervolume(noisy, ["minimize"] * 3, reference) == hypervolume(front, ["minimize"] * 3, reference)


def test_hypervolume_is_invariant_under_flipping_a_direction():
    rng = np.random.default_rng(3)
    values = rng.random((40, 4))
    reference = np.array([1.1, 1.1, -0.1, 1.1])
    flipped = values * [1, 1, -1, 1]
    directions = ["minimize", "minimize", "maximize", "minimize"]
    expected = hypervolume(flipped, ["minimize"] * 4, reference * [1, 1, -1, 1])
    assert hypervolume(values, directions, reference) == pytest.approx(expected, rel=1e-12)


# --- reference point ---------------------------------------------------------------------------


def test_reference_point_is_the_pushed_out_nadir_of_all_points():
    values = [[1.0, 10.0, 5.0], [3.0, 30.0, 5.0], [2.0, 20.0, 5.0]]
    directions = ["minimize", "maximize", "minimize"]
    assert reference_point(values, directions).tolist() == pytest.approx([3.2, 8.0, 5.5])
    assert reference_point(values, directions, margin=0.0).tolist() == [3.0, 10.0, 5.0]
    # Zero range: margin x |value|, or margin x 1 at zero, outwards for either direction.
    flat = [[0.0, -4.0], [0.0, -4.0]]
    assert reference_point(flat, ["maximize", "maximize"], margin=0.5).tolist() == [-0.5, -6.0]
    assert reference_point(flat, ["minimize", "minimize"], margin=0.5).tolist() == [0.5, -2.0]


def test_reference_point_uses_the_whole_set_and_every_point_counts():
    rng = np.random.default_rng(5)
    values = rng.random((30, 3))
    directions = ["minimize", "maximize", "maximize"]
    reference = reference_point(values, directions)
    # The dominated worst points set the reference too, so every point lies strictly inside it.
    sign = np.array([1, -1, -1])
    assert ((values * sign) < reference * sign).all()
    assert hypervolume(values, directions, reference) > 0


# --- hypervolume history -----------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_history_is_monotone_and_ends_at_the_total(m):
    rng = np.random.default_rng(20 + m)
    values = _points(rng, 80, m, 8) + rng.random((80, m)) * 0.5
    values[rng.integers(0, 80, size=10), rng.integers(0, m, size=10)] = np.nan  # failed trials
    directions = _directions(rng, m)
    complete = ~np.isnan(values).any(axis=1)
    reference = reference_point(values[complete], directions)
    history = hypervolume_history(values, directions, reference)
    assert history.shape == (80,)
    assert (np.diff(history) >= -1e-9 * history[-1]).all()
    for k in range(0, 80, 9):
        assert history[k] == pytest.approx(
            hypervolume(values[: k + 1][complete[: k + 1]], directions, reference)
        )
    assert history[-1] == pytest.approx(hypervolume(values[complete], directions, reference), rel=1e-12)


def test_hypervolume_history_is_flat_on_dominated_failed_and_outside_rows():
    directions = ["minimize", "maximize"]
    values = [
        [2.0, 2.0],  # box 1 x 1
        [3.0, 1.0],  # dominated: flat
        [np.nan, 5.0],  # failed trial: flat
        [2.0, 2.0],  # duplicate: flat
        [4.0, 9.0],  # beyond the reference in the first objective: flat
        [1.0, 3.0],  # dominates the first: 2 x 2
        [1.5, 2.5],  # dominated by the one before: flat
        [2.0, 4.0],  # adds [2, 3] x [3, 4]
    ]
    history = hypervolume_history(values, directions, [3.0, 1.0])
    assert history.tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 4.0, 4.0, 5.0]


# --- crowding distance -------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("grid", [4, 1000])
def test_crowding_distance_matches_debs_loop(m, grid):
    rng = np.random.default_rng(30 * m + grid)
    for _ in range(8):
        values = _points(rng, int(rng.integers(1, 50)), m, grid)
        directions = _directions(rng, m)
        ranks = non_dominated_sort(values, directions)
        expected = deb_crowding(values.tolist(), ranks.tolist())
        got = crowding_distance(values, directions)
        assert not np.isnan(got).any()
        assert got.tolist() == pytest.approx(expected)
        assert crowding_distance(values, directions, ranks=ranks).tolist() == pytest.approx(expected)


def test_crowding_distance_boundaries_are_infinite():
    front = [[0.0, 4.0], [1.0, 2.0], [2.0, 1.0], [4.0, 0.0]]
    distance = crowding_distance(front, ["minimize", "minimize"])
    assert distance.tolist() == [
        math.inf,
        pytest.approx(2 / 4 + 3 / 4),
        pytest.approx(3 / 4 + 2 / 4),
        math.inf,
    ]
    # Fronts of one or two points are all boundary; a front of equal points has nothing to spread.
    assert crowding_distance([[1.0, 1.0], [0.0, 2.0]], ["minimize"] * 2).tolist() == [math.inf, math.inf]
    assert crowding_distance([[1.0, 1.0]] * 3, ["minimize"] * 2).tolist() == [0.0, 0.0, 0.0]
    # Explicit labels group the points; here all four form one group.
    assert crowding_distance(front, ["minimize"] * 2, ranks=[7, 7, 7, 7]).tolist() == distance.tolist()


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: non_dominated_sort([[1, 2, 3]], ["minimize"] * 2),
            r"`len\(directions\)` must equal the number of objectives \(3\), but got 2",
        ),
        (
            lambda: pareto_mask([1, 2, 3], ["minimize"]),
            r"`values` must be a 2-D array .* but got shape \(3,\)",
        ),
        (lambda: pareto_mask(np.zeros((4, 0)), []), r"at least one objective .* but got shape \(4, 0\)"),
        (
            lambda: non_dominated_sort([[1, 2]], ["minimize", "max"]),
            r"`directions\[1\]` must be one of \['minimize', 'maximize'\], but got 'max'",
        ),
        (
            lambda: non_dominated_sort([[1]], "minimize"),
            r"sequence of directions .* but got the string 'minimize'",
        ),
        (
            lambda: non_dominated_sort([[1, np.nan]], ["minimize"] * 2),
            r"`values` must be finite, but got nan at row 0, column 1",
        ),
        (
            lambda: crowding_distance([[1, 2], [3, np.inf]], ["minimize"] * 2),
            r"must be finite, but got inf at row 1",
        ),
        (
            lambda: crowding_distance([[1, 2], [3, 4]], ["minimize"] * 2, ranks=[0]),
            r"`ranks` must be 2 integers",
        ),
        (
            lambda: crowding_distance([[1, 2], [3, 4]], ["minimize"] * 2, ranks=[0.0, 1.0]),
            r"`ranks` must be 2 integers",
        ),
        (
            lambda: hypervolume([[1, 2]], ["minimize"] * 2, [3, 3, 3]),
            r"`reference` must have shape \(2,\), .* but got shape \(3,\)",
        ),
        (lambda: hypervolume([[1, 2]], ["minimize"] * 2, [3, np.nan]), r"`reference` must be finite"),
        (
            lambda: hypervolume_history([[1, np.inf]], ["minimize"] * 2, [3, 3]),
            r"must be finite or NaN, but got inf",
        ),
        (lambda: reference_point(np.zeros((0, 2)), ["minimize"] * 2), r"at least one point"),
        (
            lambda: reference_point([[1, 2]], ["minimize"] * 2, margin=-0.1),
            r"`margin` must be finite and >= 0, but got -0.1",
        ),
        (lambda: hypervolume([["a", 1]], ["minimize"] * 2, [1, 1]), r"`values` must be numeric"),
    ],
)
def test_bad_arguments_raise_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
