"""``archsearch supernet``: train an experiment's one-shot supernet on its own (also under
``torchrun``), before ``archsearch search`` scores its members."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import app, err, friendly


@app.command(name="supernet")
@friendly
def supernet(
    experiment: Annotated[str, typer.Argument(help="An experiment YAML with `evaluator: {kind: supernet}`.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="KEY=VALUE changes to the experiment, as for `search`.")
    ] = None,
) -> None:
    """Train (or resume) the experiment's weight-sharing supernet into <run_dir>/supernet.pt.

    `archsearch search` does this itself; run it alone to train on several GPUs:
    `torchrun --nproc_per_node 8 -m archsearch.cli supernet experiments/cvt13_nas_oneshot.yaml`
    (every rank on the same path each step), then `archsearch search` the same experiment."""
    from ..evaluate import SupernetConfig
    from ..search import OneShot, load_experiment, prepare_experiment

    loaded = load_experiment(experiment, list(overrides or []))
    if not isinstance(loaded.evaluator, SupernetConfig):
        err.print(f"error: {experiment}: the evaluator is {loaded.evaluator.kind!r}, not 'supernet'")
        raise typer.Exit(2)
    loaded.check_files()
    _, dataset = prepare_experiment(loaded)
    OneShot(loaded, dataset).train()
