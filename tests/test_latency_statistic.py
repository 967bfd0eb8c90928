"""Latency statistics: which statistic of a member's timed runs a latency is."""

from __future__ import annotations

import pytest

from archsearch.cost import STATISTICS, statistic_ms


def test_each_statistic_from_given_runs() -> None:
    runs = [5.0, 1.0, 3.0, 2.0, 4.0, 9.0, 7.0, 8.0]  # sorted: 1 2 3 4 5 7 8 9
    assert statistic_ms(runs) == pytest.approx(4.5)
    assert statistic_ms(runs, "min") == 1.0
    assert statistic_ms(runs, "p10") == pytest.approx(1.7)  # (8 - 1) * 0.1 = 0.7 of the way 1 -> 2
    assert statistic_ms(runs, "p25") == pytest.approx(2.75)  # 1.75: 2 + 0.75 * (3 - 2)
    assert statistic_ms(runs, "fastest_quarter") == pytest.approx(1.5)  # mean of the 2 fastest
    assert statistic_ms(runs, "mean") == pytest.approx(39 / 8)
    # a quarter is rounded up: 5 runs -> the 2 fastest
    assert statistic_ms([10.0, 1.0, 2.0, 30.0, 20.0], "fastest_quarter") == pytest.approx(1.5)
    assert statistic_ms([3.0], "p10") == 3.0
    assert set(STATISTICS) == {"median", "min", "p10", "p25", "fastest_quarter", "mean"}


def test_an_unknown_statistic_or_no_runs_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown latency statistic 'p50'; allowed: median, min, p10"):
        statistic_ms([1.0, 2.0], "p50")
    with pytest.raises(ValueError, match="at least one timed run"):
        statistic_ms([], "median")
