"""How long a Pareto report of a 500-trial study takes to write.

    python benchmarks/report.py [--trials 500] [--out /tmp/archsearch-report-bench]

Builds a synthetic study with ``archsearch.report.demo_results``: real specs of a three-stage
hybrid space at 32x32 (conv / ConvNeXt / window / global-attention mixers, dims, depths, key/value
strides and per-block MLP ratios), params and MACs from the analytic cost model, made-up accuracy
and latency, failed/pruned/duplicate/running trials, and a real in-memory Optuna study holding the
same trials (``create_trial`` + ``add_trial``) so importances run. Then times ``write_report`` three
times (the first run pays the imports of plotly, matplotlib and Optuna's importance module) and
reports the median. Target: under 10 s. Writes benchmarks/results/report.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from archsearch.report import compute_report, demo_results, write_report

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=500, help="trials in the synthetic study")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: a temporary one)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = args.out or Path(tempfile.mkdtemp(prefix="archsearch-report-"))

    t0 = time.perf_counter()
    results = demo_results(args.trials)
    build_s = time.perf_counter() - t0

    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        files = write_report(results, out)
        runs.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    data = compute_report(results)
    compute_s = time.perf_counter() - t0
    median = statistics.median(runs)

    states = results.trials["state"].value_counts().to_dict()
    print(f"synthetic study: {args.trials} trials {states}, {len(results.objectives)} objectives")
    print(f"Pareto front: {len(data.front)} members; report in {out}")
    rows = [
        ("build the synthetic study + Optuna study (not timed)", build_s),
        ("write_report, run 1 (cold imports)", runs[0]),
        ("write_report, run 2", runs[1]),
        ("write_report, run 3", runs[2]),
        ("write_report, median of 3", median),
        ("  of which compute_report (front, HV, zoo, importances)", compute_s),
    ]
    print(f"{'step':58} {'seconds':>8}")
    for name, seconds in rows:
        print(f"{name:58} {seconds:>8.2f}")
    print(f"target < {TARGET_S:.0f} s: {'met' if median < TARGET_S else 'NOT met'}")
    size = files.index_html.stat().st_size
    print(f"index.html {size / 2**20:.1f} MiB, {len(files.winners)} winners, {len(files.figures)} figures")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.json").write_text(
        json.dumps(
            {
                "trials": args.trials,
                "states": states,
                "front": len(data.front),
                "runs_s": runs,
                "median_s": median,
                "compute_s": compute_s,
                "target_s": TARGET_S,
                "index_html_bytes": size,
                "winners": len(files.winners),
                "figures": len(files.figures),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
