"""``report.md``: the report for terminals and repositories."""

from __future__ import annotations

from ._compute import ReportData
from ._format import choice_name, format_metric, format_value, is_missing, metric_title

__all__ = ["render_markdown"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(data: ReportData, figures: list[str]) -> str:
    """Summary, the front as a table linking each winner's YAML, the figures and the notes."""
    r = data.results
    h, w = r.input_size
    lines = [f"# {r.study_name} — Pareto report", ""]
    objectives = ", ".join(f"{o.metric} ({o.direction})" for o in data.objectives)
    lines += [
        f"- **dataset**: {r.dataset}, {r.num_classes} classes, input {h}×{w}×{r.channels}",
        f"- **study**: {data.trials_summary()}",
        f"- **objectives**: {objectives}",
        f"- **Pareto front**: {len(data.front)} of {len(data.scored)} complete trials with every objective",
    ]
    if data.reasons:
        listed = "; ".join(f"{outcome}: {reason} ×{n}" for outcome, reason, n in data.reasons[:6])
        lines.append(
            f"- **not completed**: {listed}"
            + (f"; {len(data.reasons) - 6} more reasons in trials.csv" if len(data.reasons) > 6 else "")
        )
    if data.hypervolume is not None and data.reference is not None:
        ref = ", ".join(
            f"{m} {format_metric(m, v)}" for m, v in zip(data.objective_metrics, data.reference, strict=True)
        )
        lines.append(
            f"- **hypervolume**: {data.hypervolume:.6g}, reference point ({ref}): {data.reference_source}"
        )
        band = data.random_band
        if band is not None and len(band):
            last = band.iloc[-1]
            lines.append(
                f"- **random search on the same space**, {len(band)} members: hypervolume "
                f"{last['median']:.6g} (interquartile range {last['low']:.6g} to {last['high']:.6g}); "
                f"{data.random_band_note}"
            )
        else:
            lines.append(f"- **random search on the same space**: unavailable ({data.random_band_note})")
    lines += [
        "",
        "Interactive version: [index.html](index.html). Every trial: [trials.csv](trials.csv), "
        "[trials.parquet](trials.parquet).",
        "",
    ]

    lines += ["## Pareto front", ""]
    if data.front.empty:
        lines += ["No trial has completed with every objective: there is no front yet.", ""]
    else:
        metrics: list[str] = [
            m
            for m in ("params", "macs", "latency_ms", "latency_measured_ms", "accuracy")
            if m in data.metrics
        ]
        metrics += [m for m in data.metrics if m not in metrics]
        heads = ["trial", "mixers", *[metric_title(m) for m in metrics], "choices", "spec"]
        lines += [
            "| " + " | ".join(heads) + " |",
            "|" + "|".join(["---:"] + ["---"] + ["---:"] * len(metrics) + ["---", "---"]) + "|",
        ]
        for _, row in data.front.iterrows():
            trial = int(row["trial"])
            zoo = f" (= {row['zoo']})" if row.get("zoo") else ""
            choices = ", ".join(
                f"{choice_name(c)}={format_value(row[c])}" for c in data.choices if not is_missing(row[c])
            )
            path = data.winner_files[trial]
            cells = [
                f"{trial}{zoo}",
                str(row["mixers"]),
                *[format_metric(m, row[m]) for m in metrics],
                choices or "—",
                f"[{path.split('/')[-1]}]({path})",
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
        lines += ["Rebuild a winner from this folder: `archsearch compile winners/<file>.yaml`.", ""]

    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{f.split('/')[-1].removesuffix('.png')}]({f})" for f in figures]
        lines.append("")

    if data.importances:
        lines += ["## Most important choices", ""]
        if data.importance_warning:
            lines += [f"> **Warning**: {data.importance_warning}", ""]
        for target, scores in data.importances.items():
            top = sorted(scores.items(), key=lambda kv: -kv[1])[:5]
            lines.append(f"- **{target}**: " + ", ".join(f"{k} ({v:.2f})" for k, v in top))
        lines.append("")

    if data.zoo:
        lines += [
            f"## Zoo at {h}×{w}",
            "",
            "| model | params | MACs | same spec as trial |",
            "|---|---:|---:|---|",
        ]
        for z in data.zoo:
            trials = ", ".join(str(t) for t in z.trials) or "—"
            params, macs = format_metric("params", z.params), format_metric("macs", z.macs)
            lines.append(f"| {z.name} | {params} | {macs} | {trials} |")
        lines.append("")

    if data.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in data.notes] + [""]
    return "\n".join(lines)
