"""Everything a report shows, computed once as plain data; the writers only draw it.

The front, ranks and hypervolume come from :mod:`archsearch.pareto`; the zoo references are
costed analytically at the study's input size.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import SpecError
from ..pareto import (
    Direction,
    hypervolume,
    hypervolume_history,
    non_dominated_sort,
    pareto_mask,
    reference_point,
)
from ._format import slug
from ._importance import compute_importances
from ._random_band import random_band
from ._reasons import count_outcomes, counts_line, group_reasons, outcomes
from ._results import STATES, Objective, StudyResults

if TYPE_CHECKING:
    from ..space import SearchSpace

__all__ = [
    "METRICS",
    "OTHER",
    "PALETTE",
    "ReportData",
    "ZooReference",
    "compute_report",
    "front_in_view",
    "mixer_label",
    "zoo_in_view",
]

#: Metric columns reports show when a study has them, in this order (``retrained_accuracy``: a
#: one-shot study's members retrained from scratch, beside their inherited-weight ``accuracy``).
METRICS = (
    "accuracy",
    "retrained_accuracy",
    "macs",
    "params",
    "latency_ms",
    "latency_measured_ms",
    "memory_mb",
    "synflow",
    "naswot",
    "grad_norm",
)
#: Columns whose larger values are better (for plotting metrics that are not objectives).
_MAXIMIZED = {"accuracy", "retrained_accuracy", "synflow", "naswot"}
#: Colours of the mixer-per-stage labels, most frequent first; the rarer ones share ``OTHER``.
PALETTE = (
    "#4c72b0",
    "#dd8452",
    "#55a868",
    "#c44e52",
    "#8172b3",
    "#937860",
    "#da8bc3",
    "#ccb974",
    "#64b5cd",
    "#2f4b7c",
)
OTHER = ("other", "#9a9a9a")


@dataclass
class ZooReference:
    """A zoo architecture at the study's input size, costed analytically."""

    name: str
    params: int
    macs: int
    spec_hash: str
    trials: list[int] = field(default_factory=list)
    """Trials whose spec hash equals this model's."""


@dataclass
class ReportData:
    """Everything the HTML, markdown and figure writers draw."""

    results: StudyResults
    objectives: list[Objective]
    trials: pd.DataFrame
    """All trials, in trial order, with ``mixers`` (label), ``zoo`` (name or None), ``rank``
    (non-dominated rank among scored trials, else -1) and ``front`` (bool) added."""
    scored: pd.DataFrame
    """Complete trials with every objective finite: the trials the front is computed over."""
    front: pd.DataFrame
    """Pareto members, best first on the first objective."""
    metrics: list[str]
    """Metric columns present with at least one value, objectives first."""
    choices: list[str]
    """``choice.*`` columns."""
    state_counts: dict[str, int]
    """Trials by state; with the search engine's ``results.counts``, see :meth:`trials_summary`."""
    reasons: list[tuple[str, str, int]] = field(default_factory=list)
    """(outcome, reason, trials) for the trials that did not complete, most frequent first; reasons
    that differ only in their numbers are grouped, keeping the numbers (see ``group_reasons``)."""
    reference: np.ndarray | None = None
    reference_source: str = ""
    hypervolume: float | None = None
    history: pd.DataFrame | None = None
    """Columns ``trial`` and ``value``: hypervolume (several objectives) or best so far (one)."""
    history_label: str = ""
    importances: dict[str, dict[str, float]] = field(default_factory=dict)
    """Objective metric -> choice name -> importance."""
    importance_trials: int = 0
    """Complete trials the importances come from."""
    importance_warning: str | None = None
    """Set when they come from fewer than ``MIN_IMPORTANCE_TRIALS``: shown next to them."""
    zoo: list[ZooReference] = field(default_factory=list)
    zoo_skipped: dict[str, str] = field(default_factory=dict)
    """Zoo models that do not fit the study's input, with why."""
    mixer_colors: dict[str, str] = field(default_factory=dict)
    """Mixer label -> colour, most frequent on the front first; ``trials["group"]`` holds
    each trial's label, or ``other`` past the palette."""
    winner_files: dict[int, str] = field(default_factory=dict)
    """Front trial -> its spec YAML, relative to the report folder."""
    notes: list[str] = field(default_factory=list)
    """What was skipped and why, for the reader."""
    random_band: pd.DataFrame | None = None
    """Random search's hypervolume on the same space (:mod:`._random_band`): columns ``trial``,
    ``low``, ``median``, ``high``; None when unavailable (``random_band_note`` says why)."""
    random_band_note: str = ""

    def trials_summary(self) -> str:
        """``"11 trials: 7 evaluated (5 complete, 1 early-stopped, 1 failed), 2 duplicate,
        2 rejected; 3 on the front"``: word for word what ``archsearch trials`` prints, from the
        search engine's counts (``results.counts``), else from the trials' outcomes (or states)."""
        counts = self.results.counts
        return counts_line(counts if counts is not None else count_outcomes(self.trials, len(self.front)))

    @property
    def directions(self) -> list[Direction]:
        return [o.direction for o in self.objectives]

    @property
    def objective_metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    def direction_of(self, metric: str) -> Direction:
        """The objective's direction, or the natural one for a metric that is not an objective."""
        for o in self.objectives:
            if o.metric == metric:
                return o.direction
        return "maximize" if metric in _MAXIMIZED else "minimize"

    def scatter_pairs(self) -> list[tuple[str, str]]:
        """(x, y) metric pairs to plot: accuracy (or the first objective) against every other
        objective, and against MACs and latency where the trials have them."""
        if self.scored.empty:
            return []
        y = "accuracy" if "accuracy" in self.metrics else self.objectives[0].metric
        xs = [o.metric for o in self.objectives if o.metric != y]
        xs += [m for m in ("macs", "latency_ms") if m in self.metrics and m != y]
        usable = [x for x in dict.fromkeys(xs) if self.scored[x].notna().any()]
        return [(x, y) for x in usable]


def front_in_view(data: ReportData, x: str, y: str) -> pd.DataFrame:
    """The Pareto members that no other member beats on ``x`` and ``y`` alone, sorted by ``x``:
    the line joining the front in an (x, y) plot (all members, with two objectives)."""
    members = data.front[np.isfinite(data.front[[x, y]].to_numpy(dtype=float)).all(axis=1)]
    if members.empty:
        return members
    mask = pareto_mask(members[[x, y]].to_numpy(dtype=float), [data.direction_of(x), data.direction_of(y)])
    return members[mask].sort_values([x, y], kind="stable")


def zoo_in_view(data: ReportData, x: str) -> tuple[list[ZooReference], list[ZooReference]]:
    """Zoo models to mark on an ``x`` axis (MACs or params): those within 25% of the
    trials."""
    if x not in ("macs", "params") or data.scored.empty:
        return [], []
    values = data.scored[x].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return [], list(data.zoo)
    lo, hi = values.min() / 1.25, values.max() * 1.25
    shown = [z for z in data.zoo if lo <= getattr(z, x) <= hi]
    return shown, [z for z in data.zoo if z not in shown]


def compute_report(
    results: StudyResults,
    reference: Sequence[float] | None = None,
    zoo: bool = True,
    space: SearchSpace | None = None,
) -> ReportData:
    """Front, ranks, hypervolume, importances and zoo matches of ``results``; with the study's
    ``space``, the band random search reaches on it (:func:`._random_band.random_band`)."""
    objectives = list(results.objectives)
    if not objectives:
        raise ValueError("a report needs at least one objective, but got none")
    trials = _prepare(results.trials, objectives)
    metrics = [o.metric for o in objectives] + [
        m for m in METRICS if m in trials.columns and m not in {o.metric for o in objectives}
    ]
    metrics = [m for m in metrics if trials[m].notna().any() or m in {o.metric for o in objectives}]
    counts = Counter(trials["state"])
    state_counts = {s: counts[s] for s in STATES if counts[s]} | {
        s: n for s, n in counts.items() if s not in STATES
    }
    names = [o.metric for o in objectives]
    complete = trials[trials["state"] == "COMPLETE"]
    done = [o not in ("complete", "running", "waiting") for o in outcomes(trials)]
    reasons = group_reasons(
        zip(
            [o for o, d in zip(outcomes(trials), done, strict=True) if d],
            trials.get("reason", pd.Series([None] * len(trials)))[done],
            strict=True,
        )
    )
    finite = np.isfinite(complete[names].to_numpy(dtype=float)).all(axis=1)
    scored = complete[finite]
    data = ReportData(
        results=results,
        objectives=objectives,
        trials=trials,
        scored=scored,
        front=scored.iloc[0:0],
        metrics=metrics,
        choices=[c for c in trials.columns if c.startswith("choice.")],
        state_counts=state_counts,
        reasons=reasons,
    )
    if len(complete) == 0:
        data.notes.append("No trial completed yet: there is no Pareto front to show.")
    elif (~finite).any():
        data.notes.append(
            f"{int((~finite).sum())} complete trial(s) lack a value for an objective "
            f"({', '.join(names)}) and are left out of the front."
        )
    if reference is not None and len(reference) != len(objectives):
        raise ValueError(
            f"the reference point needs one value per objective ({', '.join(names)}), "
            f"but got {len(reference)}: {list(reference)}"
        )
    if not scored.empty:
        _front(data, reference)
    if data.history_label == "hypervolume":
        assert data.history is not None
        data.random_band, data.random_band_note = random_band(
            space, names, data.directions, data.reference, data.history["trial"].to_numpy()
        )
        if data.random_band is None:
            data.notes.append(f"The band random search reaches is unavailable: {data.random_band_note}.")
    if zoo:
        _zoo(data)
    _colours(data)
    found = compute_importances(results.study, objectives)
    data.importances, data.importance_trials = found.scores, found.trials
    data.importance_warning = found.warning
    data.notes += found.notes
    stem = slug(results.study_name)
    data.winner_files = {int(t): f"winners/{stem}-t{int(t)}.yaml" for t in data.front["trial"]}
    return data


def _prepare(table: pd.DataFrame, objectives: list[Objective]) -> pd.DataFrame:
    missing = [o.metric for o in objectives if o.metric not in table.columns]
    if missing:
        raise ValueError(
            f"objective metric(s) {missing} are not columns of the trials table; "
            f"columns: {', '.join(map(str, table.columns))}"
        )
    trials = table.copy()
    for column in ("trial", "state", "spec"):
        if column not in trials.columns:
            raise ValueError(f"the trials table needs a {column!r} column")
    if "spec_hash" not in trials.columns:
        trials["spec_hash"] = None
    trials = trials.sort_values("trial", kind="stable").reset_index(drop=True)
    trials["state"] = trials["state"].astype(str).str.upper()
    for metric in [o.metric for o in objectives] + [m for m in METRICS if m in trials.columns]:
        trials[metric] = pd.to_numeric(trials[metric], errors="coerce").astype(float)
    trials["mixers"] = [mixer_label(s) for s in trials["spec"]]
    trials["zoo"] = None
    trials["rank"] = -1
    trials["front"] = False
    return trials


def mixer_label(spec_json: Any) -> str:
    """``conv·conv+mhsa·attention``: each stage's mixer kind (a per-block list's kinds joined by
    ``+``), read from a spec's JSON."""
    if not isinstance(spec_json, str):
        return "—"
    try:
        stages = json.loads(spec_json).get("stages", [])
    except (ValueError, AttributeError):
        return "?"
    kinds = []
    for stage in stages:
        mixer = stage.get("mixer") if isinstance(stage, dict) else None
        items = mixer if isinstance(mixer, list) else [mixer]
        names = [m if isinstance(m, str) else (m or {}).get("kind", "?") for m in items]
        kinds.append("+".join(dict.fromkeys(str(n) for n in names)))
    return "·".join(str(k) for k in kinds) or "?"


def _front(data: ReportData, reference: Sequence[float] | None) -> None:
    names, directions = data.objective_metrics, data.directions
    values = data.scored[names].to_numpy(dtype=float)
    ranks = non_dominated_sort(values, directions)
    mask = pareto_mask(values, directions)
    index = data.scored.index
    data.trials.loc[index, "rank"] = ranks
    data.trials.loc[index, "front"] = mask
    data.scored = data.trials.loc[index]
    first = data.objectives[0]
    data.front = data.scored[mask].sort_values(
        [first.metric, "trial"], ascending=[first.direction == "minimize", True], kind="stable"
    )
    trial_numbers = data.scored["trial"].to_numpy()
    if len(names) == 1:
        best = np.minimum.accumulate if first.direction == "minimize" else np.maximum.accumulate
        data.history = pd.DataFrame({"trial": trial_numbers, "value": best(values[:, 0])})
        data.history_label = f"best {first.metric} so far"
        if reference is not None:
            data.notes.append("A reference point was given, but hypervolume needs two or more objectives.")
        return
    if reference is not None:
        ref = np.asarray(reference, dtype=float)
        data.reference_source = "given by the user"
    else:
        ref = np.asarray(reference_point(values, directions, margin=0.1), dtype=float)
        data.reference_source = (
            "the nadir of the complete trials pushed out by 10% of each objective's range "
            "(pareto.reference_point, margin 0.1)"
        )
    data.reference = ref
    data.hypervolume = float(hypervolume(values, directions, ref))
    history = hypervolume_history(values, directions, ref)
    data.history = pd.DataFrame({"trial": trial_numbers, "value": history})
    data.history_label = "hypervolume"
    if data.hypervolume == 0.0:
        data.notes.append("The hypervolume is 0: no complete trial is better than the reference point.")


def _colours(data: ReportData) -> None:
    # The front's labels first (those points matter most), then the rest of the complete trials'.
    pool = data.scored if not data.scored.empty else data.trials
    counts = Counter(pool["mixers"])
    on_front = Counter(data.front["mixers"])
    ranked = sorted(counts, key=lambda label: (-on_front[label], -counts[label], label))
    if len(ranked) > len(PALETTE):
        ranked = ranked[: len(PALETTE) - 1]
    data.mixer_colors = dict(zip(ranked, PALETTE, strict=False))
    if len(counts) > len(ranked):
        data.mixer_colors[OTHER[0]] = OTHER[1]
    data.trials["group"] = [m if m in data.mixer_colors else OTHER[0] for m in data.trials["mixers"]]
    data.scored = data.trials.loc[data.scored.index]
    data.front = data.trials.loc[data.front.index]


def _zoo(data: ReportData) -> None:
    from ..cost import analytic_costs
    from ..spec import load_spec, normalize, spec_hash, zoo_names

    results = data.results
    hashes = data.trials["spec_hash"]
    for name in zoo_names():
        try:
            spec = load_spec(
                name,
                num_classes=results.num_classes,
                input_size=list(results.input_size),
                in_chans=results.channels,
            )
            cost = analytic_costs(normalize(spec))
        except SpecError as exc:
            data.zoo_skipped[name] = str(exc).splitlines()[0]
            continue
        ref = ZooReference(name, cost.params, cost.macs, spec_hash(spec))
        matched = data.trials.index[hashes == ref.spec_hash]
        ref.trials = [int(t) for t in data.trials.loc[matched, "trial"]]
        data.trials.loc[matched, "zoo"] = name
        data.zoo.append(ref)
    if data.zoo_skipped:
        data.notes.append(
            f"{len(data.zoo_skipped)} zoo model(s) do not fit a "
            f"{results.input_size[0]}x{results.input_size[1]} input and are not shown: "
            + ", ".join(sorted(data.zoo_skipped))
        )
    data.scored = data.trials.loc[data.scored.index]
    data.front = data.trials.loc[data.front.index]
