"""``archsearch latency-table``: time every piece a space's members use, into a shareable table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ._app import JsonOpt, ResolutionOpt, app, err, friendly, out, refuse_device, refuse_output

__all__ = ["latency_table"]


@app.command(name="latency-table")
@friendly
def latency_table(
    space: Annotated[str, typer.Argument(help="A search-space YAML file.")],
    device: Annotated[str, typer.Option("--device", "-d", help="cpu, cuda or cuda:N.")] = "cpu",
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, help="Batch size timed.")] = 1,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default: torch's setting).")
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    out_file: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="The table file (default: one per device setting in the cache)."),
    ] = None,
    resolution: ResolutionOpt = None,
    num_classes: Annotated[
        int | None,
        typer.Option(
            "--num-classes", min=1, help="Override the classes (as an experiment's data sets them)."
        ),
    ] = None,
    members: Annotated[
        int,
        typer.Option(
            min=0,
            help="Whole members that hosted no piece's timing, timed after the pieces for the overhead "
            "fit and kept as calibration anchors (the table's total).",
        ),
    ] = 48,
    samples: Annotated[
        int, typer.Option(min=0, help="Random members added to the stage-wise enumeration.")
    ] = 100,
    runs: Annotated[
        int,
        typer.Option(
            min=4, help="Timed runs per piece after warm-up (a new table's; a resumed one keeps its own)."
        ),
    ] = 30,
    warmup: Annotated[
        int,
        typer.Option(
            min=0, help="Untimed warm-up runs per piece (a new table's; a resumed one keeps its own)."
        ),
    ] = 10,
    rounds: Annotated[
        int,
        typer.Option(
            min=1,
            help="Interleaved rounds the runs are spread over (members timed together, in turn; "
            "a new table's).",
        ),
    ] = 10,
    alone: Annotated[
        bool,
        typer.Option("--alone", help="Time each piece built alone instead of in place inside whole members."),
    ] = False,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Then time the table's calibration anchors again (up to eight of its whole members, as "
            "many as 2 s of forward passes allow, at least three; its reference model where it has "
            "none) and show how fast the machine runs now against when the table was timed (the factor "
            "predictions are scaled by).",
        ),
    ] = False,
    statistic: Annotated[
        str,
        typer.Option(
            help="Which statistic of each timing's runs the table holds and predicts: median, min, p10, p25, "
            "fastest_quarter or mean. An existing table of another statistic is refused; without --out each "
            "statistic has its own file."
        ),
    ] = "fastest_quarter",  # archsearch.cost.DEFAULT_STATISTIC (torch is not imported before a command runs)
    as_json: JsonOpt = False,
) -> None:
    """Time every distinct piece (stem, stage entry, block, head at its input shape) that members of
    SPACE use, on this device, into a latency table: in place, inside whole members that together
    use them all (or each alone with --alone). Re-running skips what is measured (resumable), and
    a table from another device or setting is refused. Share the file: the same device setting
    predicts with it (`latency_ms: {predict: true, table: FILE}` in an experiment). A small fixed
    reference model is timed in the same rounds. Then --members whole members that hosted no piece
    are timed: the correction of the sum of pieces is fitted on them (a scale, terms per piece kind),
    and eight of them (the fastest, the slowest, six between) become calibration anchors: predicting
    re-times the anchors (the reference where there are none) to scale predictions to the
    machine's speed now by their median ratio (a search does it at its start; --calibrate shows it
    now)."""

    from ..cost import STATISTICS, Fingerprint, LatencyPredictor, LatencyTable, heap_left_alone, heap_mode
    from ..space import fill_table, load_space

    refuse_device(device)
    if dtype not in ("float32", "bfloat16", "float16"):
        err.print(f"[bold red]error:[/] --dtype {escape(dtype)}: allowed: float32, bfloat16, float16")
        raise typer.Exit(2)
    if statistic not in STATISTICS:
        err.print(f"[bold red]error:[/] --statistic {escape(statistic)}: allowed: {', '.join(STATISTICS)}")
        raise typer.Exit(2)
    overrides: dict[str, Any] = {"input_size": resolution} if resolution else {}
    if num_classes:
        overrides["num_classes"] = num_classes
    loaded = load_space(space, **overrides)
    fingerprint = Fingerprint.here(device, threads=threads, dtype=dtype, batch=batch)
    table = LatencyTable.open(out_file, fingerprint, statistic)
    if table.path is not None:  # before any timing: the table is saved after each step
        refuse_output("--out" if out_file is not None else "the table's cache file", table.path)
    if not table.pieces:
        table.harness = {"warmup": warmup, "runs": runs, "rounds": rounds}
        table.heap = heap_mode()  # what its entries will be timed on (an empty older file had none)
    predictor = LatencyPredictor(table)
    if not as_json:
        err.print(
            f"latency table {escape(str(table.path))}: {escape(fingerprint.describe())}", highlight=False
        )
        if table.pieces and table.heap != heap_mode():
            then = (
                "on glibc's default heap (before 2026-12-01)"
                if table.heap is None
                else f"on a {table.heap} heap"
            )
            err.print(
                f"[yellow]note:[/] this table's entries were timed {escape(then)}, and timings now run on a "
                f"{heap_mode()} heap (README, 'A steady heap'): what this run adds will not match them; "
                "fill a new table (--out NEW.json) for predictions that rank members as measured",
                highlight=False,
            )
        if (why := heap_left_alone()) is not None:
            err.print(
                f"[yellow]note:[/] timing on the C heap as it is, not held steady ({escape(why)}; README, "
                "'A steady heap'): a member's time may vary with what ran before it",
                highlight=False,
            )
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=not err.is_terminal,
        disable=not err.is_terminal,
    )
    with bar:
        find = bar.add_task("finding pieces (members normalised)", total=None)
        timed = bar.add_task("timing pieces", total=None, visible=False)
        whole = bar.add_task("timing whole members", total=None, visible=False)

        reached = {"pieces": (0, -1), "members": (0, -1)}  # (done, total) for a Ctrl-C's message

        def found(n: int) -> None:
            bar.update(find, completed=n)

        def piece(done: int, total: int) -> None:
            reached["pieces"] = (done, total)
            bar.update(find, visible=False)
            bar.update(timed, completed=done, total=total, visible=True)

        def member(done: int, total: int) -> None:
            reached["members"] = (done, total)
            bar.update(whole, completed=done, total=total, visible=True)

        try:
            counts = fill_table(
                loaded,
                predictor,
                members=members,
                samples=samples,
                in_situ=not alone,
                on_found=found,
                on_piece=piece,
                on_member=member,
            )
        except KeyboardInterrupt:
            bar.stop()
            _interrupted(table, reached)
    calibration = predictor.calibrate() if calibrate else None
    o = predictor.overhead
    summary = {
        "table": str(table.path),
        "fingerprint": fingerprint.describe(),
        "heap": table.heap,
        **counts,
        "table_pieces": len(table),
        "overhead": o.as_dict(),
        "reference": table.reference,
        "calibration": calibration.to_dict() if calibration is not None else None,
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    out.print(
        f"{counts['pieces']} pieces in {escape(loaded.name)}: {counts['measured']} timed"
        + (f" (in place, inside {counts['hosts']} members)" if counts["hosts"] else "")
        + f", {counts['skipped']} already in the table; {counts['members']} more whole members timed "
        "(non-hosts); "
        f"the table holds {len(table)} pieces",
        highlight=False,
    )
    out.print(f"overhead: {escape(o.describe())}", highlight=False)
    if table.reference is not None:
        out.print(
            f"calibration reference: {table.reference['ms']:.3f} ms in the table's time", highlight=False
        )
    if calibration is not None:
        out.print(f"calibration now: {calibration.describe()}", highlight=False)
    out.print(f"written to {escape(str(table.path))}", highlight=False)


def _interrupted(table: Any, reached: dict[str, tuple[int, int]]) -> None:
    """Ctrl-C while filling: say what the file holds (saved after each step) and that re-running
    resumes it; exit status 130."""
    (pieces, of_pieces), (whole, of_whole) = reached["pieces"], reached["members"]
    if of_whole >= 0:
        where = f"all pieces timed, {whole} of {of_whole} whole members for the overhead fit"
    elif of_pieces >= 0:
        where = f"{pieces} of {of_pieces} pieces timed this run"
    else:
        where = "interrupted while finding the pieces, none timed this run"
    from ..cost import LatencyTable

    path = table.path
    if path is None or not path.is_file():
        err.print(f"interrupted: {where}; nothing was saved (no {escape(str(path))})", highlight=False)
        raise typer.Exit(130)
    saved = len(LatencyTable.load(path))  # what the file holds: saved after each step
    err.print(
        f"interrupted: the partial table ({where}; {saved} pieces in the file) was saved to "
        f"{escape(str(path))}; re-running the same command resumes it",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(130)
