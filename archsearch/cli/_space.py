"""CLI command ``space``: a search space's dimensions, its size, the share of valid members and
a few random members with their costs (registered on the app)."""

from __future__ import annotations

import json
import math
import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ._app import app, err, friendly, out
from ._progress import millions

#: ``archsearch space`` probes up to PROBE_MEMBERS random members for the share of valid ones, for
#: at most PROBE_S seconds: a space of thousands of blocks probes fewer rather than taking minutes.
PROBE_MEMBERS = 200
PROBE_S = 1.5
#: The most random members ``archsearch space -n`` shows (each is normalised and costed).
MAX_SAMPLES = 10_000


@app.command()
@friendly
def space(
    path: Annotated[str, typer.Argument(help="A search-space YAML file.")],
    samples: Annotated[
        int, typer.Option("--samples", "-n", min=0, max=MAX_SAMPLES, help="Random members to show.")
    ] = 5,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the random members.")] = 0,
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
    if not fits:  # a search would reject every candidate it draws, then stop with an error
        what = "has valid shapes" if not valid else "is within the constraints"
        err.print(
            f"[bold yellow]warning:[/] {escape(path)}: none of {len(probe)} random members {what}: a "
            "search of this space would reject every candidate (each member's rejection says why)",
            highlight=False,
            soft_wrap=True,
        )
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
        macs = millions(c.costs.macs, 1) if c.costs else "-"
        params = millions(c.costs.params) if c.costs else "-"
        st.add_row(
            str(i),
            macs,
            params,
            escape(choices if c.rejected is None else f"{choices}\n[rejected] {c.rejected}"),
        )
    out.print(st)
