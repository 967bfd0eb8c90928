"""Is the latency harness repeatable? Two back-to-back measurements per model must agree.

    python benchmarks/latency.py [--models resnet-50,cvt-13] [--batch 1] [--runs 50] [--threads 2]

For each model: build it, measure its CPU latency twice in a row with the same protocol as
`archsearch profile` (warm-up, fixed threads, inference mode, median of repeated runs), and print
both medians, their ratio and the coefficient of variation. Target: the two medians within 5%.
Writes benchmarks/results/latency.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import archsearch
from archsearch.cost import measure_latency

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="resnet-50,cvt-13")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    rows = []
    print(
        f"{'model':12} {'batch':>5} {'median 1 (ms)':>14} {'median 2 (ms)':>14} {'ratio':>7} "
        f"{'CV 1':>6} {'CV 2':>6} {'IQR 1 (ms)':>10}  within 5%"
    )
    for name in args.models.split(","):
        model = archsearch.create_model(name)
        size = model.plan.input_shape
        shape = (args.batch, size.channels, size.height, size.width)
        a, b = (
            measure_latency(
                model, shape, device=args.device, warmup=args.warmup, runs=args.runs, threads=args.threads
            )
            for _ in range(2)
        )
        ratio = b.median_ms / a.median_ms
        ok = abs(ratio - 1) <= 0.05
        print(
            f"{name:12} {args.batch:>5} {a.median_ms:>14.2f} {b.median_ms:>14.2f} {ratio:>7.3f} "
            f"{a.cv:>6.1%} {b.cv:>6.1%} {a.iqr_ms:>10.2f}  {'yes' if ok else 'NO'}"
        )
        rows.append(
            {"model": name, "first": a.to_dict(), "second": b.to_dict(), "ratio": ratio, "within_5pct": ok}
        )
    print(
        f"device: {rows[0]['first']['device']}, torch {torch.__version__}, {args.threads} threads, "
        f"{args.runs} runs after {args.warmup} warm-up"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
