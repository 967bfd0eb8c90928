"""Search quality: hypervolume against budget for every sampler (issue 19).

Three problems, each with one reference point for all its runs (the nadir of every point any run
found, pushed out by 10 % of the range: :func:`archsearch.pareto.reference_point`):

(a) ``cvt13``: CvT-13-NAS (2^26 members), a zero-cost score (NASWOT, maximised) and MACs (minimised);
(b) ``hybrid_small``: the quickstart's space, the one-shot supernet's inherited accuracy on digits
    (maximised) and MACs (minimised);
(c) ``hybrid_stages``: the four-stage hybrid space with params and MACs limits that reject most
    of it, a zero-cost score (NASWOT) and MACs.

Every sampler runs through archsearch's own trial loop and ledger (duplicates are redrawn, never
evaluated twice; rejected candidates never evaluated), on an in-memory study. MACs and params are
the analytic costs at the problem's resolution (:mod:`archsearch.cost`). The score of every member
a sampler proposes is measured for real (no surrogate): NASWOT of the member rebuilt at a reduced
resolution (32 px for CvT-13, 96 px for hybrid_stages) on 8 digits, or the accuracy the member
inherits from the supernet of hybrid_small trained once with experiments/quickstart_oneshot.yaml's
settings (BatchNorm recalibrated, digits' validation images); see ``_search_quality_measure.py``
for what is measured and how the build is made cheaper without changing the weights' law.
Scores are kept by spec hash in ``OUT/cache/search_quality_<problem>.jsonl`` (the supernet's
weights in ``OUT/cache/supernet_hybrid_small.pt``) and each finished run in
``OUT/cache/runs/<problem>/``, so a rerun, or a run of several processes at once (each with its
own ``--problems``/``--samplers``), measures nothing twice; the last one writes the table from every
cached run of the settings asked for.

    nice -n 19 python benchmarks/search_quality.py                 # seeds 0-4, N = 50, 100
    python benchmarks/search_quality.py --samplers gp --seeds 0 1 2  # only these runs, then the table
    python benchmarks/search_quality.py --quick                    # seconds: a smoke test

Writes ``OUT/search_quality.{json,md,png}`` (``OUT``: benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _search_quality_measure import PROBLEMS, MeasuredEvaluator, Problem, scorer
from _search_quality_report import acceptance, rank, summarise, write_outputs

from archsearch.search import SAMPLER_KINDS, TrialLoop, load_experiment, open_study
from archsearch.space import SearchSpace, load_space

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SAMPLERS = [k for k in SAMPLER_KINDS if k != "auto"]


def _experiment(problem: Problem, space_data: dict[str, Any], kind: str, seed: int, trials: int):
    evaluator = (
        {"kind": "train", "epochs": 1}
        if problem.score == "accuracy"
        else {"kind": "zero_cost", "proxies": [problem.score]}
    )
    return load_experiment(
        {
            "name": f"{problem.name}-{kind}-{seed}",
            "space": space_data,
            "data": {"kind": "digits"},
            "evaluator": evaluator,
            "objectives": [{"metric": m} for m in problem.metrics],
            "sampler": {"kind": kind, "seed": seed},
            "early_stopping": {"kind": "none"},
            "trials": trials,
        }
    )


def run_one(
    problem: Problem, space_data: dict, space: SearchSpace, evaluator: Any, kind: str, seed: int, trials: int
) -> dict[str, Any]:
    """One sampler, one seed, ``trials`` evaluations: the objective values in the order evaluated."""
    exp = _experiment(problem, space_data, kind, seed, trials)
    study = open_study(exp, storage=optuna.storages.InMemoryStorage())
    loop = TrialLoop(exp, study, space, evaluator, None, "none")
    stopped = False
    try:
        loop.run(trials, None)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run so far is kept, marked as stopped
        stopped = True
    trials_ = study.get_trials(deepcopy=False)
    done = [t for t in trials_ if t.user_attrs.get("outcome") == "complete"]
    points = [t.values for t in done]
    outcomes = [t.user_attrs.get("outcome") for t in trials_]
    return {
        "sampler": kind,
        "seed": seed,
        "points": points,
        "hashes": [t.user_attrs.get("spec_hash") for t in done],
        "proposals": len(trials_),
        "duplicates": outcomes.count("duplicate"),
        "rejected": outcomes.count("rejected"),
        "failed": outcomes.count("failed"),
        "stopped": stopped,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--samplers", nargs="*", default=SAMPLERS, choices=SAMPLERS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--ns", type=int, nargs="+", default=[50, 100], help="budgets N (random runs 2N)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cache", type=Path, default=None, help="measurements and runs (default: OUT/cache)")
    parser.add_argument("--no-table", action="store_true", help="only the runs (another process writes)")
    parser.add_argument("--quick", action="store_true", help="a smoke test in seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.ns = args.seeds[:2], [4]
        args.problems = [p for p in args.problems if p != "cvt13"] or args.problems
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    cache: Path = args.cache or args.out / "cache"
    top = max(args.ns)
    checkpoints = sorted({*args.ns, *(2 * n for n in args.ns)})
    results: dict[str, Any] = {
        "seeds": args.seeds,
        "ns": args.ns,
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
        "optuna": optuna.__version__,
        "problems": {},
    }
    stop = False
    for name in args.problems:
        problem = PROBLEMS[name]
        space_data = _space_data(problem)
        space = load_space(space_data, num_classes=10)
        runs_dir = cache / "runs" / (name + ("_quick" if args.quick else ""))
        runs_dir.mkdir(parents=True, exist_ok=True)
        score = None
        for seed in args.seeds:  # seed by seed: a stopped run still compares every sampler
            for kind in args.samplers:
                trials = 2 * top if kind == "random" else top
                path = runs_dir / f"{kind}-s{seed}-n{trials}.json"
                if path.exists() or stop:
                    continue
                if score is None:
                    score = scorer(problem, cache, args.quick)
                before = score.measured
                r = run_one(problem, space_data, space, MeasuredEvaluator(problem, score), kind, seed, trials)
                if r["stopped"]:  # kept beside, until a full run replaces it; nothing more runs
                    path, stop = path.with_suffix(".stopped.json"), True
                path.write_text(json.dumps(r))
                print(
                    f"{name} {kind:<10} seed {seed}: {len(r['points'])} evaluated, {r['duplicates']} "
                    f"duplicates, {r['rejected']} rejected, {r['failed']} failed, "
                    f"{score.measured - before} measured now{', stopped' if r['stopped'] else ''}",
                    flush=True,
                )
        if args.no_table:
            continue
        runs = []
        for kind in SAMPLERS:
            for seed in args.seeds:
                path = runs_dir / f"{kind}-s{seed}-n{2 * top if kind == 'random' else top}.json"
                for one in (path, path.with_suffix(".stopped.json")):
                    if one.exists():
                        runs.append(json.loads(one.read_text()))
                        break
        if not runs:
            continue
        summary = summarise(problem, runs, checkpoints)
        distinct = {h for r in runs for h in r["hashes"]}
        results["problems"][name] = {
            "description": _describe(problem),
            "score": problem.score,
            "measured": {"members": len(distinct)},
            "runs": runs,
            **summary,
            "acceptance": acceptance(summary, args.ns),
        }
    if results["problems"]:
        results["ranking"] = rank(results, top)
        write_outputs(results, args.out, args.ns, checkpoints)
        print((args.out / "search_quality.md").read_text())
    return results


def _space_data(problem: Problem) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((ROOT / "search_spaces" / problem.space).read_text())
    data["input"]["size"] = problem.input_size
    for bound in (data.get("constraints") or {}).values():  # PyYAML reads 40.0e6 as a string
        bound.update({k: float(v) for k, v in bound.items()})
    if problem.constraints is not None:
        data["constraints"] = problem.constraints
    return data


def _describe(problem: Problem) -> str:
    limits = f", limits {problem.constraints}" if problem.constraints else ""
    score = "NASWOT (zero-cost)" if problem.score == "naswot" else "one-shot inherited accuracy (digits)"
    size = f"{problem.input_size} px"
    return f"{problem.space} at {size}, {score} (measured at {problem.measure_size} px) and MACs{limits}"


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill: keep the run so far
    sys.exit(0 if main() else 1)
