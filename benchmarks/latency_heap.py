"""Whether timings of the same members agree from one timing to the next, on glibc's default heap
and on the steady heap the harness holds (archsearch/cost/_heap.py).

    python benchmarks/latency_heap.py [--space cvt13_nas] [--resolution 192] [--members 24]
        [--timings 3] [--runs 20 --rounds 10] [--threads 2] [--heap both|steady|default] [--quick]

Random members of a shipped space (``latency_model.py``'s draw) are built afresh and timed
together in interleaved rounds (:func:`archsearch.cost.time_interleaved`), ``--timings`` times in
one process, first with the harness's steady heap switched off (glibc's defaults, as before
2026-12-01), then on; each heap in a fresh process, so that neither inherits the other's state.
Reported per heap: Kendall's tau of each later timing against the first and the range of each
member's time over its first, and for each timing the median residual of a linear fit of the
times on MACs and parameters (the members' own noise: what no prediction from their structure
can explain). Writes benchmarks/results/latency_heap.json (``--out``). Time it on a quiet machine.

On the 2-core Intel Xeon VM (2026-12-01, cvt13_nas at 192 px, 24 members, 20 runs in 10 rounds,
nothing else running), first with the scripts this one was made from: default heap, tau 0.88
and 0.75 against the first timing, members 0.95-1.04x and 0.98-1.12x, fit residuals 1.8 %, 1.9 %,
0.2 %; steady heap, tau 0.94 and 0.94, 0.999-1.024x and 0.988-1.012x, residuals 0.5 %, 0.5 %, 0.4 %.
With this script (load 0.4 -> 1.9; benchmarks/results/latency_heap.json): default tau 0.819 and
0.891, members 1.010-1.092x and 1.012-1.059x, residuals 0.79 %, 1.33 %, 0.46 %; steady tau 0.891
and 0.891, 0.987-1.027x and 0.990-1.035x, residuals 0.35 %, 0.68 %, 0.86 %. The default heap does
not always go wrong (it depends on where blocks landed), and the steady one narrows the members'
spread from one timing to the next rather than removing it; the full benchmark's retest at 192 px
went from tau 0.773 (default heap, the same day) to 0.912-0.931 (four runs, steady heap).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def one_heap(args: argparse.Namespace, steady: bool) -> dict[str, Any]:
    """The timings of one heap, in this process."""
    import numpy as np
    import torch
    from latency_model import ROOT, kendall_tau, load, members  # benchmarks/ is the script's folder

    from archsearch.compiler import build
    from archsearch.cost import Timed, analytic_costs, heap_mode, statistic_ms, time_interleaved
    from archsearch.cost import _heap as heap_module
    from archsearch.cost import _latency as latency_module
    from archsearch.space import load_space

    if not steady:  # the harness's hold switched off: glibc's defaults, as before 2026-12-01
        latency_module.steady_heap = contextlib.nullcontext  # type: ignore[assignment]
    torch.set_num_threads(args.threads)
    overrides = {"input_size": args.resolution} if args.resolution else {}
    space = load_space(ROOT / "search_spaces" / f"{args.space}.yaml", **overrides)
    drawn = members(space, args.members, seed=2, exclude=set())
    before = load()
    timings: list[list[float]] = []
    held: list[bool] = []  # whether the heap was held while each timing ran (a probe item records it)
    for t in range(args.timings):
        items = [Timed(lambda: held.append(heap_module._depth > 0))]
        for plan, _ in drawn:
            torch.manual_seed(t)
            model = build(plan).eval()
            x = plan.input_shape
            items.append(Timed(functools.partial(model, torch.randn((1, x.channels, x.height, x.width)))))
        results = time_interleaved(
            items, warmup=3, runs=args.runs, rounds=args.rounds, threads=args.threads, seed=t
        )
        timings.append([statistic_ms(r.samples_ms, "fastest_quarter") for r in results[1:]])
        del items, results
        gc.collect()
    costs = [analytic_costs(plan) for plan, _ in drawn]
    x = np.array([[c.macs, c.params, 1.0] for c in costs], dtype=float)
    residuals = []
    for times in timings:
        y = np.array(times)
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        residuals.append(float(np.median(np.abs(x @ coef - y) / y) * 100))
    against_first = []
    for later in timings[1:]:
        ratios = [b / a for a, b in zip(timings[0], later, strict=True)]
        against_first.append(
            {
                "kendall_tau": kendall_tau(timings[0], later),
                "ratio_low": min(ratios),
                "ratio_high": max(ratios),
            }
        )
    return {
        "heap": "steady" if held and all(held) else "default" if not any(held) else "mixed",
        "heap_here": heap_mode(),
        "load_before": before,
        "load_after": load(),
        "median_ms": [statistics.median(t) for t in timings],
        "fit_residual_pct": residuals,
        "against_first": against_first,
        "timings_ms": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--space", default="cvt13_nas")
    parser.add_argument("--resolution", type=int, default=192, help="0: the space's own")
    parser.add_argument("--members", type=int, default=24)
    parser.add_argument("--timings", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--heap", choices=("both", "steady", "default"), default="both")
    parser.add_argument("--quick", action="store_true", help="a handful of small members (for a test)")
    parser.add_argument("--out", default=str(RESULTS / "latency_heap.json"))
    parser.add_argument("--one", choices=("steady", "default"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.space, args.resolution, args.members, args.timings = "hybrid_small", 0, 4, 2
        args.runs, args.rounds = 4, 2
    if args.one:  # a child: one heap, printed as JSON
        print(json.dumps(one_heap(args, args.one == "steady")))
        return
    heaps = ("default", "steady") if args.heap == "both" else (args.heap,)
    out: dict[str, Any] = {"setting": {k: v for k, v in vars(args).items() if k not in ("one", "out")}}
    for heap in heaps:  # each in a fresh process: neither inherits the other's heap
        child = [sys.executable, __file__, *sys.argv[1:], "--one", heap]
        done = subprocess.run(child, capture_output=True, text=True, check=True)
        out[heap] = json.loads(done.stdout.strip().splitlines()[-1])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(
        f"{args.space} at {args.resolution or 'its own size'} px, {args.members} members, "
        f"{args.timings} timings"
    )
    print(
        f"{'heap':<8} {'tau vs first':<16} {'member ratios vs first':<30} {'fit residual (median)':<24} load"
    )
    for heap in heaps:
        r = out[heap]
        taus = ", ".join(f"{a['kendall_tau']:.3f}" for a in r["against_first"])
        ratios = ", ".join(f"{a['ratio_low']:.3f}-{a['ratio_high']:.3f}" for a in r["against_first"])
        res = ", ".join(f"{v:.2f}%" for v in r["fit_residual_pct"])
        print(
            f"{r['heap']:<8} {taus:<16} {ratios:<30} {res:<24} "
            f"{r['load_before']['loadavg'][0]:.2f} -> {r['load_after']['loadavg'][0]:.2f}"
        )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
