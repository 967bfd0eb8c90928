"""Commands on specs and studies' reports: ``validate``, ``compile``, ``zoo``, ``profile``,
``schema``, ``report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..spec import NormalizedSpec, Spec, load_spec, normalize, zoo_names
from ._app import ClassesOpt, JsonOpt, ResolutionOpt, SpecArg, app, err, friendly, out

__all__: list[str] = []


def _load(spec: str, resolution: int | None = None, num_classes: int | None = None) -> Spec:
    overrides: dict[str, Any] = {}
    if resolution is not None:
        overrides["input_size"] = resolution
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    return load_spec(spec, **overrides)


def _count_params(plan: NormalizedSpec) -> tuple[int, list[int], int, int]:
    """Total, per-stage, stem and head parameter counts, from a model built on the meta device."""
    import torch

    from ..compiler import build
    from ..cost import count_params

    with torch.device("meta"):
        model = build(plan)
    count = lambda m: count_params(m)[0]  # noqa: E731
    return count(model), [count(s) for s in model.stages], count(model.stem), count(model.head)


@app.command()
@friendly
def validate(specs: Annotated[list[str], typer.Argument(help="Spec YAML files or zoo names.")]) -> None:
    """Check specs against the schema and their shapes; print a one-line summary of each."""
    for path in specs:
        plan = normalize(load_spec(path))
        shape = plan.out_shape
        out.print(
            f"[green]ok[/] {escape(path)}: {escape(plan.name)}, {len(plan.stages)} stages, "
            f"{len(plan.blocks)} blocks, "
            f"input {plan.input_shape}, output {shape}",
            highlight=False,
        )


@app.command(name="compile")
@friendly
def compile_(
    spec: SpecArg, resolution: ResolutionOpt = None, num_classes: ClassesOpt = None, as_json: JsonOpt = False
) -> None:
    """Compile a spec into a model and show it stage by stage: blocks, output shape, params."""
    plan = normalize(_load(spec, resolution, num_classes))
    total, per_stage, stem, head = _count_params(plan)
    rows = []
    for stage, params in zip(plan.stages, per_stage, strict=True):
        mixers = sorted({_mixer_label(b.mixer) for b in stage.blocks})
        rows.append(
            {
                "stage": stage.index,
                "family": stage.family,
                "embed": _embed_label(stage.embed),
                "mixer": " | ".join(mixers),
                "blocks": stage.depth,
                "output": list(stage.out_shape.as_tuple()),
                "cls_tokens": stage.out_shape.cls_tokens,
                "tokens": stage.out_shape.tokens,
                "reduction": stage.reduction,
                "params": params,
            }
        )
    if as_json:
        print(
            json.dumps(
                {
                    "name": plan.name,
                    "input": list(plan.input_shape.as_tuple()),
                    "num_classes": plan.num_classes,
                    "params": total,
                    "stem_params": stem,
                    "head_params": head,
                    "stages": rows,
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"{escape(plan.name)} @ {plan.input_shape.height}x{plan.input_shape.width}")
    for col, justify in [
        ("stage", "right"),
        ("family", "left"),
        ("embed", "left"),
        ("mixer", "left"),
        ("blocks", "right"),
        ("output (CxHxW)", "left"),
        ("params", "right"),
    ]:
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    if plan.spec.stem is not None:
        assert plan.stem_shape is not None
        table.add_row("stem", plan.spec.stem.kind, "", "", "", str(plan.stem_shape), f"{stem:,}")
    for r, stage in zip(rows, plan.stages, strict=True):
        table.add_row(
            str(r["stage"]),
            str(r["family"]),
            str(r["embed"]),
            str(r["mixer"]),
            str(r["blocks"]),
            str(stage.out_shape),
            f"{r['params']:,}",
        )
    table.add_row("head", f"{plan.head.pool} pool", "", "", "", str(plan.num_classes), f"{head:,}")
    table.add_section()
    table.add_row("total", "", "", "", str(len(plan.blocks)), "", f"{total:,}")
    out.print(table)


@app.command()
@friendly
def zoo(as_json: JsonOpt = False) -> None:
    """List the architectures shipped with archsearch, with their parameter counts."""
    rows = []
    for name in zoo_names():
        plan = normalize(load_spec(name))
        rows.append(
            {
                "name": name,
                "params": _count_params(plan)[0],
                "resolution": plan.input_shape.height,
                "stages": len(plan.stages),
                "blocks": len(plan.blocks),
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="archsearch zoo")
    for col in ("name", "params", "resolution", "stages", "blocks"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for r in rows:
        table.add_row(
            str(r["name"]), f"{r['params']:,}", str(r["resolution"]), str(r["stages"]), str(r["blocks"])
        )
    out.print(table)


@app.command(name="profile")
@friendly
def profile_(
    spec: SpecArg,
    resolution: ResolutionOpt = None,
    batch: Annotated[
        int, typer.Option("--batch", "-b", min=1, help="Batch size for latency and memory.")
    ] = 1,
    device: Annotated[str, typer.Option("--device", "-d", help="cpu, cuda or cuda:N.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    runs: Annotated[int, typer.Option(min=4, help="Timed runs after warm-up.")] = 30,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed warm-up runs.")] = 10,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: torch's setting).")] = None,
    no_latency: Annotated[bool, typer.Option("--no-latency", help="Skip the latency measurement.")] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Measure even if a cached result exists.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Params and MACs per stage (traced and analytic), latency and memory of a spec or zoo model."""
    import torch

    from ..cost import LatencyCache, profile

    if device.startswith("cuda") and not torch.cuda.is_available():
        err.print("[bold red]error:[/] --device cuda: no CUDA device is available here; allowed: cpu")
        raise typer.Exit(2)
    try:
        torch.device(device)
    except RuntimeError:
        err.print(f"[bold red]error:[/] --device {escape(device)}: not a device; allowed: cpu, cuda, cuda:N")
        raise typer.Exit(2) from None
    if dtype not in ("float32", "bfloat16", "float16"):
        err.print(f"[bold red]error:[/] --dtype {escape(dtype)}: allowed: float32, bfloat16, float16")
        raise typer.Exit(2)
    plan = normalize(_load(spec, resolution))
    result = profile(
        plan,
        batch=batch,
        device=device,
        dtype=dtype,
        runs=runs,
        warmup=warmup,
        threads=threads,
        latency=not no_latency,
        cache=None if no_cache else LatencyCache(),
    )
    data = result.to_dict()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    h, w = result.resolution
    table = Table(
        title=f"{escape(result.name)} @ {h}x{w}  (MACs per image; fvcore's unit, 1 multiply-add = 1)"
    )
    for col in ("stage", "family", "blocks", "output (CxHxW)", "params", "MACs", "MACs (analytic)"):
        table.add_column(
            col, justify="left" if col in ("family", "output (CxHxW)") else "right", no_wrap=True
        )
    for row, stage in zip(result.stages, plan.stages, strict=True):
        table.add_row(
            str(row["stage"]),
            row["family"],
            str(row["blocks"]),
            str(stage.out_shape),
            f"{row['params']:,}",
            _giga(row["macs"]),
            _giga(row["macs_analytic"]),
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        str(len(plan.blocks)),
        "",
        f"{result.params:,}",
        _giga(result.macs),
        _giga(result.macs_analytic),
    )
    out.print(table)
    params = f"params: {result.params:,} ({result.trainable_params:,} trainable)"
    lines = [f"{params}; analytic {result.params_analytic:,}"]
    if result.latency is not None:
        lat = result.latency
        lines.append(
            f"latency: {lat.median_ms:.2f} ms median, IQR {lat.iqr_ms:.2f} ms, CV {lat.cv:.1%} "
            f"({lat.runs} runs after {lat.warmup} warm-up; batch {lat.batch}, {lat.dtype}, "
            f"{lat.threads} threads, {lat.device})"
        )
    mem = [f"activations (analytic, fp32) {_mib(result.activation_bytes_analytic)}"]
    if result.saved_activation_bytes is not None:
        mem.append(f"saved for backward (measured) {_mib(result.saved_activation_bytes)}")
    if result.cuda_peak_inference_bytes is not None:
        mem.append(
            f"CUDA peak: inference {_mib(result.cuda_peak_inference_bytes)}, "
            f"train step {_mib(result.cuda_peak_train_bytes or 0)}"
        )
    lines.append(f"memory at batch {result.batch}: " + "; ".join(mem))
    for line in lines:
        out.print(line, highlight=False)


def _giga(macs: int) -> str:
    return f"{macs / 1e9:.3f} G"


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file instead.")] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Reference tables instead of JSON Schema.")
    ] = False,
) -> None:
    """Print the JSON Schema of specs, for editors to complete and check YAML."""
    from ..spec import schema_markdown

    text = schema_markdown() if markdown else json.dumps(Spec.model_json_schema(), indent=2)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        err.print(f"wrote {escape(str(output))}", highlight=False)


# --------------------------------------------------------------------------- report


def _reference(text: str | None) -> list[float] | None:
    """``"0.5,2e8,30"`` -> ``[0.5, 2e8, 30.0]``."""
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        err.print(
            f"[bold red]error:[/] --reference {escape(text)}: not a list of numbers; "
            "allowed: one number per objective, comma-separated, e.g. --reference=0.5,2e8,30"
        )
        raise typer.Exit(2) from None


@app.command()
@friendly
def report(
    source: Annotated[
        str, typer.Argument(help="An experiment YAML, or the storage URL of a study (sqlite:///..., ...).")
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder to write into (default: reports/<study>).")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Hypervolume reference point, one value per objective in their order, comma-separated "
            "(write --reference=-1,5e6 when the first is negative). Default: the nadir of the complete "
            "trials pushed out by 10% of each range.",
        ),
    ] = None,
) -> None:
    """Write a study's Pareto report: index.html (works offline), report.md, trials.csv and
    trials.parquet, figures/*.png, and winners/*.yaml that `archsearch compile` rebuilds."""
    from ..report import slug, write_report

    ref = _reference(reference)
    from ..search import load_results  # the search engine resolves experiments and storages

    results = load_results(source)
    target = out_dir if out_dir is not None else Path("reports") / slug(results.study_name)
    try:
        files = write_report(results, target, reference=ref)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(
        f"wrote {escape(str(files.index_html))} ({len(files.winners)} winner spec(s) in "
        f"{escape(str(target / 'winners'))}, "
        f"{len(files.figures)} figure(s), report.md, trials.csv, trials.parquet)",
        highlight=False,
    )


def _mixer_label(mixer: Any) -> str:
    label = mixer.kind
    if getattr(mixer, "qkv", "linear") != "linear":
        label += f" {mixer.qkv}"
    if getattr(mixer, "kv_stride", 1) != 1:
        label += f" kv/{mixer.kv_stride}"
    if mixer.kind == "window":
        label += f" {mixer.window}x{mixer.window}"
    return label


def _embed_label(embed: Any) -> str:
    if embed.kind == "none":
        return "-"
    if embed.kind == "conv":
        return f"conv {embed.kernel}x{embed.kernel}/{embed.stride}"
    if embed.kind == "merge":
        return "merge 2x2/2"
    return f"{embed.kind} /{embed.stride}"
