"""The interactive figures of the HTML report, as plotly figures (drawn from :class:`ReportData`)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from ._compute import ReportData, front_in_view, zoo_in_view
from ._format import (
    choice_name,
    format_metric,
    format_value,
    is_missing,
    metric_label,
    metric_unit_scale,
)
from ._layout import axis_range, integer_step, parallel_layout

__all__ = ["history_figure", "importance_figure", "parallel_figure", "scatter_figure"]

_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "font": {"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 12},
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "hoverlabel": {"align": "left"},
}


def hover_text(data: ReportData, row: pd.Series) -> str:
    """Trial number, zoo name, mixers, metrics and choices of one trial, for hover boxes."""
    lines = [f"<b>trial {int(row['trial'])}</b>" + (" — Pareto front" if row["front"] else "")]
    if row.get("zoo"):
        lines.append(f"= zoo model <b>{html.escape(str(row['zoo']))}</b>")
    lines.append(f"mixers: {html.escape(str(row['mixers']))}")
    lines += [f"{m}: {format_metric(m, row[m])}" for m in data.metrics]
    lines += [
        f"{html.escape(choice_name(c))} = {html.escape(format_value(row[c]))}"
        for c in data.choices
        if not is_missing(row[c])
    ]
    return "<br>".join(lines)


def _axis(metric: str, values: Any = ()) -> dict[str, Any]:
    """An axis titled with the metric and its unit; bounded metrics (accuracy) never pass their
    bounds."""
    axis: dict[str, Any] = {"title": {"text": metric_label(metric)}, "zeroline": False}
    bounded = axis_range(values, metric)
    if bounded is not None:
        axis["range"] = bounded
    return axis


def scatter_figure(data: ReportData, x: str, y: str) -> Any:
    """``y`` against ``x``: complete trials faint, the front bold and joined, coloured by mixers,
    zoo models as dashed lines (MACs, params) and zoo trials labelled."""
    import plotly.graph_objects as go

    sx, sy = metric_unit_scale(x), metric_unit_scale(y)
    points = data.scored[data.scored[[x, y]].notna().all(axis=1)]
    fig = go.Figure()
    for label, colour in data.mixer_colors.items():
        group = points[points["group"] == label]
        for on_front in (False, True):
            part = group[group["front"] == on_front]
            if part.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=part[x] * sx,
                    y=part[y] * sy,
                    mode="markers",
                    name=label,
                    legendgroup=label,
                    showlegend=bool(not on_front or group["front"].all()),
                    marker={
                        "color": colour,
                        "size": 11 if on_front else 7,
                        "opacity": 1.0 if on_front else 0.35,
                        "line": {"color": "#222", "width": 1.2} if on_front else {"width": 0},
                    },
                    hovertext=[hover_text(data, r) for _, r in part.iterrows()],
                    hoverinfo="text",
                )
            )
    line = front_in_view(data, x, y)
    if not line.empty:
        fig.add_trace(
            go.Scatter(
                x=line[x] * sx,
                y=line[y] * sy,
                mode="lines",
                line={"color": "#222", "width": 1.5, "shape": "hv" if len(data.objectives) > 1 else "linear"},
                name="Pareto front",
                hoverinfo="skip",
            )
        )
    shown, _ = zoo_in_view(data, x)
    for ref in shown:
        fig.add_vline(
            x=getattr(ref, x) * sx,
            line={"dash": "dash", "color": "#888", "width": 1},
            annotation={"text": ref.name, "textangle": -90, "font": {"size": 10, "color": "#555"}},
            annotation_position="top left",
        )
    for _, row in points[points["zoo"].notna()].iterrows():
        fig.add_annotation(
            x=row[x] * sx,
            y=row[y] * sy,
            text=f"<b>{html.escape(str(row['zoo']))}</b>",
            showarrow=True,
            arrowhead=2,
            ax=25,
            ay=-25,
        )
    fig.update_layout(
        **_LAYOUT,
        title={"text": f"{metric_label(y)} vs {metric_label(x)}"},
        xaxis=_axis(x, points[x] * sx),
        yaxis=_axis(y, points[y] * sy),
        legend={"title": {"text": "mixer per stage"}, "font": {"size": 11}},
        height=480,
    )
    return fig


def history_figure(data: ReportData) -> Any:
    """Hypervolume (or best value so far, with one objective) after each trial."""
    import plotly.graph_objects as go

    assert data.history is not None
    history = data.history
    single = data.history_label != "hypervolume"
    metric = data.objectives[0].metric
    scale = metric_unit_scale(metric) if single else 1.0
    trials = history["trial"].to_numpy(dtype=float)
    step = integer_step(float(trials.min()), float(trials.max())) if len(trials) else 1
    yaxis: dict[str, Any] = {"title": {"text": metric_label(metric) if single else data.history_label}}
    bounded = axis_range(history["value"] * scale, metric) if single else None
    if bounded is not None:
        yaxis["range"] = bounded
    fig = go.Figure(
        go.Scatter(
            x=history["trial"],
            y=history["value"] * scale,
            mode="lines+markers",
            line={"shape": "hv", "color": "#4c72b0"},
            marker={"size": 4},
            name=data.history_label,
            hovertemplate="trial %{x}<br>%{y:.6g}<extra></extra>",
        )
    )
    band = data.random_band
    if band is not None:  # random search's quartiles on the same space, behind the study's curve
        for column, fill in (("high", None), ("low", "tonexty")):
            fig.add_trace(
                go.Scatter(
                    x=band["trial"],
                    y=band[column],
                    mode="lines",
                    line={"shape": "hv", "width": 0},
                    fill=fill,
                    fillcolor="rgba(150,150,150,0.3)",
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=band["trial"],
                y=band["median"],
                mode="lines",
                line={"shape": "hv", "color": "#777777", "dash": "dash"},
                name="random search (median, IQR)",
                hovertemplate="random search after the same evaluations<br>%{y:.6g}<extra></extra>",
            )
        )
    fig.update_layout(
        **_LAYOUT,
        title={"text": f"{data.history_label} over trials"},
        # trial numbers are whole: ticks on whole numbers only, never 0.5
        xaxis={
            "title": {"text": "trial"},
            "tickmode": "linear",
            "tick0": 0,
            "dtick": step,
            "tickformat": "d",
        },
        yaxis=yaxis,
        height=360,
    )
    return fig


def _category_axis(values: pd.Series) -> tuple[list[float], list[float], list[str]]:
    """Codes, tick values and tick labels of a categorical column; a missing value is ``—``."""
    present = [v for v in values.unique() if not is_missing(v)]
    numeric = all(isinstance(v, int | float | np.integer | np.floating) for v in present)
    ordered = sorted(present, key=(lambda v: float(v)) if numeric else (lambda v: str(v)))
    labels = [format_value(v) for v in ordered]
    code = {format_value(v): i for i, v in enumerate(ordered)}
    missing = len(ordered)
    codes = [float(code[format_value(v)]) if not is_missing(v) else float(missing) for v in values]
    ticks = list(map(float, range(len(ordered))))
    if any(is_missing(v) for v in values):
        ticks.append(float(missing))
        labels.append("—")
    return codes, ticks, labels


def parallel_figure(data: ReportData) -> Any:
    """Parallel coordinates of the choices (categories as integers with their labels) and the
    objectives, coloured by the first objective."""
    import plotly.graph_objects as go

    rows = data.scored
    dims: list[dict[str, Any]] = []
    for column in data.choices:
        values = rows[column]
        present = values.dropna()
        numeric = pd.api.types.is_numeric_dtype(values)
        if numeric and present.nunique() > 12:
            filled = values.fillna(present.min() if len(present) else 0)
            dims.append({"label": choice_name(column), "values": filled.astype(float).tolist()})
            continue
        codes, ticks, labels = _category_axis(values)
        dims.append(
            {
                "label": choice_name(column),
                "values": codes,
                "tickvals": ticks,
                "ticktext": labels,
                "range": [min(ticks, default=0) - 0.3, max(ticks, default=0) + 0.3],
            }
        )
    for metric in data.objective_metrics:
        dims.append(
            {
                "label": metric_label(metric),
                "values": (rows[metric] * metric_unit_scale(metric)).tolist(),
                "tickformat": ".3~r",  # three significant digits: no 99.0486 at the ends
            }
        )
    first = data.objectives[0]
    colour = rows[first.metric] * metric_unit_scale(first.metric)
    label_size, tick_size = 11, 10
    layout = parallel_layout(dims, label_size=label_size, tick_size=tick_size)
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            line={
                "color": colour.tolist(),
                "colorscale": "Viridis",
                "reversescale": first.direction == "minimize",  # bright = better either way
                "showscale": True,
                "colorbar": {
                    "title": {"text": metric_label(first.metric), "side": "right"},
                    "x": 1.0,
                    "xanchor": "left",
                    "xpad": 14,
                    "thickness": 18,
                },
            },
            labelangle=layout.label_angle,
            labelside="top",
            labelfont={"size": label_size},
            tickfont={"size": tick_size},
            rangefont={"size": tick_size},
        )
    )
    fig.update_layout(
        **{**_LAYOUT, "margin": layout.margin},
        height=420 + layout.margin["t"],
        meta={"min_width": layout.min_width},  # the HTML gives the plot at least this width
    )
    return fig


def importance_figure(data: ReportData) -> Any:
    """Importance of each choice per objective (and to reach the front), as grouped bars."""
    import plotly.graph_objects as go

    params = sorted(
        {p for scores in data.importances.values() for p in scores},
        key=lambda p: np.mean([s.get(p, 0.0) for s in data.importances.values()]),
    )
    fig = go.Figure()
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for i, (target, scores) in enumerate(data.importances.items()):
        fig.add_trace(
            go.Bar(
                y=params,
                x=[scores.get(p, 0.0) for p in params],
                name=target,
                orientation="h",
                marker={"color": colours[i % len(colours)]},
                hovertemplate="%{y}<br>" + html.escape(target) + ": %{x:.3f}<extra></extra>",
            )
        )
    fig.update_layout(
        **_LAYOUT,
        title={
            "text": "importance of each choice (Optuna, normalised per target)"
            + (f" — from {data.importance_trials} trials only" if data.importance_warning else "")
        },
        barmode="group",
        xaxis={"title": {"text": "importance"}},
        height=max(320, 60 + 18 * len(params) * max(1, len(data.importances)) // 2),
        legend={"title": {"text": "target"}},
    )
    return fig
