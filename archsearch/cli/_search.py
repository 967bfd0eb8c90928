"""CLI commands of the search engine: ``space``, ``search``, ``worker``, ``trials`` (registered on
the app)."""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ._app import app, err, friendly, out

if TYPE_CHECKING:
    from ..search import TrialCounts

#: ``archsearch space`` probes up to PROBE_MEMBERS random members for the share of valid ones, for
#: at most PROBE_S seconds: a space of thousands of blocks probes fewer rather than taking minutes.
PROBE_MEMBERS = 200
PROBE_S = 1.5

SourceArg = Annotated[str, typer.Argument(help="An experiment YAML, a storage URL, or a .db / journal file.")]


@app.command()
@friendly
def space(
    path: Annotated[str, typer.Argument(help="A search-space YAML file.")],
    samples: Annotated[int, typer.Option("--samples", "-n", help="Random members to show.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the random members.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show a search space: its dimensions, its size, and a few members with their costs."""
    from ..space import RandomSuggest, load_space, size_text

    sp = load_space(path)
    dims = sp.dimensions()
    suggest, end = RandomSuggest(seed + 1), time.monotonic() + PROBE_S
    probe = [sp.candidate(suggest)]
    while len(probe) < PROBE_MEMBERS and time.monotonic() < end:
        probe.append(sp.candidate(suggest))
    valid = sum(c.spec is not None for c in probe)
    fits = sum(c.rejected is None for c in probe)
    shown = sp.random_samples(samples, seed=seed)
    size = sp.size()
    if as_json:
        print(
            json.dumps(
                {
                    "name": sp.name,
                    "size": "inf" if size == math.inf else size if size < 10**1000 else size_text(size),
                    "dimensions": [d.__dict__ for d in dims],
                    "probed": len(probe),
                    "valid_fraction": valid / len(probe),
                    "within_constraints_fraction": fits / len(probe),
                    "samples": [
                        {
                            "params": c.sample.params,
                            "macs": c.costs.macs if c.costs else None,
                            "params_count": c.costs.params if c.costs else None,
                            "rejected": c.rejected,
                        }
                        for c in shown
                    ],
                },
                indent=2,
                default=str,
            )
        )
        return
    out.print(
        f"[bold]{escape(sp.name)}[/]: {len(dims)} dimensions, {size_text(size)} architectures",
        highlight=False,
    )
    table = Table(title="dimensions")
    for col in ("name", "kind", "options", "draws", "when"):
        table.add_column(col)
    for d in dims:
        draws = "1" if d.name.find(".blocks.*.") < 0 else f"per block ({d.blocks if d.blocks else 'depth'})"
        table.add_row(escape(d.name), d.kind, escape(d.domain), draws, escape(d.condition or ""))
    out.print(table)
    cut = f" ({PROBE_MEMBERS} would take over {PROBE_S:g} s)" if len(probe) < PROBE_MEMBERS else ""
    out.print(
        f"of {len(probe)} random members{cut}: {valid} valid shapes, {fits} within the constraints",
        highlight=False,
    )
    st = Table(title=f"{len(shown)} random members (seed {seed})")
    for col, justify in (("#", "right"), ("MACs", "right"), ("params", "right"), ("choices", "left")):
        st.add_column(col, justify=justify)  # type: ignore[arg-type]
    for i, c in enumerate(shown):
        choices = ", ".join(f"{k}={v}" for k, v in c.sample.params.items() if ".blocks." not in k)
        blocks = sum(".blocks." in k for k in c.sample.params)
        if blocks:
            choices += f" (+{blocks} per-block draws)"
        macs = f"{c.costs.macs / 1e6:,.1f}M" if c.costs else "-"
        params = f"{c.costs.params / 1e6:,.2f}M" if c.costs else "-"
        st.add_row(
            str(i),
            macs,
            params,
            escape(choices if c.rejected is None else f"{choices}\n[rejected] {c.rejected}"),
        )
    out.print(st)


class _RichProgress:
    """Trials done/total with ETA, the running trial, and the best so far."""

    def __init__(self, objectives: list[Any]):
        self.objectives = objectives
        self.bar = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=out,
        )
        self.status = Text("")
        self.best = Text("")
        self.live = Live(
            Group(self.bar, self.status, self.best), console=out, refresh_per_second=4, transient=False
        )
        self.task = self.bar.add_task("trials", total=1)
        self.current: dict[str, Any] = {}
        self.study: Any = None

    def __enter__(self) -> _RichProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def start(self, total: int, counts: TrialCounts, study: Any) -> None:
        self.study = study
        self.bar.update(self.task, total=total, completed=min(counts.evaluated, total))
        self._best(study, counts)

    def trial_started(self, number: int, params: dict[str, Any], costs: dict[str, float]) -> None:
        mixers = [str(v) for k, v in params.items() if k.endswith(".mixer")]
        what = "·".join(mixers) if mixers else f"{len(params)} choices"
        self.current = {"number": number, "what": what, "macs": costs.get("macs", 0)}
        self.status.plain = f"running trial {number}: {what}, {costs.get('macs', 0) / 1e6:.1f}M MACs"

    def epoch(self, number: int, epoch: int, accuracy: float) -> None:
        self.status.plain = (
            f"running trial {number}: {self.current.get('what', '')}, "
            f"{self.current.get('macs', 0) / 1e6:.1f}M MACs - epoch {epoch}: accuracy {accuracy:.3f}"
        )

    def trial_finished(self, trial: Any, counts: TrialCounts) -> None:
        evaluated = counts.evaluated
        self.bar.update(self.task, completed=min(evaluated, self.bar.tasks[0].total or evaluated))
        outcome = trial.user_attrs.get("outcome")
        if outcome != "complete":
            reason = trial.user_attrs.get("reason") or ""
            self.status.plain = f"trial {trial.number} {outcome}" + (f": {reason[:150]}" if reason else "")
        self._best(self.study, counts)

    def waiting(self, taken: int, budget: int) -> None:
        self.status.plain = f"waiting: the last {taken} of {budget} trials are running on other workers"

    def _best(self, study: Any, counts: TrialCounts) -> None:
        from ..search import outcome_of

        try:  # a duplicate is a copy of its original's values: never a member of its own
            best = [t for t in study.best_trials if outcome_of(t) == "complete"]
        except Exception:
            best = []
        if best:
            names = [o.metric for o in self.objectives]
            top = max(best, key=lambda t: t.values[0] * (1 if self.objectives[0].sense == "maximize" else -1))
            values = ", ".join(f"{n} {_fmt(n, v)}" for n, v in zip(names, top.values, strict=True))
            self.best.plain = f"best so far ({counts.front} on the front): trial {top.number}: {values}"


def _fmt(metric: str, value: float) -> str:
    if metric == "accuracy":
        return f"{value:.4f}"
    if metric in ("macs", "params"):
        return f"{value / 1e6:,.2f}M"
    return f"{value:.3g}"


def _front_table(study: Any, objectives: list[Any]) -> Table:
    from ..search import trials_table

    best = {t.number for t in study.best_trials} if study.get_trials(deepcopy=False) else set()
    frame = trials_table(study)
    frame = frame[frame["trial"].isin(best) & (frame["outcome"] == "complete")]
    metric_names = [o.metric for o in objectives]
    table = Table(title=f"Pareto front ({len(frame)} trials)")
    for col in ("trial", *metric_names, "mixers"):
        table.add_column(col, justify="left" if col == "mixers" else "right")
    frame = frame.sort_values(metric_names[0], ascending=objectives[0].sense == "minimize")
    for _, row in frame.iterrows():
        table.add_row(
            str(row["trial"]), *[_fmt(m, row[m]) for m in metric_names], escape(_mixers(row["spec"]))
        )
    return table


def _mixers(spec_json: Any) -> str:
    try:
        stages = json.loads(spec_json)["stages"]
    except (TypeError, ValueError, KeyError):
        return ""
    kinds = [
        s.get("mixer") if isinstance(s.get("mixer"), str) else s.get("mixer", {}).get("kind") for s in stages
    ]
    return "·".join(str(k) for k in kinds)


@app.command()
@friendly
def search(
    experiment: Annotated[str, typer.Argument(help="An experiment YAML file (see experiments/).")],
    trials: Annotated[int | None, typer.Option("--trials", "-n", help="Override the trial budget.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Only continue an existing study (error if none).")
    ] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Move the old study file aside and start over.")
    ] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the report at the end.")] = True,
) -> None:
    """Run a search; re-running the same experiment resumes it (completed trials are kept)."""
    from ..search import load_experiment, mask_url, run_search

    if resume and fresh:
        err.print("[bold red]error:[/] --resume and --fresh contradict each other")
        raise typer.Exit(2)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp = load_experiment(experiment)
    out.print(
        f"[bold]{escape(exp.study_name)}[/]: {len(exp.objectives)} objective(s) "
        f"({', '.join(f'{o.metric} {o.sense}' for o in exp.objectives)}), "
        f"storage {escape(mask_url(exp.storage_url))}",
        highlight=False,
    )
    start = time.perf_counter()
    with _RichProgress(list(exp.objectives)) as progress:
        summary = run_search(exp, trials=trials, fresh=fresh, resume_only=resume, progress=progress)
    out.print()
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(summary.outcomes.items())) or "nothing new"
    out.print(f"the study: {summary.counts.line()}", highlight=False)
    out.print(
        f"this run: {outcomes} "
        f"in {time.perf_counter() - start:.0f} s "
        f"(time outside evaluation {100 * summary.overhead_fraction:.1f}%)",
        highlight=False,
    )
    out.print(_front_table(summary.study, list(exp.objectives)))
    if report:
        _write_report(summary)
    if summary.interrupted:
        err.print("interrupted: completed trials are stored; run the same command again to resume")
        raise typer.Exit(130)


class _LineProgress:
    """One plain line per event, each naming the worker: several workers share a terminal or a log."""

    def __init__(self, worker: str):
        self.worker = worker
        self.total = 0

    def _say(self, text: str) -> None:
        print(f"[{self.worker}] {text}", flush=True)

    def start(self, total: int, counts: TrialCounts, study: Any) -> None:
        self.total = total
        self._say(f"study {study.study_name}: {min(counts.evaluated, total)}/{total} evaluated")

    def trial_started(self, number: int, params: dict[str, Any], costs: dict[str, float]) -> None:
        self._say(f"trial {number} started: {costs.get('macs', 0) / 1e6:.1f}M MACs")

    def epoch(self, number: int, epoch: int, accuracy: float) -> None:
        pass

    def trial_finished(self, trial: Any, counts: TrialCounts) -> None:
        outcome = trial.user_attrs.get("outcome")
        values = ", ".join(f"{v:.4g}" for v in trial.values) if trial.values else ""
        reason = trial.user_attrs.get("reason") or ""
        detail = f" [{values}]" if values else (f": {reason[:150]}" if reason else "")
        self._say(f"trial {trial.number} {outcome}{detail} ({counts.evaluated}/{self.total} evaluated)")

    def waiting(self, taken: int, budget: int) -> None:
        self._say(f"waiting: the last {taken} of {budget} trials are running on other workers")


@app.command()
@friendly
def worker(
    experiment: Annotated[str, typer.Argument(help="An experiment YAML file (see experiments/).")],
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="The study's PostgreSQL URL, postgresql://user@host:port/db (default: backend.storage).",
        ),
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="Override the study's trial budget.")
    ] = None,
    heartbeat: Annotated[
        int, typer.Option("--heartbeat", min=1, help="Seconds between a running trial's heartbeats.")
    ] = 10,
    grace: Annotated[
        int,
        typer.Option(
            "--grace", min=2, help="Seconds without a heartbeat before a trial is failed and retried."
        ),
    ] = 60,
    max_retry: Annotated[
        int, typer.Option("--max-retry", min=0, help="Retries of one interrupted architecture.")
    ] = 3,
) -> None:
    """Evaluate trials of a study that other workers share (on PostgreSQL) until its budget is met."""
    import optuna

    from ..search import Heartbeats, SharedStudy, is_shared, load_experiment, mask_url, run_search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp = load_experiment(experiment)
    if storage is not None:
        file = exp._file
        exp = exp.model_copy(update={"backend": exp.backend.model_copy(update={"storage": storage})})
        exp._file = file
    if not is_shared(exp.storage_url):
        err.print(
            f"[bold red]error:[/] workers share a study on PostgreSQL: give --storage postgresql://... "
            f"(the experiment's storage is {escape(mask_url(exp.storage_url))}; "
            "for one process, use archsearch search)",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    try:
        beats = Heartbeats(heartbeat, grace, max_retry)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    progress = _LineProgress(SharedStudy.worker_name())
    summary = run_search(exp, trials=trials, progress=progress, heartbeats=beats)
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(summary.outcomes.items())) or "nothing"
    progress._say(
        f"done: the study: {summary.counts.line()}; this worker: {outcomes} in {summary.seconds:.0f} s"
    )
    if summary.interrupted:
        err.print("interrupted: this worker's trial is queued again for the other workers")
        raise typer.Exit(130)


def _write_report(summary: Any) -> None:
    from ..report import write_report
    from ..search import load_results

    path = summary.experiment.report_path
    write_report(load_results(summary.study), path)
    out.print(f"report: {escape(str(path / 'index.html'))}", highlight=False)


@app.command(name="trials")
@friendly
def trials_(
    source: SourceArg,
    csv: Annotated[
        str | None, typer.Option("--csv", help="Write every trial and column to this CSV file.")
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="The study, where the storage holds several.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows to print (the last ones).")] = 50,
) -> None:
    """List the trials of a study (through pandas): outcome, metrics, reason."""
    from ..search import count_trials, load_study, trials_table

    loaded = load_study(source, study)
    frame = trials_table(loaded)
    directions = [d.name.lower() for d in loaded.directions]
    counts = count_trials(loaded.get_trials(deepcopy=False), directions)
    if csv:
        frame.to_csv(csv, index=False)
        out.print(f"wrote {len(frame)} trials to {escape(csv)}", highlight=False)
    metrics = [
        m
        for m in ("accuracy", "macs", "params", "latency_ms", "synflow", "naswot", "grad_norm")
        if m in frame and frame[m].notna().any()
    ]
    table = Table(title=f"{len(frame)} trials: {counts.line()}")
    for col in ("trial", "outcome", *metrics, "mixers", "reason"):
        table.add_column(col, justify="right" if col in metrics or col == "trial" else "left")
    for _, row in frame.tail(limit).iterrows():
        cells = ["" if _missing(row[m]) else _fmt(m, float(row[m])) for m in metrics]
        reason = row["reason"] if isinstance(row["reason"], str) else ""
        table.add_row(
            str(row["trial"]), str(row["outcome"]), *cells, escape(_mixers(row["spec"])), escape(reason[:120])
        )
    out.print(table)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
