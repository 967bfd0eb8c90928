"""``write_report``: compute the report's data once, then write every file from it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._compute import compute_report
from ._results import StudyResults
from ._winners import write_winners

if TYPE_CHECKING:
    from ..space import SearchSpace

__all__ = ["ReportFiles", "report_folder_problem", "write_report"]


def report_folder_problem(out_dir: str | Path) -> str | None:
    """Why the report cannot be written into the folder ``out_dir``, before anything is computed:
    ``"reports/x is a file, not a folder"`` (``out_dir`` or a folder on the way), ``"no permission
    to write in the folder F"`` (the nearest existing folder); ``None`` when it can be."""
    out = Path(out_dir)
    for folder in (*reversed(out.parents), out):
        if not folder.exists():
            break
        if not folder.is_dir():
            return f"{folder} is a file, not a folder"
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no permission to write in the folder {existing}"
    return None


@dataclass(frozen=True)
class ReportFiles:
    """The files :func:`write_report` wrote."""

    out_dir: Path
    index_html: Path
    report_md: Path
    trials_csv: Path
    trials_parquet: Path
    winners: list[Path] = field(default_factory=list)
    """One YAML spec per Pareto member."""
    figures: list[Path] = field(default_factory=list)
    """PNGs: the Pareto scatters and the hypervolume history."""
    summary: str = ""
    """The trials by outcome, as ``archsearch trials`` and the report print them."""


def write_report(
    results: StudyResults,
    out_dir: str | Path,
    *,
    reference: Sequence[float] | None = None,
    zoo: bool = True,
    progress: Callable[[str], None] | None = None,
    space: SearchSpace | None = None,
) -> ReportFiles:
    """Write a study's report into ``out_dir``.

    ``index.html`` (self-contained, works offline), ``report.md``, ``trials.csv`` and
    ``trials.parquet``, ``figures/*.png``, and ``winners/<study>-t<trial>.yaml`` for every Pareto
    member. ``reference`` is the hypervolume's reference point, one value per objective (default:
    the nadir of the complete trials pushed out by 10% of each range); ``zoo`` marks the zoo's
    architectures at the study's input size. Raises ValueError for an objective that is not a
    column of the trials, or a reference of the wrong length. ``progress`` is called with each
    step's name as it starts; a folder that cannot be written (:func:`report_folder_problem`)
    raises ValueError ``cannot write the report into DIR: REASON`` before anything is computed.
    With the study's ``space``, the hypervolume figures show the band
    random search reaches on it beside the study's curve (:mod:`._random_band`).
    """
    import plotly.offline

    from ._figures import history_png, scatter_png
    from ._html import render_html
    from ._markdown import render_markdown
    from ._plots import history_figure, importance_figure, parallel_figure, scatter_figure

    say = progress or (lambda _: None)
    out = Path(out_dir)
    problem = report_folder_problem(out)
    if problem is not None:
        raise ValueError(f"cannot write the report into {out}: {problem}")
    say("computing the front, hypervolume, importances" + (" and zoo references" if zoo else ""))
    data = compute_report(results, reference=reference, zoo=zoo, space=space)
    say("writing the winners' specs")
    for sub, pattern in (("winners", "*.yaml"), ("figures", "*.png")):  # no stale files of an older run
        (out / sub).mkdir(parents=True, exist_ok=True)
        for stale in (out / sub).glob(pattern):
            stale.unlink()
    winners = write_winners(data, out)

    say("drawing the figures")
    figures: dict[str, Any] = {}
    pngs: list[Path] = []
    for x, y in data.scatter_pairs():
        figures[f"scatter:{x}:{y}"] = scatter_figure(data, x, y)
        pngs.append(scatter_png(data, x, y, out / "figures" / f"pareto-{y}-vs-{x}.png"))
    if data.history is not None and not data.history.empty:
        figures["history"] = history_figure(data)
        name = "hypervolume" if data.history_label == "hypervolume" else "best-so-far"
        pngs.append(history_png(data, out / "figures" / f"{name}.png"))
    if data.choices and not data.scored.empty:
        figures["parallel"] = parallel_figure(data)
    elif not data.choices:
        data.notes.append("The trials have no choice.* columns: no parallel coordinates.")
    if data.importances:
        figures["importance"] = importance_figure(data)

    say("writing index.html, report.md, trials.csv and trials.parquet")
    index = out / "index.html"
    index.write_text(render_html(data, figures, plotly.offline.get_plotlyjs()), encoding="utf-8")
    report_md = out / "report.md"
    report_md.write_text(
        render_markdown(data, [p.relative_to(out).as_posix() for p in pngs]), encoding="utf-8"
    )
    csv, parquet = out / "trials.csv", out / "trials.parquet"
    table = results.trials.sort_values("trial", kind="stable")
    table.to_csv(csv, index=False)
    _for_parquet(table).to_parquet(parquet, index=False)
    return ReportFiles(out, index, report_md, csv, parquet, winners, pngs, data.trials_summary())


def _for_parquet(table: pd.DataFrame) -> pd.DataFrame:
    """Columns that mix value types (a choice of 2 or "auto") as strings, which Parquet can store."""
    table = table.copy()
    for column in table.columns:
        if table[column].dtype != object:
            continue
        types = {type(v) for v in table[column] if v is not None and v == v}
        if len(types) > 1 and not types <= {int, float}:
            table[column] = [None if v is None or v != v else str(v) for v in table[column]]
    return table
