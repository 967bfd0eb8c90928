"""Latency tables and the predictor: pieces, keys, files, fingerprints, on-demand measurement."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import archsearch
from archsearch.cost import (
    Fingerprint,
    LatencyPredictor,
    LatencyTable,
    TableMismatch,
    fit_overhead,
    measure_piece,
    piece_keys,
    plan_pieces,
)
from archsearch.errors import SpecError
from archsearch.space import load_space, space_pieces
from archsearch.spec import load_spec, normalize, zoo_names

from .helpers import tiny_space

FAST = {"warmup": 0, "runs": 4}


def hand_made() -> dict[str, Any]:
    """A stem, a 2-block conv stage and a 3-block attention stage with identical blocks."""
    return {
        "name": "hand-made",
        "input": {"size": 16, "channels": 1},
        "stem": {"kind": "conv", "channels": 8},
        "stages": [
            {"embed": {"kind": "conv", "kernel": 3, "stride": 2}, "dim": 16, "depth": 2, "mixer": "conv"},
            {
                "embed": {"kind": "conv", "kernel": 3, "stride": 2},
                "dim": 16,
                "depth": 3,
                "mixer": {"kind": "attention", "heads": 2},
                "mlp_ratio": 2,
            },
        ],
        "head": {"num_classes": 10},
    }


def fingerprint(**changes: Any) -> Fingerprint:
    return replace(Fingerprint.here("cpu", threads=2), **changes)


def test_pieces_of_a_hand_made_spec() -> None:
    plan = normalize(load_spec(hand_made()))
    pieces = plan_pieces(plan)
    assert [p.kind for p in pieces] == [
        "stem",
        "stage",
        "block",
        "block",
        "stage",
        "block",
        "block",
        "block",
        "head",
    ]
    keys = piece_keys(plan)
    assert keys == tuple(p.key for p in pieces)
    # the first attention block sees the transposed view of the embedded map, the other two the
    # same dense tokens: one key for both
    assert keys[5] != keys[6] and keys[6] == keys[7]
    assert keys[5].endswith("|view") and keys[6].endswith("|dense")
    # the two bottlenecks are alike (the embedding made the stage's width): one key
    assert keys[2] == keys[3]
    assert len(set(keys)) == 7


def test_predicted_sum_equals_the_table_entries() -> None:
    plan = normalize(load_spec(hand_made()))
    keys = piece_keys(plan)
    table = LatencyTable(fingerprint())
    for i, key in enumerate(dict.fromkeys(keys)):
        table.add(key, ms=0.5 + i)
    expected = sum(table.ms(k) for k in keys)
    predictor = LatencyPredictor(table)
    assert predictor.overhead.members == 0
    assert predictor.predict(plan) == pytest.approx(expected)
    assert predictor.pieces_ms(plan) == pytest.approx(expected)
    assert predictor.measured == 0
    # a fitted overhead: intercept + per piece, from measured members
    table.members = [{"hash": "a", "measured_ms": expected + 1.0, "pieces": list(keys)}]
    predictor.refit()
    assert predictor.predict(plan) == pytest.approx(expected + 1.0)
    # an entry changed in the table is read again on refit
    table.add(keys[-1], ms=table.ms(keys[-1]) + 2.0)
    predictor.refit()
    assert predictor.pieces_ms(plan) == pytest.approx(expected + 2.0)


def test_fit_overhead_recovers_a_plane() -> None:
    # residual = 0.3 ms + 0.02 ms per piece + 0.5 ms per million weights
    rows = [
        (10.0 + n, n, w, 10.0 + n + 0.3 + 0.02 * n + 0.5 * w)
        for n, w in ((5, 1), (9, 4), (14, 2), (20, 7), (8, 3))
    ]
    fit = fit_overhead(rows)
    assert fit.intercept_ms == pytest.approx(0.3)
    assert fit.per_piece_ms == pytest.approx(0.02)
    assert fit.per_mweight_ms == pytest.approx(0.5)
    assert fit.members == 5
    assert fit(10, 2.0) == pytest.approx(0.3 + 0.2 + 1.0)
    # a feature that does not vary (every CvT-13-NAS member has 17 pieces) is not fitted
    same = fit_overhead([(10.0, 17, w, 10.0 + 1.0 + 0.5 * w) for w in (1.0, 2.0, 3.0, 4.0)])
    assert same.per_piece_ms == 0.0
    assert same.intercept_ms == pytest.approx(1.0) and same.per_mweight_ms == pytest.approx(0.5)
    assert fit_overhead([(1.0, 3, 0.1, 1.5)]).intercept_ms == pytest.approx(0.5)
    assert fit_overhead([]).members == 0


def test_fit_overhead_keeps_the_plain_sum_against_noise() -> None:
    """Members whose residuals are noise around 0 (a loaded machine) fit no overhead: the terms a
    regression would find do not predict a left-out member."""
    noise = [0.4, -0.5, 0.3, -0.2, 0.5, -0.4]
    rows = [(10.0, 10 + i, 1.0 + 0.3 * i, 10.0 + e) for i, e in enumerate(noise)]
    fit = fit_overhead(rows)
    assert (fit.intercept_ms, fit.per_piece_ms, fit.per_mweight_ms) == (0.0, 0.0, 0.0)
    assert fit.members == 6


def test_table_round_trips_to_disk(tmp_path: Path) -> None:
    fp = fingerprint()
    table = LatencyTable(fp, harness={"warmup": 3, "runs": 7}, spaces=["tiny"])
    table.add("block|x", ms=1.25, iqr_ms=0.1, min_ms=1.2, what="block x")
    table.add("head|y", ms=0.5)
    table.members.append({"hash": "h", "measured_ms": 2.0, "pieces": ["block|x", "head|y"]})
    path = table.save(tmp_path / "sub" / "table.json")
    loaded = LatencyTable.load(path, expect=fp)
    assert loaded.fingerprint == fp
    assert loaded.pieces == table.pieces
    assert loaded.members == table.members
    assert loaded.harness == {"warmup": 3, "runs": 7}
    assert loaded.spaces == ["tiny"]
    assert loaded.path == path
    assert json.loads(path.read_text())["format"] == "archsearch-latency-table"
    assert not list(path.parent.glob("*.tmp"))  # written atomically, no leftovers


def test_fingerprint_mismatch_refuses_the_table(tmp_path: Path) -> None:
    theirs = fingerprint(threads=8, device="cpu (Some Other CPU)")
    path = LatencyTable(theirs).save(tmp_path / "t.json")
    mine = fingerprint(threads=2)
    with pytest.raises(TableMismatch) as info:
        LatencyTable.load(path, expect=mine)
    text = str(info.value)
    assert str(path) in text
    assert theirs.describe() in text and mine.describe() in text
    assert "threads: 2 here, 8 in the table" in text
    assert "Some Other CPU" in text
    with pytest.raises(TableMismatch, match="batch: 4 here, 1 in the table"):
        LatencyPredictor.open(path, replace(theirs, batch=4))


def test_a_file_that_is_not_a_table_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"pieces": {}}')
    with pytest.raises(SpecError, match=r"bad.json: not a latency table"):
        LatencyTable.load(bad)
    bad.write_text("{")
    with pytest.raises(SpecError, match=r"bad.json:1: the latency table is not valid JSON"):
        LatencyTable.load(bad)


def _damaged(tmp_path: Path, change: Any) -> Path:
    """A valid table file with one change made to its JSON (a function of the dict, or the text)."""
    table = LatencyTable(fingerprint())
    table.add("block|x", ms=1.25)
    table.members.append({"hash": "h", "measured_ms": 2.0, "pieces": ["block|x"]})
    table.anchors.append({"hash": "h", "ms": 2.0, "spec": {"name": "anchor"}})
    path = tmp_path / "damaged.json"
    if isinstance(change, str):
        path.write_text(change)
        return path
    data = table.to_dict()
    change(data)
    path.write_text(json.dumps(data, indent=1))
    return path


def _set(where: str, key: str, value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        target = data[where]["block|x"] if where == "pieces" else data if where == "top" else data[where][0]
        target[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _set("top", "pieces", [1, 2]),
            r"damaged.json:\d+: pieces: expected a mapping \(got \[1, 2\]\); allowed: a mapping",
        ),
        (
            _set("pieces", "ms", "fast"),
            r"damaged.json:\d+: pieces.block\|x.ms: expected a number \(got 'fast'\); allowed: a finite",
        ),
        (
            lambda d: d["pieces"]["block|x"].pop("ms"),
            r"damaged.json:\d+: pieces.block\|x: missing required key 'ms'",
        ),
        (_set("pieces", "ms", float("nan")), r"pieces.block\|x.ms: must be a finite number \(got nan\)"),
        (_set("pieces", "ms", -1.0), r"pieces.block\|x.ms: must be at least 0 \(got -1.0\)"),
        (_set("pieces", "samples", [1.0, "x"]), r"pieces.block\|x.samples\[1\]: expected a number"),
        (
            _set("top", "members", "x"),
            r"damaged.json:\d+: members: expected a list \(got 'x'\); allowed: a list of",
        ),
        (_set("members", "measured_ms", 0), r"members\[0\].measured_ms: must be greater than 0 \(got 0\)"),
        (_set("members", "pieces", "block|x"), r"members\[0\].pieces: expected a list"),
        (_set("top", "harness", {"runs": 0}), r"harness.runs: must be at least 1 \(got 0\)"),
        (
            _set("top", "statistic", "medain"),
            r"damaged.json:\d+: statistic: not an allowed value \(did you mean 'median'\?\) "
            r"\(got 'medain'\); "
            r"allowed: median, min, p10, p25, fastest_quarter, mean",
        ),
        # a heap the harness never records (it loaded, and resuming noted "timed on a 5 heap")
        (
            _set("top", "heap", 5),
            r"damaged.json:\d+: heap: not an allowed value \(got 5\); allowed: steady, default",
        ),
        (
            _set("top", "heap", "weird"),
            r"heap: not an allowed value \(got 'weird'\); allowed: steady, default",
        ),
        (
            _set("anchors", "ms", 0),
            r"damaged.json:\d+: anchors\[0\].ms: must be greater than 0 \(got 0\); "
            r"allowed: a finite number of milliseconds, above 0",
        ),
        (_set("anchors", "ms", float("inf")), r"anchors\[0\].ms: must be a finite number \(got inf\)"),
        (_set("anchors", "ms", "x"), r"anchors\[0\].ms: expected a number \(got 'x'\); allowed: a finite"),
        (
            lambda d: d["anchors"][0].pop("ms"),
            r"anchors\[0\]: missing required key 'ms'; allowed: a finite number of milliseconds, above 0",
        ),
        (
            _set("anchors", "spec", "cvt-13"),
            r"anchors\[0\].spec: expected a mapping \(got 'cvt-13'\); allowed: a mapping: the member's",
        ),
        (_set("anchors", "hash", 12), r"anchors\[0\].hash: expected a string \(got 12\); allowed: a string"),
        (
            _set("top", "anchors", [1]),
            r"damaged.json:\d+: anchors\[0\]: expected a mapping \(got 1\); allowed: keys spec, hash, ms",
        ),
        (_set("top", "anchors", {}), r"anchors: expected a list \(got \{\}\); allowed: a list of \{spec"),
        (lambda d: d["fingerprint"].update(batch="x"), r"fingerprint.batch: expected an integer \(got 'x'\)"),
        ("", r"damaged.json:1: the latency table file is empty; allowed: a JSON latency table"),
        ("  \n", r"damaged.json:1: the latency table file is empty"),
        (
            '{"format": "archsearch-latency-table",\n "version": 1 "x"}',
            r"damaged.json:2: the latency table is not valid JSON: Expecting ',' delimiter at column 15",
        ),
        ("[1, 2]", r"damaged.json: not a latency table"),
    ],
)
def test_a_damaged_table_names_the_file_the_entry_and_what_is_allowed(
    tmp_path: Path, change: Any, expected: str
) -> None:
    path = _damaged(tmp_path, change)
    before = path.read_bytes()
    with pytest.raises(SpecError, match=expected) as info:
        LatencyTable.load(path)
    assert len(info.value.issues) == 1
    with pytest.raises(SpecError, match=expected):  # the predictor's way in: the same one check
        LatencyPredictor.open(path, fingerprint())
    assert path.read_bytes() == before  # a damaged table is never overwritten


def test_a_loaded_table_keeps_the_keys_the_schema_does_not_know(tmp_path: Path) -> None:
    path = _damaged(tmp_path, lambda d: (d.update(note="mine"), d["pieces"]["block|x"].update(source="lab")))
    table = LatencyTable.load(path)
    assert table.pieces["block|x"]["source"] == "lab"
    assert table.ms("block|x") == 1.25


def test_a_missing_piece_is_measured_and_added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = normalize(load_spec(hand_made()))
    fp = Fingerprint.here("cpu", threads=1)
    table = LatencyTable.open(tmp_path / "t.json", fp)
    table.harness = dict(FAST)
    seen: list[str] = []
    predictor = LatencyPredictor(table, on_measure=lambda t: seen.append(t.key))
    value = predictor.predict(plan)
    keys = piece_keys(plan)
    assert set(keys) <= set(table.pieces)
    assert seen == list(dict.fromkeys(keys))  # each distinct piece once, in model order
    assert value == pytest.approx(sum(table.ms(k) for k in keys))
    assert all(table.pieces[k]["what"] for k in keys)
    assert all(table.pieces[k]["params"] > 0 for k in keys if not k.startswith("head"))
    # saved: a second predictor on the file measures nothing
    from archsearch.cost import _predict

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a piece was timed although the table holds it")

    monkeypatch.setattr(_predict, "measure_piece", boom)
    again = LatencyPredictor.open(tmp_path / "t.json", fp)
    assert again.predict(plan) == pytest.approx(value)
    assert again.measured == 0


@pytest.mark.parametrize("name", zoo_names())
def test_every_piece_of_the_zoo_runs_alone(name: str) -> None:
    """Each kind's pieces build and run on the inputs the model gives them (64 px)."""
    plan = normalize(load_spec(name, input_size=64, num_classes=10))
    for piece in {p.key: p for p in plan_pieces(plan)}.values():
        timing = measure_piece(piece, threads=1, **FAST)
        assert timing.result.median_ms > 0


def test_space_pieces_cover_random_members() -> None:
    space = load_space(tiny_space())
    pieces = space_pieces(space, samples=0)
    for candidate in space.random_samples(40, seed=3):
        assert candidate.plan is not None
        assert set(piece_keys(candidate.plan)) <= set(pieces)


def test_keys_are_stable_across_normalisations() -> None:
    a = piece_keys(normalize(load_spec(hand_made())))
    b = piece_keys(normalize(load_spec(hand_made())))
    assert a == b
    other = hand_made()
    other["stages"][1]["mlp_ratio"] = 4
    assert piece_keys(normalize(load_spec(other)))[5:8] != a[5:8]


def test_fused_attention_is_part_of_the_fingerprint() -> None:
    archsearch.set_fused_attention(False)
    assert not Fingerprint.here("cpu").fused_attention
    archsearch.set_fused_attention(True)
    assert Fingerprint.here("cpu").fused_attention


# --------------------------------------------------------------------------- the command and the benchmark


def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from archsearch.cli import app

    return CliRunner().invoke(app, list(args))


def test_latency_table_command_is_resumable_and_refuses_another_setting(tmp_path: Path) -> None:
    import yaml

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(tiny_space(dims=(8,), depth=1)))
    out = tmp_path / "table.json"
    common = [
        "latency-table",
        str(space),
        "--threads",
        "1",
        "--out",
        str(out),
        "--runs",
        "4",
        "--warmup",
        "0",
    ]
    first = _cli(*common, "--members", "2", "--samples", "5", "--json")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["pieces"] == data["measured"] > 0 and data["skipped"] == 0
    assert data["hosts"] >= 1  # pieces timed in place, inside whole members (which join the fit)
    table = LatencyTable.load(out)
    assert len(table) == data["pieces"] and table.spaces == ["space"]
    assert len(table.members) == data["hosts"] + data["members"] >= 2
    # the members timed after the pieces hosted none (the fit's and anchors' members), the hosts did
    assert sum(m["host"] is False for m in table.members) == data["members"]
    assert sum(m["host"] is True for m in table.members) == data["hosts"]
    assert data["overhead"]["on"] == ("non-host members" if data["members"] >= 6 else "all members")
    assert all(e["how"] == "in_situ" for e in table.pieces.values())
    again = _cli(*common, "--members", "2", "--samples", "5", "--json")
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["measured"] == 0 and second["skipped"] == data["pieces"] and second["members"] == 0
    assert second["hosts"] == 0
    alone = tmp_path / "alone.json"
    third = _cli(
        *common[:-5], str(alone), "--runs", "4", "--warmup", "0", "--alone", "--members", "2", "--json"
    )
    assert third.exit_code == 0, third.output
    assert json.loads(third.stdout)["members"] == 2
    assert all(e["how"] == "alone" for e in LatencyTable.load(alone).pieces.values())
    other = _cli("latency-table", str(space), "--threads", "3", "--out", str(out), "--json")
    assert other.exit_code == 2
    assert "threads: 3 here, 1 in the table" in other.output
    assert "archsearch latency-table SPACE" in other.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the latency table file is empty"),
        (
            '{"format": "archsearch-latency-table", "version": 1, "fingerprint": FP, "pieces": []}',
            "pieces: expected a mapping",
        ),
    ],
)
def test_latency_table_command_refuses_a_damaged_table_without_a_traceback(
    tmp_path: Path, text: str, expected: str
) -> None:
    import yaml

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(tiny_space(dims=(8,), depth=1)))
    out = tmp_path / "table.json"
    out.write_text(text.replace("FP", json.dumps(fingerprint().__dict__)))
    before = out.read_bytes()
    result = _cli("latency-table", str(space), "--threads", "1", "--out", str(out), "--json")
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"error: {out}:1: " in " ".join(result.output.split()) and expected in result.output
    assert "Traceback" not in result.output
    assert out.read_bytes() == before


def test_latency_model_benchmark_quick(tmp_path: Path) -> None:
    import subprocess
    import sys

    from archsearch.cost import statistic_ms

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "lm.json"
    command = [sys.executable, str(root / "benchmarks" / "latency_model.py"), "--quick", "--threads", "1"]
    command += ["--hybrid", "3", "--cvt", "2", "--out", str(out), "--table-dir", str(tmp_path / "tables")]
    command += ["--dump", str(tmp_path / "dump.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    spaces = {s["space"]: s for s in result["spaces"]}
    assert set(spaces) == {"hybrid_small", "cvt13_nas"}
    for s in spaces.values():
        assert s["members"] >= 2
        assert s["median_abs_error_pct"] >= 0 and s["p90_abs_error_pct"] >= s["median_abs_error_pct"]
        assert -1 <= s["kendall_tau"] <= 1
        assert s["predictions_per_s"]["warm"] > 0
        # calibrated by the reference timed with the members; the raw figures are kept beside
        assert s["calibration"]["factor"] > 0 and s["table_reference"]["ms"] > 0
        assert all(
            r["predicted_ms"] == pytest.approx(r["predicted_raw_ms"] * s["calibration"]["factor"])
            for r in s["rows"]
        )
        assert -1 <= s["raw"]["kendall_tau"] <= 1 and "retest_calibrated" in s
        assert "dump" not in s  # every run goes to --dump's file, not the results
    assert "calibrated: median p90 tau" in done.stdout
    dump = json.loads((tmp_path / "dump.json").read_text())["spaces"]
    for name, s in spaces.items():
        timings = dump[name]["timings"]
        assert len(timings) == 2 and dump[name]["members"] == [r["hash"] for r in s["rows"]]
        for t in timings:  # each member's runs, whose statistic is what the rows hold
            assert len(t["members"]) == s["members"] and all(len(runs) >= 4 for runs in t["members"])
            assert len(t["anchors"]) == len(dump[name]["anchors_table_ms"]) and t["reference"]
        first = [statistic_ms(runs, result["statistic"]) for runs in timings[0]["members"]]
        assert first == pytest.approx([r["measured_ms"] for r in s["rows"]])


def test_pieces_timed_in_place_tile_the_forward_pass(tmp_path: Path) -> None:
    """In place, every piece of a member gets a time, and together they cover one forward pass."""
    from archsearch.cost import time_in_situ

    plan = normalize(load_spec(hand_made()))
    result = time_in_situ(plan, archsearch.build, threads=1, warmup=2, runs=8)
    assert [p.key for p, _, _ in result.pieces] == list(piece_keys(plan))
    assert all(ms > 0 for _, ms, _ in result.pieces)
    assert all(w > 0 for _, _, w in result.pieces)
    total = sum(ms for _, ms, _ in result.pieces)
    assert 0.2 * result.whole.min_ms < total < 5 * result.whole.median_ms  # loose: timings, not logic
    # into a table: observations per piece, the member joins the overhead fit
    table = LatencyTable(Fingerprint.here("cpu", threads=1), harness=dict(FAST))
    predictor = LatencyPredictor(table)
    predictor.measure_in_situ(plan, "h")
    assert set(table.pieces) == set(piece_keys(plan))
    assert all(e["how"] == "in_situ" and e["samples"] for e in table.pieces.values())
    # the identical attention blocks give two observations of one key
    assert len(table.pieces[piece_keys(plan)[6]]["samples"]) == 2
    assert [m["hash"] for m in table.members] == ["h"]


def test_a_mobilevit_stage_is_one_piece_in_place() -> None:
    from archsearch.cost import time_in_situ

    plan = normalize(load_spec("mobilevit-xxs", input_size=64, num_classes=10))
    kinds = [p.kind for p in plan_pieces(plan)]
    result = time_in_situ(plan, archsearch.build, threads=1, warmup=1, runs=4)
    assert [p.kind for p, _, _ in result.pieces] == kinds
    mobile = [p for p, _, _ in result.pieces if p.kind == "stage" and "mobilevit" in p.what]
    assert mobile and all("blocks" in p.what for p in mobile)


def test_blocks_that_differ_only_in_their_shortcut_are_different_pieces():
    """ResNet-D's average-pool shortcut and the plain strided conv one take different times."""
    plan = normalize(load_spec("resnet-50d"))
    avg = [b for stage in plan.stages for b in stage.blocks if b.shortcut == "avg"]
    assert avg, "resnet-50d has average-pool shortcuts"
    conv_stage = replace(
        plan.stages[avg[0].stage],
        blocks=tuple(replace(b, shortcut="conv") for b in plan.stages[avg[0].stage].blocks),
    )
    stages = tuple(conv_stage if s.index == avg[0].stage else s for s in plan.stages)
    assert piece_keys(replace(plan, stages=stages)) != piece_keys(plan)


def test_latency_table_command_says_where_a_ctrl_c_left_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the first pieces are timed: exit 130 and one line saying how far it got, that
    the partial table was saved to the file (which holds those pieces) and that re-running resumes."""
    import yaml

    import archsearch.space

    real = archsearch.space.fill_table

    def interrupted_fill(*args: Any, **kwargs: Any) -> Any:
        on_piece = kwargs["on_piece"]

        def then_ctrl_c(done: int, total: int) -> None:
            on_piece(done, total)
            raise KeyboardInterrupt

        return real(*args, **{**kwargs, "on_piece": then_ctrl_c})

    monkeypatch.setattr(archsearch.space, "fill_table", interrupted_fill)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(tiny_space(dims=(8, 16), depth=1)))
    out = tmp_path / "table.json"
    result = _cli("latency-table", str(space), "--threads", "1", "--out", str(out), "--runs", "4", "--alone")
    assert result.exit_code == 130, result.output
    saved = len(LatencyTable.load(out))
    line = " ".join(result.output.split())
    found = re.search(
        r"interrupted: the partial table \((\d+) of (\d+) pieces timed this run; (\d+) pieces", line
    )
    assert found, line
    done, total, in_file = map(int, found.groups())
    assert 0 < done < total and in_file == saved >= done
    assert f"was saved to {out}; re-running the same command resumes it" in line
