"""How fast the analytic cost model is, against counting a built model.

    python benchmarks/cost_model.py [--specs 5000] [--traced 5]

Pins the process to one core and one thread, generates CvT-13-NAS candidates (CvT-13 with a random
key/value stride in {1, 2} and MLP ratio in {2, 4} per block), and times, per spec:
  * analytic: validate the spec dict, normalise it, compute params/MACs/activations; each of the
    3 timed rounds runs on fresh candidates (the memos of normalisation and costs are keyed by
    stage, block and plan values, never by a whole spec, but candidates seen before would hit
    them more often than a search's new ones do); a separate row repeats one round's candidates.
    All candidates share one structure, so after the warm-up they take the fast path of
    ``archsearch.spec._fast`` (the structure pickled once, only the per-block values validated,
    the plan assembled from learnt blocks);
  * traced: build the torch model and count one forward pass at 224x224.
Checks on a sample that both give the same params and MACs. Writes benchmarks/results/cost_model.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import archsearch
from archsearch.cost import analytic_costs, count_traced
from archsearch.spec import Spec, normalize

RESULTS = Path(__file__).resolve().parent / "results"


def cvt13_nas_candidates(n: int, seed: int = 0) -> list[dict[str, Any]]:
    base = archsearch.load_spec("cvt-13").model_dump(exclude_none=True)
    depths = base.pop("depths")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        stages = []
        for stage, depth in zip(base["stages"], depths, strict=True):
            mixer = dict(stage["mixer"], kv_stride=[rng.choice([1, 2]) for _ in range(depth)])
            stages.append(
                dict(stage, depth=depth, mixer=mixer, mlp_ratio=[rng.choice([2, 4]) for _ in range(depth)])
            )
        out.append({**base, "stages": stages})
    return out


def analytic_from_dict(data: dict[str, Any]) -> tuple[int, int]:
    report = analytic_costs(normalize(Spec.model_validate(data)))
    return report.params, report.macs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--specs", type=int, default=5000, help="candidates for the analytic timing")
    parser.add_argument("--traced", type=int, default=5, help="candidates for the traced timing")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)

    n = args.specs
    pool = cvt13_nas_candidates(50 + 3 * n)
    warmup, fresh = pool[:50], [pool[50 + r * n : 50 + (r + 1) * n] for r in range(3)]
    specs = fresh[0]
    for data in warmup:
        analytic_from_dict(data)
    rounds = []
    for chunk in fresh:  # every round on candidates not seen before
        t0 = time.perf_counter()
        for data in chunk:
            analytic_from_dict(data)
        rounds.append(time.perf_counter() - t0)
    analytic_s = statistics.median(rounds) / n
    t0 = time.perf_counter()
    for data in fresh[-1]:  # the last round's candidates again: what a search revisiting them sees
        analytic_from_dict(data)
    repeated_s = (time.perf_counter() - t0) / n

    plans = [normalize(Spec.model_validate(d)) for d in specs[:1000]]
    t0 = time.perf_counter()
    for plan in plans:
        analytic_costs(plan)
    cost_only_s = (time.perf_counter() - t0) / len(plans)

    traced_times, mismatches = [], 0
    for data in specs[: args.traced]:
        t0 = time.perf_counter()
        model = archsearch.build(Spec.model_validate(data))
        counts = count_traced(model, (1, 3, 224, 224))
        traced_times.append(time.perf_counter() - t0)
        if (counts.params, counts.macs) != analytic_from_dict(data):
            mismatches += 1
    traced_s = statistics.median(traced_times)

    rows = [
        ("analytic: dict -> validate -> normalise -> costs", analytic_s, 1 / analytic_s),
        ("  same, candidates seen before (repeated round)", repeated_s, 1 / repeated_s),
        ("analytic: costs of a normalised spec only", cost_only_s, 1 / cost_only_s),
        ("traced: build + count one forward at 224", traced_s, 1 / traced_s),
    ]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"CvT-13-NAS candidates, one core, torch {torch.__version__}; load average {load}")
    print(f"{'path':52} {'per spec':>12} {'specs/s':>10}")
    for name, seconds, rate in rows:
        print(f"{name:52} {seconds * 1e6:>9.1f} us {rate:>10.1f}")
    print(
        f"analytic is {traced_s / analytic_s:,.0f}x faster than tracing; "
        f"target >= 20000 specs/s: {'met' if 1 / analytic_s >= 20000 else 'NOT met'}"
    )
    print(f"agreement on {len(traced_times)} traced candidates: {len(traced_times) - mismatches} equal")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cost_model.json").write_text(
        json.dumps(
            {
                "specs": len(specs),
                "analytic_us": analytic_s * 1e6,
                "analytic_specs_per_s": 1 / analytic_s,
                "analytic_repeated_us": repeated_s * 1e6,
                "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                "cost_only_us": cost_only_s * 1e6,
                "traced_s": traced_s,
                "traced_mismatches": mismatches,
                "torch": torch.__version__,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
