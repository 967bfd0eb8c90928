"""Static figures for papers: the Pareto scatters and the hypervolume history as PNGs (matplotlib,
drawn on the Agg canvas directly, so pyplot's global state and backend are left alone)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._compute import ReportData, front_in_view, zoo_in_view
from ._format import metric_label, metric_unit_scale
from ._layout import axis_range

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["history_png", "scatter_png"]

_DPI = 150


def _figure(width: float = 6.4, height: float = 4.4) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def scatter_png(data: ReportData, x: str, y: str, path: Path) -> Path:
    """``y`` against ``x``: the same content as the interactive scatter."""
    sx, sy = metric_unit_scale(x), metric_unit_scale(y)
    points = data.scored[data.scored[[x, y]].notna().all(axis=1)]
    fig = _figure()
    ax = fig.add_subplot()
    for label, colour in data.mixer_colors.items():
        group = points[points["group"] == label]
        if group.empty:
            continue
        rest, front = group[~group["front"]], group[group["front"]]
        ax.scatter(rest[x] * sx, rest[y] * sy, s=14, color=colour, alpha=0.35, linewidths=0, label=label)
        ax.scatter(
            front[x] * sx, front[y] * sy, s=40, color=colour, edgecolors="#222", linewidths=0.9, zorder=3
        )
    line = front_in_view(data, x, y)
    if not line.empty:
        style: dict[str, Any] = {"color": "#222", "lw": 1.2, "zorder": 2, "label": "Pareto front"}
        if len(data.objectives) > 1:  # the staircase the front dominates
            ax.step(line[x] * sx, line[y] * sy, where="post", **style)
        else:
            ax.plot(line[x] * sx, line[y] * sy, **style)
    shown, _ = zoo_in_view(data, x)
    for ref in shown:
        value = getattr(ref, x) * sx
        ax.axvline(value, color="#888", ls="--", lw=0.9)
        ax.text(
            value,
            0.98,
            f" {ref.name}",
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color="#555",
            transform=ax.get_xaxis_transform(),
        )
    for _, row in points[points["zoo"].notna()].iterrows():
        ax.annotate(
            str(row["zoo"]),
            (row[x] * sx, row[y] * sy),
            xytext=(8, 8),
            textcoords="offset points",
            fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "#555"},
        )
    for metric, values, limit in ((x, points[x] * sx, ax.set_xlim), (y, points[y] * sy, ax.set_ylim)):
        bounded = axis_range(values, metric)
        if bounded is not None:  # accuracy never past 100%
            limit(*bounded)
    ax.set_xlabel(metric_label(x))
    ax.set_ylabel(metric_label(y))
    ax.set_title(f"{data.results.study_name}: {metric_label(y)} vs {metric_label(x)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title="mixer per stage", title_fontsize=7, loc="best")
    fig.savefig(path, dpi=_DPI)
    return path


def history_png(data: ReportData, path: Path) -> Path:
    """Hypervolume (or best so far) after each trial."""
    from matplotlib.ticker import MaxNLocator

    assert data.history is not None
    single = data.history_label != "hypervolume"
    metric = data.objectives[0].metric
    scale = metric_unit_scale(metric) if single else 1.0
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    band = data.random_band
    if band is not None:
        ax.fill_between(
            band["trial"], band["low"], band["high"], step="post", color="#999999", alpha=0.3, lw=0
        )
        ax.step(
            band["trial"],
            band["median"],
            where="post",
            color="#777777",
            lw=1,
            ls="--",
            label="random search, same evaluations (median, IQR)",
        )
    ax.step(
        data.history["trial"],
        data.history["value"] * scale,
        where="post",
        color="#4c72b0",
        lw=1.4,
        label="this study",
    )
    if band is not None:
        ax.legend(fontsize=8, loc="lower right")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole trials, never 0.5
    bounded = axis_range(data.history["value"] * scale, metric) if single else None
    if bounded is not None:
        ax.set_ylim(*bounded)
    ax.set_xlabel("trial")
    ax.set_ylabel(metric_label(metric) if single else data.history_label)
    ax.set_title(f"{data.results.study_name}: {data.history_label} over trials", fontsize=10)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=_DPI)
    return path
