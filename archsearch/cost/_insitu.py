"""Pieces timed in place: inside a whole model, in the cache and instruction state the model leaves
them in.

A small piece timed alone in a loop runs with its weights, its inputs and its compiled kernels
hot; inside a model the pieces before it have pushed them out, and on a CPU a conv of a few
thousand MACs can take half again as long there. So ``archsearch latency-table`` times each
piece where it runs: it builds members that together use every piece, and times each one whole
with a timestamp at the start of every piece (a forward pre-hook on the stem, each stage, each
block and the head, and a hook at the end of each stage and of the head). The timeline between
two timestamps belongs to the piece that starts it (the stretch after a stage's last block, its
``norm_out`` and map conversion, belongs to that stage's next piece), so the pieces tile the
forward pass. Each timestamp's own cost (calibrated on identity modules: a hooked call minus a
plain one) is taken off every stretch. The same runs without hooks time the whole member, a free
data point for the overhead fit.

On CUDA the timestamps are events on the stream (the GPU's timeline, no synchronisation between
pieces); no calibration is needed there.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core import NormalizedSpec
from ._latency import LatencyResult, measure_latency, time_call, torch_dtype
from ._pieces import BLOCK_INPUT, Piece, plan_pieces

__all__ = ["InSitu", "hook_cost_ms", "time_in_situ"]


@dataclass(frozen=True)
class InSitu:
    """A member timed with its pieces in place."""

    pieces: list[tuple[Piece, float, int]]
    """Each piece of the member in model order, with its median time in place (ms) and its weights
    (elements)."""
    whole: LatencyResult
    """The member timed whole, without timestamps."""


def _weights(module: nn.Module) -> int:
    return sum(t.numel() for t in module.parameters()) + sum(t.numel() for t in module.buffers())


_HOOK_COST: dict[tuple[str, int | None], float] = {}


def hook_cost_ms(device: str = "cpu", threads: int | None = None) -> float:
    """What one timestamp adds to the stretch it starts (ms): a hooked identity module's stretch in
    a chain of them, less a plain identity call. 0 on CUDA (events time the GPU's timeline)."""
    if torch.device(device).type == "cuda":
        return 0.0
    key = (device, threads)
    if key not in _HOOK_COST:
        chain = nn.Sequential(*[nn.Identity() for _ in range(8)])
        x = torch.zeros(1)
        plain = time_call(lambda: chain(x), threads=threads, warmup=50, runs=200).median_ms / 8
        marks: list[float] = []
        for m in chain:
            m.register_forward_pre_hook(lambda *_: marks.append(time.perf_counter()))
        stretches = []
        with torch.inference_mode():
            for _ in range(250):
                marks.clear()
                chain(x)
                stretches += [(b - a) * 1e3 for a, b in itertools.pairwise(marks)]
        _HOOK_COST[key] = max(0.0, statistics.median(stretches[50 * 7 :]) - plain)
    return _HOOK_COST[key]


def _owners(model: Any, plan: NormalizedSpec, pieces: list[Piece]) -> list[tuple[nn.Module, str, int]]:
    """(module, "pre" or "post", index of the piece that owns the stretch the timestamp starts)."""
    index = {(p.kind, p.stage, p.block): i for i, p in enumerate(pieces)}
    marks: list[tuple[nn.Module, str, int]] = []
    if plan.spec.stem is not None:
        marks.append((model.stem, "pre", index[("stem", None, None)]))
    head = index[("head", None, None)]
    stages = model.stages
    for sp, stage in zip(plan.stages, stages, strict=True):
        marks.append((stage, "pre", index[("stage", sp.index, None)]))
        if sp.family in BLOCK_INPUT:
            for j, block in enumerate(stage.blocks):
                marks.append((block, "pre", index[("block", sp.index, j)]))
        following = index[("stage", sp.index + 1, None)] if sp.index + 1 < len(plan.stages) else head
        marks.append((stage, "post", following))
    marks.append((model.head, "pre", head))
    marks.append((model.head, "post", -1))  # the end of the timeline
    return marks


def time_in_situ(
    plan: NormalizedSpec,
    build: Callable[[NormalizedSpec], nn.Module],
    *,
    device: str = "cpu",
    dtype: str = "float32",
    batch: int = 1,
    threads: int | None = None,
    warmup: int = 10,
    runs: int = 30,
    seed: int = 0,
) -> InSitu:
    """Time ``plan``'s pieces in place (see the module's docstring) and the member whole.

    ``build`` compiles the plan (:func:`archsearch.build`). Each piece's time is the median over
    ``runs`` of its stretches in one forward pass, less the calibrated cost of a timestamp (CPU).

    Raises:
        ValueError: an unknown dtype or ``runs < 4``.
        RuntimeError: CUDA asked for where there is none.
    """
    torch_dt = torch_dtype(dtype)
    dev = torch.device(device)
    torch.manual_seed(seed)
    model = build(plan).eval().to(device=dev, dtype=torch_dt)
    x = plan.input_shape
    shape = (batch, x.channels, x.height, x.width)
    whole = measure_latency(
        model, shape, device=device, dtype=dtype, warmup=warmup, runs=runs, threads=threads
    )
    pieces = plan_pieces(plan)
    marks = _owners(model, plan, pieces)
    cuda = dev.type == "cuda"
    stamps: list[Any] = []

    def stamp() -> None:
        if cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            stamps.append(event)
        else:
            stamps.append(time.perf_counter())

    handles = []
    for module, when, _ in marks:
        if when == "pre":
            handles.append(module.register_forward_pre_hook(lambda *_: stamp()))
        else:
            handles.append(module.register_forward_hook(lambda *_: stamp()))
    owners = [owner for *_, owner in marks]
    # a module that carries two timestamps (a stage: pre and post) fires them in that order, and
    # modules fire in the order the model calls them, which is the order of ``marks``
    inp = torch.randn(shape, device=dev, dtype=torch_dt)
    per_piece: list[list[float]] = [[] for _ in pieces]
    cost = hook_cost_ms(device, threads)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for r in range(warmup + runs):
                stamps.clear()
                model(inp)
                if r < warmup:
                    continue
                if cuda:
                    stamps[-1].synchronize()
                    gaps = [a.elapsed_time(b) for a, b in itertools.pairwise(stamps)]
                else:
                    gaps = [(b - a) * 1e3 for a, b in itertools.pairwise(stamps)]
                totals = [0.0] * len(pieces)
                counts = [0] * len(pieces)
                for owner, gap in zip(owners, gaps, strict=False):
                    totals[owner] += gap
                    counts[owner] += 1
                for i, (t, n) in enumerate(zip(totals, counts, strict=True)):
                    per_piece[i].append(max(0.0, t - n * cost))
    finally:
        torch.set_num_threads(before)
        for h in handles:
            h.remove()
    return InSitu(
        [
            (p, statistics.median(times), _piece_weights(model, plan, p))
            for p, times in zip(pieces, per_piece, strict=True)
        ],
        whole,
    )


def _piece_weights(model: Any, plan: NormalizedSpec, piece: Piece) -> int:
    """The weights (elements) of the modules a piece runs, in the built model."""
    stages = model.stages
    if piece.kind == "stem":
        return _weights(model.stem)
    if piece.kind == "head":
        return _weights(model.head)
    assert piece.stage is not None
    stage = stages[piece.stage]
    if piece.kind == "block":
        block: nn.Module = stage.blocks[piece.block]
        return _weights(block)
    blocks: nn.Module = stage.blocks
    inside = _weights(blocks) if plan.stages[piece.stage].family in BLOCK_INPUT else 0
    return _weights(stage) - inside
