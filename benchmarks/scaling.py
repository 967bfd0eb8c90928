"""Scaling: evaluated trials per hour with 1 and 2 workers, per search backend.

One fixed small experiment (a 36-member hybrid space at 16 pixels, a short training on the
digits, one torch thread per worker, random sampling) is searched afresh with each worker count;
each backend is a function returning one row per worker count, and one printer draws them all.

* ``optuna-postgres``: ``archsearch worker`` processes sharing a study on a PostgreSQL server that
  this script starts on loopback (as the worker tests do).
* ``ray``: the Ray Tune backend on a local Ray with 2 CPUs, ``max_concurrent`` = the worker count
  (one CPU and one torch thread per trial; latency is not an objective here, so no CPU is held
  back for the latency actor).

Two rates are given: ``wall`` counts from launching the workers to the last one's exit (process
start-up and data loading included); ``study`` from the first trial's start to the last trial's
end, as stored in the study. On a machine with fewer free cores than workers, the ratio measures
the machine, not the backend: the load average before and after is recorded with the results.

    python benchmarks/scaling.py                       # 12 trials, 1 and 2 workers
    python benchmarks/scaling.py --trials 24 --workers 1 2 4

Writes benchmarks/results/scaling.json (each backend's rows under its own key).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
EVALUATED = ("complete", "early-stopped", "failed")

SPACE: dict[str, Any] = {
    "input": {"size": 16, "channels": 1},
    "stages": [
        {
            "embed": {"kind": "conv", "kernel": 3, "stride": 2, "padding": 1},
            "dim": {"choice": [8, 16, 24]},
            "depth": 2,
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


def experiment(name: str, trials: int, steps: int, storage: str) -> dict[str, Any]:
    """The benchmark's experiment (the same for every backend)."""
    return {
        "name": name,
        "space": SPACE,
        "data": {"kind": "digits"},
        "evaluator": {
            "kind": "train",
            "epochs": None,
            "steps": steps,
            "batch_size": 64,
            "flip": False,
            "threads": 1,
            "amp": False,
        },
        "objectives": [{"metric": "accuracy"}, {"metric": "macs"}],
        "sampler": {"kind": "random", "seed": 0},
        "early_stopping": {"kind": "none"},
        "trials": trials,
        "backend": {"storage": storage},
    }


def _rates(evaluated: int, wall_s: float, study_s: float) -> dict[str, float]:
    return {
        "evaluated": evaluated,
        "wall_s": wall_s,
        "study_s": study_s,
        "trials_per_hour_wall": 3600 * evaluated / wall_s,
        "trials_per_hour_study": 3600 * evaluated / study_s,
    }


def _row(backend: str, workers: int, study: optuna.Study, wall: float) -> dict[str, Any]:
    """One table row from a finished study: evaluated trials over the wall and the study's span."""
    done = [t for t in study.trials if t.user_attrs.get("outcome") in EVALUATED]
    first = min(t.datetime_start for t in study.trials if t.datetime_start)
    last = max(t.datetime_complete for t in study.trials if t.datetime_complete)
    print(f"{backend}, {workers} worker(s): {len(done)} trials in {wall:.1f} s", flush=True)
    return {
        "backend": backend,
        "workers": workers,
        "asked": len(study.trials),
        **_rates(len(done), wall, (last - first).total_seconds()),
        # the architectures differ between runs (each worker samples its own): compare this too
        "mean_eval_s": sum(t.user_attrs.get("eval_s", 0.0) for t in done) / max(len(done), 1),
    }


# ---------------------------------------------------------------------------------------- backends


def optuna_postgres(worker_counts: list[int], trials: int, steps: int) -> list[dict[str, Any]]:
    """``archsearch worker`` processes on one PostgreSQL study, a fresh study per worker count."""
    from archsearch.search import open_storage

    sys.path.insert(0, str(ROOT))  # the throwaway server is a test helper
    from tests.pg import TemporaryPostgres

    rows = []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with TemporaryPostgres() as pg, tempfile.TemporaryDirectory() as tmp:
        for n in worker_counts:
            name = f"scaling-{n}"
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(experiment(name, trials, steps, pg.url)))
            command = [sys.executable, "-c", "from archsearch.cli import main; main()", "worker", str(path)]
            start = time.perf_counter()
            workers = [
                subprocess.Popen(command, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                for _ in range(n)
            ]
            outputs = [w.communicate()[0].decode() for w in workers]
            wall = time.perf_counter() - start
            if any(w.returncode for w in workers):
                raise RuntimeError("a worker failed:\n" + "\n".join(outputs))
            study = optuna.load_study(study_name=name, storage=open_storage(pg.url))
            rows.append(_row("optuna-postgres", n, study, wall))
    return rows


def ray_tune(worker_counts: list[int], trials: int, steps: int) -> list[dict[str, Any]]:
    """The Ray backend with ``max_concurrent`` trials at a time, a fresh study per count."""
    import ray

    from archsearch.search import load_experiment, run_search

    rows = []
    ray.init(
        num_cpus=max(worker_counts), include_dashboard=False, log_to_driver=False, namespace="archsearch"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in worker_counts:
                data = experiment(f"scaling-ray-{n}", trials, steps, "")
                data["backend"] = {"kind": "ray", "cpus_per_trial": 1, "max_concurrent": n}
                data["run_dir"] = str(Path(tmp) / f"ray-{n}")
                start = time.perf_counter()
                summary = run_search(load_experiment(data))
                wall = time.perf_counter() - start
                rows.append(_row("ray", n, summary.study, wall))
    finally:
        ray.shutdown()
    return rows


BACKENDS: dict[str, Callable[[list[int], int, int], list[dict[str, Any]]]] = {
    "optuna-postgres": optuna_postgres,
    "ray": ray_tune,
}


# ---------------------------------------------------------------------------------------- the table


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per backend and worker count, with the speed-up over that backend's fewest workers."""
    head = ("workers", 8), ("trials", 8), ("wall s", 9), ("/h wall", 10), ("/h study", 10), ("ratio", 8)
    head += (("eval s/trial", 14),)
    print(f"{'backend':<18}" + "".join(f"{name:>{width}}" for name, width in head))
    for row in rows:
        base = min((r for r in rows if r["backend"] == row["backend"]), key=lambda r: r["workers"])
        ratio = row["trials_per_hour_wall"] / base["trials_per_hour_wall"]
        print(
            f"{row['backend']:<18}{row['workers']:>8}{row['evaluated']:>8}{row['wall_s']:>9.1f}"
            f"{row['trials_per_hour_wall']:>10.0f}{row['trials_per_hour_study']:>10.0f}{ratio:>8.2f}"
            f"{row['mean_eval_s']:>14.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--steps", type=int, default=150, help="training steps per trial")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_before = os.getloadavg()
    rows = [row for name in args.backends for row in BACKENDS[name](args.workers, args.trials, args.steps)]
    load_after = os.getloadavg()
    print_table(rows)
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}; {os.cpu_count()} cores")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "scaling.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in args.backends:
        results[name] = {
            "rows": [r for r in rows if r["backend"] == name],
            "trials": args.trials,
            "steps": args.steps,
            "load_before": load_before,
            "load_after": load_after,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
