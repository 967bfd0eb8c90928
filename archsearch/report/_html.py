"""The HTML report: one self-contained page, plotly.js and every figure's data inline."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from ._compute import ReportData, zoo_in_view
from ._format import choice_name, format_metric, format_value, is_missing, metric_title

__all__ = ["render_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222;
       background: #fafafa; }
header { background: #1f2d3d; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header .sub { color: #c9d3dd; }
main { padding: 8px 32px 40px; max-width: 1400px; }
section { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; margin: 16px 0;
          padding: 12px 18px; }
h2 { font-size: 18px; margin: 6px 0 10px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dl.facts dt { color: #666; } dl.facts dd { margin: 0; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
.plot { min-height: 360px; }
.scroll { overflow-x: auto; }
.caption { color: #666; font-size: 12px; margin: 2px 0 8px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid #eee; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th.asc::after { content: " \\25B2"; } table.sortable th.desc::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.choices { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11px; color: #444; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; }
.tag { background: #fde8b0; border-radius: 3px; padding: 0 4px; font-size: 12px; }
ul.notes li { margin: 3px 0; color: #444; }
p.warning { background: #fff4e0; border-left: 4px solid #e08a00; padding: 6px 10px; margin: 4px 0 8px;
            color: #5a3a00; }
nav { margin: 10px 0; }
nav a { margin-right: 14px; color: #1f5f9f; text-decoration: none; }
"""

_JS = """
(function () {
  var config = {responsive: true, displaylogo: false};
  document.querySelectorAll('script[type="application/json"][data-plot]').forEach(function (node) {
    var fig = JSON.parse(node.textContent);
    Plotly.newPlot(node.getAttribute('data-plot'), fig.data, fig.layout, config);
  });
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener('click', function () {
        var asc = !th.classList.contains('asc');
        Array.prototype.forEach.call(heads, function (h) { h.classList.remove('asc', 'desc'); });
        th.classList.add(asc ? 'asc' : 'desc');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
          var nx = parseFloat(x), ny = parseFloat(y), c;
          if (!isNaN(nx) && !isNaN(ny)) { c = nx - ny; }
          else if (isNaN(nx) !== isNaN(ny)) { c = isNaN(nx) ? 1 : -1; }
          else { c = String(x).localeCompare(String(y)); }
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""


def _json_script(plot_id: str, figure: Any) -> str:
    """A figure's data and layout as inline JSON (``</`` escaped so no string ends the script)."""
    text = figure.to_json(validate=False) if hasattr(figure, "to_json") else json.dumps(figure)
    text = text.replace("</", "<\\/")
    return f'<script type="application/json" data-plot="{plot_id}">{text}</script>'


def _plot(name: str, figure: Any, caption: str = "") -> str:
    """A plot's div; a figure whose layout asks for a least width (``meta.min_width``: parallel
    coordinates with many axes) gets it, in a box that scrolls sideways on a narrow screen."""
    plot_id = f"plot-{name}"  # never a section's id: newPlot takes the first element of that id
    cap = f'<p class="caption">{caption}</p>' if caption else ""
    meta = getattr(getattr(figure, "layout", None), "meta", None)
    width = meta.get("min_width") if isinstance(meta, dict) else None
    style = f' style="min-width:{int(width)}px"' if width else ""
    div = f'<div id="{plot_id}" class="plot"{style}></div>'
    if width:
        div = f'<div class="scroll">{div}</div>'
    return f"<div>{div}{cap}{_json_script(plot_id, figure)}</div>"


def _facts(data: ReportData) -> str:
    r = data.results
    h, w = r.input_size
    arrows = {"minimize": "↓ minimize", "maximize": "↑ maximize"}
    objectives = ", ".join(f"{escape(o.metric)} ({arrows[o.direction]})" for o in data.objectives)
    rows = [
        ("dataset", f"{escape(r.dataset)}, {r.num_classes} classes"),
        ("input", f"{h}×{w}, {r.channels} channel{'s' if r.channels != 1 else ''}"),
        ("study", escape(data.trials_summary())),
        ("objectives", objectives),
        ("Pareto front", f"{len(data.front)} of {len(data.scored)} complete trials with every objective"),
    ]
    if data.hypervolume is not None and data.reference is not None:
        ref = ", ".join(
            f"{escape(m)} {format_metric(m, v)}"
            for m, v in zip(data.objective_metrics, data.reference, strict=True)
        )
        rows.append(("hypervolume", f"{data.hypervolume:.6g}"))
        rows.append(("reference point", f"{ref} — {escape(data.reference_source)}"))
    elif len(data.objectives) == 1 and not data.front.empty:
        best = data.front.iloc[0]
        m = data.objectives[0].metric
        rows.append(("best", f"trial {int(best['trial'])}: {m} {format_metric(m, best[m])}"))
    if data.reasons:
        listed = "; ".join(f"{escape(o)}: {escape(reason)} ×{n}" for o, reason, n in data.reasons[:6])
        more = len(data.reasons) - 6
        rows.append(("not completed", listed + (f"; {more} more reasons in trials.csv" if more > 0 else "")))
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<dl class="facts">{body}</dl>'


def _front_table(data: ReportData) -> str:
    metrics: list[str] = [
        m for m in ("params", "macs", "latency_ms", "latency_measured_ms", "accuracy") if m in data.metrics
    ]
    metrics += [m for m in data.metrics if m not in metrics]
    heads = ["trial", "mixers", *[metric_title(m) for m in metrics], "choices", "spec"]
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    body = []
    for _, row in data.front.iterrows():
        trial = int(row["trial"])
        colour = data.mixer_colors.get(str(row["group"]), "#999")
        zoo = f' <span class="tag">= {escape(str(row["zoo"]))}</span>' if row.get("zoo") else ""
        cells = [
            f'<td class="num" data-v="{trial}">{trial}{zoo}</td>',
            f'<td data-v="{escape(str(row["mixers"]))}"><span class="swatch" style="background:{colour}">'
            f"</span>{escape(str(row['mixers']))}</td>",
        ]
        for m in metrics:
            value = row[m]
            v = "" if is_missing(value) else repr(float(value))
            cells.append(f'<td class="num" data-v="{v}">{format_metric(m, value)}</td>')
        choices = " ".join(
            f"{escape(choice_name(c))}={escape(format_value(row[c]))}"
            for c in data.choices
            if not is_missing(row[c])
        )
        cells.append(f'<td class="choices" data-v="{escape(choices)}">{choices}</td>')
        path = data.winner_files[trial]
        cells.append(
            f'<td data-v="{escape(path)}"><a href="{escape(path)}">{escape(path.split("/")[-1])}</a></td>'
        )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<table class="sortable" id="front-table"><thead><tr>'
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def _zoo_table(data: ReportData) -> str:
    r = data.results
    if not data.zoo:
        return f"<p>No zoo model fits a {r.input_size[0]}×{r.input_size[1]} input.</p>"
    shown = {z.name for x in ("macs", "params") for z in zoo_in_view(data, x)[0]}
    rows = []
    for z in data.zoo:
        matched = ", ".join(str(t) for t in z.trials) or "—"
        where = "marked on the MACs plot" if z.name in shown else "off the chart"
        rows.append(
            f'<tr><td data-v="{escape(z.name)}">{escape(z.name)}</td>'
            f'<td class="num" data-v="{z.params}">{format_metric("params", z.params)}</td>'
            f'<td class="num" data-v="{z.macs}">{format_metric("macs", z.macs)}</td>'
            f'<td data-v="{escape(matched)}">{escape(matched)}</td><td data-v="{where}">{where}</td></tr>'
        )
    return (
        f'<p class="caption">Costed analytically at {r.input_size[0]}×{r.input_size[1]}, {r.channels} '
        f"channel(s), {r.num_classes} classes. A trial with the same spec hash is labelled with the "
        "model's name.</p>"
        '<table class="sortable"><thead><tr><th>model</th><th>params</th><th>MACs</th>'
        "<th>same spec as trial</th><th>plot</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def render_html(data: ReportData, figures: dict[str, Any], plotly_js: str) -> str:
    """The page. ``figures`` maps a section (``scatter:<x>:<y>``, ``history``, ``parallel``,
    ``importance``) to its plotly figure."""
    r = data.results
    sections: list[str] = []
    scatters = [(k, f) for k, f in figures.items() if k.startswith("scatter:")]
    if scatters:
        plots = []
        for i, (key, fig) in enumerate(scatters):
            x = key.split(":")[1]
            _, off = zoo_in_view(data, x)
            caption = (
                "Faint: every complete trial; outlined: the Pareto front on all objectives; line: the "
                "members no other beats on these two axes."
            )
            if off:
                caption += " Zoo models off this chart: " + ", ".join(
                    f"{escape(z.name)} ({format_metric(x, getattr(z, x))})" for z in off
                )
            plots.append(_plot(f"scatter-{i}", fig, caption))
        sections.append(
            '<section id="front"><h2>Pareto front</h2><div class="plots">'
            + "".join(plots)
            + "</div></section>"
        )
    if data.scored.empty:
        sections.append(
            '<section id="front"><h2>Pareto front</h2><p>No trial has completed with every objective '
            f"({escape(', '.join(data.objective_metrics))}) yet: there is no front to show.</p></section>"
        )
    if not data.front.empty:
        sections.append(
            '<section id="members"><h2>Pareto members</h2>'
            '<p class="caption">Click a header to sort. Each spec rebuilds the trial\'s model, from the '
            "report's folder: <code>archsearch compile winners/&lt;file&gt;.yaml</code>.</p>"
            + _front_table(data)
            + "</section>"
        )
    if "history" in figures:
        title = "Hypervolume" if data.history_label == "hypervolume" else "Best so far"
        sections.append(
            f'<section id="history"><h2>{title}</h2>{_plot("history", figures["history"])}</section>'
        )
    if "parallel" in figures:
        sections.append(
            '<section id="choices"><h2>Choices</h2>'
            + _plot(
                "parallel",
                figures["parallel"],
                f"One line per complete trial, coloured by {escape(data.objectives[0].metric)}. Categorical "
                "choices are drawn as integers with their labels; “—”: the choice did not exist in that "
                "trial. Drag along an axis to filter.",
            )
            + "</section>"
        )
    if "importance" in figures:
        sections.append(
            '<section id="importance"><h2>Importance of the choices</h2>'
            + (
                f'<p class="warning" id="importance-warning">⚠ {escape(data.importance_warning)}</p>'
                if data.importance_warning
                else ""
            )
            + _plot(
                "importance",
                figures["importance"],
                "optuna.importance.get_param_importances with Optuna's default evaluator, one target "
                "per objective (maximised objectives negated); “Pareto front”: importance to reach it.",
            )
            + "</section>"
        )
    sections.append(f'<section id="zoo"><h2>Zoo references</h2>{_zoo_table(data)}</section>')
    if data.notes:
        notes = "".join(f"<li>{escape(n)}</li>" for n in data.notes)
        sections.append(f'<section id="notes"><h2>Notes</h2><ul class="notes">{notes}</ul></section>')
    nav = " ".join(
        f'<a href="#{sid}">{label}</a>'
        for sid, label in [
            ("front", "front"),
            ("members", "members"),
            ("history", "hypervolume"),
            ("choices", "choices"),
            ("importance", "importance"),
            ("zoo", "zoo"),
            ("notes", "notes"),
        ]
        if f'id="{sid}"' in "".join(sections)
    )
    h, w = r.input_size
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(r.study_name)} — archsearch report</title><style>{_CSS}</style>"
        f"<script>{plotly_js}</script></head><body>"
        f'<header><h1>{escape(r.study_name)}</h1><div class="sub">archsearch Pareto report · '
        f"{escape(r.dataset)} · {h}×{w}</div></header><main>"
        f'<section id="summary"><h2>Summary</h2>{_facts(data)}<nav>{nav}</nav>'
        f'<p class="caption">Files: <a href="report.md">report.md</a>, <a href="trials.csv">trials.csv</a>, '
        '<a href="trials.parquet">trials.parquet</a>, <a href="winners/">winners/</a>, '
        '<a href="figures/">figures/</a>.</p></section>'
        + "".join(sections)
        + f"</main><script>{_JS}</script></body></html>\n"
    )
