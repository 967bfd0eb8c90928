"""``archsearch export``: a spec or a report's winner as ONNX, TorchScript or safetensors, self-checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import ExportError
from ._app import ClassesOpt, JsonOpt, ResolutionOpt, SpecArg, app, err, friendly, out
from ._steps import steps

__all__: list[str] = []


@app.command(name="export")
@friendly
def export_(
    spec: SpecArg,
    format: Annotated[str, typer.Option("--format", "-f", help="onnx, torchscript or safetensors.")] = "onnx",
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            "-w",
            help="Weights to export: a .safetensors file or a state dict saved by torch.save "
            "(default: the seeded initialisation).",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="File or folder to write (default: NAME.onnx, NAME.torchscript.pt or "
            "NAME.safetensors here).",
        ),
    ] = None,
    resolution: ResolutionOpt = None,
    num_classes: ClassesOpt = None,
    batch: Annotated[
        int, typer.Option("--batch", "-b", min=1, help="Batch of the example input (the batch stays free).")
    ] = 1,
    tolerance: Annotated[
        float, typer.Option(min=0.0, help="Largest max abs difference from PyTorch's logits allowed.")
    ] = 1e-4,
    opset: Annotated[int | None, typer.Option(min=1, help="ONNX opset (default: the exporter's).")] = None,
    onnx_exporter: Annotated[
        str,
        typer.Option(
            "--onnx-exporter",
            help="legacy (TorchScript-based), dynamo (torch.export-based, needs onnxscript) or auto: "
            "legacy, falling back to dynamo.",
        ),
    ] = "auto",
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Skip running the file back against PyTorch.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Export a spec, a zoo model or a report's winner YAML as ONNX, TorchScript or safetensors, then
    run the file back (onnxruntime, torch.jit.load, or a fresh build loading the safetensors) and
    compare its outputs with the PyTorch model's: exit status 2 when they differ by more than the
    tolerance."""
    from ..deploy import export

    overrides: dict[str, int] = {}
    if resolution is not None:
        overrides["input_size"] = resolution
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    try:
        with steps(f"export {spec} as {format}") as step:
            result = export(
                spec,
                format,
                output,
                weights=weights,
                batch=batch,
                tolerance=tolerance,
                check=not no_check,
                opset=opset,
                onnx_exporter=onnx_exporter,
                progress=step,
                **overrides,
            )
    except ExportError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    c, h, w = result.input_shape
    size = "height, width" if result.other_size else f"{h}, {w}"  # dynamic_size: checked at two sizes
    graph = f"; input image (batch, {c}, {size}), output logits (batch, {result.num_classes})"
    graph = graph if result.format != "safetensors" else ""
    out.print(
        f"wrote {result.path} ({_size(result.bytes)}; {result.exporter}{graph})",
        highlight=False,
        soft_wrap=True,
    )
    if result.max_abs_diff is None:
        out.print("not checked (--no-check)", highlight=False)
        return
    batches = " and ".join(map(str, result.batches))
    if result.other_size:
        batches += f", and at a {result.other_size[0]}x{result.other_size[1]} input (dynamic_size)"
    out.print(
        f"check: {result.checked_with} reproduces PyTorch at batch {batches}: max abs diff "
        f"{result.max_abs_diff:.2g} (tolerance {result.tolerance:g})",
        highlight=False,
        soft_wrap=True,
    )


def _size(n: int) -> str:
    for factor, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} bytes"
