"""Drift calibration: a fixed reference timed with a latency table and again when predicting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import archsearch
from archsearch.cost import (
    REFERENCE,
    Fingerprint,
    LatencyPredictor,
    LatencyTable,
    Timed,
    piece_keys,
    time_interleaved,
)
from archsearch.cost import _latency as latency_module
from archsearch.cost import _latency_anchors as anchors_module
from archsearch.cost import _latency_reference as reference_module
from archsearch.search import _evaluate as evaluate_module
from archsearch.spec import canonical_spec, load_spec, normalize, spec_hash

from .test_latency_table import hand_made

FAST = {"warmup": 0, "runs": 4, "rounds": 2}


class Machine:
    """A fake ``time`` module: the clock advances only when work runs, by its cost (ms) times the
    machine's ``speed`` (2: everything takes twice as long), which may drift by ``drift`` per call."""

    def __init__(self, speed: float = 1.0, drift: float = 0.0):
        self.now = 0.0
        self.speed = speed
        self.drift = drift
        self.reference_runs = 0

    def perf_counter(self) -> float:
        return self.now

    def work(self, ms: float) -> None:
        self.now += ms * self.speed / 1e3
        self.speed += self.drift

    def reference(self, *_: Any) -> Any:
        """Stands for :func:`reference_call`: a reference of 1 ms at speed 1."""

        def run() -> None:
            self.reference_runs += 1
            self.work(1.0)

        return run


class Slow(torch.nn.Module):
    """A whole member that takes ``ms`` at speed 1 on ``machine``."""

    def __init__(self, machine: Machine, ms: float):
        super().__init__()
        self.machine, self.ms = machine, ms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.machine.work(self.ms)
        return x


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Machine:
    fake = Machine()
    monkeypatch.setattr(latency_module, "time", fake)
    monkeypatch.setattr(reference_module, "reference_call", fake.reference)
    return fake


def _table(path: Path | None = None, reference_ms: float | None = 1.0) -> tuple[LatencyTable, Any]:
    """A table holding a hand-made plan's pieces at 1 ms each, its reference timed at 1 ms."""
    plan = normalize(load_spec(hand_made()))
    table = LatencyTable(Fingerprint.here("cpu", threads=1), harness=dict(FAST), path=path)
    for key in piece_keys(plan):
        table.add(key, ms=1.0)
    if reference_ms is not None:
        table.reference = {"name": REFERENCE, "ms": reference_ms, "iqr_ms": 0.0, "runs": 40}
    return table, plan


def test_a_drifted_table_is_corrected(machine: Machine) -> None:
    """The machine now runs at half the speed it had when the table was timed: calibration finds
    the factor 2 and predictions double; uncalibrated (raw) they stay in the table's time."""
    table, plan = _table()
    predictor = LatencyPredictor(table)
    before = predictor.predict(plan)
    assert before == pytest.approx(len(piece_keys(plan)))
    machine.speed = 2.0
    calibration = predictor.calibrate(runs=8, rounds=4)
    assert calibration.factor == pytest.approx(2.0)
    assert calibration.now_ms == pytest.approx(2.0) and calibration.table_ms == pytest.approx(1.0)
    assert not calibration.adopted and machine.reference_runs > 0
    assert predictor.predict(plan) == pytest.approx(2.0 * before)
    assert predictor.predict(plan, raw=True) == pytest.approx(before)
    assert "2.000x the table's time" in calibration.describe()


def test_a_missing_reference_is_measured_and_kept(machine: Machine, tmp_path: Path) -> None:
    """An older table (no reference): calibrating times the reference, keeps it as the table's
    (saved), and does not scale; a later calibration compares with it."""
    table, plan = _table(tmp_path / "t.json", reference_ms=None)
    predictor = LatencyPredictor(table)
    machine.speed = 1.5
    first = predictor.calibrate(runs=8, rounds=4)
    assert first.adopted and first.factor == 1.0
    assert predictor.predict(plan) == pytest.approx(len(piece_keys(plan)))
    saved = LatencyTable.load(tmp_path / "t.json")
    assert saved.reference is not None and saved.reference["name"] == REFERENCE
    assert saved.reference["ms"] == pytest.approx(1.5)
    machine.speed = 3.0
    again = LatencyPredictor(saved).calibrate(runs=8, rounds=4)
    assert not again.adopted and again.factor == pytest.approx(2.0)


def test_an_old_table_without_a_reference_still_loads(tmp_path: Path) -> None:
    table, plan = _table(reference_ms=None)
    data = table.to_dict()
    assert "reference" not in data  # written as before references existed
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = LatencyTable.load(tmp_path / "old.json", expect=table.fingerprint)
    assert old.reference is None and old.pieces == table.pieces
    predictor = LatencyPredictor(old)
    assert predictor.factor == 1.0 and predictor.calibration is None
    assert predictor.predict(plan) == pytest.approx(len(piece_keys(plan)))
    # an unreadable reference is treated as none (timed again), the table still loads
    (tmp_path / "bad.json").write_text(json.dumps({**data, "reference": {"name": REFERENCE, "ms": -1}}))
    assert LatencyTable.load(tmp_path / "bad.json").reference is None


def test_members_timed_at_another_speed_are_stored_at_the_table_s(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole members timed while the machine runs at twice the table's time: they are returned as
    timed, and added to the overhead fit at the table's speed (the reference timed in the same
    rounds gives the factor); the reference result comes back for :meth:`calibrate_with`."""
    table, plan = _table()
    monkeypatch.setattr(archsearch.compiler, "build", lambda plan: Slow(machine, 5.0))
    predictor = LatencyPredictor(table)
    machine.speed = 2.0
    results, reference = predictor.time_members_with_reference([plan])
    assert results[0].median_ms == pytest.approx(10.0) and reference.median_ms == pytest.approx(2.0)
    calibration = predictor.calibrate_with(reference)
    assert calibration.factor == pytest.approx(2.0)
    assert predictor.measure_members([(plan, "a")]) == [pytest.approx(10.0)]
    assert table.members[0]["measured_ms"] == pytest.approx(5.0)


def test_a_drift_during_the_fill_is_taken_out(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two batches of members timed for a table, the second while the machine runs 1.5 times
    slower: both land at the first one's speed (its reference became the table's)."""
    table, plan = _table(reference_ms=None)
    monkeypatch.setattr(archsearch.compiler, "build", lambda plan: Slow(machine, 4.0))
    predictor = LatencyPredictor(table)
    predictor.measure_members([(plan, "a")])
    assert table.reference is not None and table.reference["ms"] == pytest.approx(1.0)
    machine.speed = 1.5
    predictor.measure_members([(plan, "b")])
    assert [m["measured_ms"] for m in table.members] == [pytest.approx(4.0), pytest.approx(4.0)]


def test_the_reference_is_interleaved_at_several_places_a_round(machine: Machine) -> None:
    """With ``copies``, an item is timed at several places in every round: on a machine slowing
    down steadily its median is the round's middle, not wherever it happened to land."""
    machine.drift = 0.001
    log: list[str] = []

    def member(name: str) -> Timed:
        return Timed(lambda: (log.append(name), machine.work(10.0)))

    reference = Timed(lambda: (log.append("ref"), machine.work(1.0)), copies=4)
    items = [member(str(i)) for i in range(16)]
    results = time_interleaved([*items, reference], warmup=0, runs=4, rounds=4)
    assert results[-1].runs == 4 * 4  # copies x rounds x runs a round
    assert log.count("ref") == 4 * 4 * 2  # each place: one untimed run, then the timed one
    medians = sorted(r.median_ms for r in results[:-1])
    # the reference's slowdown matches that of the members' median (same rounds, same drift)
    ref_slowdown = results[-1].median_ms / 1.0
    member_slowdown = medians[len(medians) // 2] / 10.0
    assert ref_slowdown == pytest.approx(member_slowdown, rel=0.05)


class _Alternating(torch.nn.Module):
    """A whole member whose runs take 5 and 9 ms in turn on ``machine`` (median 7, min 5)."""

    def __init__(self, on: Machine):
        super().__init__()
        self.machine, self.calls = on, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.machine.work(5.0 if self.calls % 2 else 9.0)
        return x


@pytest.mark.parametrize(("statistic", "expected"), [("median", 7.0), ("min", 5.0), ("fastest_quarter", 5.0)])
def test_a_table_measures_the_statistic_it_predicts(
    machine: Machine, monkeypatch: pytest.MonkeyPatch, statistic: str, expected: float
) -> None:
    table, plan = _table()
    table.statistic = statistic
    monkeypatch.setattr(archsearch.compiler, "build", lambda plan: _Alternating(machine))
    predictor = LatencyPredictor(table)
    assert predictor.statistic == statistic
    assert predictor.measure_members([(plan, "a")]) == [pytest.approx(expected)]
    assert table.members[0]["measured_ms"] == pytest.approx(expected)


class _Study:
    def __init__(self) -> None:
        self.user_attrs: dict[str, Any] = {}

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


def test_a_search_calibrates_once_and_a_resumed_study_keeps_the_factor(machine: Machine) -> None:
    study = _Study()
    table, plan = _table()
    machine.speed = 1.25
    first = evaluate_module.calibrate_latency(LatencyPredictor(table), study)
    assert first is not None and first["factor"] == pytest.approx(1.25) and not first["reused"]
    assert study.user_attrs[evaluate_module.CALIBRATION_ATTR]["factor"] == pytest.approx(1.25)
    machine.speed, runs = 3.0, machine.reference_runs
    predictor = LatencyPredictor(table)
    again = evaluate_module.calibrate_latency(predictor, study)
    assert again is not None and again["reused"] and machine.reference_runs == runs  # nothing timed
    assert predictor.predict(plan) == pytest.approx(1.25 * len(piece_keys(plan)))
    # no predictor, or an empty table: nothing to calibrate
    assert evaluate_module.calibrate_latency(None, study) is None
    empty = LatencyPredictor(LatencyTable(Fingerprint.here("cpu", threads=1)))
    assert evaluate_module.calibrate_latency(empty, _Study()) is None


def test_a_bad_factor_is_refused() -> None:
    table, _ = _table()
    with pytest.raises(ValueError, match="positive number, but got 0"):
        LatencyPredictor(table).set_factor(0)


def test_the_real_reference_runs() -> None:
    """The reference model itself: runs at batch 2, leaves the random state alone."""
    state = torch.random.get_rng_state()
    call = reference_module.reference_call(2, "cpu", torch.float32)
    assert torch.equal(torch.random.get_rng_state(), state)
    with torch.inference_mode():
        assert call().shape == (2, 256, 64)


class _Big(Slow):
    """A whole member that slows 1.5 times more than the reference when the machine slows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.machine.work(self.ms * (1.5 if self.machine.speed > 1 else 1.0))
        return x


def test_calibration_re_times_the_table_s_own_members(
    machine: Machine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A table keeps a fitted member (its spec, normalising back to its hash, and its time) as an
    anchor; calibrating re-times it, so a member that slows more than the small reference is
    scaled by its own factor (3 = 2 x 1.5), not the reference's (2). Old tables keep the reference."""
    table, plan = _table(tmp_path / "t.json")
    monkeypatch.setattr(archsearch.compiler, "build", lambda plan: _Big(machine, 5.0))
    predictor = LatencyPredictor(table)
    predictor.measure_members([(plan, spec_hash(plan))])
    assert [a["hash"] for a in table.anchors] == [spec_hash(plan)]
    assert table.anchors[0]["ms"] == pytest.approx(5.0)
    table.save()
    loaded = LatencyTable.load(tmp_path / "t.json")
    assert loaded.anchors == table.anchors
    again = LatencyPredictor(loaded)
    assert [spec_hash(p) for p, _ in again.anchors()] == [spec_hash(plan)]
    machine.speed = 2.0
    calibration = again.calibrate()
    assert calibration.anchors == 1 and calibration.factor == pytest.approx(3.0)
    assert "1 table members" in calibration.describe()
    # an anchor whose spec no longer gives its hash is left out: the reference calibrates
    loaded.anchors = [{**loaded.anchors[0], "hash": "0" * 16}]
    fallback = LatencyPredictor(loaded).calibrate(runs=8, rounds=4)
    assert fallback.anchors == 0 and fallback.factor == pytest.approx(2.0)


class _Counted(Slow):
    """A whole member of ``ms`` that counts its forward passes."""

    def __init__(self, machine: Machine, ms: float):
        super().__init__(machine, ms)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(x)


def _anchored(monkeypatch: pytest.MonkeyPatch, machine: Machine) -> tuple[LatencyTable, list[_Counted]]:
    """A table with the default harness (10 untimed runs, 30 timed in 10 rounds) and one anchor
    (the hand-made plan, 5 ms); the models built for it are listed as they are built."""
    table, plan = _table()
    table.harness = {"warmup": 10, "runs": 30, "rounds": 10}
    table.anchors = [{"hash": spec_hash(plan), "ms": 5.0, "spec": canonical_spec(plan)}]
    built: list[_Counted] = []

    def build(plan: Any) -> _Counted:
        built.append(_Counted(machine, 5.0))
        return built[-1]

    monkeypatch.setattr(archsearch.compiler, "build", build)
    return table, built


def test_calibrating_with_anchors_honours_its_counts_not_the_table_s_harness(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The anchors are timed with calibrate's own counts: each gets ``warmup`` untimed runs, then
    per round one untimed and ``runs / rounds`` timed ones. Not given, they are ANCHOR_HARNESS's
    (far fewer runs than the table's harness, 50 forward passes of each anchor here)."""
    table, built = _anchored(monkeypatch, machine)
    predictor = LatencyPredictor(table)
    calibration = predictor.calibrate(runs=8, rounds=4, warmup=2)
    assert calibration.anchors == 1 and calibration.runs == 8
    assert calibration.factor == pytest.approx(1.0)
    assert built[-1].calls == 2 + 4 * (1 + 2)
    default = predictor.calibrate()
    h = archsearch.cost.ANCHOR_HARNESS
    assert default.anchors == 1 and default.runs == h["runs"]
    assert built[-1].calls == h["warmup"] + h["rounds"] * (1 + -(-h["runs"] // h["rounds"]))
    assert built[-1].calls < 10 + 10 * (1 + 3)  # the table's harness


def test_calibrating_normalises_each_anchor_once(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    """calibrate and the benchmark's way (anchors, then calibrate_with the anchors' timings) read
    the anchors' plans twice but normalise each anchor once; changed anchors are read afresh."""
    table, _ = _anchored(monkeypatch, machine)
    normalised: list[Any] = []

    def counting(spec: Any) -> Any:
        normalised.append(spec)
        return normalize(spec)

    monkeypatch.setattr(anchors_module, "normalize", counting)
    assert LatencyPredictor(table).calibrate(**FAST).anchors == 1
    assert len(normalised) == 1
    predictor = LatencyPredictor(table)
    plans = [plan for plan, _ in predictor.anchors()]
    results, reference = predictor.time_members_with_reference(plans)
    assert predictor.calibrate_with(reference, results).factor == pytest.approx(1.0)
    assert len(normalised) == 2
    table.anchors[0]["ms"] = 2.5  # changed in place: the next calibration compares with 2.5 ms
    assert predictor.calibrate(**FAST).factor == pytest.approx(2.0)
    assert len(normalised) == 3


def test_the_anchor_factor_is_the_median_ratio() -> None:
    """One anchor timed far off (5x, e.g. a neighbour's burst) does not move the factor; the
    ratio of summed times would (here to 2.8 from 2)."""
    table_ms = [1.0, 2.0, 3.0, 4.0, 10.0]
    now = [2.0, 4.0, 6.0, 8.0, 100.0]
    assert anchors_module.anchor_factor(now, table_ms) == pytest.approx(2.0)
    assert sum(now) / sum(table_ms) > 2.8
    assert anchors_module.anchor_factor([3.0, 5.0], [1.0, 1.0]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="one time now for each table time"):
        anchors_module.anchor_factor([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="one time now for each table time"):
        anchors_module.anchor_factor([], [])
    with pytest.raises(ValueError, match="above 0 ms"):
        anchors_module.anchor_factor([1.0, 0.0], [1.0, 1.0])


def test_calibration_times_the_anchors_that_fit_its_budget() -> None:
    """All anchors while their passes fit the budget; else fewer, spread over their times (the
    fastest and the slowest kept), never fewer than three."""
    anchors: list[tuple[Any, float]] = [(f"p{i}", float(ms)) for i, ms in enumerate([8, 1, 2, 3, 4, 5, 6, 7])]
    chosen = anchors_module.calibration_anchors(anchors, passes=10, budget_ms=1000.0)
    assert sorted(ms for _, ms in chosen) == [1, 2, 3, 4, 5, 6, 7, 8]
    five = anchors_module.calibration_anchors(anchors, passes=10, budget_ms=230.0)
    assert [ms for _, ms in five] == [1, 3, 5, 6, 8]  # 230 ms of passes; six spread take 270
    assert [ms for _, ms in anchors_module.calibration_anchors(anchors, 10, 270.0)] == [1, 2, 4, 5, 7, 8]
    three = anchors_module.calibration_anchors(anchors, passes=10, budget_ms=1.0)
    assert [ms for _, ms in three] == [1, 5, 8]
    assert anchors_module.calibration_anchors(anchors[:2], passes=10, budget_ms=1.0) == sorted(
        anchors[:2], key=lambda a: a[1]
    )


def _variant(dim: int) -> Any:
    spec = hand_made()
    spec["stages"][1]["dim"] = dim
    return normalize(load_spec(spec))


def test_calibrating_with_several_anchors_takes_their_median_ratio(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five anchors of 5 ms in the table; now four take 10 ms and one, slowed by something of its
    own, 40 ms: the factor is 2 (their median ratio), where their summed times would say 3.2;
    the benchmark's way (calibrate_with all anchors' timings) finds the same."""
    table, _ = _table()
    plans = [_variant(dim) for dim in (16, 24, 32, 40, 48)]
    for plan in plans:
        for key in piece_keys(plan):
            table.add(key, ms=1.0)
    table.anchors = [{"hash": spec_hash(p), "ms": 5.0, "spec": canonical_spec(p)} for p in plans]
    slow = spec_hash(plans[2])

    def build(plan: Any) -> Slow:
        return Slow(machine, 20.0 if spec_hash(plan) == slow else 5.0)

    monkeypatch.setattr(archsearch.compiler, "build", build)
    machine.speed = 2.0
    predictor = LatencyPredictor(table)
    calibration = predictor.calibrate(**FAST)
    assert calibration.anchors == 5 and calibration.factor == pytest.approx(2.0)
    assert calibration.now_ms / calibration.table_ms == pytest.approx(3.2)
    assert calibration.to_dict()["median_ratio"] == pytest.approx(2.0)
    # the figures shown are those the factor comes from: the ratios' median and range, not the
    # summed times (which would say 3.2)
    figures = "median ratio of 5 table members' times now / in the table (2.000-8.000)"
    described = f"machine at 2.000x the table's time: {figures}; predictions scaled by 2.000"
    assert calibration.describe() == described
    from archsearch.cli._search import _calibration_line

    assert _calibration_line({**calibration.to_dict(), "reused": False}) == (
        f"calibrated x2.000 (measured at this start): {figures}"
    )
    results, reference = predictor.time_members_with_reference([p for p, _ in predictor.anchors()])
    assert predictor.calibrate_with(reference, results).factor == pytest.approx(2.0)
    # fewer timings than anchors: the reference calibrates
    assert predictor.calibrate_with(reference, results[:2]).anchors == 0


def test_the_search_s_calibration_line_shows_what_the_factor_comes_from() -> None:
    """The line a search prints: the factor, when it was measured, and the figures behind it
    (times then for a factor a resumed study keeps; no range for one kept before ranges were)."""
    from archsearch.cli._search import _calibration_line
    from archsearch.cost import Calibration

    anchored = Calibration(
        10.0, 12.0, 6, anchors=8, median_ratio=1.08, ratio_low=0.96, ratio_high=1.11
    ).to_dict()
    assert _calibration_line({**anchored, "reused": False}) == (
        "calibrated x1.080 (measured at this start): median ratio of 8 table members' times now / "
        "in the table (0.960-1.110)"
    )
    older = {k: v for k, v in anchored.items() if k not in ("ratio_low", "ratio_high")}
    assert _calibration_line({**older, "reused": True}) == (
        "calibrated x1.080 (kept from the study's first start): median ratio of 8 table members' "
        "times then / in the table"
    )
    reference = Calibration(1.109, 1.2, 30).to_dict()
    assert _calibration_line({**reference, "reused": False}) == (
        "calibrated x1.082 (measured at this start): reference 1.200 ms now, 1.109 ms in the table"
    )
    assert Calibration(1.109, 1.2, 30).describe() == (
        "machine at 1.082x the table's time: reference 1.200 ms now, 1.109 ms in the table; "
        "predictions scaled by 1.082"
    )
