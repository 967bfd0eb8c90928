"""Search overhead and sampler quality.

1. The quickstart experiment, run afresh: wall time, time inside evaluation (building, costing,
   training), and the fraction spent outside it (sampling, checks, storage, data loading).
   Target: at most 2 %.
2. A zero-cost objective (synflow, maximised; MACs, minimised) over the CvT-13-NAS space:
   the hypervolume NSGA-II reaches after 100 trials against random search after 100 and 200,
   with one reference point for all runs (the nadir of every point seen, pushed out by 10 % of
   the range: :func:`archsearch.pareto.reference_point`).

    python benchmarks/search_overhead.py                  # both parts
    python benchmarks/search_overhead.py --skip-quickstart --seeds 0 1 2

Writes benchmarks/results/search_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import torch

from archsearch.pareto import hypervolume, reference_point
from archsearch.search import load_experiment, run_search

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def quickstart(trials: int | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        exp = load_experiment(ROOT / "experiments" / "quickstart.yaml", [f"run_dir={tmp}"])
        start = time.perf_counter()
        summary = run_search(exp, trials=trials)
        wall = time.perf_counter() - start
        best = max((t.values[0] for t in summary.study.best_trials), default=float("nan"))
        asked = len(summary.study.trials)
    return {
        "trials_evaluated": summary.evaluated,
        "trials_asked": asked,
        "wall_s": wall,
        "eval_s": summary.eval_seconds,
        "outside_eval_s": wall - summary.eval_seconds,
        "outside_eval_fraction": (wall - summary.eval_seconds) / wall,
        "best_accuracy": best,
    }


def zero_cost_run(
    sampler: str, trials: int, seed: int, input_size: int, tmp: Path
) -> tuple[np.ndarray, float]:
    exp = load_experiment(
        {
            "name": f"{sampler}-{seed}",
            "space": str(ROOT / "search_spaces" / "cvt13_nas.yaml"),
            "input_size": input_size,
            "data": {"kind": "digits"},
            "evaluator": {"kind": "zero_cost", "proxies": ["synflow"], "batch_size": 16},
            "objectives": [{"metric": "synflow"}, {"metric": "macs"}],
            "sampler": {
                "kind": sampler,
                "seed": seed,
                **({"population_size": 20} if sampler == "nsga2" else {}),
            },
            "trials": trials,
            "run_dir": str(tmp / f"{sampler}-{seed}"),
        }
    )
    start = time.perf_counter()
    summary = run_search(exp)
    wall = time.perf_counter() - start
    # every trial that has values, in order (duplicates repeat their original's values)
    points = [t.values for t in summary.study.trials if t.values is not None]
    return np.asarray(points, dtype=float), wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-quickstart", action="store_true")
    parser.add_argument(
        "--quickstart-trials", type=int, default=None, help="default: the experiment's budget"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--input-size", type=int, default=64, help="resolution of the cvt13_nas members scored"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(2)
    out: dict[str, object] = {
        "machine": platform.platform(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "threads": torch.get_num_threads(),
    }

    if not args.skip_quickstart:
        q = quickstart(args.quickstart_trials)
        out["quickstart"] = q
        print("quickstart experiment")
        print(f"  {'trials evaluated / asked':<28}{q['trials_evaluated']} / {q['trials_asked']}")
        print(f"  {'wall':<28}{q['wall_s']:.1f} s")
        print(f"  {'inside evaluation':<28}{q['eval_s']:.1f} s")
        print(
            f"  {'outside evaluation':<28}{q['outside_eval_s']:.2f} s"
            f" = {100 * q['outside_eval_fraction']:.2f} %"
            "  (target <= 2 %)"
        )
        print(f"  {'best validation accuracy':<28}{q['best_accuracy']:.4f}")

    directions = ["maximize", "minimize"]
    runs: dict[str, list[dict[str, object]]] = {"nsga2": [], "random": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        raw = []
        for seed in args.seeds:
            nsga, t_nsga = zero_cost_run("nsga2", 100, seed, args.input_size, tmp)
            rand, t_rand = zero_cost_run("random", 200, seed, args.input_size, tmp)
            raw.append((seed, nsga, rand, t_nsga, t_rand))
        every = np.concatenate([np.concatenate([n, r]) for _, n, r, _, _ in raw])
        ref = reference_point(every, directions)
        for seed, nsga, rand, t_nsga, t_rand in raw:
            runs["nsga2"].append(
                {"seed": seed, "hv_100": hypervolume(nsga[:100], directions, ref), "wall_s": t_nsga}
            )
            runs["random"].append(
                {
                    "seed": seed,
                    "hv_100": hypervolume(rand[:100], directions, ref),
                    "hv_200": hypervolume(rand[:200], directions, ref),
                    "wall_s": t_rand,
                }
            )
    out["zero_cost"] = {
        "space": "cvt13_nas",
        "input_size": args.input_size,
        "objectives": "synflow max, macs min",
        "reference_point": ref.tolist(),
        "runs": runs,
    }
    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    nsga100, rand100, rand200 = (
        med(runs["nsga2"], "hv_100"),
        med(runs["random"], "hv_100"),
        med(runs["random"], "hv_200"),
    )
    print(
        f"\nzero-cost search over cvt13_nas at {args.input_size} px (synflow max, MACs min), "
        f"seeds {args.seeds}, median hypervolume; reference point {ref.tolist()}"
    )
    print(f"  {'sampler':<22}{'hypervolume':>16}{'vs NSGA-II@100':>16}")
    for label, value in (
        ("NSGA-II, 100 trials", nsga100),
        ("random, 100 trials", rand100),
        ("random, 200 trials", rand200),
    ):
        print(f"  {label:<22}{value:>16.6g}{value / nsga100:>16.3f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "search_overhead.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**kept, **out}, indent=2))  # a part that was skipped keeps its figures
    print(f"\nwrote {RESULTS / 'search_overhead.json'}")


if __name__ == "__main__":
    main()
