"""Latency measured properly: warm-up, fixed threads, inference mode, repeated runs, statistics.

On CPU each run is timed with ``perf_counter``; on CUDA with events around the run and a
synchronisation after each, so queued work cannot hide, optionally as the replay of a CUDA graph
captured once (``cuda_graph=True``: no Python or kernel-launch overhead, what a graph-captured
deployment sees, and far steadier when a model launches many small kernels). Results carry the median, the
interquartile range and the coefficient of variation, and can be cached by spec hash, device,
dtype, batch and thread count.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import nn

from ._heap import steady_heap

__all__ = [
    "DEFAULT_STATISTIC",
    "STATISTICS",
    "LatencyCache",
    "LatencyResult",
    "Statistic",
    "Timed",
    "check_statistic",
    "device_name",
    "measure_latency",
    "statistic_ms",
    "time_call",
    "time_interleaved",
    "torch_dtype",
]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


Statistic = Literal["median", "min", "p10", "p25", "fastest_quarter", "mean"]
"""A statistic's name, as a schema field's type (a latency table file's ``statistic``)."""

STATISTICS: tuple[str, ...] = get_args(Statistic)
"""The statistics of a member's timed runs that a latency can be: the ``median``, the
``min``imum, the 10th and 25th percentiles (``p10``, ``p25``: linear interpolation between the
sorted runs, as numpy's default), ``fastest_quarter`` (the mean of the fastest quarter of the
runs, rounded up) and the ``mean``. On a machine whose speed drifts, the low ones see the runs
that other load did not slow (:func:`statistic_ms`)."""

DEFAULT_STATISTIC: Statistic = "fastest_quarter"
"""The statistic a latency objective, a latency bound and a new latency table take unless told
otherwise: the mean of the fastest quarter of the runs. On a machine whose speed drifts under other
load it ranks members reproducibly where the median does not (README, "Which statistic of the
runs": cvt13_nas at 224 px, retest tau 0.78 against 0.52, same load); a table file without a
``statistic`` holds medians (it was written before statistics existed)."""


@dataclass(frozen=True)
class LatencyResult:
    device: str
    """Device kind and name, e.g. ``cpu (AMD EPYC 7B13)`` or ``cuda (NVIDIA H100 80GB HBM3)``."""
    dtype: str
    batch: int
    threads: int
    warmup: int
    runs: int
    median_ms: float
    iqr_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    cv: float
    """Coefficient of variation: standard deviation over mean."""
    samples_ms: tuple[float, ...]
    cuda_graph: bool = False
    """Timed as the replay of a captured CUDA graph (:func:`time_call`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def statistic(self, name: str = "median") -> float:
        """The statistic ``name`` (one of :data:`STATISTICS`) of the timed runs (ms);
        ``ValueError`` naming the allowed ones for another name."""
        return statistic_ms(self.samples_ms, name)


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{device.type} ({name})"


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[int]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def check_statistic(statistic: str) -> str:
    """``statistic`` if it is one of :data:`STATISTICS`; ``ValueError`` naming the allowed ones."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown latency statistic {statistic!r}; allowed: {', '.join(STATISTICS)}")
    return statistic


def statistic_ms(samples: Sequence[float], statistic: str = "median") -> float:
    """``statistic`` (one of :data:`STATISTICS`) of timed runs ``samples`` (ms).

    Raises:
        ValueError: an unknown statistic (the message names the allowed ones) or no samples.
    """
    check_statistic(statistic)
    if not samples:
        raise ValueError("a latency statistic needs at least one timed run, but got none")
    ordered = sorted(samples)
    if statistic in ("p10", "p25"):
        k = (len(ordered) - 1) * (0.10 if statistic == "p10" else 0.25)
        lo = int(k)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
    if statistic == "fastest_quarter":
        return statistics.fmean(ordered[: -(-len(ordered) // 4)])
    if statistic == "mean":
        return statistics.fmean(ordered)
    return ordered[0] if statistic == "min" else statistics.median(ordered)


def _stats(samples: list[float]) -> dict[str, float]:
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    mean = statistics.fmean(samples)
    std = statistics.pstdev(samples)
    return {
        "median_ms": statistics.median(samples),
        "iqr_ms": q3 - q1,
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": min(samples),
        "cv": std / mean if mean else 0.0,
    }


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str = "cpu",
    dtype: str = "float32",
    warmup: int = 10,
    runs: int = 50,
    threads: int | None = None,
    cuda_graph: bool = False,
) -> LatencyResult:
    """Median latency of ``model`` on one batch of ``input_shape`` (batch first).

    The model is put in eval mode and moved to ``device``/``dtype`` (in place). ``threads`` fixes
    the CPU thread count for the measurement (default: the current setting); ``cuda_graph`` times
    the replay of the forward captured as a CUDA graph (:func:`time_call`).
    """
    _check(runs, dtype)
    dev = _device(device)
    model = model.eval().to(device=dev, dtype=_DTYPES[dtype])
    x = torch.randn(input_shape, device=dev, dtype=_DTYPES[dtype])
    return time_call(
        lambda: model(x),
        device=device,
        dtype=dtype,
        batch=input_shape[0],
        warmup=warmup,
        runs=runs,
        threads=threads,
        cuda_graph=cuda_graph,
    )


def torch_dtype(dtype: str) -> torch.dtype:
    """The torch dtype of a dtype name (``float32``, ``float16``, ``bfloat16``); ``ValueError``
    naming the allowed ones otherwise."""
    _check(4, dtype)
    return _DTYPES[dtype]


def _check(runs: int, dtype: str) -> None:
    if runs < 4:
        raise ValueError(f"`runs >= 4` must hold for quartiles, but got runs={runs}")
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(_DTYPES)}")


def _device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA latency was asked for, but no CUDA device is available")
    return dev


def time_call(
    call: Callable[[], Any],
    *,
    device: str = "cpu",
    dtype: str = "float32",
    batch: int = 1,
    warmup: int = 10,
    runs: int = 50,
    threads: int | None = None,
    cuda_graph: bool = False,
) -> LatencyResult:
    """Median time of ``call()`` (a forward pass on tensors made beforehand): ``warmup`` untimed
    calls, then ``runs`` timed ones, under ``torch.inference_mode`` with ``threads`` CPU threads;
    on CUDA timed with events and a synchronisation after each run. :func:`measure_latency` times
    a whole model with it, the latency tables (:mod:`._pieces`) each piece of one, in the same
    setting. ``dtype`` and ``batch`` are recorded in the result, not applied.

    ``cuda_graph`` (CUDA only): ``call()`` is run three times on a side stream, captured once as
    a CUDA graph (PyTorch's ``torch.cuda.graph``; the captured call must not synchronise with the
    host or allocate outside the graph's pool), and the graph's replay is what is warmed up and
    timed. Raises ``ValueError`` for ``cuda_graph`` on another device, ``RuntimeError`` when the
    call cannot be captured (the message names the cause)."""
    _check(runs, dtype)
    dev = _device(device)
    if cuda_graph and dev.type != "cuda":
        raise ValueError(f"cuda_graph times a CUDA graph's replay; the device is {device!r}, not CUDA")
    samples: list[float] = []
    with _threads(threads) as used, steady_heap(), torch.inference_mode():
        run = _capture(call, dev) if cuda_graph else call
        for _ in range(warmup):
            run()
        events = _events(dev)
        for _ in range(runs):
            samples.append(_timed_run(run, events))
    return LatencyResult(
        device=device_name(dev),
        dtype=dtype,
        batch=batch,
        threads=used,
        warmup=warmup,
        runs=runs,
        samples_ms=tuple(samples),
        cuda_graph=cuda_graph,
        **_stats(samples),
    )


@dataclass(frozen=True)
class Timed:
    """One thing :func:`time_interleaved` times: ``call()`` (a forward pass on tensors made
    beforehand), with optional ``setup()``/``teardown()`` around each of its batches of runs and
    ``collect()`` after each timed run (all outside the clock; e.g. hooks registered for a batch and
    the timestamps they took read after each run)."""

    call: Callable[[], Any]
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None
    collect: Callable[[], None] | None = None
    copies: int = 1
    """Batches of runs the item gets in each round, each at its own place in the shuffled order
    (a short reference timed several times a round samples the machine's speed across the round)."""
    samples: list[float] = field(default_factory=list, compare=False)


def time_interleaved(
    items: list[Timed],
    *,
    device: str = "cpu",
    dtype: str = "float32",
    batch: int = 1,
    warmup: int = 10,
    runs: int = 30,
    rounds: int = 10,
    threads: int | None = None,
    seed: int = 0,
) -> list[LatencyResult]:
    """Time several calls in interleaved rounds, so that a machine whose speed drifts (a shared
    CPU's clock following its neighbours' load, other processes taking turns) slows them all alike.

    Each item is first run ``warmup`` times. Then ``rounds`` times, in an order shuffled afresh each
    round (``seed``): ``setup()``, one untimed run (to bring its weights back into the caches that
    the other items used), ``ceil(runs / rounds)`` timed runs (``collect()`` after each), and
    ``teardown()``; an item with ``copies=k`` does this ``k`` times a round, at ``k`` places in the
    order. The garbage collector is paused while timing, as :mod:`timeit` does. Each
    result holds every timed run of its item (median, IQR, minimum). With ``rounds=1`` and one item
    this is :func:`time_call` (one untimed run more). On CUDA each run is synchronised and timed
    with events, as in :func:`time_call` (no CUDA graphs here).

    On a loaded 2-core cloud VM, timing 20 small models twice this way (20 rounds of 5 runs)
    reproduced their medians to 3 % (median over models; 6 % at the 90th percentile), where 30
    back-to-back runs of each (:func:`time_call`) reproduced them to 8-25 %. Interleaving cannot
    remove a drift between two timings: there, a minute apart, 100 models once came out 18 %
    faster overall (``benchmarks/latency_model.py``'s retest).

    Raises:
        ValueError: ``runs < 4``, ``rounds < 1`` or an unknown dtype.
        RuntimeError: CUDA asked for where there is none.
    """
    _check(runs, dtype)
    if rounds < 1:
        raise ValueError(f"`rounds >= 1` must hold, but got rounds={rounds}")
    dev = _device(device)
    per_round = -(-runs // rounds)
    cuda = dev.type == "cuda"
    order = [i for i, item in enumerate(items) for _ in range(max(1, item.copies))]
    rng = random.Random(seed)
    was_enabled = gc.isenabled()
    with _threads(threads) as used, steady_heap(), torch.inference_mode():
        for item in items:
            item.samples.clear()
            for _ in range(warmup):
                item.call()
        events = _events(dev)
        gc.collect()
        gc.disable()
        try:
            for _ in range(rounds):
                rng.shuffle(order)
                for i in order:
                    item = items[i]
                    if item.setup is not None:
                        item.setup()
                    item.call()
                    if cuda:
                        torch.cuda.synchronize(dev)
                    for _ in range(per_round):
                        item.samples.append(_timed_run(item.call, events))
                        if item.collect is not None:
                            item.collect()
                    if item.teardown is not None:
                        item.teardown()
        finally:
            if was_enabled:
                gc.enable()
    return [
        LatencyResult(
            device=device_name(dev),
            dtype=dtype,
            batch=batch,
            threads=used,
            warmup=warmup,
            runs=len(item.samples),
            samples_ms=tuple(item.samples),
            cuda_graph=False,
            **_stats(item.samples),
        )
        for item in items
    ]


def _events(dev: torch.device) -> tuple[Any, Any] | None:
    """A start and an end CUDA event to time runs on ``dev`` with, or ``None`` off CUDA."""
    if dev.type != "cuda":
        return None
    torch.cuda.synchronize(dev)
    return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)


def _timed_run(run: Callable[[], Any], events: tuple[Any, Any] | None) -> float:
    """One timed run of ``run()`` in ms: between two CUDA events, synchronised on the end one
    (``events`` from :func:`_events`), or with ``perf_counter`` on the CPU (``events=None``)."""
    if events is None:
        t0 = time.perf_counter()
        run()
        return (time.perf_counter() - t0) * 1e3
    start, end = events
    start.record()
    run()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end))


def _capture(call: Callable[[], Any], dev: torch.device) -> Callable[[], Any]:
    """``call`` captured as a CUDA graph on ``dev``: its ``replay``."""
    side = torch.cuda.Stream(dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
        for _ in range(3):
            call()
    torch.cuda.current_stream(dev).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            call()
    except RuntimeError as error:
        raise RuntimeError(f"the forward pass cannot be captured as a CUDA graph: {error}") from error
    return graph.replay


class LatencyCache:
    """Latency results in a JSON file, keyed by spec hash, device, dtype, batch and threads."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        default = Path(os.environ.get("ARCHSEARCH_CACHE", Path.home() / ".cache" / "archsearch"))
        self.path = Path(path) if path is not None else default / "latency.json"

    @staticmethod
    def key(
        spec_hash: str, device: str, dtype: str, batch: int, threads: int, cuda_graph: bool = False
    ) -> str:
        graph = "|graph" if cuda_graph else ""
        return f"{spec_hash}|{device}|{dtype}|b{batch}|t{threads}{graph}"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> LatencyResult | None:
        entry = self._load().get(key)
        if entry is None:
            return None
        try:
            return LatencyResult(**{**entry, "samples_ms": tuple(entry["samples_ms"])})
        except (TypeError, KeyError):
            return None  # an entry from another version: measure again

    def put(self, key: str, result: LatencyResult) -> None:
        data = self._load()
        data[key] = result.to_dict()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)  # atomic: a crash never leaves half a file
