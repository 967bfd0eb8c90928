"""Latency statistics: which statistic of a member's timed runs a latency is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archsearch.cost import (
    DEFAULT_STATISTIC,
    STATISTICS,
    Fingerprint,
    LatencyPredictor,
    LatencyTable,
    TableMismatch,
    default_table_path,
    statistic_ms,
)
from archsearch.errors import SpecError
from archsearch.search import Objective


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


def test_a_table_holds_one_statistic_and_refuses_another(tmp_path: Path) -> None:
    fp = Fingerprint.here("cpu", threads=1)
    table = LatencyTable(fp, statistic="fastest_quarter")
    table.add("k", ms=1.5)
    table.save(tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text())["statistic"] == "fastest_quarter"
    again = LatencyTable.open(tmp_path / "t.json", fp, "fastest_quarter")
    assert again.statistic == "fastest_quarter" and again.ms("k") == 1.5
    assert LatencyTable.open(tmp_path / "t.json", fp).statistic == "fastest_quarter"  # the default
    with pytest.raises(TableMismatch) as refused:
        LatencyTable.open(tmp_path / "t.json", fp, "median")
    message = str(refused.value)
    assert "holds the 'fastest_quarter'" in message and "'median' is wanted" in message
    assert "median, min, p10, p25, fastest_quarter, mean" in message and "t.json" in message
    # a table written before the choice existed holds medians
    data = table.to_dict()
    del data["statistic"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert LatencyTable.load(tmp_path / "old.json", fp).statistic == "median"
    with pytest.raises(TableMismatch, match="holds the 'median'"):
        LatencyPredictor.open(tmp_path / "old.json", fp, "min")
    (tmp_path / "bad.json").write_text(json.dumps({**data, "statistic": "p50"}))
    unknown = r"bad.json:1: statistic: not an allowed value .*\(got 'p50'\); allowed: median"
    with pytest.raises(SpecError, match=unknown):
        LatencyTable.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="allowed: median, min"):
        LatencyTable(fp, statistic="p50")
    # each statistic has its own default file; the median's keeps the name tables had before
    assert default_table_path(fp, "min").name == f"{fp.slug()}-min.json"
    assert default_table_path(fp).name == f"{fp.slug()}-fastest_quarter.json"
    assert default_table_path(fp, "median").name == f"{fp.slug()}.json"


def test_every_latency_default_is_the_one_default_statistic() -> None:
    """The objective, the space's latency bound, the table API and the CLI take one default (the CLI
    spells it out, so that torch is not imported before a command runs)."""
    import inspect

    from archsearch.cli._latency import latency_table
    from archsearch.space._constraints import LatencyBound

    assert DEFAULT_STATISTIC == "fastest_quarter"
    assert Objective(metric="latency_ms").statistic == DEFAULT_STATISTIC
    assert LatencyBound(max=5.0).statistic == DEFAULT_STATISTIC
    assert LatencyTable(Fingerprint.here("cpu", threads=1)).statistic == DEFAULT_STATISTIC
    assert inspect.signature(latency_table).parameters["statistic"].default == DEFAULT_STATISTIC


def test_the_statistic_belongs_to_the_latency_objective() -> None:
    assert Objective(metric="latency_ms", statistic="p10").statistic == "p10"
    with pytest.raises(ValueError, match="statistic applies to the latency_ms objective only"):
        Objective(metric="macs", statistic="min")
    with pytest.raises(ValueError, match="fastest_quarter"):
        Objective(metric="latency_ms", statistic="p50")
