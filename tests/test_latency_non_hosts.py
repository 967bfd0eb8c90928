"""Non-host members: whole members a table times that hosted no piece, for the fit and the anchors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import archsearch
from archsearch.cost import (
    MIN_NON_HOSTS,
    Fingerprint,
    LatencyPredictor,
    LatencyTable,
    Overhead,
    fit_correction,
    piece_keys,
)
from archsearch.cost import _latency as latency_module
from archsearch.cost import _latency_reference as reference_module
from archsearch.space import fill_table, load_space
from archsearch.spec import spec_hash

from .helpers import tiny_space
from .test_latency_calibration import Machine, Slow, _table


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Machine:
    """A fake clock (:class:`Machine`): work advances it by its cost times the machine's speed."""
    clock = Machine()
    monkeypatch.setattr(latency_module, "time", clock)
    monkeypatch.setattr(reference_module, "reference_call", clock.reference)
    return clock


def test_fit_correction_learns_a_scale_and_a_term_per_kind() -> None:
    """Members 10 % slower than their pieces, plus 0.3 ms per attention block: both are found
    (a scale, a term for the kind that varies); noise around the plain sum fits nothing."""
    rng = random.Random(0)
    rows = []
    for _ in range(12):
        conv, attn = rng.randint(1, 4), rng.randint(0, 4)
        # attention blocks of several sizes: the 0.3 ms per block is no scale of their time
        attn_ms = sum(rng.choice((1.5, 2.0, 3.0)) for _ in range(attn))
        parts = {
            "block b/conv": (1.0 * conv, conv),
            "block b/attention": (attn_ms, attn),
            "head avg": (0.5, 1),
        }
        total = sum(ms for ms, _ in parts.values())
        rows.append((parts, 1.1 * total + 0.3 * attn))
    fit = fit_correction(rows)
    assert fit.terms == ("scale", "kind_ms") and fit.on == "non-host members" and fit.members == 12
    assert fit.scale == pytest.approx(1.1)
    assert fit.kind_ms["block b/attention"] == pytest.approx(0.3)
    assert fit.kind_ms["block b/conv"] == pytest.approx(0.0, abs=1e-9)
    assert fit.piece_ms("block b/attention", 2.0) == pytest.approx(2.5)
    noisy = [
        (parts, sum(ms for ms, _ in parts.values()) * (1 + e))
        for (parts, _), e in zip(rows, [0.01, -0.01] * 6, strict=True)
    ]
    plain = fit_correction(noisy)  # a scale always (what hosts cannot show), near 1 here
    assert plain.terms == ("scale",) and plain.scale == pytest.approx(1.0, abs=0.01) and not plain.kind_ms
    assert fit_correction(noisy[:3]).terms == ()  # too few members for any term: the plain sum
    assert fit_correction([]).members == 0


def test_fit_correction_weighs_members_by_their_relative_error() -> None:
    """Two fast members run 20 % over their sum, two 10x slower ones on it: the scale is the
    least squares of the relative error (both kinds of member missed by about 8-10 %), not of the
    absolute one (which the slow members decide: a scale near 1, the fast ones missed by 17 %)."""
    rows = [({"block b/conv": (x, 1)}, y) for x, y in ((0.5, 0.6), (0.5, 0.6), (5.0, 5.0), (5.0, 5.0))]
    fit = fit_correction(rows)  # four members: only the scale may be fitted
    assert fit.terms == ("scale",)
    ratios = [x / y for x, y in ((0.5, 0.6), (5.0, 5.0))]
    assert fit.scale == pytest.approx(sum(ratios) / sum(r * r for r in ratios))  # 1.082
    errors = [abs(fit.scale * parts["block b/conv"][0] - y) / y for parts, y in rows]
    assert max(errors) < 0.11


def test_fit_correction_keeps_predictions_above_half_the_sum_and_skips_empty_timings() -> None:
    """Members that run 1 ms under their sum fit ``a = -1 + scale``, which would predict a
    0.5 ms member at about 0 or less: that fit is refused for one that keeps every member above
    half its sum. A member timed at 0 ms or NaN (a damaged table) is left out, not a crash."""
    rows = [({"block b/conv": (x, 1)}, x - 1.0) for x in (1.2, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)]
    rows += [({"block b/conv": (2.5, 1)}, 0.0), ({"block b/conv": (2.5, 1)}, float("nan"))]
    fit = fit_correction(rows)
    assert fit.members == 7
    for parts, y in rows[:7]:
        x = parts["block b/conv"][0]
        assert fit.intercept_ms + fit.piece_ms("block b/conv", x) >= 0.5 * x - 1e-9, (fit, x, y)


def test_a_prediction_is_never_below_half_its_pieces_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    table, plan = _table()
    predictor = LatencyPredictor(table)
    total = sum(table.pieces[k]["ms"] for k in piece_keys(plan))
    predictor.overhead = Overhead(intercept_ms=-100.0, members=24, on="non-host members")
    assert predictor.predict(plan, raw=True) == pytest.approx(0.5 * total)
    predictor.overhead = Overhead(intercept_ms=-1.0, members=24, on="non-host members")
    assert predictor.predict(plan, raw=True) == pytest.approx(total - 1.0)


def _members(table: LatencyTable, plan: object, n: int, factor: float, host: bool | None) -> None:
    """``n`` members made of random pieces of ``plan`` (1 ms each), measured ``factor`` times
    their sum; ``host`` stored as given (``None``: no flag, as in an older table)."""
    keys = list(piece_keys(plan))  # type: ignore[arg-type]
    rng = random.Random(n)
    for i in range(n):
        chosen = rng.choices(keys, k=rng.randint(3, 9))
        member = {"hash": f"{'h' if host else 'n'}{i}", "measured_ms": factor * len(chosen), "pieces": chosen}
        if host is not None:
            member["host"] = host
        table.members.append(member)


def test_the_fit_uses_the_non_host_members_not_the_hosts() -> None:
    """Hosts add up to their own time (their pieces were timed inside them); members that hosted
    nothing run 25 % slower: the fit follows them alone, and predicts a plan 25 % above its sum."""
    table, plan = _table()
    _members(table, plan, 20, 1.0, host=True)
    _members(table, plan, MIN_NON_HOSTS - 1, 1.25, host=False)
    predictor = LatencyPredictor(table)
    assert predictor.overhead.on == "all members"  # too few non-hosts yet: all members, as before
    _members(table, plan, MIN_NON_HOSTS, 1.25, host=False)
    fit = predictor.refit()
    assert fit.on == "non-host members" and fit.members == 2 * MIN_NON_HOSTS - 1
    assert fit.scale == pytest.approx(1.25)
    assert predictor.predict(plan) == pytest.approx(1.25 * predictor.pieces_ms(plan))
    assert predictor.pieces_ms(plan) == pytest.approx(len(piece_keys(plan)))  # the raw sum


def test_a_member_without_pieces_is_left_out_of_the_fit(tmp_path: Path) -> None:
    """A table whose non-host member lost its ``pieces`` (a file allows it) crashed the fit with
    a KeyError; one with ``pieces: []`` was fitted as a member whose sum is 0."""
    table, plan = _table()
    _members(table, plan, MIN_NON_HOSTS + 2, 1.25, host=False)
    table.members[0].pop("pieces")
    table.members[1]["pieces"] = []
    table.save(tmp_path / "t.json")
    fit = LatencyPredictor(LatencyTable.load(tmp_path / "t.json")).overhead
    assert fit.on == "non-host members" and fit.members == MIN_NON_HOSTS
    assert fit.scale == pytest.approx(1.25)


def test_an_old_table_without_host_flags_loads_fits_and_calibrates(
    fake: Machine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A table written before members said whether they hosted pieces: it loads, its overhead is
    fitted on all its members as before, and its anchors (hosts) still calibrate."""
    table, plan = _table()
    _members(table, plan, 8, 1.0, host=None)
    table.anchors = [{"hash": spec_hash(plan), "ms": 5.0, "spec": archsearch.spec.canonical_spec(plan)}]
    data = table.to_dict()
    assert all("host" not in m for m in data["members"])
    (tmp_path / "old.json").write_text(json.dumps(data))
    loaded = LatencyTable.load(tmp_path / "old.json")
    predictor = LatencyPredictor(loaded)
    assert predictor.overhead.on == "all members" and predictor.overhead.members == 8
    assert predictor.overhead.terms == () and predictor.overhead.scale == 1.0
    monkeypatch.setattr(archsearch.compiler, "build", lambda plan: Slow(fake, 5.0))
    fake.speed = 2.0
    calibration = predictor.calibrate()
    assert calibration.anchors == 1 and calibration.factor == pytest.approx(2.0)


def test_non_host_members_replace_host_anchors(fake: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anchors that hosted pieces give way to the first non-host members timed; later non-host
    members leave those anchors alone."""
    table, plan = _table()
    table.members.append({"hash": "host", "measured_ms": 7.0, "pieces": list(piece_keys(plan)), "host": True})
    table.anchors = [{"hash": "host", "ms": 7.0, "spec": {}}]
    monkeypatch.setattr(archsearch.compiler, "build", lambda plan: Slow(fake, 5.0))
    predictor = LatencyPredictor(table)
    predictor.measure_members([(plan, spec_hash(plan))])
    assert [a["hash"] for a in table.anchors] == [spec_hash(plan)]
    assert table.members[-1]["host"] is False
    predictor.measure_members([(plan, "other")])
    assert [a["hash"] for a in table.anchors] == [spec_hash(plan)]


def test_fill_times_non_host_members_whole(tmp_path: Path) -> None:
    """``fill_table`` times the pieces inside hosts, then whole members none of which is a host;
    those are the fit's members and the table's anchors; a second fill times none again."""
    space = load_space(tiny_space(depth=3))
    table = LatencyTable.open(tmp_path / "t.json", Fingerprint.here("cpu", threads=1))
    table.harness = {"warmup": 0, "runs": 4, "rounds": 2}
    predictor = LatencyPredictor(table)
    counts = fill_table(space, predictor, members=MIN_NON_HOSTS, samples=0)
    hosts = {m["hash"] for m in table.members if m["host"]}
    others = {m["hash"] for m in table.members if m["host"] is False}
    assert counts["hosts"] == len(hosts) > 0 and counts["members"] == len(others) == MIN_NON_HOSTS
    assert not hosts & others
    assert {a["hash"] for a in table.anchors} <= others
    assert predictor.overhead.on == "non-host members" and predictor.overhead.members == MIN_NON_HOSTS
    again = fill_table(
        space, LatencyPredictor(LatencyTable.load(tmp_path / "t.json")), members=MIN_NON_HOSTS, samples=4
    )
    assert again["members"] == 0 and again["measured"] == 0
