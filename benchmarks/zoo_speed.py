#!/usr/bin/env python3
"""CPU inference latency of every zoo model, side by side with its reference implementation.

Usage::

    python benchmarks/zoo_speed.py                                   # whole zoo, batch 1 and 8
    python benchmarks/zoo_speed.py --models resnet-50,deit-ti,cvt-13 --runs 20
    python benchmarks/zoo_speed.py --threads 4 --batch 1,16 --ref-python /path/to/venv/bin/python

Each model runs at its native resolution in eval mode under ``torch.inference_mode`` with a fixed
thread count (``torch.set_num_threads`` in every measuring process), and the table reports the median
and interquartile range (IQR) of the per-forward latency in milliseconds.

Reference implementations (timm, official microsoft/CvT) live in a separate virtual environment
built by ``shared/tools/reference-env.sh`` (default ``/tmp/archsearch-ref``). The project never
imports them: the script re-invokes itself as a long-lived worker process, once with the project's
python (``--worker ours``) and once with the reference python (``--worker ref``), and talks to both
over stdin/stdout with one JSON object per line. Both workers are alive at the same time but only
one computes at any moment; after ``--warmup`` forwards each, the orchestrator alternates timing
rounds between them (ours, ref, ref, ours, ...; by default one forward per round) and pools all
rounds into the statistics, so machine load hits both sides alike. Besides the ratio of the medians
the table shows the "paired" ratio, the median over rounds of ours/ref within a round (the steadier
estimate under moderate noise), and "bg", the CPU load of other processes while timing (from /proc):
rows with bg above ~0.2 cores were measured on a shared machine and should be rerun.
``--wait-quiet SECONDS`` makes each round wait for the machine to calm down first.

Before timing, where a reference exists, the reference worker perturbs its weights and BN statistics
(so zero-initialised layers take part), saves its state dict with an input and its output at batch 2
to a temporary ``.pt`` file, and our worker copies those tensors into our model (paired by order, see
:func:`pair_state_dicts`) and reports ``max|ours - ref|``. Both models are then timed with the same
weights. Rows whose ratio ours/ref exceeds ``--target`` (1.05) are marked. Results also go to
``benchmarks/results/zoo_speed.json``.

To add a reference for a new zoo model, add one line to :data:`_zoo_reference.REFERENCES`.

The parts: ``_zoo_reference.py`` (which reference, building both models, perturbing and pairing
weights), ``_zoo_worker.py`` (the measuring process), ``_zoo_timing.py`` (workers, rounds, the
table); this file parses the command line and writes the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _zoo_reference import EQUIV_BATCH, REFERENCES
from _zoo_timing import Row, WorkerError, bench_model, log, table
from _zoo_worker import worker_main

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "zoo_speed.json"
DEFAULT_REF_PYTHON = "/tmp/archsearch-ref/bin/python"
DEFAULT_CVT_REF = "/tmp/cvt_ref"


def _csv_ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="CPU inference latency of the archsearch zoo vs the reference implementations "
        "(timm, official CvT), measured side by side in interleaved rounds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--models", default="all", help="comma-separated zoo names, or all of zoo_names()")
    p.add_argument("--batch", type=_csv_ints, default="1,8", help="comma-separated batch sizes")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in each measuring process")
    p.add_argument("--warmup", type=int, default=5, help="warm-up forwards before the first round")
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=2.0,
        help="keep warming up until this many seconds have passed",
    )
    p.add_argument("--runs", type=int, default=20, help="timed forwards per model, batch and side (at least)")
    p.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="alternating ours/ref rounds to split the runs into (0: one forward per round)",
    )
    p.add_argument("--rewarm", type=int, default=0, help="untimed forwards at the start of each round")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each round wait up to this long for other processes to use < 0.25 cores "
        "(for shared machines; the waiting is not timed)",
    )
    p.add_argument("--target", type=float, default=1.05, help="mark rows whose ours/ref ratio exceeds this")
    p.add_argument(
        "--ref-python",
        default=DEFAULT_REF_PYTHON,
        help="python of the reference venv (shared/tools/reference-env.sh)",
    )
    p.add_argument("--cvt-ref", default=DEFAULT_CVT_REF, help="directory holding official CvT's load_cvt.py")
    p.add_argument("--no-ref", action="store_true", help="time only ours")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    p.add_argument("--worker", choices=("ours", "ref"), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.runs < 4 or not 0 <= args.rounds <= args.runs or args.threads < 1 or not args.batch:
        p.error("need --runs >= 4, 0 <= --rounds <= --runs, --threads >= 1 and at least one batch size")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker:
        return worker_main(args)

    import archsearch

    names = [m.strip() for m in args.models.split(",") if m.strip() not in ("", "all")]
    names = names or list(archsearch.zoo_names())
    unknown = sorted(set(names) - set(archsearch.zoo_names()))
    if unknown:
        print(f"unknown zoo models: {', '.join(unknown)}", file=sys.stderr)
        return 2
    ref_python: str | None = args.ref_python
    if args.no_ref or not (ref_python and os.access(ref_python, os.X_OK)):
        print("reference: not available")
        ref_python = None
    else:
        print(f"reference: {ref_python}")
    print(
        f"threads {args.threads}, batch {args.batch}, warm-up {args.warmup}, "
        f">= {args.runs} timed runs in {args.rounds or args.runs} interleaved rounds",
        flush=True,
    )

    rows: list[Row] = []
    models: dict[str, Any] = {}
    start = time.perf_counter()
    for name in names:
        log(f"{name} ...")
        try:
            model_rows, info = bench_model(name, args, ref_python)
        except WorkerError as exc:
            log(f"  {name}: failed: {exc}")
            model_rows = [
                Row(name, b, REFERENCES.get(name), error=str(exc), equal="error") for b in args.batch
            ]
            info = {"error": str(exc)}
        rows += model_rows
        models[name] = info
    elapsed = time.perf_counter() - start

    print()
    print(table(rows, args.target))
    print(
        f"\nmedian (IQR) of the per-forward latency in ms; ours/ref = ratio of the medians; "
        f"paired = median over rounds of ours/ref\nwithin the round; max|diff| = max|ours - ref| at batch "
        f"{EQUIV_BATCH} with the reference's weights copied into ours;\nbg = cores used by other processes "
        f"while timing (above ~0.2 the machine was shared: latencies are inflated and ratios unreliable)."
        f"\ntotal {elapsed:.0f} s"
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "warmup": args.warmup,
            "runs": args.runs,
            "rounds": args.rounds or args.runs,
            "rewarm": args.rewarm,
            "wait_quiet_s": args.wait_quiet,
            "target_ratio": args.target,
            "ref_python": ref_python,
            "cvt_ref": args.cvt_ref,
            "elapsed_s": round(elapsed, 1),
        },
        "models": models,
        "rows": [{**asdict(r), "ratio": r.ratio} for r in rows],
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
