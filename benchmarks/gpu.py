#!/usr/bin/env python3
"""archsearch on one GPU (issue 15): the figures of benchmarks/RESULTS.md, from one run of at most
about 8 minutes on one H200.

Usage::

    python benchmarks/gpu.py                       # CUDA, the full run; writes benchmarks/RESULTS.md
    python benchmarks/gpu.py --out /some/dir       # RESULTS.md and gpu_results.json in that folder
    python benchmarks/gpu.py --quick --out /tmp/q  # every part for seconds on the CPU (the tests)

The exact one-call recipe for the device machine (wheels, install, run) is benchmarks/gpu_device.md.

Parts (each guarded: a failure is recorded with its traceback and the others still run; the JSON
and RESULTS.md are rewritten after every part, so a run killed at its limit keeps what it had):

1. ``peak``: the bf16 matrix-product rate measured in this run (8192^3, random data).
2. ``train``: training throughput (images/s) and MFU of deit-s, cvt-13, swin-t, resnet-50 and
   convnext-t at 224, batch 256, eager and ``torch.compile``: bf16 autocast, fused AdamW,
   channels_last for the convolutional models (resnet-50, convnext-t). MFU = 3 x forward FLOPs x
   images/s / the measured peak, forward FLOPs = 2 x archsearch's analytic MACs (the backward pass
   counted as twice the forward). Where a compiled model misses its MFU target, the top kernels of
   a profile and their time shares are recorded.
3. ``inference``: inference throughput of the same models and of timm's implementation on the same
   GPU (bf16 autocast, channels_last for conv models, eager), timed in interleaved rounds; ratio
   ours / timm (above 1: ours faster). timm is imported here only; without it the part is skipped.
4. ``latency``: ``latency_ms`` of cvt-13 at batch 64 through archsearch's latency harness
   (:func:`archsearch.cost.measure_latency`, the search's objective), float32 and bfloat16, each
   eager and as a CUDA graph's replay (``cuda_graph``), with its coefficient of variation.
5. ``search``: a 2-minute slice of the CvT-13-NAS search (experiments/cvt13_nas.yaml) on synthetic
   224-px data (``data: {kind: synthetic}``): trials per hour.
6. ``supernet``: supernet training images/s (the one-shot CvT-13-NAS supernet, uniform paths).
7. ``stream``: images/s of the streamed image-folder path (archsearch.data's DataLoader workers,
   JPEG decoding, random-resized crop and flip, pinned memory) on a generated folder of JPEGs.

The parts run in the order peak, latency, inference, train (eager), stream, train (compiled),
supernet, search: the figures with targets first (deit-s and cvt-13 compile first; the other models compile
only while 150 s stay for the supernet and the search); ``--budget-s`` (default 440) stops starting
work that would not fit, recording it as skipped, and shortens the search slice to what is left.
``--quick`` compiles only the first model (with the ``eager`` backend: dynamo's capture without
inductor's code generation).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _zoo_reference import REFERENCES  # noqa: E402

MODELS = ("deit-s", "cvt-13", "swin-t", "resnet-50", "convnext-t")
CONV_MODELS = frozenset({"resnet-50", "convnext-t"})
MFU_TARGETS = {"deit-s": 0.35, "cvt-13": 0.25}
TIMM_RATIO_TARGET = 1.0
LATENCY_CV_TARGET = 0.02
PART_ORDER = ("peak", "latency", "inference", "train_eager", "stream", "train_compiled", "supernet", "search")
RESERVE_S = 150.0  # seconds kept for the supernet and search parts, after the compiled runs
JSON_NAME = "gpu_results.json"
MD_NAME = "RESULTS.md"


@dataclass(frozen=True)
class Settings:
    """Sizes of one run: :data:`FULL` on a GPU, :data:`QUICK` for the CPU test."""

    quick: bool
    batch: int = 256
    size: int = 224
    classes: int = 1000
    warmup_steps: int = 5
    timed_steps: int = 20
    compile_backend: str = "inductor"
    compile_limit_s: float = 120.0
    infer_warmup: int = 5
    infer_rounds: int = 6
    infer_iters: int = 10
    matmul_n: int = 8192
    matmul_runs: int = 20
    latency_batch: int = 64
    latency_warmup: int = 20
    latency_runs: int = 100
    search_s: float = 120.0
    search_train: int = 2560
    search_val: int = 512
    supernet_steps: int = 20
    profile_steps: int = 3
    stream_images: int = 1536
    stream_shape: tuple[int, int] = (375, 500)
    stream_workers: int | None = None


FULL = Settings(quick=False)
QUICK = Settings(
    quick=True,
    batch=2,
    size=32,
    classes=10,
    warmup_steps=1,
    timed_steps=1,
    compile_backend="eager",
    compile_limit_s=120.0,
    infer_warmup=1,
    infer_rounds=2,
    infer_iters=1,
    matmul_n=128,
    matmul_runs=2,
    latency_batch=2,
    latency_warmup=1,
    latency_runs=4,
    search_s=3.0,
    search_train=8,
    search_val=4,
    supernet_steps=1,
    profile_steps=1,
    stream_images=16,
    stream_shape=(48, 64),
    stream_workers=2,
)


# --------------------------------------------------------------------------- plumbing


class Budget:
    """Wall-clock seconds left for the whole run."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


class PartTimeout(Exception):
    """A step ran past its limit (``_time_limit``)."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`PartTimeout` in the main thread after ``seconds`` (SIGALRM; no limit where
    there is no SIGALRM or not in the main thread)."""
    usable = hasattr(signal, "SIGALRM") and seconds > 0
    if usable:

        def _raise(signum: int, frame: Any) -> None:
            raise PartTimeout(f"stopped after {seconds:.0f} s")

        previous = signal.signal(signal.SIGALRM, _raise)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if usable:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    with contextlib.suppress(Exception):
        torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _error(exc: BaseException) -> dict[str, Any]:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": text[-3000:]}


def _commit(given: str | None) -> str:
    if given:
        return given
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    return "unknown"


def _device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {
            "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "cuda": torch.version.cuda,
        }
    else:
        info["name"] = platform.processor() or platform.machine()
    try:
        import timm

        info["timm"] = timm.__version__
    except ImportError:
        info["timm"] = None
    return info


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


# --------------------------------------------------------------------------- 1. peak


def part_peak(s: Settings, device: torch.device, budget: Budget) -> dict[str, Any]:
    """bf16 ``n x n x n`` matrix products on random data: TFLOP/s (2 n^3 per product)."""
    n = s.matmul_n
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=generator)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=generator)
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(s.matmul_runs):
        a @ b
    _sync(device)
    seconds = time.perf_counter() - start
    flops = 2 * n**3 * s.matmul_runs / seconds
    return {"status": "ok", "n": n, "runs": s.matmul_runs, "tflops": flops / 1e12, "flops": flops}


# --------------------------------------------------------------------------- 2. training


def _forward_flops(name: str, size: int) -> float:
    """2 x archsearch's analytic MACs of one image."""
    from archsearch.cost import analytic_costs
    from archsearch.spec import load_spec, normalize

    return 2.0 * analytic_costs(normalize(load_spec(name, input_size=size))).macs


def _build(name: str, s: Settings, device: torch.device) -> torch.nn.Module:
    from archsearch.compiler import create_model

    torch.manual_seed(0)
    model = create_model(name, input_size=s.size, num_classes=s.classes).to(device)
    return model.to(memory_format=torch.channels_last) if name in CONV_MODELS else model


def _input(name: str, s: Settings, device: torch.device, batch: int | None = None) -> torch.Tensor:
    x = torch.randn(batch or s.batch, 3, s.size, s.size, device=device)
    return x.contiguous(memory_format=torch.channels_last) if name in CONV_MODELS else x


def _train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> Callable[[], None]:
    def step() -> None:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _top_kernels(step: Callable[[], None], steps: int, device: torch.device, top: int = 10) -> list[dict]:
    """The ``top`` kernels (CUDA) or operators (CPU) by self time over ``steps`` steps, with shares."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]
    with torch_profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        _sync(device)
    events = prof.key_averages()
    field = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    rows = [(e.key, float(getattr(e, field, 0.0) or 0.0), e.count) for e in events]
    total = sum(t for _, t, _ in rows) or 1.0
    rows.sort(key=lambda r: -r[1])
    return [
        {"kernel": k[:120], "ms_per_step": t / 1e3 / steps, "share": t / total, "calls": c}
        for k, t, c in rows[:top]
    ]


def _train_one(
    name: str, s: Settings, device: torch.device, compiled: bool, peak: float | None, limit: float
) -> dict[str, Any]:
    model = _build(name, s, device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    x = _input(name, s, device)
    y = torch.randint(0, s.classes, (s.batch,), device=device)
    runner = torch.compile(model, backend=s.compile_backend) if compiled else model
    step = _train_step(runner, optimizer, x, y)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with _time_limit(limit):
        start = time.perf_counter()
        for _ in range(s.warmup_steps):
            step()
        _sync(device)
        warmup_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(s.timed_steps):
            step()
        _sync(device)
        seconds = time.perf_counter() - start
    rate = s.timed_steps * s.batch / seconds
    flops = _forward_flops(name, s.size)
    mfu = 3 * flops * rate / peak if peak else None
    out: dict[str, Any] = {
        "status": "ok",
        "images_per_s": rate,
        "step_ms": seconds / s.timed_steps * 1e3,
        "mfu": mfu,
        "forward_gflops": flops / 1e9,
        "warmup_s": warmup_s,
        "channels_last": name in CONV_MODELS,
    }
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    target = MFU_TARGETS.get(name)
    if compiled and target is not None:
        out["mfu_target"] = target
        if s.quick or mfu is None or mfu < target:  # quick: exercise the profile path
            with contextlib.suppress(Exception):
                out["profile"] = _top_kernels(step, s.profile_steps, device)
    del model, optimizer, runner, step
    return out


def part_train(
    s: Settings,
    device: torch.device,
    budget: Budget,
    results: dict[str, Any],
    compiled: bool,
    models: tuple[str, ...],
) -> dict[str, Any]:
    """Training images/s and MFU of each model (eager or compiled), each guarded."""
    peak = results.get("peak", {}).get("flops")
    out: dict[str, Any] = {"status": "ok", "batch": s.batch, "size": s.size, "compiled": compiled}
    out["compile_backend"] = s.compile_backend if compiled else None
    for index, name in enumerate(models):
        if compiled and s.quick and index > 0:
            out[name] = {"status": "skipped", "reason": "quick mode compiles the first model only"}
            continue
        # Models without a target compile only while the later parts (supernet, search) still fit.
        reserve = RESERVE_S if compiled and name not in MFU_TARGETS else 0.0
        left = budget.left() - reserve
        need = 40.0 if compiled else 20.0
        if left < need and not s.quick:
            out[name] = {
                "status": "skipped",
                "reason": f"out of time ({left:.0f} s left beside {reserve:.0f} s kept)",
            }
            continue
        limit = s.compile_limit_s if s.quick else min(left - 5, s.compile_limit_s if compiled else 60.0)
        try:
            out[name] = _train_one(name, s, device, compiled, peak, limit)
        except Exception as exc:
            out[name] = _error(exc)
        finally:
            _free(device)
    return out


# --------------------------------------------------------------------------- 3. inference vs timm


def _timm_model(ref: str, s: Settings) -> torch.nn.Module:
    import timm

    kwargs: dict[str, Any] = {"pretrained": False, "num_classes": s.classes}
    if s.size != 224 and any(k in ref for k in ("vit", "deit", "swin")):
        kwargs["img_size"] = s.size
    return timm.create_model(ref, **kwargs)


def _rate(model: torch.nn.Module, x: torch.Tensor, iters: int, device: torch.device) -> float:
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
        _sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            model(x)
        _sync(device)
    return iters * x.shape[0] / (time.perf_counter() - start)


def part_inference(
    s: Settings, device: torch.device, budget: Budget, models: tuple[str, ...]
) -> dict[str, Any]:
    """Inference images/s of ours and timm's, interleaved rounds (ours, timm, timm, ours, ...)."""
    try:
        import timm  # noqa: F401 - optional, benchmark only

        have_timm = True
    except ImportError:
        have_timm = False
    out: dict[str, Any] = {"status": "ok", "batch": s.batch, "size": s.size, "timm": have_timm}
    if not have_timm:
        out["note"] = "timm is not installed: only archsearch's throughput is measured"
    for name in models:
        if budget.left() < 15 and not s.quick:
            out[name] = {"status": "skipped", "reason": "out of time"}
            continue
        ref = REFERENCES.get(name) or ""
        row: dict[str, Any] = {"status": "ok", "reference": ref or None}
        try:
            ours = _build(name, s, device).eval()
            theirs = None
            if have_timm and ref.startswith("timm:"):
                theirs = _timm_model(ref.removeprefix("timm:"), s).to(device).eval()
                if name in CONV_MODELS:
                    theirs = theirs.to(memory_format=torch.channels_last)
            elif have_timm:
                row["note"] = f"no timm implementation (reference: {ref or 'none'})"
            x = _input(name, s, device)
            for model in (ours, theirs):
                if model is not None:
                    _rate(model, x, s.infer_warmup, device)
            mine, refs = [], []
            for r in range(s.infer_rounds):
                order = [ours, theirs] if r % 2 == 0 else [theirs, ours]
                for model in order:
                    if model is None:
                        continue
                    (mine if model is ours else refs).append(_rate(model, x, s.infer_iters, device))
            row["images_per_s"] = _median(mine)
            if refs:
                row["timm_images_per_s"] = _median(refs)
                row["ratio"] = row["images_per_s"] / row["timm_images_per_s"]
                row["paired_ratio"] = _median([a / b for a, b in zip(mine, refs, strict=True)])
            del ours, theirs
        except Exception as exc:
            row = _error(exc)
        finally:
            _free(device)
        out[name] = row
    return out


# --------------------------------------------------------------------------- 4. latency


def part_latency(s: Settings, device: torch.device, budget: Budget) -> dict[str, Any]:
    """cvt-13 through :func:`archsearch.cost.measure_latency` at ``latency_batch``."""
    from archsearch.compiler import create_model
    from archsearch.cost import measure_latency

    out: dict[str, Any] = {"status": "ok", "model": "cvt-13", "batch": s.latency_batch, "size": s.size}
    for dtype in ("float32", "bfloat16"):
        for graph in (False, True) if device.type == "cuda" else (False,):
            model = create_model("cvt-13", input_size=s.size)
            try:
                result = measure_latency(
                    model,
                    (s.latency_batch, 3, s.size, s.size),
                    device=str(device),
                    dtype=dtype,
                    warmup=s.latency_warmup,
                    runs=s.latency_runs,
                    cuda_graph=graph,
                )
                row = {k: v for k, v in result.to_dict().items() if k != "samples_ms"}
            except RuntimeError as error:  # a forward that cannot be captured: say why
                row = {"status": f"failed: {error}"[:300]}
            out[f"{dtype}_graph" if graph else dtype] = row
            del model
            _free(device)
    return out


# --------------------------------------------------------------------------- 7. streamed data


def part_stream(s: Settings, device: torch.device, budget: Budget) -> dict[str, Any]:
    """Images/s of the streamed image-folder path (DataLoader workers, Pillow JPEG decoding,
    random-resized crop and flip at ``size``, pinned memory, copies to ``device``): a generated folder
    of JPEGs (smooth random images of ``stream_shape``), two epochs, the second timed."""
    import numpy as np
    from PIL import Image

    from archsearch.data import ImageFolderData, StreamData, batches, load_data

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        h, w = s.stream_shape
        for i in range(s.stream_images):
            folder = Path(tmp) / f"class{i % 4}"
            folder.mkdir(exist_ok=True)
            small = Image.fromarray(rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8))
            small.resize((w, h), Image.Resampling.BILINEAR).save(folder / f"{i}.jpg", quality=90)
        workers: int | str = s.stream_workers if s.stream_workers is not None else "auto"
        config = ImageFolderData(root=tmp, cache="stream", val_fraction=0.1, workers=workers)  # type: ignore[arg-type]
        data = load_data(config, input_size=(s.size, s.size), channels=3)
        assert isinstance(data, StreamData)
        rates, shapes = [], set()
        for epoch in range(2):
            count, start = 0, time.perf_counter()
            for x, y in batches(data, "train", s.batch, epoch=epoch, device=device):
                count += int(y.shape[0])
                shapes.add((tuple(x.shape), str(x.dtype), x.device.type))
            _sync(device)
            rates.append(count / (time.perf_counter() - start))
        (x_shape, x_dtype, x_device), *others = sorted(shapes)
        if others:
            raise RuntimeError(f"batches of several shapes: {sorted(shapes)}")
    return {
        "status": "ok",
        "images_per_s": rates[1],
        "first_epoch_images_per_s": rates[0],
        "workers": data.workers,
        "batch": s.batch,
        "source_shape": [h, w],
        "train_images": data.num_train,
        "batch_shape": list(x_shape),
        "batch_dtype": x_dtype,
        "batch_device": x_device,
    }


# --------------------------------------------------------------------------- 5. search slice


def _search_experiment(s: Settings, device: torch.device, run_dir: str) -> dict[str, Any]:
    import yaml

    raw = yaml.safe_load((ROOT / "experiments" / "cvt13_nas.yaml").read_text())
    raw["space"] = str(ROOT / "search_spaces" / "cvt13_nas.yaml")
    raw["data"] = {
        "kind": "synthetic",
        "num_train": s.search_train,
        "num_val": s.search_val,
        "num_classes": 100,
        "cache": "memory",
    }
    raw["run_dir"] = run_dir
    raw["backend"] = {"kind": "optuna", "timeout_s": s.search_s}
    raw["trials"] = 10_000
    raw["evaluator"]["device"] = str(device)
    if s.quick:
        raw["input_size"] = s.size
        raw["evaluator"] |= {"epochs": 1, "batch_size": 4, "eval_batch_size": 4, "threads": 1}
        raw["objectives"] = [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "macs", "direction": "minimize"},
            {"metric": "latency_ms", "direction": "minimize", "device": "cpu", "batch": 1},
        ]
        raw.pop("early_stopping", None)
    return raw


def part_search(s: Settings, device: torch.device, budget: Budget) -> dict[str, Any]:
    """The CvT-13-NAS experiment on synthetic data, stopped after ``search_s`` seconds."""
    from archsearch.search import load_experiment, run_search

    with tempfile.TemporaryDirectory() as tmp:
        raw = _search_experiment(s, device, tmp)
        experiment = load_experiment(raw)
        start = time.perf_counter()
        summary = run_search(experiment)
        wall = time.perf_counter() - start
        asked = len(summary.study.trials)
    evaluated = summary.evaluated
    return {
        "status": "ok",
        "slice_s": s.search_s,
        "wall_s": wall,
        "trials_evaluated": evaluated,
        "trials_asked": asked,
        "trials_per_hour": evaluated / wall * 3600 if wall else math.nan,
        "eval_s": summary.eval_seconds,
        "data": raw["data"],
        "evaluator": raw["evaluator"],
    }


# --------------------------------------------------------------------------- 6. supernet


def part_supernet(s: Settings, device: torch.device, budget: Budget) -> dict[str, Any]:
    """Images/s of the CvT-13-NAS supernet's training (uniform paths), after a short warm-up run."""
    from archsearch.data import SyntheticData, load_dataset
    from archsearch.evaluate import SupernetConfig
    from archsearch.space import load_space
    from archsearch.supernet import Supernet, train_supernet

    space = load_space(ROOT / "search_spaces" / "cvt13_nas.yaml", num_classes=100, input_size=s.size)
    net = Supernet(space)
    data = load_dataset(
        SyntheticData(num_train=s.batch * 4, num_val=s.batch, num_classes=100, cache="memory"),
        input_size=(s.size, s.size),
        channels=3,
    )
    common: dict[str, Any] = {"batch_size": s.batch, "device": str(device), "warmup_epochs": 0, "lr": 1e-3}
    if device.type == "cpu":
        common["threads"] = 1
    train_supernet(net, data, SupernetConfig(steps=max(s.warmup_steps, 1), **common))
    _sync(device)
    run = train_supernet(net, data, SupernetConfig(steps=s.supernet_steps, **common))
    out = {
        "status": "ok",
        "batch": s.batch,
        "size": s.size,
        "steps": run.steps,
        "seconds": run.seconds,
        "images_per_s": run.steps * s.batch / run.seconds if run.seconds else math.nan,
        "sampling": "uniform",
        "amp": True,
    }
    del net, data
    _free(device)
    return out


# --------------------------------------------------------------------------- the report


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def _status(part: dict[str, Any] | None) -> str | None:
    if part is None:
        return "not run"
    if part.get("status") != "ok":
        return f"{part.get('status')}: {part.get('error') or part.get('reason', '')}"
    return None


def render(results: dict[str, Any]) -> str:
    """RESULTS.md from the results dict (pure: the figures come only from ``results``)."""
    meta = results["meta"]
    info = meta["device_info"]
    lines = [
        "# archsearch on one GPU (benchmarks/gpu.py)",
        "",
        f"- device: {info.get('name')} ({info.get('device')}"
        + (f", {info.get('memory_gib')} GiB, CUDA {info.get('cuda')}" if info.get("cuda") else "")
        + ")",
        f"- torch {info.get('torch')}, Python {info.get('python')}, "
        f"timm {info.get('timm') or 'not installed'}",
        f"- commit {meta['commit']}, {meta['date']}, wall {meta.get('wall_s', 0):.0f} s"
        + (" — **quick mode (CPU check, not a measurement)**" if meta["quick"] else ""),
        f"- command: `{meta['command']}`",
        "",
    ]
    peak = results.get("peak")
    lines += ["## 1. bf16 matrix-product peak (measured)", ""]
    lines.append(_status(peak) or f"{peak['tflops']:.4g} TFLOP/s ({peak['n']}^3, {peak['runs']} products)")
    lines.append("")
    lines += ["## 2. Training throughput and MFU (bf16 autocast, fused AdamW)", ""]
    eager, compiled = results.get("train_eager"), results.get("train_compiled")
    ran = [p for p in (eager, compiled) if p and p.get("status") == "ok"]
    if ran:
        any_part = ran[0]
        lines.append(
            f"batch {any_part.get('batch')}, {any_part.get('size')} px; MFU = 3 x 2 x MACs x images/s / peak"
        )
        lines += [
            "",
            "| model | eager img/s | eager MFU | compiled img/s | compiled MFU | target | peak mem GiB |",
        ]
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for name in results["meta"]["models"]:
            e = (eager or {}).get(name, {})
            c = (compiled or {}).get(name, {})

            def cell(row: dict[str, Any], key: str, spec: str) -> str:
                return _fmt(row.get(key), spec) if row.get("status") == "ok" else (row.get("status") or "—")

            target = MFU_TARGETS.get(name)
            memory = c.get("peak_memory_gib") or e.get("peak_memory_gib")
            lines.append(
                f"| {name}{' (channels_last)' if name in CONV_MODELS else ''} "
                f"| {cell(e, 'images_per_s', '.0f')} "
                f"| {cell(e, 'mfu', '.1%')} | {cell(c, 'images_per_s', '.0f')} | {cell(c, 'mfu', '.1%')} "
                f"| {_fmt(target, '.0%') if target else '—'} | {_fmt(memory, '.1f')} |"
            )
        for label, part in (("eager", eager), ("compiled", compiled)):
            for name in results["meta"]["models"]:
                row = (part or {}).get(name, {})
                if row.get("status") == "error":
                    lines.append(f"\n{label} {name}: {row['error']}")
                for k in row.get("profile", []) if label == "compiled" else []:
                    if k is row["profile"][0]:
                        lines += [
                            "",
                            f"{name} compiled is below its MFU target; top kernels (one step):",
                            "",
                            "| kernel | ms/step | share |",
                            "|---|---:|---:|",
                        ]
                    lines.append(f"| `{k['kernel']}` | {k['ms_per_step']:.2f} | {k['share']:.1%} |")
    else:
        lines.append(_status(eager) or _status(compiled) or "not run")
    lines.append("")
    inference = results.get("inference")
    lines += ["## 3. Inference throughput against timm (bf16 autocast, eager, interleaved rounds)", ""]
    if _status(inference):
        lines.append(_status(inference) or "")
    else:
        assert inference is not None
        if inference.get("note"):
            lines.append(inference["note"] + "\n")
        lines += ["| model | archsearch img/s | timm img/s | ratio | paired ratio | timm model |"]
        lines.append("|---|---:|---:|---:|---:|---|")
        for name in results["meta"]["models"]:
            row = inference.get(name, {})
            if row.get("status") != "ok":
                lines.append(
                    f"| {name} | {row.get('status')}: {row.get('error', row.get('reason', ''))} | | | | |"
                )
                continue
            lines.append(
                f"| {name} | {_fmt(row.get('images_per_s'), '.0f')} "
                f"| {_fmt(row.get('timm_images_per_s'), '.0f')} "
                f"| {_fmt(row.get('ratio'), '.2f')} | {_fmt(row.get('paired_ratio'), '.2f')} "
                f"| {row.get('reference') or '—'}{' — ' + row['note'] if row.get('note') else ''} |"
            )
        lines.append(f"\nTarget: ratio >= {TIMM_RATIO_TARGET:.1f} for every model.")
    lines.append("")
    latency = results.get("latency")
    lines += ["## 4. latency_ms of cvt-13 (archsearch.cost.measure_latency)", ""]
    if _status(latency):
        lines.append(_status(latency) or "")
    else:
        assert latency is not None
        lines += [
            "| dtype | timed | batch | median ms | IQR ms | CV | runs |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for key in ("float32", "float32_graph", "bfloat16", "bfloat16_graph"):
            row = latency.get(key)
            dtype, timed = key.split("_")[0], "CUDA graph" if key.endswith("_graph") else "eager"
            if row is None:
                continue
            if "median_ms" not in row:
                lines.append(f"| {dtype} | {timed} | | | | {row.get('status', '—')} | |")
                continue
            lines.append(
                f"| {dtype} | {timed} | {row['batch']} | {row['median_ms']:.2f} | {row['iqr_ms']:.3f} "
                f"| {row['cv']:.2%} "
                f"| {row['runs']} |"
            )
        lines.append(f"\nTarget: CV <= {LATENCY_CV_TARGET:.0%}.")
    lines.append("")
    search = results.get("search")
    lines += ["## 5. CvT-13-NAS search slice (synthetic data)", ""]
    lines.append(
        _status(search)
        or (
            f"{search['trials_evaluated']} trials evaluated in {search['wall_s']:.0f} s "
            f"(slice {search['slice_s']:.0f} s): "
            f"**{search['trials_per_hour']:.0f} trials/hour**; "
            f"{search['data']['num_train']} training images, "
            f"evaluator {json.dumps(search['evaluator'])}"
        )
    )
    lines.append("")
    supernet = results.get("supernet")
    lines += ["## 6. Supernet training (CvT-13-NAS, uniform paths)", ""]
    lines.append(
        _status(supernet)
        or (
            f"**{supernet['images_per_s']:.0f} images/s** (batch {supernet['batch']}, {supernet['size']} px, "
            f"{supernet['steps']} steps in {supernet['seconds']:.1f} s, bf16 autocast)"
        )
    )
    lines.append("")
    stream = results.get("stream")
    lines += ["## 7. Streamed image folder (DataLoader workers, JPEG, random-resized crop, pinned)", ""]
    lines.append(
        _status(stream)
        or (
            f"**{stream['images_per_s']:.0f} images/s** with {stream['workers']} workers "
            f"({stream['source_shape'][1]}x{stream['source_shape'][0]} JPEGs to "
            f"{stream['batch_shape'][2]} px, "
            f"batch {stream['batch']}, second epoch; first epoch {stream['first_epoch_images_per_s']:.0f})"
        )
    )
    lines.append("")
    return "\n".join(lines)


def _write(out: Path, results: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / JSON_NAME).write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / MD_NAME).write_text(render(results))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every part for seconds on the CPU")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for RESULTS.md and gpu_results.json")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --quick)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    parser.add_argument(
        "--parts", default=",".join(PART_ORDER), help="comma-separated parts, run in this order"
    )
    parser.add_argument("--budget-s", type=float, default=440.0, help="stop starting work after this")
    parser.add_argument("--commit", default=None, help="recorded commit (default: git rev-parse HEAD)")
    args = parser.parse_args(argv)

    settings = QUICK if args.quick else FULL
    device = torch.device(args.device or ("cpu" if args.quick else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available: run with --quick (CPU) or on a GPU")
    if device.type == "cpu":
        torch.set_num_threads(1)
    models = tuple(m for m in args.models.split(",") if m)
    parts = [p for p in args.parts.split(",") if p]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    budget = Budget(args.budget_s)
    started = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "commit": _commit(args.commit),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "quick": settings.quick,
            "settings": asdict(settings),
            "models": list(models),
            "device_info": _device_info(device),
            "command": " ".join(
                ["python", "benchmarks/gpu.py", *(argv if argv is not None else sys.argv[1:])]
            ),
        }
    }
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "peak": lambda: part_peak(settings, device, budget),
        "latency": lambda: part_latency(settings, device, budget),
        "inference": lambda: part_inference(settings, device, budget, models),
        "train_eager": lambda: part_train(settings, device, budget, results, False, models),
        "stream": lambda: part_stream(settings, device, budget),
        "supernet": lambda: part_supernet(settings, device, budget),
        "search": lambda: part_search(
            replace(settings, search_s=min(settings.search_s, max(budget.left() - 30, 10.0))), device, budget
        ),
        "train_compiled": lambda: part_train(settings, device, budget, results, True, models),
    }
    minimum = {"search": 60.0, "supernet": 30.0, "train_compiled": 40.0, "stream": 20.0}
    for name in parts:
        if name not in runners:
            parser.error(f"unknown part {name!r}; allowed: {', '.join(runners)}")
        left = budget.left()
        if not settings.quick and left < minimum.get(name, 10.0):
            results[name] = {"status": "skipped", "reason": f"out of time ({left:.0f} s left)"}
        else:
            print(f"[gpu.py] {name} ({left:.0f} s left)", flush=True)
            try:
                results[name] = runners[name]()
            except Exception as exc:
                results[name] = _error(exc)
            _free(device)
        results["meta"]["wall_s"] = time.monotonic() - started
        _write(args.out, results)
    print(render(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
