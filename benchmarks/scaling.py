"""Search throughput as trials run in parallel: trials per hour with 1 and 2 concurrent trials.

Ray part (:func:`ray_scaling`): a fixed small experiment (a 16-pixel hybrid space on the digits,
one-epoch proxy training, accuracy and MACs, random sampling) on a local Ray with 2 CPUs,
``max_concurrent`` 1 and then 2 (one CPU and one torch thread per trial). Trials per hour count
evaluated architectures over the whole wall time, Ray start-up of each trial's worker included.

    python benchmarks/scaling.py                      # every backend
    python benchmarks/scaling.py --backends ray --trials 8

Writes benchmarks/results/scaling.json (one key per backend; other keys are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from archsearch.search import load_experiment, run_search

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

SPACE = {
    "input": {"size": 16, "channels": 1},
    "stages": [
        {
            "embed": {"kind": "conv", "kernel": 3, "stride": 2, "padding": 1},
            "dim": {"choice": [8, 16, 24]},
            "depth": {"choice": [1, 2]},
            "mixer": {
                "choice": [
                    "conv",
                    {"kind": "attention", "heads": 2, "qkv": "dw_bn", "kv_stride": {"choice": [1, 2]}},
                ]
            },
            "mlp_ratio": {"choice": [2, 4], "per_block": True},
        },
        {
            "embed": {"kind": "conv", "kernel": 3, "stride": 2, "padding": 1},
            "dim": 32,
            "depth": 1,
            "mixer": "conv",
        },
    ],
}


def _experiment(run_dir: str, trials: int, max_concurrent: int) -> Any:
    return load_experiment(
        {
            "name": f"scaling-{max_concurrent}",
            "space": SPACE,
            "data": {"kind": "digits"},
            "evaluator": {"kind": "train", "epochs": 1, "batch_size": 128, "flip": False},
            "objectives": [{"metric": "accuracy"}, {"metric": "macs"}],
            "early_stopping": {"kind": "none"},
            "sampler": {"kind": "random", "seed": 0},
            "trials": trials,
            "run_dir": run_dir,
            "backend": {"kind": "ray", "cpus_per_trial": 1, "max_concurrent": max_concurrent},
        }
    )


def ray_scaling(trials: int = 8) -> dict[str, Any]:
    """Trials per hour of the Ray backend with 1 and 2 concurrent trials on a local 2-CPU Ray."""
    import ray

    out: dict[str, Any] = {"trials": trials, "ray": ray.__version__, "cpus": 2}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="archsearch")
    try:
        for concurrent in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                summary = run_search(_experiment(tmp, trials, concurrent))
                wall = time.perf_counter() - start
            out[f"concurrent_{concurrent}"] = {
                "evaluated": summary.evaluated,
                "wall_s": round(wall, 2),
                "trials_per_hour": round(3600 * summary.evaluated / wall, 1),
                "load_1min_after": os.getloadavg()[0],  # the machine is shared: read with it
            }
    finally:
        ray.shutdown()
    one, two = out["concurrent_1"]["trials_per_hour"], out["concurrent_2"]["trials_per_hour"]
    out["ratio_2_over_1"] = round(two / one, 3)
    print(f"ray: {one:.0f} trials/h with 1 concurrent trial, {two:.0f} with 2: x{two / one:.2f}")
    return out


BACKENDS: dict[str, Callable[..., dict[str, Any]]] = {"ray": ray_scaling}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=sorted(BACKENDS), default=sorted(BACKENDS))
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = RESULTS / "scaling.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()}
    for name in args.backends:
        results[name] = BACKENDS[name](trials=args.trials)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
