"""Search quality: hypervolume against budget for every sampler (issue 19).

Three problems, each with one reference point for all its runs (the nadir of every point any run
found, pushed out by 10 % of the range: :func:`archsearch.pareto.reference_point`):

(a) ``cvt13``: CvT-13-NAS (2^26 members), a zero-cost score (NASWOT, maximised) and MACs (minimised);
(b) ``hybrid_small``: the quickstart's space, a short proxy training on digits (accuracy, maximised)
    and MACs (minimised);
(c) ``hybrid_stages``: the four-stage hybrid space with params and MACs limits that reject most
    of it, a zero-cost score (NASWOT) and MACs.

Every sampler runs through archsearch's own trial loop and ledger (duplicates are redrawn, never
evaluated twice; rejected candidates never evaluated), on an in-memory study. MACs and params are
the analytic costs (:mod:`archsearch.cost`: nothing is built for them). The accuracy and NASWOT
objectives are cheap *surrogates* (as NAS-Bench-301 is one for DARTS): ``--design`` members drawn at
random are measured for real -- NASWOT on a batch of 8 digits at a reduced resolution, or a short
training (digits, 32 px, a few hundred images) -- cached by spec hash in
``benchmarks/results/cache/``, and a ridge regression on the one-hot values of the concrete spec
predicts the objective of any member. Its Kendall tau on held-out measured members is reported
beside the table. The measurements cost a minute or two of CPU once; the searches then cost only
the samplers' own time (GP's dominates).

    nice -n 10 python benchmarks/search_quality.py                 # seeds 0-4, N = 50, 100
    python benchmarks/search_quality.py --samplers gp --seeds 0 1 2 3 4   # adds to the results
    python benchmarks/search_quality.py --quick                    # seconds: a smoke test

Writes ``benchmarks/results/search_quality.{json,md,png}``; runs of samplers not asked for are
kept from an earlier results file of the same settings.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from archsearch.compiler import build
from archsearch.data import DigitsData, load_dataset
from archsearch.evaluate import TrainConfig, ZeroCostConfig, train_and_evaluate, zero_cost_scores
from archsearch.pareto import hypervolume_history, reference_point
from archsearch.search import SAMPLER_KINDS, TrialLoop, load_experiment, open_study
from archsearch.space import RandomSuggest, SearchSpace, load_space
from archsearch.spec import spec_hash

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SAMPLERS = [k for k in SAMPLER_KINDS if k != "auto"]
COLOURS = {"gp": "#ff7f0e", "evolution": "#1f77b4", "nsga2": "#2ca02c", "tpe": "#9467bd", "random": "#d62728"}


@dataclass(frozen=True)
class Problem:
    name: str
    space: str
    input_size: int
    score: str  # "naswot" or "accuracy"
    measure_size: int  # the resolution the score is measured at
    constraints: dict[str, Any] | None = None
    design: float = 1.0  # the share of --design members measured (training costs more than NASWOT)

    @property
    def directions(self) -> list[str]:
        return ["maximize", "minimize"]

    @property
    def metrics(self) -> list[str]:
        return [self.score, "macs"]


PROBLEMS = {
    "cvt13": Problem("cvt13", "cvt13_nas.yaml", 224, "naswot", 32),
    "hybrid_small": Problem("hybrid_small", "hybrid_small.yaml", 32, "accuracy", 32, design=0.4),
    "hybrid_stages": Problem(
        "hybrid_stages",
        "hybrid_stages.yaml",
        224,
        "naswot",
        64,
        constraints={"params": {"max": 20.0e6}, "macs": {"max": 2.0e9}},  # ~70 % rejected
    ),
}


# ---------------------------------------------------------------------------------------- surrogate


def _features(data: Any, prefix: str = "") -> list[str]:
    """The concrete spec as ``path=value`` tokens (one-hot features)."""
    if isinstance(data, dict):
        return [f for k, v in data.items() if k != "name" for f in _features(v, f"{prefix}.{k}")]
    if isinstance(data, list):
        return [f for i, v in enumerate(data) for f in _features(v, f"{prefix}.{i}")]
    return [f"{prefix}={data}"]


class Surrogate:
    """Ridge regression on one-hot spec features, fitted to measured members."""

    def __init__(self, rows: list[tuple[list[str], float]], alpha: float = 1.0):
        vocab = sorted({f for feats, _ in rows for f in feats})
        self.index = {f: i for i, f in enumerate(vocab)}
        x = np.stack([self._x(feats) for feats, _ in rows])
        y = np.asarray([v for _, v in rows], dtype=float)
        self.mean = float(y.mean())
        a = x.T @ x + alpha * np.eye(x.shape[1])
        self.w = np.linalg.solve(a, x.T @ (y - self.mean))

    def _x(self, feats: list[str]) -> np.ndarray:
        x = np.zeros(len(self.index))
        for f in feats:
            if f in self.index:
                x[self.index[f]] = 1.0
        return x

    def __call__(self, feats: list[str]) -> float:
        return float(self.mean + self._x(feats) @ self.w)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    n, s = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += int(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]))
    return 2 * s / (n * (n - 1)) if n > 1 else math.nan


class Measure:
    """The real objective of a member, cached by spec hash in a JSON file."""

    def __init__(self, problem: Problem, cache: Path, quick: bool):
        self.problem, self.cache, self.quick = problem, cache, quick
        self.values: dict[str, float] = json.loads(cache.read_text()) if cache.exists() else {}
        size = (problem.measure_size, problem.measure_size)
        self.data = load_dataset(DigitsData(), input_size=size, channels=3)
        self.space = load_space(
            str(ROOT / "search_spaces" / problem.space), input_size=problem.measure_size, num_classes=10
        )

    def __call__(self, params: dict[str, Any]) -> float | None:
        candidate = self.space.candidate(_Fixed(params))
        if candidate.plan is None:
            return None  # not valid at the measuring resolution
        key = spec_hash(candidate.plan)
        if key not in self.values:
            torch.manual_seed(0)
            model = build(candidate.plan)
            if self.problem.score == "naswot":
                cfg = ZeroCostConfig(proxies=["naswot"], batch_size=8, device="cpu")
                value = zero_cost_scores(model, self.data, cfg)["naswot"]
            else:
                steps = 20 if self.quick else 40
                cfg_t = TrainConfig(
                    epochs=None,
                    steps=steps,
                    batch_size=32,
                    lr=3e-3,
                    warmup_epochs=0,
                    flip=False,
                    device="cpu",
                    threads=1,
                    amp=False,
                    eval_batch_size=256,
                )
                value = float(train_and_evaluate(model, self.data, cfg_t).accuracy)
            self.values[key] = float(value) if math.isfinite(value) else -1e9
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            self.cache.write_text(json.dumps(self.values))
        return self.values[key]


class _Fixed:
    """Replays params; a name they lack (another resolution opens no new names) is an error."""

    def __init__(self, params: dict[str, Any]):
        self.params = params

    def categorical(self, name: str, choices: Any) -> Any:
        return self.params[name]

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self.params[name])

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self.params[name])


def fit_surrogate(
    problem: Problem, space: SearchSpace, design: int, quick: bool, cache: Path
) -> tuple[Callable, dict]:
    """Measure ``design`` random members (cached in ``cache``) and fit the surrogate on 3/4 of them."""
    measure = Measure(problem, cache / f"search_quality_{problem.name}.json", quick)
    rng = np.random.default_rng(12345)
    rows: list[tuple[list[str], float]] = []
    tries = 0
    while len(rows) < design and tries < 20 * design:
        tries += 1
        c = space.candidate(RandomSuggest(rng))
        if c.plan is None or c.rejected is not None:
            continue
        value = measure(dict(c.sample.params))
        if value is not None and value > -1e8:
            rows.append((_features(c.sample.data), value))
    cut = max(2, 3 * len(rows) // 4)
    held = rows[cut:]
    fit = Surrogate(rows[:cut])
    tau = kendall_tau([fit(f) for f, _ in held], [v for _, v in held]) if len(held) > 2 else math.nan
    final = Surrogate(rows)
    return final, {"measured": len(rows), "held_out": len(held), "kendall_tau": tau}


# ---------------------------------------------------------------------------------------- search


class SurrogateEvaluator:
    """The trial loop's evaluator: analytic MACs and params, the surrogate's score; nothing built."""

    def __init__(self, problem: Problem, surrogate: Callable[[list[str]], float]):
        self.problem, self.surrogate = problem, surrogate

    def build(self, plan: Any) -> Any:
        return plan

    def costs(self, plan: Any, costs: Any, spec_hash: str, model: Any) -> dict[str, float]:
        return {"macs": float(costs.macs), "params": float(costs.params)}

    def evaluate(self, plan: Any, on_epoch: Any) -> _Result:
        data = plan.spec.model_dump(mode="json", exclude_none=True)
        return _Result({self.problem.score: self.surrogate(_features(data))})


@dataclass
class _Result:
    """What the trial loop reads of an evaluation."""

    metrics: dict[str, float]
    curve: list[float] = field(default_factory=list)
    epochs: int = 0


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
    problem: Problem,
    space_data: dict,
    space: SearchSpace,
    surrogate: Callable,
    kind: str,
    seed: int,
    trials: int,
) -> dict[str, Any]:
    exp = _experiment(problem, space_data, kind, seed, trials)
    study = open_study(exp, storage=optuna.storages.InMemoryStorage())
    loop = TrialLoop(exp, study, space, SurrogateEvaluator(problem, surrogate), None, "none")
    start = time.process_time()
    loop.run(trials, None)
    cpu = time.process_time() - start
    trials_ = study.get_trials(deepcopy=False)
    points = [t.values for t in trials_ if t.user_attrs.get("outcome") == "complete"]
    outcomes = [t.user_attrs.get("outcome") for t in trials_]
    return {
        "sampler": kind,
        "seed": seed,
        "points": points,
        "proposals": len(trials_),
        "duplicates": outcomes.count("duplicate"),
        "rejected": outcomes.count("rejected"),
        "cpu_s": cpu,
    }


# ---------------------------------------------------------------------------------------- summary


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return float(med), float(q1), float(q3)


def summarise(problem: Problem, runs: list[dict], checkpoints: list[int]) -> dict[str, Any]:
    every = np.asarray([p for r in runs for p in r["points"]], dtype=float)
    ref = reference_point(every, problem.directions)  # type: ignore[arg-type]
    curves: dict[str, list[list[float]]] = {}
    for r in runs:
        hv = hypervolume_history(np.asarray(r["points"], dtype=float), problem.directions, ref)  # type: ignore[arg-type]
        curves.setdefault(r["sampler"], []).append(hv.tolist())
    table: dict[str, dict[str, Any]] = {}
    for kind, cs in curves.items():
        row: dict[str, Any] = {}
        for n in checkpoints:
            at = [c[n - 1] for c in cs if len(c) >= n]
            if len(at) == len(cs) and at:
                row[str(n)] = _quartiles(at)
        mine = [r for r in runs if r["sampler"] == kind]
        row["duplicates"] = statistics.median(r["duplicates"] for r in mine)
        row["rejected"] = statistics.median(r["rejected"] for r in mine)
        row["seeds"] = len(mine)
        table[kind] = row
    return {"reference_point": ref.tolist(), "curves": curves, "table": table}


def acceptance(summary: dict[str, Any], ns: Sequence[int]) -> list[dict[str, Any]]:
    """Best sampler at N against random at 2N (medians), per N."""
    table = summary["table"]
    out = []
    for n in ns:
        cands = {k: v[str(n)][0] for k, v in table.items() if k != "random" and str(n) in v}
        rand = table.get("random", {}).get(str(2 * n))
        if not cands or rand is None:
            continue
        best = max(cands, key=lambda k: cands[k])
        out.append(
            {
                "N": n,
                "best": best,
                "best_hv": cands[best],
                "random_2N": rand[0],
                "holds": cands[best] >= rand[0],
            }
        )
    return out


def write_outputs(results: dict[str, Any], out: Path, ns: Sequence[int], checkpoints: list[int]) -> None:
    lines = ["# Search quality (benchmarks/search_quality.py)", ""]
    lines.append(
        f"Median hypervolume [interquartile range] over seeds {results['seeds']} (`seeds`: the runs "
        "of a sampler), one reference point per problem; higher is better; a blank: the runs stopped "
        "before. `dup`: duplicate proposals per run (median; redrawn, never evaluated), `rej`: "
        "rejected candidates per run (median)."
    )
    for name, s in results["problems"].items():
        lines += ["", f"## {name}: {s['description']}", ""]
        fid = s["surrogate"]
        lines.append(
            f"Surrogate of {s['score']}: {fid['measured']} members measured, Kendall tau "
            f"{fid['kendall_tau']:.2f} on {fid['held_out']} held out. Reference point {s['reference_point']}."
        )
        lines.append("")
        header = "| sampler | " + " | ".join(f"N={n}" for n in checkpoints) + " | dup | rej | seeds |"
        lines += [header, "|" + "---|" * (len(checkpoints) + 4)]
        for kind, row in sorted(s["table"].items(), key=lambda kv: -kv[1].get(str(ns[0]), (0,))[0]):
            cells = []
            for n in checkpoints:
                v = row.get(str(n))
                cells.append(f"{v[0]:.4g} [{v[1]:.4g}, {v[2]:.4g}]" if v else "")
            lines.append(
                f"| {kind} | " + " | ".join(cells) + f" | {row['duplicates']:g} | {row['rejected']:g} "
                f"| {row['seeds']} |"
            )
        for a in s["acceptance"]:
            verdict = "holds" if a["holds"] else "does NOT hold"
            lines.append(
                f"\nBest at N={a['N']}: {a['best']} {a['best_hv']:.4g} vs random at {2 * a['N']}: "
                f"{a['random_2N']:.4g} ({verdict})."
            )
    ranking = results.get("ranking")
    if ranking:
        lines += ["", f"Ranking (mean rank of the median at N={ns[-1]} over problems): " + ", ".join(ranking)]
    (out / "search_quality.md").write_text("\n".join(lines) + "\n")
    (out / "search_quality.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "search_quality.png")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = results["problems"]
    fig, axes = plt.subplots(1, len(problems), figsize=(5 * len(problems), 4), squeeze=False)
    for ax, (name, s) in zip(axes[0], problems.items(), strict=True):
        for kind, cs in sorted(s["curves"].items()):
            n = min(len(c) for c in cs)
            arr = np.asarray([c[:n] for c in cs])
            x = np.arange(1, n + 1)
            med = np.median(arr, axis=0)
            q1, q3 = np.percentile(arr, [25, 75], axis=0)
            colour = COLOURS.get(kind, "black")
            ax.plot(x, med, label=kind, lw=1.5, color=colour)
            ax.fill_between(x, q1, q3, color=colour, alpha=0.2, lw=0)
        ax.set_title(f"{name}: {s['score']} max, MACs min")
        ax.set_xlabel("architectures evaluated")
        ax.set_ylabel("hypervolume")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rank(results: dict[str, Any], n: int) -> list[str]:
    """Samplers by mean rank of their median hypervolume at ``n`` (random at ``n`` too) over problems."""
    ranks: dict[str, list[int]] = {}
    for s in results["problems"].values():
        at = {k: v[str(n)][0] for k, v in s["table"].items() if str(n) in v}
        for i, k in enumerate(sorted(at, key=lambda k: -at[k])):
            ranks.setdefault(k, []).append(i + 1)
    return sorted(ranks, key=lambda k: (statistics.mean(ranks[k]), k))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--samplers", nargs="*", default=SAMPLERS, choices=SAMPLERS)
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        default=[],
        help="take the runs of other results files (their samplers, unless run here)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--ns", type=int, nargs="+", default=[50, 100], help="budgets N (random runs 2N)")
    parser.add_argument("--design", type=int, default=64, help="members measured for each surrogate")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cache", type=Path, default=None, help="measurements (default: OUT/cache)")
    parser.add_argument(
        "--max-trials", type=int, default=None, help="cap the samplers' runs (GP costs seconds per trial)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke test in seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.ns, args.design = args.seeds[:2], [4], 8
        args.problems = [p for p in args.problems if p != "cvt13"] or args.problems
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    top = max(args.ns)
    checkpoints = sorted({*args.ns, *(2 * n for n in args.ns)})
    earlier_path = args.out / "search_quality.json"
    earlier = json.loads(earlier_path.read_text()) if earlier_path.exists() and not args.quick else {}
    settings = {"seeds": args.seeds, "ns": args.ns, "design": args.design}
    if any(earlier.get(k) != v for k, v in settings.items()):
        earlier = {}
    results: dict[str, Any] = {
        **settings,
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
        "optuna": optuna.__version__,
        "problems": dict(earlier.get("problems", {})),
    }
    for name in args.problems:
        problem = PROBLEMS[name]
        space_data = _space_data(problem)
        space = load_space(space_data, num_classes=10)
        design = max(4, round(args.design * problem.design))
        surrogate, fidelity = fit_surrogate(
            problem, space, design, args.quick, args.cache or args.out / "cache"
        )
        print(f"{name}: surrogate {fidelity}", flush=True)
        old = results["problems"].get(name, {}).get("runs", [])
        runs = [r for r in old if r["sampler"] not in args.samplers]
        for merged in args.merge:  # a file given wins over the earlier results for its samplers
            other = json.loads(merged.read_text())["problems"].get(name, {}).get("runs", [])
            taken = {r["sampler"] for r in other} - set(args.samplers)
            runs = [r for r in runs if r["sampler"] not in taken]
            runs += [r for r in other if r["sampler"] in taken]
        for kind in args.samplers:
            for seed in args.seeds:
                trials = 2 * top if kind == "random" else top
                trials = min(trials, args.max_trials or trials)
                r = run_one(problem, space_data, space, surrogate, kind, seed, trials)
                print(
                    f"  {kind:<10} seed {seed}: {len(r['points'])} evaluated, {r['duplicates']} duplicates, "
                    f"{r['rejected']} rejected, {r['cpu_s']:.1f} CPU s",
                    flush=True,
                )
                runs.append(r)
                partial = {"problems": {name: {"runs": runs}}}  # a run is never lost to a stop
                (args.out / "search_quality.partial.json").write_text(json.dumps(partial))
        summary = summarise(problem, runs, checkpoints)
        results["problems"][name] = {
            "description": _describe(problem),
            "score": problem.score,
            "surrogate": fidelity,
            "runs": runs,
            **summary,
            "acceptance": acceptance(summary, args.ns),
        }
        results["ranking"] = rank(results, top)
        write_outputs(results, args.out, args.ns, checkpoints)  # after each problem: a partial table
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
    score = "NASWOT (zero-cost)" if problem.score == "naswot" else "accuracy after a short training"
    size = f"{problem.input_size} px"
    return f"{problem.space} at {size}, {score} (measured at {problem.measure_size} px) and MACs{limits}"


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
