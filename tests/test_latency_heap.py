"""The steady C heap the latency harness times on (archsearch/cost/_heap.py).

The allocator's cases run in a fresh interpreter: glibc's dynamic mmap threshold starts at 128 KiB
there, and whatever this test process allocated before cannot have moved it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from archsearch.cost import Timed, _heap, time_call, time_interleaved
from archsearch.cost._heap import heap_is_steady

from .helpers import tiny_space, write_file

pytestmark = pytest.mark.skipif(not heap_is_steady(), reason="glibc's mallopt is needed")

# ten 8 MiB buffers, as a forward pass's activations: in a new process the first are mapped
# afresh; once one is freed glibc serves that size from the heap, but frees past twice the largest
# mapped block are trimmed back to the system, so every "run" faults its 80 MiB in again
_FAULTS = textwrap.dedent(
    """
    import contextlib, json, resource, sys, torch
    from archsearch.cost._heap import steady_heap

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    counts = []
    with steady_heap() if sys.argv[1] == "steady" else contextlib.nullcontext():
        for _ in range(6):
            before = faults()
            buffers = [torch.ones(2 * 1024 * 1024) for _ in range(10)]
            del buffers
            counts.append(faults() - before)
    print(json.dumps({"runs": counts}))
    """
)


def _faults(mode: str) -> dict[str, list[int]]:
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_steady_heap_reuses_pages_that_glibc_would_fault_in_again() -> None:
    plain, steady = _faults("plain"), _faults("steady")
    pages = 10 * 8 * 2**20 // 4096
    # glibc's defaults: the second run faults its 80 MiB in again (and in some processes every
    # later run does too, in others not: it depends on where small blocks landed meanwhile)
    assert plain["runs"][1] > pages // 2, plain
    # held steady: at most one block of the second run lands on new pages, none once warm
    assert steady["runs"][1] < pages // 8, steady
    assert max(steady["runs"][3:]) < 50, steady


def test_the_harness_times_every_run_on_a_steady_heap() -> None:
    held: list[int] = []

    def call() -> None:
        held.append(_heap._depth)

    time_call(call, warmup=2, runs=4)
    time_interleaved([Timed(call), Timed(call)], warmup=1, runs=4, rounds=2)
    assert len(held) == 2 + 4 + 2 * (1 + 2 + 4) and min(held) >= 1, held
    assert _heap._depth == 0  # and let go afterwards


_RELEASE = textwrap.dedent(
    """
    import json, torch
    from archsearch.cost._heap import steady_heap

    def rss_mib():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    start = rss_mib()
    with steady_heap():
        with steady_heap():  # nested: the inner exit must not end the outer hold
            pass
        blocks = [torch.ones(2 * 1024 * 1024) for _ in range(20)]  # 20 x 8 MiB from the heap
        held = rss_mib()
        del blocks
        kept = rss_mib()  # not trimmed while held
    print(json.dumps({"start": start, "held": held, "kept": kept, "after": rss_mib()}))
    """
)


def test_steady_heap_keeps_memory_while_held_and_returns_it_after() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RELEASE], capture_output=True, text=True, timeout=120, check=True
    )
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    assert rss["held"] - rss["start"] > 150, rss
    assert rss["kept"] - rss["start"] > 150, rss  # freed inside: kept for reuse
    assert rss["after"] - rss["start"] < 40, rss  # left: trimmed back to the system


_SETTINGS = textwrap.dedent(
    """
    import json, os
    from archsearch.cost import _heap

    with _heap.steady_heap() as held:
        depth = _heap._depth
        child = os.fork()
        if child == 0:  # forked while held: the child starts with the heap let go
            os._exit(0 if _heap._depth == 0 else 3)
        _, status = os.waitpid(child, 0)
    print(json.dumps({"held": held, "depth": depth, "child": os.waitstatus_to_exitcode(status),
                      "after": _heap._depth, "steady": _heap.heap_is_steady()}))
    """
)


@pytest.mark.parametrize(
    ("env", "steady"),
    [
        ({}, True),
        ({"MALLOC_TRIM_THRESHOLD_": "131072"}, False),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}, False),
    ],
)
def test_the_users_own_allocator_settings_are_left_alone_and_a_fork_lets_go(
    env: dict[str, str], steady: bool
) -> None:
    import os

    done = subprocess.run(
        [sys.executable, "-c", _SETTINGS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, **env},
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["steady"] is steady and seen["held"] is steady, seen
    assert seen["depth"] == (1 if steady else 0) and seen["after"] == 0, seen
    assert seen["child"] == 0, seen


def test_a_table_records_its_heap_and_latency_table_notes_an_older_one(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from archsearch.cli import app
    from archsearch.cost import Fingerprint, LatencyTable

    table = LatencyTable(Fingerprint.here("cpu", threads=1))
    assert table.heap == _heap.heap_mode() == "steady"
    table.add("k", ms=1.0)
    table.save(tmp_path / "t.json")
    assert LatencyTable.load(tmp_path / "t.json", table.fingerprint).heap == "steady"

    space = write_file(tmp_path, yaml.safe_dump(tiny_space(dims=(8, 16), depth=1)), "space.yaml")
    command = ["latency-table", str(space), "--out", str(tmp_path / "tiny.json"), "--threads", "1"]
    command += ["--members", "0", "--runs", "4", "--rounds", "1", "--warmup", "1"]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    data = json.loads((tmp_path / "tiny.json").read_text())
    assert data["heap"] == "steady" and "note:" not in first.output
    again = CliRunner().invoke(app, command)  # resumed, same heap: nothing to say
    assert again.exit_code == 0 and "note:" not in again.output, again.output
    del data["heap"]  # as a table written before 2026-12-01
    (tmp_path / "tiny.json").write_text(json.dumps(data))
    older = CliRunner().invoke(app, command)
    assert older.exit_code == 0, older.output
    words = " ".join(older.output.split())
    assert "note: this table's entries were timed on glibc's default heap (before 2026-12-01)" in words
    assert "fill a new table (--out NEW.json)" in words
    assert LatencyTable.load(tmp_path / "tiny.json", Fingerprint.here("cpu", threads=1)).heap is None


_FORK_INSIDE = textwrap.dedent(
    """
    import json, os
    from archsearch.cost import _heap

    with _heap.steady_heap():
        child = os.fork()
    if child == 0:  # the child leaves the parent's hold, then holds and lets go on its own
        left = _heap._depth
        with _heap.steady_heap():
            inside = _heap._depth
        print(json.dumps({"left": left, "inside": inside, "after": _heap._depth}), flush=True)
        os._exit(0)
    os.waitpid(child, 0)
    """
)


def test_a_child_forked_inside_a_hold_counts_its_own_holds_only() -> None:
    """Leaving the parent's ``with`` in the child must not count down the child's fresh count (it
    went to -1, and the child's later holds never let the heap go)."""
    done = subprocess.run(
        [sys.executable, "-c", _FORK_INSIDE], capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"left": 0, "inside": 1, "after": 0}, seen


_UNDER_USERS_SETTINGS = textwrap.dedent(
    """
    import sys
    from archsearch.cli import app
    sys.argv = ["archsearch", *sys.argv[1:]]
    app()
    """
)


def test_latency_table_says_when_it_leaves_the_users_heap_settings_alone(tmp_path: Path) -> None:
    """Under MALLOC_TRIM_THRESHOLD_ the heap is not held (the user's setting wins): the table
    records ``default`` and latency-table says why its timings are not on a steady heap."""
    import os

    space = write_file(tmp_path, yaml.safe_dump(tiny_space(dims=(8, 16), depth=1)), "space.yaml")
    command = ["latency-table", str(space), "--out", str(tmp_path / "tiny.json"), "--threads", "1"]
    command += ["--members", "0", "--runs", "4", "--rounds", "1", "--warmup", "1"]
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072", "COLUMNS": "200"}
    run = [sys.executable, "-c", _UNDER_USERS_SETTINGS, *command]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    words = " ".join(done.stderr.split())
    assert "not held steady (MALLOC_TRIM_THRESHOLD_ is set: your allocator settings are kept" in words
    assert json.loads((tmp_path / "tiny.json").read_text())["heap"] == "default"
    as_json = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["heap"] == "default"


def test_an_empty_table_without_a_heap_takes_the_heap_its_entries_are_timed_on(tmp_path: Path) -> None:
    """A table file with no entries and no ``heap`` (written before 2026-12-01, stopped before its
    first piece) is filled on a steady heap now: it must not keep saying "default heap"."""
    from typer.testing import CliRunner

    from archsearch.cli import app
    from archsearch.cost import Fingerprint, LatencyTable

    data = LatencyTable(Fingerprint.here("cpu", threads=1)).to_dict()
    del data["heap"]
    (tmp_path / "tiny.json").write_text(json.dumps(data))
    space = write_file(tmp_path, yaml.safe_dump(tiny_space(dims=(8, 16), depth=1)), "space.yaml")
    command = ["latency-table", str(space), "--out", str(tmp_path / "tiny.json"), "--threads", "1"]
    command += ["--members", "0", "--runs", "4", "--rounds", "1", "--warmup", "1"]
    done = CliRunner().invoke(app, command)
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "tiny.json").read_text())["heap"] == "steady"


def test_the_heap_benchmark_compares_both_heaps(tmp_path: Path) -> None:
    """benchmarks/latency_heap.py --quick: each heap in its own process, each later timing against
    the first; the default one really runs without the hold (its label says so)."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "heap.json"
    command = [sys.executable, str(root / "benchmarks" / "latency_heap.py"), "--quick", "--threads", "1"]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=root
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["steady"]["heap"] == "steady" and data["default"]["heap"] == "default"
    for heap in ("steady", "default"):
        r = data[heap]
        assert len(r["timings_ms"]) == 2 and len(r["timings_ms"][0]) == 4
        assert len(r["against_first"]) == 1 and -1 <= r["against_first"][0]["kendall_tau"] <= 1
        assert all(v >= 0 for v in r["fit_residual_pct"])
    assert "tau vs first" in done.stdout
