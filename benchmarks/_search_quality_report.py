"""Tables, curves and verdicts of ``benchmarks/search_quality.py``: hypervolume histories under one
reference point per problem, medians and interquartile ranges at the checkpoints, the acceptance
of issue 19 (the best sampler at N against random search at 2N), the ranking, the Markdown table
and the PNG."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _search_quality_measure import Problem

from archsearch.pareto import hypervolume_history, reference_point

COLOURS = {"gp": "#ff7f0e", "evolution": "#1f77b4", "nsga2": "#2ca02c", "tpe": "#9467bd", "random": "#d62728"}


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
            at = [c[n - 1] for c in cs if len(c) >= n]  # a run stopped before n is left out
            if at:
                row[str(n)] = (*_quartiles(at), len(at))
        mine = [r for r in runs if r["sampler"] == kind]
        row["duplicates"] = statistics.median(r["duplicates"] for r in mine)
        row["rejected"] = statistics.median(r["rejected"] for r in mine)
        row["failed"] = statistics.median(r.get("failed", 0) for r in mine)
        row["seeds"] = len(mine)
        table[kind] = row
    return {"reference_point": ref.tolist(), "curves": curves, "table": table}


def budget_table(
    problem: Problem, runs: list[dict], ref: Sequence[float], budgets: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Per sampler, the median, quartiles and number of ``runs`` of its hypervolume after each of
    ``budgets`` evaluations (reference point ``ref``); a run shorter than a budget is left out."""
    table: dict[str, dict[str, Any]] = {}
    for r in runs:
        points = np.asarray(r["points"][: max(budgets, default=0)], dtype=float)
        if not len(points):
            continue
        hv = hypervolume_history(points, problem.directions, np.asarray(ref))  # type: ignore[arg-type]
        for n in budgets:
            if len(hv) >= n:
                table.setdefault(r["sampler"], {}).setdefault(str(n), []).append(float(hv[n - 1]))
    return {k: {n: (*_quartiles(v), len(v)) for n, v in row.items()} for k, row in table.items()}


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
                "best_seeds": table[best][str(n)][3],
                "random_2N": rand[0],
                "random_seeds": rand[3],
                "holds": cands[best] >= rand[0],
            }
        )
    return out


def write_outputs(results: dict[str, Any], out: Path, ns: Sequence[int], checkpoints: list[int]) -> None:
    lines = ["# Search quality (benchmarks/search_quality.py)", ""]
    lines.append(
        f"Median hypervolume [interquartile range] over seeds {results['seeds']} (`seeds`: the runs "
        "of a sampler), one reference point per problem; higher is better; a blank: the runs stopped "
        "before; `(k seeds)`: only k runs got that far (a run stopped at the time limit counts up to "
        "where it reached). `dup`: duplicate proposals per run (median; redrawn, never evaluated), `rej`: "
        "rejected candidates per run (median)."
    )
    for name, s in results["problems"].items():
        lines += ["", f"## {name}: {s['description']}", ""]
        m = s["measured"]
        lines.append(
            f"{s['score']} measured for every member proposed: {m['members']} distinct members over all "
            f"runs. Reference point {s['reference_point']}."
        )
        lines.append("")
        marks = s.get("marks", checkpoints)
        header = "| sampler | " + " | ".join(f"N={n}" for n in marks) + " | dup | rej | seeds |"
        lines += [header, "|" + "---|" * (len(marks) + 4)]
        for kind, row in sorted(s["table"].items(), key=lambda kv: -kv[1].get(str(ns[0]), (0,))[0]):
            cells = []
            for n in marks:
                v = row.get(str(n))
                seeds = f" ({v[3]} seeds)" if v and v[3] < row["seeds"] else ""
                cells.append(f"{v[0]:.4g} [{v[1]:.4g}, {v[2]:.4g}]{seeds}" if v else "")
            lines.append(
                f"| {kind} | " + " | ".join(cells) + f" | {row['duplicates']:g} | {row['rejected']:g} "
                f"| {row['seeds']} |"
            )
        small = s.get("small_table") or {}
        runs = max((v[3] for row in small.values() for v in row.values()), default=0)
        if runs > len(results["seeds"]):  # extra seeds were run on this problem
            budgets = sorted({int(n) for row in small.values() for n in row})
            lines += [
                "",
                f"Small budgets over {runs} seeds ({len(results['seeds'])} above and the extra seeds, "
                f"run to {results['small_budget']} evaluations only): median [IQR] (runs)",
                "",
            ]
            lines += [
                "| sampler | " + " | ".join(f"N={n}" for n in budgets) + " |",
                "|" + "---|" * (len(budgets) + 1),
            ]
            for kind, row in sorted(small.items(), key=lambda kv: -kv[1][str(budgets[-1])][0]):
                cells = [
                    f"{v[0]:.4g} [{v[1]:.4g}, {v[2]:.4g}] ({v[3]})" for v in (row[str(n)] for n in budgets)
                ]
                lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        for a in s["acceptance"]:
            verdict = "holds" if a["holds"] else "does NOT hold"
            lines.append(
                f"\nBest at N={a['N']}: {a['best']} {a['best_hv']:.4g} ({a['best_seeds']} seeds) vs random "
                f"at {2 * a['N']}: {a['random_2N']:.4g} ({a['random_seeds']} seeds): {verdict}."
            )
        lines += _time_lines(s)
    lines += _setting_lines(results)
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
            n = max(len(c) for c in cs)
            arr = np.full((len(cs), n), np.nan)  # a stopped run counts up to where it reached
            for i, c in enumerate(cs):
                arr[i, : len(c)] = c
            x = np.arange(1, n + 1)
            med = np.nanmedian(arr, axis=0)
            q1, q3 = np.nanpercentile(arr, [25, 75], axis=0)
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


#: Proposals at which the proposals' CPU time is shown (the mean of the 10 up to each).
HISTORY = (10, 20, 50, 100, 150, 200)


def proposal_times(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Per sampler, the CPU seconds of its ``h``-th proposal (trial loop included; ``h - 1``
    members evaluated before it): the median over seeds of the mean of proposals ``h - 9`` to
    ``h``."""
    out: dict[str, dict[str, float]] = {}
    for r in runs:
        if "overhead_cpu" not in r:
            continue
        row = out.setdefault(r["sampler"], {})
        for h in HISTORY:
            window = r["overhead_cpu"][h - 10 : h]
            if len(window) == 10:
                row.setdefault(str(h), []).append(statistics.mean(window))  # type: ignore[attr-defined]
    return {k: {h: statistics.median(v) for h, v in row.items()} for k, row in out.items()}  # type: ignore[arg-type]


def evaluation_time(runs: list[dict]) -> tuple[float, int]:
    """The median CPU seconds of one measured evaluation over ``runs`` and how many there were."""
    times = [t for r in runs for t in r.get("measure_cpu", [])]
    return (statistics.median(times), len(times)) if times else (float("nan"), 0)


def proposal_curve(runs: list[dict], kind: str) -> np.ndarray:
    """CPU seconds of ``kind``'s ``h``-th proposal, for every ``h`` a run of it measured: the median
    over its runs that measured it."""
    timed = [r["overhead_cpu"] for r in runs if r["sampler"] == kind and "overhead_cpu" in r]
    if not timed:
        return np.zeros(0)
    n = max(len(t) for t in timed)
    return np.array([statistics.median(t[h] for t in timed if len(t) > h) for h in range(n)])


def wall_view(
    curves: dict[str, list[list[float]]], runs: list[dict], budget: int, evaluation: float
) -> dict[str, Any]:
    """Hypervolume at equal wall time. A sampler's ``n``-th evaluation ends after its first ``n``
    proposals (:func:`proposal_curve`; beyond the measured history, the mean of the last 10
    measured, which undercounts a sampler whose proposals grow, as GP's do) and ``n`` evaluations
    of ``evaluation`` CPU seconds each. The time ``T`` is what ``budget`` evaluations take with the
    sampler that spends least on them; each run counts the members it evaluated by ``T``, and its
    hypervolume then. A run that ended before ``T`` counts where it ended (``short``: a lower
    bound)."""
    ends: dict[str, np.ndarray] = {}
    for kind in curves:
        p = proposal_curve(runs, kind)
        if len(p) < 10:
            continue
        n = max(budget, max(len(c) for c in curves[kind]))
        p = np.concatenate([p, np.full(max(0, n - len(p)), p[-10:].mean())])
        ends[kind] = np.cumsum(p + evaluation)
    if set(ends) != set(curves):
        return {}
    t = min(float(e[budget - 1]) for e in ends.values())
    table: dict[str, Any] = {}
    for kind, e in ends.items():
        k = int(np.searchsorted(e, t, side="right"))
        hvs = [c[min(k, len(c)) - 1] if k else 0.0 for c in curves[kind]]
        table[kind] = {
            "hv": _quartiles(hvs),
            "trials": k,
            "short": sum(len(c) < k for c in curves[kind]),
            "seeds": len(hvs),
            "budget_s": float(e[budget - 1]),
            "measured_proposals": len(proposal_curve(runs, kind)),
        }
    ranking = sorted(table, key=lambda k: (-table[k]["hv"][0], -table[k]["hv"][1], k))
    return {"time_s": t, "evaluation_s": evaluation, "table": table, "ranking": ranking}


def trial_ranking(table: dict[str, dict[str, Any]], n: int, seeds: int) -> list[str] | None:
    """Samplers by their median hypervolume at ``n`` evaluations, best first, or None when a
    sampler has fewer than ``seeds`` runs that reach ``n``."""
    at = {}
    for kind, row in table.items():
        v = row.get(str(n))
        if v is None or v[3] < seeds:
            return None
        at[kind] = (-v[0], -v[1], kind)  # a tie on the median goes to the higher lower quartile
    return sorted(at, key=lambda k: at[k])


def _time_lines(s: dict[str, Any]) -> list[str]:
    """The proposals' CPU time against history size, the evaluation's, and the wall-time view."""
    lines: list[str] = []
    times = s.get("proposal_cpu") or {}
    if times:
        ev = s["evaluation_cpu"]
        lines += [
            "",
            "CPU seconds of the h-th proposal (the sampler with its redrawn duplicates and the trial "
            "loop: all but the evaluation; the mean of proposals h-9 to h, median over the runs that "
            "measured it), h - 1 members evaluated before it; one evaluation "
            f"of this problem's score: {ev['median_s']:.3g} s (median of {ev['measured']} measured).",
            "",
            "| sampler | " + " | ".join(f"h={h}" for h in HISTORY) + " |",
            "|" + "---|" * (len(HISTORY) + 1),
        ]
        for kind, row in sorted(times.items()):
            if row:
                cells = [f"{row[str(h)]:.3g}" if str(h) in row else "" for h in HISTORY]
                lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    for n, w in (s.get("wall") or {}).items():
        lines += [
            "",
            f"At equal wall time: {w['time_s']:.1f} CPU s, the time {n} evaluations take with the sampler "
            f"that spends least on them ({w['evaluation_s']:.3g} s per evaluation plus each run's own "
            "measured proposals). Median hypervolume [IQR] reached by then and the members evaluated:",
            "",
            "| sampler | hypervolume at equal time | members by then | CPU s for all " + n + " |",
            "|---|---|---|---|",
        ]
        for kind in w["ranking"]:
            row = w["table"][kind]
            hv = row["hv"]
            short = f" ({row['short']} of its runs ended before: a lower bound)" if row["short"] else ""
            spent = f"{row['budget_s']:.1f}"
            if row["measured_proposals"] < int(n):
                spent = f"at least {spent} ({row['measured_proposals']} proposals measured)"
            cells = [f"{hv[0]:.4g} [{hv[1]:.4g}, {hv[2]:.4g}]{short}", f"{row['trials']:g}", spent]
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines


def _setting_lines(results: dict[str, Any]) -> list[str]:
    """Which ranking decides each shipped experiment's ``auto``."""
    settings = results.get("settings") or {}
    if not settings:
        return []
    lines = [
        "",
        "## The shipped experiments: the ranking `auto` follows",
        "",
        "Per trial (`trial`) where an evaluation trains a member (far longer than any proposal); at "
        "equal wall time (`wall`) where an evaluation costs less than a proposal (one-shot: the "
        "sampler's own CPU time decides how many members a run evaluates). The ranking is read at the "
        "stored budget nearest the experiment's (runs stop at "
        f"{next(iter(settings.values()))['cap']} evaluations).",
        "",
        "| experiment | evaluator | budget | problem | view | ranked at | ranking (best first) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, st in settings.items():
        ranking = ", ".join(st["ranking"]) or "not stored"
        lines.append(
            f"| {name} | {st['evaluator']} | {st['budget']} | {st['problem']} | {st['view']} "
            f"| {st['column']} | {ranking} |"
        )
    return lines
