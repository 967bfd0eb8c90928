"""``archsearch train``: full training of one architecture (a spec, a zoo name or a report's
winner), on one device or under ``torchrun``, with checkpoints and ``--resume``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ._app import ClassesOpt, JsonOpt, ResolutionOpt, SpecArg, app, err, friendly, out

__all__: list[str] = []


@app.command(name="train")
@friendly
def train(
    spec: SpecArg,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="KEY=VALUE changes to the training config: epochs=100, mixup.prob=0.5, "
            "ema.decay=0.999, data.kind=cifar10 data.root=/data/cifar, precision=bf16."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="A training YAML (see `archsearch.train.FullTrainConfig`)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default: runs/train/<spec name>).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue from the run folder's checkpoint.pt (without one: start)."),
    ] = False,
    stop_after: Annotated[
        int | None,
        typer.Option("--stop-after", min=1, help="End this run after N epochs in all (resume later)."),
    ] = None,
    resolution: ResolutionOpt = None,
    num_classes: ClassesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train one architecture fully: AdamW, warm-up + cosine, label smoothing, optional mixup/CutMix
    and weight EMA, a checkpoint per epoch. Writes <out>/log.csv, result.json, spec.yaml and
    model.safetensors (model-ema.safetensors with EMA), which
    `archsearch.create_model("<out>/spec.yaml", weights="<out>/model.safetensors")` loads.
    Several GPUs: `torchrun --nproc_per_node 8 -m archsearch.cli train SPEC ...`."""
    from ..errors import ExportError
    from ..evaluate import TrainingDiverged
    from ..spec import load_spec
    from ..train import WARMUP_STEPS, TrainError, load_train_config, train_architecture

    settings = load_train_config(config, list(overrides or []))
    changes: dict[str, Any] = {}
    if resolution is not None:
        changes["input_size"] = resolution
    if num_classes is not None:
        changes["num_classes"] = num_classes
    name = str(load_spec(spec, **changes).name or "model")
    folder = output if output is not None else Path("runs") / "train" / name
    rank = int(os.environ.get("RANK", "0"))

    def speed(row: dict[str, Any]) -> str:
        """``3012 images/s; warm-up 41.2 s (the first 3 steps: compilation...)``: the steady rate,
        apart from the first steps of a process's first epoch (the rate of the whole epoch where
        it has no other steps)."""
        steady, warmup = row.get("steady_images_per_second"), row.get("warmup_seconds") or 0.0
        rate = f"{steady:.0f} images/s" if steady is not None else f"{row['images_per_second']:.0f} images/s"
        if not warmup:
            return rate
        what = "compilation and warm-up" if settings.compile else "warm-up"
        took = f"{warmup:.1f} s" if warmup >= 0.1 else f"{warmup * 1000:.0f} ms"
        return f"{rate} after {took} of {what} in the first {WARMUP_STEPS} steps"

    def epoch(row: dict[str, Any]) -> None:
        if rank == 0 and not as_json:
            ema = f", EMA {row['ema_accuracy']:.4f}" if row["ema_accuracy"] is not None else ""
            out.print(
                f"epoch {row['epoch']}/{settings.epochs}: loss {row['train_loss']:.4f}, "
                f"accuracy {row['accuracy']:.4f}{ema} ({speed(row)})",
                highlight=False,
            )

    try:
        result = train_architecture(
            spec, settings, folder, resume=resume, stop_after=stop_after, on_epoch=epoch, **changes
        )
    except (TrainError, TrainingDiverged, ExportError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if rank != 0:
        return
    if as_json:
        print(json.dumps(asdict(result), indent=2))
        return
    ema = f", EMA {result.ema_accuracy:.4f}" if result.ema_accuracy is not None else ""
    out.print(
        f"{name}: accuracy {result.accuracy:.4f}{ema} after {result.epochs} epochs "
        f"({result.steps} steps, {result.seconds:.0f} s, {result.world} process(es))",
        highlight=False,
    )
    if result.weights is not None:
        out.print(f"wrote {result.weights}" + (f" and {result.ema_weights}" if result.ema_weights else ""))
    else:
        out.print(f"stopped after epoch {result.epochs} of {settings.epochs}: continue with --resume")
    out.print(f"log: {folder / 'log.csv'}", highlight=False)
