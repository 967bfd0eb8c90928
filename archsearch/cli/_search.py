"""CLI commands of the search engine: ``search``, ``worker``, ``trials`` (registered on
the app)."""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core import MAX_TRIALS
from ..errors import Issue, SpecError
from ._app import app, err, friendly, out, shown, warnings_as_lines
from ._progress import BarProgress, LineProgress, fmt

SourceArg = Annotated[str, typer.Argument(help="An experiment YAML, a storage URL, or a .db / journal file.")]


def _front(study: Any, objectives: list[Any]) -> list[dict[str, Any]]:
    """The Pareto front's complete trials (never duplicates), best first on the first objective:
    ``{"trial", <metric>: value, ..., "mixers"}``."""
    from ..search import trials_table

    best = {t.number for t in study.best_trials} if study.get_trials(deepcopy=False) else set()
    frame = trials_table(study)
    frame = frame[frame["trial"].isin(best) & (frame["outcome"] == "complete")]
    metrics = [o.metric for o in objectives]
    frame = frame.sort_values(metrics[0], ascending=objectives[0].sense == "minimize")
    return [
        {"trial": int(row["trial"]), **{m: float(row[m]) for m in metrics}, "mixers": _mixers(row["spec"])}
        for _, row in frame.iterrows()
    ]


def _front_table(rows: list[dict[str, Any]], objectives: list[Any]) -> Table:
    metrics = [o.metric for o in objectives]
    table = Table(title=f"Pareto front ({len(rows)} trial{'' if len(rows) == 1 else 's'})")
    for col in ("trial", *metrics, "mixers"):
        table.add_column(col, justify="left" if col == "mixers" else "right")
    for row in rows:
        table.add_row(str(row["trial"]), *[fmt(m, row[m]) for m in metrics], escape(row["mixers"]))
    return table


def _mixers(spec_json: Any) -> str:
    from ..report import mixer_label  # the report's own label ("" where it has none)

    label = mixer_label(spec_json)
    return "" if label in ("—", "?") else label


def _describe(exp: Any, console: Console) -> None:
    """The experiment's name, objectives and resolved places, before the search starts."""
    from ..search import mask_url

    console.print(
        f"[bold]{escape(exp.study_name)}[/]: {len(exp.objectives)} objective(s) "
        f"({', '.join(f'{o.metric} {o.sense}' for o in exp.objectives)})",
        highlight=False,
    )
    for key, value in exp.paths().items():
        console.print(f"  {key:<10} {escape(mask_url(value))}", highlight=False, soft_wrap=True)


def _progress(exp: Any, console: Console, prefix: str | None = None) -> BarProgress | LineProgress:
    """A live bar on a terminal, plain lines otherwise (a log, a pipe, CI)."""
    objectives = list(exp.objectives)
    if console.is_terminal and prefix is None:
        return BarProgress(objectives, console)
    return LineProgress(objectives, console, prefix)


def _extend_hint(experiment: str, overrides: list[str], summary: Any) -> str:
    kept = [o for o in overrides if not o.lstrip("+").startswith("trials=")]
    command = " ".join(["archsearch search", experiment, *kept, "trials={}"])
    return summary.nothing_run_reason(command)


OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Overrides of the experiment, KEY=VALUE with a YAML value: evaluator.epochs=2 "
        "sampler.seed=3 trials=40 objectives.0.direction=max (~KEY removes a key).",
        show_default=False,
    ),
]


AllowChangedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-changed-evaluator",
        help="Resume a study whose evaluator settings (epochs, lr, ...) differ from the stored ones, "
        "mixing accuracies that are not comparable (refused without it).",
    ),
]


@app.command()
@friendly
def search(
    experiment: Annotated[str, typer.Argument(help="An experiment YAML file (see experiments/).")],
    overrides: OverridesArg = None,
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", min=1, max=MAX_TRIALS, help="Override the trial budget.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Only continue an existing study (error if none).")
    ] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Move the old study file aside and start over.")
    ] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the report at the end.")] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the closing summary as JSON (progress goes to stderr).")
    ] = False,
    allow_changed_evaluator: AllowChangedOpt = False,
) -> None:
    """Run a search; re-running the same experiment resumes it (completed trials are kept).

    Relative paths in the experiment are read from its folder, so the same study is found from
    any directory; the resolved paths are printed first."""
    from ..search import NothingRun, check_devices, load_experiment, run_search

    if resume and fresh:
        err.print(
            "[bold red]error:[/] --resume and --fresh contradict each other: --resume only continues the "
            "existing study, --fresh moves it aside and starts over; allowed: one of them, or neither "
            "(continue the study when there is one, else start it)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    overrides = list(overrides or [])
    exp = load_experiment(experiment, overrides)
    exp.check_files()  # a missing space file or data root is one error, before anything is printed
    check_devices(exp)  # so is a device this machine lacks (latency on CUDA without CUDA)
    if report:
        exp.check_report()  # a report folder that is a file: refused before the search, not after
    console = err if as_json else out
    _describe(exp, console)
    start = time.perf_counter()
    with _progress(exp, console) as progress, warnings_as_lines():
        warnings.simplefilter("ignore", NothingRun)  # said below, with the command to run
        summary = run_search(
            exp,
            trials=trials,
            fresh=fresh,
            resume_only=resume,
            progress=progress,
            allow_changed_evaluator=allow_changed_evaluator,
        )
    budget = trials or exp.trials
    seconds = time.perf_counter() - start
    front = _front(summary.study, list(exp.objectives))
    nothing = summary.nothing_run
    if as_json:
        written = _write_report(summary) if report else None
        print(
            json.dumps(
                {
                    "study": exp.study_name,
                    "paths": exp.paths(),
                    "budget": budget,
                    "counts": summary.counts.as_dict(),
                    "this_run": dict(sorted(summary.outcomes.items())),
                    "seconds": round(seconds, 3),
                    "overhead_fraction": round(summary.overhead_fraction, 4),
                    "interrupted": summary.interrupted,
                    "front": front,
                    "latency_calibration": summary.latency_calibration,
                    "report": str(written) if written else None,
                },
                indent=2,
            )
        )
    else:
        out.print()
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(summary.outcomes.items())) or "nothing new"
        out.print(f"the study: {summary.counts.line()}", highlight=False)
        out.print(
            f"this run: {outcomes} in {seconds:.0f} s "
            f"(time outside evaluation {100 * summary.overhead_fraction:.1f}%)",
            highlight=False,
        )
        if summary.latency_calibration is not None:
            out.print(f"predicted latency: {_calibration_line(summary.latency_calibration)}", highlight=False)
        out.print(_front_table(front, list(exp.objectives)))
        if report:
            out.print(f"report: {escape(shown(_write_report(summary)))}", highlight=False)
    if nothing:
        console.print(escape(_extend_hint(experiment, overrides, summary)), highlight=False, soft_wrap=True)
    if summary.interrupted:
        err.print(
            f"stopped by {summary.stopped_by}: completed trials are stored; "
            "run the same command again to resume"
        )
        raise typer.Exit(_exit_status(summary.stopped_by))


@app.command()
@friendly
def worker(
    experiment: Annotated[str, typer.Argument(help="An experiment YAML file (see experiments/).")],
    overrides: OverridesArg = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="The study's PostgreSQL URL, postgresql://user@host:port/db (default: backend.storage).",
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option("--trials", "-n", min=1, max=MAX_TRIALS, help="Override the study's trial budget."),
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
    allow_changed_evaluator: AllowChangedOpt = False,
) -> None:
    """Evaluate trials of a study that other workers share (on PostgreSQL) until its budget is met."""
    import optuna

    from ..search import Heartbeats, SharedStudy, is_shared, load_experiment, mask_url, run_search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp = load_experiment(experiment, list(overrides or []))
    if storage is not None:
        exp = exp.model_copy(update={"backend": exp.backend.model_copy(update={"storage": storage})})
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
    progress = LineProgress(list(exp.objectives), out, SharedStudy.worker_name())
    with warnings_as_lines():
        summary = run_search(
            exp,
            trials=trials,
            progress=progress,
            heartbeats=beats,
            allow_changed_evaluator=allow_changed_evaluator,
        )
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(summary.outcomes.items())) or "nothing"
    progress.say(
        f"done: the study: {summary.counts.line()}; this worker: {outcomes} in {summary.seconds:.0f} s"
    )
    if summary.interrupted:
        err.print(
            f"stopped by {summary.stopped_by}: this worker's trial is queued again for the other workers"
        )
        raise typer.Exit(_exit_status(summary.stopped_by))


def _exit_status(stopped_by: str) -> int:
    """The shell's status of a run stopped by a signal: 128 + SIGINT (130) or SIGTERM (143)."""
    return 143 if stopped_by == "SIGTERM" else 130


def _write_report(summary: Any) -> Path:
    from ..report import write_report
    from ..search import load_results

    path = summary.experiment.report_path
    write_report(load_results(summary.study), path, space=summary.space)
    return Path(path) / "index.html"


SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a value of the experiment, KEY=VALUE (repeatable), as `archsearch search` takes them.",
        show_default=False,
    ),
]


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
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Rows to print (the last ones; 0: none, only the counts).")
    ] = 50,
    sets: SetOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the study's counts and every trial as JSON.")
    ] = False,
) -> None:
    """List the trials of a study (through pandas): outcome, metrics, reason."""
    from ..search import count_trials, load_experiment, load_study, trials_table

    if csv:
        _check_csv(csv)  # the arguments first: nothing is read for a bad one
    target: Any = source
    if Path(source).suffix in (".yaml", ".yml"):
        target = load_experiment(source, list(sets or []))
    loaded = load_study(target, study)
    frame = trials_table(loaded)
    directions = [d.name.lower() for d in loaded.directions]
    counts = count_trials(loaded.get_trials(deepcopy=False), directions)
    if csv:
        try:
            frame.to_csv(csv, index=False)
        except OSError as exc:
            raise _csv_error(csv, exc.strerror or str(exc)) from None
        (err if as_json else out).print(f"wrote {len(frame)} trials to {escape(csv)}", highlight=False)
    if as_json:
        rows = json.loads(frame.to_json(orient="records"))
        print(json.dumps({"study": loaded.study_name, "counts": counts.as_dict(), "trials": rows}, indent=2))
        return
    if not isinstance(target, str):
        out.print(
            f"study {escape(loaded.study_name)} in {escape(target.paths()['storage'])}", highlight=False
        )
    metrics = [
        m
        for m in (
            "accuracy",
            "retrained_accuracy",
            "macs",
            "params",
            "latency_ms",
            "synflow",
            "naswot",
            "grad_norm",
        )
        if m in frame and frame[m].notna().any()
    ]
    left = _left_running(target, loaded.study_name) if counts.running else None
    if limit == 0:  # only the counts (README), no empty table under them
        out.print(f"{len(frame)} trials: {counts.line()}", highlight=False, soft_wrap=True)
        if left:
            out.print(left, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"{len(frame)} trials: {counts.line()}")
    for col in ("trial", "outcome", *metrics, "mixers", "reason"):
        table.add_column(col, justify="right" if col in metrics or col == "trial" else "left")
    for _, row in frame.tail(limit).iterrows():
        cells = ["" if _missing(row[m]) else fmt(m, float(row[m])) for m in metrics]
        reason = row["reason"] if isinstance(row["reason"], str) else ""
        table.add_row(
            str(row["trial"]), str(row["outcome"]), *cells, escape(_mixers(row["spec"])), escape(reason[:120])
        )
    out.print(table)
    if left:
        out.print(left, highlight=False, soft_wrap=True)


def _left_running(target: Any, study_name: str) -> str | None:
    """A note on RUNNING trials of an experiment's file storage that no live run holds (a run
    stopped by ``kill -9`` or a crash left them); ``None`` while a run holds the study, for a
    database server, or for a storage given by path (no experiment names its lock)."""
    from ..search import StudyLock

    file = getattr(target, "storage_file", None)
    if file is None or StudyLock(file, study_name).held():
        return None
    return (
        "note: no run holds this study now, so its running trials were left by a run that stopped; "
        "the next `archsearch search` of the experiment fails them as interrupted and retries them"
    )


def _check_csv(csv: str) -> None:
    """Refuse a ``--csv`` path that cannot be written: a folder, or a file in a missing folder."""
    path = Path(csv)
    if path.is_dir():
        raise _csv_error(csv, "is a folder")
    if not path.parent.is_dir():
        raise _csv_error(csv, f"its folder {path.parent} does not exist")


def _csv_error(csv: str, why: str) -> SpecError:
    return SpecError(
        Issue(
            (),
            f"cannot write {csv}: {why}",
            file="--csv",
            value=csv,
            allowed="a file path in an existing folder",
        )
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _calibration_line(calibration: dict[str, Any]) -> str:
    """``calibrated x1.025 (measured at this start): median ratio of 8 table members' times now /
    in the table (0.962-1.107)``: the factor and the figures it comes from
    (:meth:`archsearch.cost.Calibration.figures`)."""
    from ..cost import Calibration  # a search ran: torch is imported already

    if calibration.get("adopted"):
        return "the latency table had no calibration reference: timed now and kept; predictions not scaled"
    reused = calibration.get("reused")
    when = "kept from the study's first start" if reused else "measured at this start"
    figures = Calibration.figures(calibration, "then" if reused else "now")
    return f"calibrated x{calibration['factor']:.3f} ({when}): {figures}"
