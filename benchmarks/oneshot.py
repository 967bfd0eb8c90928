"""One-shot search, measured (issue 20, acceptance 2 and 3).

``python benchmarks/oneshot.py tau``: rank correlation between the accuracy members reach with
the weights they inherit from a trained supernet and the accuracy they reach trained on their own
(proxy training, the same budget and seed for each), over ``--members`` random members of
``search_spaces/hybrid_small.yaml`` on scikit-learn's digits: Kendall's tau with a bootstrap 95%
interval (resampling members). Not a timing: it may run on a busy machine (under ``nice``).

``python benchmarks/oneshot.py hv``: the one-shot quickstart (experiments/quickstart_oneshot.yaml)
and the multi-trial quickstart (experiments/quickstart.yaml) for the same wall time: the one-shot
run first, then the multi-trial run stopped after the same seconds (``backend.timeout_s``); the
hypervolume of each run's front of trained accuracies (one-shot: the retrained members; accuracy
up, MACs down) under one reference point taken from both, and the supernet phase's time next to
one stand-alone training of the space's largest member. A timing: run it on a quiet machine.

Both print one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def _kendall(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (ties counted as neither concordant nor discordant)."""
    n, concordant, discordant, ties_a, ties_b = len(a), 0, 0, 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif da == db:
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denominator if denominator else math.nan


def _bootstrap(a: np.ndarray, b: np.ndarray, rounds: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(rounds):
        pick = rng.integers(0, len(a), len(a))
        tau = _kendall(a[pick], b[pick])
        if math.isfinite(tau):
            taus.append(tau)
    low, high = np.percentile(taus, [2.5, 97.5])
    return float(low), float(high)


def tau(args: argparse.Namespace) -> dict[str, Any]:
    """Kendall's tau between inherited-weight and stand-alone accuracy over random members."""
    from archsearch.compiler import build
    from archsearch.data import DigitsData, load_dataset
    from archsearch.evaluate import SupernetConfig, TrainConfig, train_and_evaluate
    from archsearch.space import load_space
    from archsearch.supernet import Supernet, inherited_accuracy, sample_path, train_supernet

    torch.set_num_threads(args.threads)
    space = load_space(ROOT / "search_spaces" / "hybrid_small.yaml", num_classes=10)
    data = load_dataset(DigitsData(), input_size=(32, 32), channels=3)
    common = {"batch_size": 64, "lr": 3e-3, "warmup_epochs": 1, "flip": False, "device": "cpu"}
    common["threads"] = args.threads
    config = SupernetConfig(epochs=args.supernet_epochs, sampling=args.sampling, **common)
    net = Supernet(space, seed=0)
    start = time.perf_counter()
    train_supernet(net, data, config)
    supernet_s = time.perf_counter() - start
    net.eval()
    rng = np.random.default_rng(args.seed)
    members, inherited, alone = [], [], []
    seen: set[str] = set()
    while len(members) < args.members:
        plan = sample_path(net, rng)
        key = json.dumps(plan.spec.model_dump(mode="json"), sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        acc, _ = inherited_accuracy(
            net,
            plan,
            data,
            calibration_batches=args.calibration_batches,
            batch_size=64,
            eval_batch_size=256,
            device=torch.device("cpu"),
        )
        torch.manual_seed(args.seed)
        model = build(plan)
        result = train_and_evaluate(model, data, TrainConfig(epochs=args.epochs, seed=args.seed, **common))
        members.append(plan.name)
        inherited.append(acc)
        alone.append(result.accuracy)
        print(f"member {len(members)}: inherited {acc:.4f}, alone {result.accuracy:.4f}", flush=True)
    a, b = np.array(inherited), np.array(alone)
    low, high = _bootstrap(a, b, args.bootstrap, args.seed)
    return {
        "space": "hybrid_small",
        "data": "digits 32x32",
        "members": len(members),
        "supernet": {
            "epochs": args.supernet_epochs,
            "sampling": args.sampling,
            "seconds": round(supernet_s, 1),
        },
        "standalone_epochs": args.epochs,
        "kendall_tau": round(_kendall(a, b), 4),
        "bootstrap_95": [round(low, 4), round(high, 4)],
        "inherited": [round(x, 4) for x in inherited],
        "standalone": [round(x, 4) for x in alone],
    }


def _front_points(study: Any, retrained: bool) -> np.ndarray:
    from archsearch.search import trials_table

    table = trials_table(study)
    table = table[(table["state"] == "COMPLETE") & (table["outcome"] == "complete")]
    column = "retrained_accuracy" if retrained else "accuracy"
    table = table[table[column].notna()]
    return table[[column, "macs"]].to_numpy(dtype=float)


def hv(args: argparse.Namespace) -> dict[str, Any]:
    """The hypervolume of the one-shot and the multi-trial quickstart for the same wall time."""
    from archsearch.compiler import build
    from archsearch.evaluate import train_and_evaluate
    from archsearch.pareto import hypervolume, non_dominated_sort, reference_point
    from archsearch.search import load_experiment, load_study, prepare_experiment, retrain_config, run_search
    from archsearch.supernet import ExtremeSuggest

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        oneshot = load_experiment(
            ROOT / "experiments" / "quickstart_oneshot.yaml", [f"run_dir={tmp}/oneshot"]
        )
        start = time.perf_counter()
        run_search(oneshot)
        oneshot_s = time.perf_counter() - start
        supernet_s = float(
            torch.load(Path(tmp) / "oneshot" / "supernet.pt", weights_only=True)["run"]["seconds"]
        )
        multi = load_experiment(
            ROOT / "experiments" / "quickstart.yaml",
            [f"run_dir={tmp}/multi", "trials=10000", f"backend.timeout_s={oneshot_s:.0f}"],
        )
        start = time.perf_counter()
        run_search(multi)
        multi_s = time.perf_counter() - start
        a = _front_points(load_study(oneshot), retrained=True)
        b = _front_points(load_study(multi), retrained=False)
        directions = ["maximize", "minimize"]
        reference = reference_point(np.vstack([a, b]), directions)
        # the supernet phase next to one stand-alone training of the largest member
        space, data = prepare_experiment(oneshot)
        largest = space.candidate(ExtremeSuggest(space, largest=True)).plan
        assert largest is not None
        start = time.perf_counter()
        train_and_evaluate(build(largest), data, retrain_config(oneshot.evaluator))  # type: ignore[arg-type]
        largest_s = time.perf_counter() - start
        for name, points, seconds in (("oneshot", a, oneshot_s), ("multi_trial", b, multi_s)):
            front = points[non_dominated_sort(points, directions) == 0] if len(points) else points
            out[name] = {
                "seconds": round(seconds, 1),
                "front": front.tolist(),
                "hypervolume": hypervolume(points, directions, reference) if len(points) else 0.0,
            }
        out["reference"] = reference.tolist()
        out["supernet_seconds"] = round(supernet_s, 1)
        out["largest_member_training_seconds"] = round(largest_s, 1)
        out["supernet_over_largest"] = round(supernet_s / largest_s, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=["tau", "hv"])
    parser.add_argument("--members", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3, help="stand-alone proxy training epochs per member")
    parser.add_argument("--supernet-epochs", type=int, default=10)
    parser.add_argument("--sampling", default="uniform", choices=["uniform", "sandwich"])
    parser.add_argument("--calibration-batches", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    result = tau(args) if args.part == "tau" else hv(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
