"""Commands on specs and studies' reports: ``validate``, ``compile``, ``zoo``, ``profile``,
``schema``, ``report``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import Issue, SpecError
from ..spec import NormalizedSpec, Spec, load_spec, normalize, zoo_names
from ._app import ClassesOpt, JsonOpt, ResolutionOpt, SpecArg, app, err, friendly, out, refuse_device
from ._steps import steps

__all__: list[str] = []


SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a value of the spec, KEY=VALUE with a YAML value (repeatable): "
        "--set stages.1.dim=96 --set head.num_classes=10.",
        show_default=False,
    ),
]


def _load(
    spec: str, resolution: int | None = None, num_classes: int | None = None, sets: list[str] | None = None
) -> Spec:
    overrides: dict[str, Any] = {}
    if resolution is not None:
        overrides["input_size"] = resolution
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    return load_spec(spec, dotlist=sets or (), **overrides)


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
def validate(
    specs: Annotated[list[str], typer.Argument(help="Spec YAML files or zoo names.")],
    sets: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check specs against the schema and their shapes; print a one-line summary of each."""
    rows = []
    for path in specs:
        plan = normalize(_load(path, sets=sets))
        shape = plan.out_shape
        rows.append(
            {
                "spec": path,
                "name": plan.name,
                "stages": len(plan.stages),
                "blocks": len(plan.blocks),
                "input": list(plan.input_shape.as_tuple()),
                "output": list(shape.as_tuple()),
                "cls_tokens": shape.cls_tokens,
                "num_classes": plan.num_classes,
            }
        )
        if not as_json:
            out.print(
                f"[green]ok[/] {escape(path)}: {escape(plan.name)}, {len(plan.stages)} stages, "
                f"{len(plan.blocks)} blocks, input {plan.input_shape}, output {shape}",
                highlight=False,
            )
    if as_json:
        print(json.dumps(rows, indent=2))


@app.command(name="compile")
@friendly
def compile_(
    spec: SpecArg,
    resolution: ResolutionOpt = None,
    num_classes: ClassesOpt = None,
    sets: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compile a spec into a model and show it stage by stage: blocks, output shape, params."""
    plan = normalize(_load(spec, resolution, num_classes, sets))
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
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default: torch's setting).")
    ] = None,
    no_latency: Annotated[bool, typer.Option("--no-latency", help="Skip the latency measurement.")] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Measure even if a cached result exists.")
    ] = False,
    sets: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Params and MACs per stage (traced and analytic), latency and memory of a spec or zoo model."""

    from ..cost import LatencyCache, profile
    from ..evaluate import oversubscription

    refuse_device(device)
    if dtype not in ("float32", "bfloat16", "float16"):
        err.print(f"[bold red]error:[/] --dtype {escape(dtype)}: allowed: float32, bfloat16, float16")
        raise typer.Exit(2)
    plan = normalize(_load(spec, resolution, sets=sets))
    with steps(f"profile {spec}") as step:
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
            progress=step,
        )
    warnings = []
    if result.latency is not None and result.latency.cv > LATENCY_CV_WARN:
        warnings.append(
            f"latency varies: CV {result.latency.cv:.1%} is above {LATENCY_CV_WARN:.0%}; other programs may "
            "be competing for the CPU (close them, or set --threads below the free cores), or raise --runs"
        )
    if result.latency is not None and device == "cpu" and (too_many := oversubscription(threads)):
        warnings.append(too_many)
    data = result.to_dict()
    if as_json:
        print(json.dumps({**data, "warnings": warnings}, indent=2))
        return
    h, w = result.resolution
    table = Table(
        title=f"{escape(result.name)} @ {h}x{w}  (MACs per image; fvcore's unit, 1 multiply-add = 1)"
    )
    for col in ("stage", "family", "blocks", "output (CxHxW)", "params", "MACs", "MACs (analytic)"):
        table.add_column(
            col, justify="left" if col in ("family", "output (CxHxW)") else "right", no_wrap=True
        )
    if result.stem is not None:
        stem = result.stem
        shape = str(plan.stem_shape) if plan.stem_shape is not None else ""
        macs = (_macs(stem["macs"]), _macs(stem["macs_analytic"]))
        table.add_row("stem", stem["kind"], "", shape, f"{stem['params']:,}", *macs)
    for row, stage in zip(result.stages, plan.stages, strict=True):
        table.add_row(
            str(row["stage"]),
            row["family"],
            str(row["blocks"]),
            str(stage.out_shape),
            f"{row['params']:,}",
            _macs(row["macs"]),
            _macs(row["macs_analytic"]),
        )
    head = result.head
    table.add_row(
        "head",
        f"{head['pool']} pool",
        "",
        str(head["num_classes"]),
        f"{head['params']:,}",
        _macs(head["macs"]),
        _macs(head["macs_analytic"]),
    )
    table.add_section()
    table.add_row(
        "total",
        "",
        str(len(plan.blocks)),
        "",
        f"{result.params:,}",
        _macs(result.macs),
        _macs(result.macs_analytic),
    )
    out.print(table)
    params = f"params: {result.params:,} ({result.trainable_params:,} trainable)"
    lines = [f"{params}; analytic {result.params_analytic:,}"]
    if result.latency is not None:
        lat = result.latency
        threads_used = f"{lat.threads} thread{'s' if lat.threads != 1 else ''}"
        lines.append(
            f"latency: {lat.median_ms:.2f} ms median, IQR {lat.iqr_ms:.2f} ms, CV {lat.cv:.1%} "
            f"({lat.runs} runs after {lat.warmup} warm-up; batch {lat.batch}, {lat.dtype}, "
            f"{threads_used}, {lat.device})"
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
    for warning in warnings:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


#: Latency's coefficient of variation above which ``profile`` warns that the timings are noisy.
LATENCY_CV_WARN = 0.10


def _macs(macs: int) -> str:
    """MACs in the unit that suits them: ``7_123_456`` -> ``7.123 M``, ``4.5e9`` -> ``4.5 G``."""
    for factor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(macs) >= factor:
            return f"{macs / factor:.4g} {unit}"
    return str(macs)


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

    if output is not None:
        from ._app import refuse_output

        refuse_output("--output", output)
    text = schema_markdown() if markdown else json.dumps(Spec.model_json_schema(), indent=2)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        err.print(f"wrote {escape(str(output))}", highlight=False)


# --------------------------------------------------------------------------- report


#: What ``--reference`` takes, for its errors.
_REFERENCE = "one number per objective, comma-separated, e.g. --reference=0.5,2e8,30"


def _reference(text: str | None) -> list[float] | None:
    """``"0.5,2e8,30"`` -> ``[0.5, 2e8, 30.0]``.

    Raises:
        SpecError: ``--reference: ...`` for a value that is not a number, an empty one between
            commas, a value that is not finite, or no value at all.
    """
    if text is None:
        return None

    def refuse(message: str) -> SpecError:
        return SpecError(Issue((), message, file="--reference", value=text, allowed=_REFERENCE))

    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise refuse("one value per objective, none given")
    if "" in parts:
        raise refuse("an empty value between commas")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise refuse("not a number") from None
    if not all(math.isfinite(v) for v in values):
        raise refuse("must be finite")
    return values


def _check_reference(reference: list[float] | None, text: str | None, metrics: list[str]) -> None:
    """One value of ``--reference`` per objective (``metrics``), or a :class:`SpecError`."""
    if reference is None or len(reference) == len(metrics):
        return
    raise SpecError(
        Issue(
            (),
            f"one value per objective ({', '.join(metrics)}), {len(reference)} given",
            file="--reference",
            value=text,
            allowed=f"{len(metrics)} number{'s' if len(metrics) != 1 else ''}, e.g. "
            f"--reference={','.join(['1'] * len(metrics))}",
        )
    )


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
    from ..report import report_folder_problem, winner_command_path, write_report

    ref = _reference(reference)  # the arguments first: nothing is read for a bad one
    if out_dir is not None and (problem := report_folder_problem(out_dir)) is not None:
        raise SpecError(Issue((), problem, file="--out", allowed="a folder (made when missing)"))
    from ..search import load_results, load_study  # the search engine resolves experiments and storages

    with steps(f"report {source}") as step:
        step("loading the study")
        study = load_study(source)
        metrics = [o["metric"] for o in study.user_attrs.get("objectives", [])]
        if len(metrics) != len(study.directions):
            metrics = [f"value_{i}" for i in range(len(study.directions))]
        _check_reference(ref, reference, metrics)  # before the trials are read
        results = load_results(study)
        target = out_dir if out_dir is not None else _default_out(source, results.study_name)
        try:
            files = write_report(results, target, reference=ref, progress=step)
        except ValueError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # what report_folder_problem cannot foresee: /proc, a read-only mount
            line = f"cannot write the report into {target}: {exc.filename or target}: {exc.strerror or exc}"
            err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    out.print(f"{results.study_name}: {files.summary}", highlight=False)
    out.print(
        f"wrote {escape(str(files.index_html))} ({len(files.winners)} winner spec(s) in "
        f"{escape(str(target / 'winners'))}, "
        f"{len(files.figures)} figure(s), report.md, trials.csv, trials.parquet)",
        highlight=False,
    )
    if files.winners:
        example = winner_command_path(files.winners[0])
        out.print(f"rebuild a winner: archsearch compile {example}", highlight=False)


def _default_out(source: str, study_name: str) -> Path:
    """An experiment's own report folder (``report``, default ``reports/<name>`` in its project
    folder: the same from any directory); ``reports/<study>`` here for a storage."""
    from ..report import slug

    if Path(source).suffix in (".yaml", ".yml"):
        from ..search import load_experiment

        return load_experiment(source).report_path
    return Path("reports") / slug(study_name)


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
