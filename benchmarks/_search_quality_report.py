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
        header = "| sampler | " + " | ".join(f"N={n}" for n in checkpoints) + " | dup | rej | seeds |"
        lines += [header, "|" + "---|" * (len(checkpoints) + 4)]
        for kind, row in sorted(s["table"].items(), key=lambda kv: -kv[1].get(str(ns[0]), (0,))[0]):
            cells = []
            for n in checkpoints:
                v = row.get(str(n))
                seeds = f" ({v[3]} seeds)" if v and v[3] < row["seeds"] else ""
                cells.append(f"{v[0]:.4g} [{v[1]:.4g}, {v[2]:.4g}]{seeds}" if v else "")
            lines.append(
                f"| {kind} | " + " | ".join(cells) + f" | {row['duplicates']:g} | {row['rejected']:g} "
                f"| {row['seeds']} |"
            )
        for a in s["acceptance"]:
            verdict = "holds" if a["holds"] else "does NOT hold"
            lines.append(
                f"\nBest at N={a['N']}: {a['best']} {a['best_hv']:.4g} ({a['best_seeds']} seeds) vs random "
                f"at {2 * a['N']}: {a['random_2N']:.4g} ({a['random_seeds']} seeds): {verdict}."
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
