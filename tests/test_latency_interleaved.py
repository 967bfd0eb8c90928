"""Interleaved timing: rounds shared by several calls, so a drift of the machine's speed touches all."""

from __future__ import annotations

import gc
import math
from typing import Any

import pytest
import torch

import archsearch
from archsearch.cost import (
    Fingerprint,
    LatencyPredictor,
    LatencyTable,
    Timed,
    piece_keys,
    time_call,
    time_in_situ_many,
    time_interleaved,
)
from archsearch.cost import _latency as latency_module
from archsearch.spec import load_spec, normalize

from .test_latency_table import hand_made


class Clock:
    """A fake ``time`` module whose clock advances only when a call runs, by the call's cost
    times a speed that drifts (the machine gets slower as it goes)."""

    def __init__(self, drift: float):
        self.now = 0.0
        self.drift = drift
        self.done = 0

    def perf_counter(self) -> float:
        return self.now

    def work(self, cost: float) -> None:
        self.done += 1
        self.now += cost * (1.0 + self.drift * self.done)


def test_interleaving_shares_a_drift_that_back_to_back_timing_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two identical calls on a machine slowing down as it goes: timed one after the other, the
    second looks far slower; timed in interleaved rounds, they come out (nearly) equal."""
    clock = Clock(drift=0.01)
    monkeypatch.setattr(latency_module, "time", clock)
    a = time_call(lambda: clock.work(1.0), warmup=0, runs=20)
    b = time_call(lambda: clock.work(1.0), warmup=0, runs=20)
    assert b.median_ms > 1.15 * a.median_ms
    clock.now, clock.done = 0.0, 0
    a, b = time_interleaved(
        [Timed(lambda: clock.work(1.0)), Timed(lambda: clock.work(1.0))], warmup=0, runs=20, rounds=20
    )
    assert abs(b.median_ms - a.median_ms) < 0.03 * a.median_ms


def test_interleaved_rounds_runs_setup_and_collect() -> None:
    log: list[tuple[str, int]] = []

    def item(i: int) -> Timed:
        return Timed(
            lambda: log.append(("call", i)),
            setup=lambda: log.append(("setup", i)),
            teardown=lambda: log.append(("teardown", i)),
            collect=lambda: log.append(("collect", i)),
        )

    results = time_interleaved([item(0), item(1), item(2)], warmup=2, runs=10, rounds=4)
    per_round = math.ceil(10 / 4)
    assert [r.runs for r in results] == [4 * per_round] * 3
    assert all(len(r.samples_ms) == r.runs for r in results)
    for i in range(3):
        calls = [e for e in log if e == ("call", i)]
        assert len(calls) == 2 + 4 * (1 + per_round)  # warm-up, then per round one untimed run
        assert log.count(("setup", i)) == log.count(("teardown", i)) == 4
        assert log.count(("collect", i)) == 4 * per_round  # after each timed run only
    # within a round an item's batch is contiguous, bracketed by its setup and teardown
    timed = log[6:]  # after the warm-up
    batches = [e[1] for e in timed if e[0] == "setup"]
    assert len(batches) == 12 and all(sorted(batches[r * 3 : r * 3 + 3]) == [0, 1, 2] for r in range(4))
    # the order is shuffled between rounds (seeded: the same every time)
    assert len({tuple(batches[r * 3 : r * 3 + 3]) for r in range(4)}) > 1
    assert gc.isenabled()


def test_interleaved_rounds_are_checked() -> None:
    with pytest.raises(ValueError, match="rounds >= 1"):
        time_interleaved([Timed(lambda: None)], rounds=0)
    with pytest.raises(ValueError, match="runs >= 4"):
        time_interleaved([Timed(lambda: None)], runs=2)


def test_gc_is_restored_after_an_error() -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    calls = iter(range(100))

    def later_boom() -> None:
        if next(calls) >= 3:
            boom()

    with pytest.raises(RuntimeError, match="boom"):
        time_interleaved([Timed(later_boom)], warmup=1, runs=8, rounds=2)
    assert gc.isenabled()


def test_in_place_timing_of_several_members_together() -> None:
    """Each member gets its own pieces and whole timing; the hooks are off again afterwards."""
    one = normalize(load_spec(hand_made()))
    spec = hand_made()
    spec["stages"][1]["depth"] = 1
    two = normalize(load_spec(spec))
    built: list[torch.nn.Module] = []

    def build(plan: Any) -> torch.nn.Module:
        built.append(archsearch.build(plan))
        return built[-1]

    results = time_in_situ_many([one, two], build, threads=1, warmup=1, runs=6, rounds=3)
    assert [[p.key for p, _, _ in r.pieces] for r in results] == [
        list(piece_keys(one)),
        list(piece_keys(two)),
    ]
    assert all(r.whole.runs == 6 for r in results)
    assert all(ms > 0 for r in results for _, ms, _ in r.pieces)
    for model in built:
        hooked = [m for m in model.modules() if m._forward_pre_hooks or m._forward_hooks]
        assert not hooked


def test_predictor_times_members_and_pieces_in_rounds() -> None:
    """Members measured together join the overhead fit once each; the table's rounds are used."""
    plan = normalize(load_spec(hand_made()))
    spec = hand_made()
    spec["stages"][0]["dim"] = 8
    other = normalize(load_spec(spec))
    table = LatencyTable(Fingerprint.here("cpu", threads=1), harness={"warmup": 0, "runs": 4, "rounds": 2})
    predictor = LatencyPredictor(table)
    medians = predictor.measure_in_situ_many([(plan, "a"), (other, "b")])
    assert len(medians) == 2 and all(m > 0 for m in medians)
    assert set(table.pieces) == set(piece_keys(plan)) | set(piece_keys(other))
    assert [m["hash"] for m in table.members] == ["a", "b"]
    predictor.measure_members([(plan, "a")])  # measured again: replaces, does not duplicate
    assert sorted(m["hash"] for m in table.members) == ["a", "b"]
    assert predictor.overhead.members == 2
    results = predictor.time_members([plan, other])
    assert [r.runs for r in results] == [4, 4]
