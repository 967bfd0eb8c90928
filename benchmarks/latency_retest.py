"""Which statistic of a member's timed runs reproduces best: the same members timed twice.

    python benchmarks/latency_retest.py [--space hybrid_small] [--members 100] [--resolution R]
        [--runs 40 --rounds 20 --warmup 3] [--threads 2] [--batch 1] [--seed 2] [--out FILE]
    python benchmarks/latency_retest.py --from FILE   # the figures again from saved samples

Random members of a shipped space (``latency_model.py``'s draw) are built and timed twice in
interleaved rounds with the calibration reference (:meth:`~archsearch.cost.LatencyPredictor.
time_members_with_reference`, as ``latency_model.py`` times and retimes them). From the SAME runs,
each per-member statistic of :data:`archsearch.cost.STATISTICS` (``median``, ``min``, ``p10``,
``p25``, ``fastest_quarter``: the mean of the fastest quarter of the runs, ``mean``) and three
that use the rounds:

* ``round_ratio``: each round, a member's median in the round divided by the median over all
  members of theirs; the member's median of these ratios, times the median round level (a drift
  common to a round cancels);
* ``round_ratio_min``: the same with each member's fastest run in the round;
* ``reference_ratio``: each round, a member's median in the round divided by the reference's
  median in that round, times the reference's overall median;

are compared between the two timings as ``latency_model.py`` compares a prediction with a
measurement: median and 90th-percentile absolute error in %, the same after one common factor
(``scale_free``), and Kendall's tau; also with only the first quarter and half of the rounds (what
fewer runs would give). Every run is written to the results (``--out``, default
benchmarks/results/latency_retest-SPACE-RES.json), so the figures can be recomputed (``--from``).
Timed at normal priority: on a loaded machine, compare the statistics of one file side by side,
not absolute times across runs; the load averages are written beside them.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from latency_model import (  # benchmarks/ is the script's folder
    RESULTS,
    ROOT,
    agreement,
    load,
    members,
    setting_parser,
)

from archsearch.cost import STATISTICS, Fingerprint, LatencyPredictor, LatencyTable, statistic_ms
from archsearch.space import load_space


def per_round(samples: list[float], rounds: int) -> list[list[float]]:
    """A result's runs cut into its rounds (:func:`~archsearch.cost.time_interleaved` keeps them
    in round order, the same number in each)."""
    k = len(samples) // rounds
    return [samples[r * k : (r + 1) * k] for r in range(rounds)]


def round_ratio(timing: list[list[float]], rounds: int, pick: Any) -> list[float]:
    """Each member's median over rounds of ``pick(its runs in the round)`` over the round's level
    (the median over members), times the median level."""
    cut = [[pick(r) for r in per_round(s, rounds)] for s in timing]
    levels = [statistics.median(m[r] for m in cut) for r in range(rounds)]
    scale = statistics.median(levels)
    return [statistics.median(v / level for v, level in zip(m, levels, strict=True)) * scale for m in cut]


def reference_ratio(timing: list[list[float]], reference: list[float], rounds: int) -> list[float]:
    """Each member's median over rounds of its in-round median over the reference's."""
    levels = [statistics.median(r) for r in per_round(reference, rounds)]
    scale = statistics.median(reference)
    return [
        statistics.median(
            statistics.median(v) / level for v, level in zip(per_round(s, rounds), levels, strict=True)
        )
        * scale
        for s in timing
    ]


def figures(timing: list[list[float]], reference: list[float], rounds: int) -> dict[str, list[float]]:
    """Every statistic of every member of one timing."""
    out = {name: [statistic_ms(s, name) for s in timing] for name in STATISTICS}
    out["round_ratio"] = round_ratio(timing, rounds, statistics.median)
    out["round_ratio_min"] = round_ratio(timing, rounds, min)
    out["reference_ratio"] = reference_ratio(timing, reference, rounds)
    return out


def first_rounds(samples: list[float], rounds: int, keep: int) -> list[float]:
    return [v for r in per_round(samples, rounds)[:keep] for v in r]


def compare(data: dict[str, Any]) -> dict[str, Any]:
    """The retest figures of each statistic, with all rounds and with the first quarter and half."""
    rounds = data["harness"]["rounds"]
    out: dict[str, Any] = {}
    for keep in sorted({max(1, rounds // 4), max(1, rounds // 2), rounds}):
        first, second = (
            figures(
                [first_rounds(s, rounds, keep) for s in t["members"]],
                first_rounds(t["reference"], rounds, keep),
                keep,
            )
            for t in data["timings"]
        )
        out[f"rounds_{keep}"] = {
            name: {
                "retest": agreement(second[name], first[name]),
                "scale_free": agreement(second[name], first[name], rescale=True),
                "drift": statistics.median(second[name]) / statistics.median(first[name]),
            }
            for name in first
        }
    return out


def report(data: dict[str, Any]) -> None:
    h = data["harness"]
    print(
        f"{data['space']} {data['resolution']}px, {data['members']} members, {h['runs']} runs in "
        f"{h['rounds']} rounds, timed twice ({data['seconds']:.0f} s); load average "
        f"{data['load_before']['loadavg'][0]:.2f} -> {data['load_after']['loadavg'][0]:.2f}"
    )
    spread = [statistics.median(s) for s in data["timings"][0]["members"]]
    print(f"members' spread (slowest / fastest median): {max(spread) / min(spread):.2f}x")
    for keep, table in data["figures"].items():
        head = f"{'retest median p90 tau':>30} {'scale-free median p90':>24} drift"
        print(f"-- {keep.replace('_', ' ')}: {head}")
        for name, f in table.items():
            r, s = f["retest"], f["scale_free"]
            print(
                f"   {name:<18} {r['median_abs_error_pct']:>9.1f}% {r['p90_abs_error_pct']:>6.1f}% "
                f"{r['kendall_tau']:>6.3f} {s['median_abs_error_pct']:>12.1f}% "
                f"{s['p90_abs_error_pct']:>6.1f}% {f['drift']:>6.3f}"
            )


def main() -> None:
    parser = setting_parser(__doc__)
    parser.add_argument("--space", default="hybrid_small")
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--resolution", type=int, default=None, help="input size (default: the space's)")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2, help="the draw (latency_model.py compares seed 2)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--from", dest="source", default=None, help="recompute the figures of saved runs")
    args = parser.parse_args()
    if args.source:
        data = json.loads(Path(args.source).read_text())
        data["figures"] = compare(data)
        report(data)
        return
    torch.set_num_threads(args.threads)
    overrides = {"input_size": args.resolution} if args.resolution else {}
    space = load_space(ROOT / "search_spaces" / f"{args.space}.yaml", **overrides)
    harness = {"warmup": args.warmup, "runs": args.runs, "rounds": args.rounds}
    fingerprint = Fingerprint.here(args.device, threads=args.threads, batch=args.batch)
    predictor = LatencyPredictor(LatencyTable(fingerprint, harness=dict(harness)))
    plans = [plan for plan, _ in members(space, args.members, seed=args.seed, exclude=set())]
    before = load()
    t0 = time.perf_counter()
    timings = []
    for seed in (0, 1):
        results, reference = predictor.time_members_with_reference(plans, seed=seed)
        runs = [list(r.samples_ms) for r in results]
        timings.append({"members": runs, "reference": list(reference.samples_ms)})
    resolution = args.resolution or space.default().data.get("input", {}).get("size")
    data: dict[str, Any] = {
        "space": args.space,
        "resolution": resolution,
        "members": len(plans),
        "fingerprint": fingerprint.describe(),
        "harness": harness,
        "seconds": time.perf_counter() - t0,
        "load_before": before,
        "load_after": load(),
        "timings": timings,
    }
    data["figures"] = compare(data)
    out = Path(args.out) if args.out else RESULTS / f"latency_retest-{args.space}-{resolution}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data))
    report(data)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
