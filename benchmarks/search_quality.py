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

Besides N and 2N, the benchmark answers the question each shipped experiment poses
(``experiments/*.yaml``; :func:`archsearch.search.auto_setting`): its problem, its budget (runs go
to ``--cap``, 200, at most), and its view. Per evaluation (``trial``) where an evaluation trains or
scores a member from scratch, which takes longer than any proposal; at equal wall time (``wall``)
for the one-shot evaluator, whose evaluation (a member's inherited accuracy) costs less than a GP
proposal: every run records the CPU seconds (``time.process_time``) of each proposal (all but the
evaluation: the sampler, its redrawn duplicates, the trial loop) and of each score measured, and
the samplers are ranked by the hypervolume they reach in the time the budget takes with the sampler
that spends least on it (``_search_quality_report.wall_view``). Proposal times are measured on the
first seed's runs (a sampler's proposal cost depends on the history's size, not on the seed); GP's
runs stop at 100 (``--limit gp=100``: its proposals cost 100-250 s a run, and by the equal time of
200 one-shot evaluations it has evaluated about 40). The rankings per problem, view and budget go
to ``archsearch/search/sampler_rankings.json``, which ``auto`` reads (only from a full run into the
default ``OUT``). Small budgets (``--small-budget``, 20: the quickstart's) are noisy over five seeds: ten more
seeds (``--small-seeds``, 5-14) run to 20 evaluations only, and rankings at 20 or less use every
seed run on that problem. A ranking needs every sampler with every seed at that budget; cvt13's stops at
100 (a run of every sampler to 200 would measure up to 2,000 more NASWOT scores).

    nice -n 19 python benchmarks/search_quality.py                 # seeds 0-4, N = 50, 100
    python benchmarks/search_quality.py --samplers gp --seeds 0 1 2  # only these runs, then the table
    python benchmarks/search_quality.py --quick                    # seconds: a smoke test

Writes ``OUT/search_quality.{json,md,png}`` (``OUT``: benchmarks/results) and, from a full run,
``archsearch/search/sampler_rankings.json``.
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
from _search_quality_report import (
    acceptance,
    budget_table,
    evaluation_time,
    proposal_times,
    rank,
    summarise,
    trial_ranking,
    wall_view,
    write_outputs,
)

from archsearch.search import (
    SAMPLER_KINDS,
    TrialLoop,
    auto_setting,
    gp_pays,
    load_experiment,
    open_study,
    ranking_column,
)
from archsearch.space import SearchSpace, load_space

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SAMPLERS = [k for k in SAMPLER_KINDS if k != "auto"]
#: Budgets ranked on every problem besides N, 2N and the shipped experiments' (small searches).
EXTRA_MARKS = (20,)


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
    timed = TimedEvaluator(evaluator)
    loop = TrialLoop(exp, study, space, timed, None, "none")
    stopped = False
    measured_before = len(evaluator.score.times)
    timed.last = time.process_time()
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
        # CPU seconds of this process before each evaluation since the previous one ended: the
        # sampler's proposal (duplicates redrawn and rejected candidates included) and the loop
        "overhead_cpu": timed.overhead[: len(points)],
        # CPU seconds of each score measured in this run (a cached score costs nothing)
        "measure_cpu": evaluator.score.times[measured_before:],
    }


class TimedEvaluator:
    """The evaluator with the CPU time (:func:`time.process_time`) spent between evaluations
    recorded: ``overhead[i]`` is what the ``i``-th evaluation waited for since the previous one
    ended (or since the run started), that is the sampler's proposal with its redrawn duplicates
    and rejected candidates, and the trial loop's bookkeeping."""

    def __init__(self, inner: MeasuredEvaluator):
        self.inner = inner
        self.overhead: list[float] = []
        self.last = time.process_time()

    def build(self, plan: Any) -> Any:
        return self.inner.build(plan)

    def costs(self, *args: Any) -> dict[str, float]:
        return self.inner.costs(*args)

    def evaluate(self, plan: Any, on_epoch: Any) -> Any:
        self.overhead.append(time.process_time() - self.last)
        try:
            return self.inner.evaluate(plan, on_epoch)
        finally:
            self.last = time.process_time()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--samplers", nargs="*", default=SAMPLERS, choices=SAMPLERS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--ns", type=int, nargs="+", default=[50, 100], help="budgets N (random runs 2N)")
    parser.add_argument(
        "--small-seeds",
        type=int,
        nargs="*",
        default=list(range(5, 15)),
        help="more seeds, run to --small-budget only: small budgets are ranked over all the seeds",
    )
    parser.add_argument("--small-budget", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cache", type=Path, default=None, help="measurements and runs (default: OUT/cache)")
    parser.add_argument("--no-table", action="store_true", help="only the runs (another process writes)")
    parser.add_argument("--quick", action="store_true", help="a smoke test in seconds")
    parser.add_argument(
        "--cap", type=int, default=200, help="runs stop here even where an experiment's budget is larger"
    )
    parser.add_argument(
        "--limit",
        nargs="*",
        default=["gp=100"],
        metavar="KIND=N",
        help="runs of KIND stop at N evaluations (default gp=100: its proposals cost most)",
    )
    args = parser.parse_args(argv)
    limits = {k: int(n) for k, n in (item.split("=") for item in args.limit)}
    if args.quick:
        args.seeds, args.ns, args.cap, args.small_seeds = args.seeds[:2], [4], 6, []
        args.problems = [p for p in args.problems if p != "cvt13"] or args.problems
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    cache: Path = args.cache or args.out / "cache"
    top = max(args.ns)
    checkpoints = sorted({*args.ns, *(2 * n for n in args.ns)})
    results: dict[str, Any] = {
        "seeds": args.seeds,
        "small_seeds": args.small_seeds,
        "small_budget": args.small_budget,
        "ns": args.ns,
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
        "optuna": optuna.__version__,
        "problems": {},
        "settings": {},
        "load": (
            "CPU seconds (time.process_time) of the benchmark's process under nice -n 19 on a shared "
            "2-core machine (load average 2-6 from other jobs)"
        ),
    }
    settings = experiment_settings(args.cap)
    stop = False
    for name in args.problems:
        problem = PROBLEMS[name]
        space_data = _space_data(problem)
        space = load_space(space_data, num_classes=10)
        runs_dir = cache / "runs" / (name + ("_quick" if args.quick else ""))
        runs_dir.mkdir(parents=True, exist_ok=True)
        budgets = [min(s["budget"], args.cap) for s in settings.values() if s["problem"] == name]
        length = max([top, *budgets])
        timing = any(s["problem"] == name and s["view"] == "wall" for s in settings.values())
        score = None
        jobs = [(seed, length) for seed in args.seeds] + [
            (seed, args.small_budget) for seed in args.small_seeds
        ]
        for seed, upto in jobs:  # seed by seed: a stopped run still compares every sampler
            for kind in args.samplers:
                trials = max(2 * top, upto) if kind == "random" and upto == length else upto
                trials = min(trials, limits.get(kind, trials))
                timed = timing and seed == args.seeds[0]  # proposal times: the first seed's runs
                if stop or _stored_run(runs_dir, kind, seed, trials, timed) is not None:
                    continue
                path = runs_dir / f"{kind}-s{seed}-n{trials}.json"
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
                    f"{score.measured - before} measured now, {sum(r['overhead_cpu']):.1f} CPU s "
                    f"proposing{', stopped' if r['stopped'] else ''}",
                    flush=True,
                )
        if args.no_table:
            continue
        runs, small_runs = [], []
        for kind in SAMPLERS:
            for seeds, into in ((args.seeds, runs), (args.small_seeds, small_runs)):
                for seed in seeds:
                    run = _stored_run(runs_dir, kind, seed, 0, False, stopped=True)
                    if run is not None:
                        into.append(run)
        if not runs:
            continue
        mine = {k: s for k, s in settings.items() if s["problem"] == name}
        marks = sorted({*checkpoints, *EXTRA_MARKS, *(min(s["budget"], args.cap) for s in mine.values())})
        summary = summarise(problem, runs, marks)
        small = [n for n in marks if n <= args.small_budget] if args.small_seeds else []
        small_table = budget_table(problem, runs + small_runs, summary["reference_point"], small)
        distinct = {h for r in runs for h in r["hashes"]}
        evaluation, measured = evaluation_time(runs)
        views: dict[str, dict[str, Any]] = {"trial": {}, "wall": {}}
        for n in marks:
            if n in small:
                extra = len({r["seed"] for r in small_runs})  # the extra seeds run on this problem
                order = trial_ranking(small_table, n, len(args.seeds) + extra)
            else:
                order = trial_ranking(summary["table"], n, len(args.seeds))
            if order is not None:
                views["trial"][str(n)] = order
        walls = {}
        for n in sorted({min(s["budget"], args.cap) for s in mine.values() if s["view"] == "wall"}):
            wall = wall_view(summary["curves"], runs, n, evaluation)
            if wall and all(row["seeds"] == len(args.seeds) for row in wall["table"].values()):
                walls[str(n)], views["wall"][str(n)] = wall, wall["ranking"]
        results["problems"][name] = {
            "description": _describe(problem),
            "score": problem.score,
            "measured": {"members": len(distinct)},
            "runs": runs,
            "marks": marks,
            **summary,
            "acceptance": acceptance(summary, args.ns),
            "small_table": small_table,
            "proposal_cpu": proposal_times(runs),
            "evaluation_cpu": {"median_s": evaluation, "measured": measured},
            "wall": walls,
            "rankings": views,
        }
        for exp, setting in mine.items():
            results["settings"][exp] = {**setting, **_decide(setting, views)}
    if results["problems"]:
        results["ranking"] = rank(results, top)
        write_outputs(results, args.out, args.ns, checkpoints)
        if args.out.resolve() == RESULTS.resolve() and not args.quick:
            write_package_rankings(results)
        print((args.out / "search_quality.md").read_text())
    return results


def _decide(setting: dict[str, Any], views: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """The ranking that decides ``setting`` (the stored column nearest its budget in its view:
    :func:`archsearch.search.ranking_column`) and its first."""
    columns = views.get(setting["view"]) or {}
    if not columns:
        return {"column": None, "ranking": [], "best": None}
    column = ranking_column([int(n) for n in columns], setting["budget"])
    ranking = columns[str(column)]
    wall = setting["view"] == "wall"
    best = next(k for k in ranking if k != "gp" or wall or gp_pays(setting["budget"], setting["evaluator"]))
    return {"column": column, "ranking": ranking, "best": best}


def write_package_rankings(results: dict[str, Any]) -> None:
    """The rankings ``auto`` follows (``archsearch/search/sampler_rankings.json``), from these
    results: per problem and view, the samplers best first at each stored budget."""
    path = ROOT / "archsearch" / "search" / "sampler_rankings.json"
    stored = json.loads(path.read_text()) if path.exists() else {"problems": {}}
    for name, s in results["problems"].items():
        stored["problems"][name] = s["rankings"]
    stored["source"] = (
        f"benchmarks/search_quality.py, {results['date']}, seeds {results['seeds']}, "
        f"optuna {results['optuna']}"
    )
    path.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")


def _stored_run(
    runs_dir: Path, kind: str, seed: int, trials: int, timing: bool, stopped: bool = False
) -> dict[str, Any] | None:
    """The longest stored run of ``kind`` and ``seed`` that evaluated at least ``trials`` members
    (with the proposals' CPU times where ``timing``; a stopped run only where ``stopped``), or None.
    Runs of one sampler and seed agree on their common first members (each seed reproduces its
    sequence), so the longest holds the others."""
    best: dict[str, Any] | None = None
    for path in runs_dir.glob(f"{kind}-s{seed}-n*.json"):
        run = json.loads(path.read_text())
        if run.get("stopped") and not stopped:
            continue
        if len(run["points"]) < trials or (timing and "overhead_cpu" not in run):
            continue
        better = best is None or (len(run["points"]), "overhead_cpu" in run) > (
            len(best["points"]),
            "overhead_cpu" in best,
        )
        best = run if better else best
    return best


def experiment_settings(cap: int) -> dict[str, dict[str, Any]]:
    """What each shipped experiment (``experiments/*.yaml``) asks of the benchmark: its problem and
    view (:func:`archsearch.search.auto_setting`) and its budget (``trials``; runs go to at most
    ``cap``)."""
    out = {}
    for path in sorted((ROOT / "experiments").glob("*.yaml")):
        exp = load_experiment(path)
        size = load_space(exp.space_source(), num_classes=10).size()
        problem, view = auto_setting(size, exp.evaluator.kind)
        out[path.stem] = {
            "problem": problem,
            "view": view,
            "budget": exp.trials,
            "evaluator": exp.evaluator.kind,
            "space_size": float(size),
            "cap": cap,
        }
    return out


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
