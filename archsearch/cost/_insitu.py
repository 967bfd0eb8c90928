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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core import NormalizedSpec
from ._heap import steady_heap
from ._latency import (
    DEFAULT_STATISTIC,
    LatencyResult,
    Timed,
    _threads,
    statistic_ms,
    time_call,
    time_interleaved,
    torch_dtype,
)
from ._pieces import BLOCK_INPUT, Piece, plan_pieces

__all__ = ["InSitu", "hook_cost_ms", "time_in_situ", "time_in_situ_many"]


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
        with _threads(threads), steady_heap(), torch.inference_mode():
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
    plan: NormalizedSpec, build: Callable[[NormalizedSpec], nn.Module], **setting: Any
) -> InSitu:
    """Time ``plan``'s pieces in place (see the module's docstring) and the member whole: one
    member of :func:`time_in_situ_many`, whose keyword arguments (``device``, ``dtype``, ``batch``,
    ``threads``, ``warmup``, ``runs``, ``seed``) it takes, in one round."""
    return time_in_situ_many([plan], build, rounds=1, **setting)[0]


class _Host:
    """A member built, and the two ways it is timed: plain (the whole) and with timestamps."""

    def __init__(
        self,
        plan: NormalizedSpec,
        build: Callable[[NormalizedSpec], nn.Module],
        dev: torch.device,
        dtype: torch.dtype,
        batch: int,
        seed: int,
    ):
        torch.manual_seed(seed)
        self.plan = plan
        self.model = build(plan).eval().to(device=dev, dtype=dtype)
        x = plan.input_shape
        self.input = torch.randn((batch, x.channels, x.height, x.width), device=dev, dtype=dtype)
        self.pieces = plan_pieces(plan)
        self.marks = _owners(self.model, plan, self.pieces)
        self.owners = [owner for *_, owner in self.marks]
        # a module that carries two timestamps (a stage: pre and post) fires them in that order,
        # and modules fire in the order the model calls them, which is the order of ``marks``
        self.cuda = dev.type == "cuda"
        self.stamps: list[Any] = []
        self.handles: list[Any] = []
        self.per_piece: list[list[float]] = [[] for _ in self.pieces]
        self.cost = 0.0

    def call(self) -> Any:
        return self.model(self.input)

    def stamped_call(self) -> Any:
        self.stamps.clear()
        return self.model(self.input)

    def _stamp(self, *_: Any) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.stamps.append(event)
        else:
            self.stamps.append(time.perf_counter())

    def hook(self) -> None:
        """Put the timestamps on (hooks slow every call of the modules that carry them, so they
        are on only while the stamped runs are timed)."""
        for module, when, _ in self.marks:
            register = module.register_forward_pre_hook if when == "pre" else module.register_forward_hook
            self.handles.append(register(self._stamp))

    def unhook(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def collect(self) -> None:
        """Cut the last stamped run's timeline into the pieces' stretches."""
        if self.cuda:
            self.stamps[-1].synchronize()
            gaps = [a.elapsed_time(b) for a, b in itertools.pairwise(self.stamps)]
        else:
            gaps = [(b - a) * 1e3 for a, b in itertools.pairwise(self.stamps)]
        totals = [0.0] * len(self.pieces)
        counts = [0] * len(self.pieces)
        for owner, gap in zip(self.owners, gaps, strict=False):
            totals[owner] += gap
            counts[owner] += 1
        for i, (t, n) in enumerate(zip(totals, counts, strict=True)):
            self.per_piece[i].append(max(0.0, t - n * self.cost))


def time_in_situ_many(
    plans: list[NormalizedSpec],
    build: Callable[[NormalizedSpec], nn.Module],
    *,
    device: str = "cpu",
    dtype: str = "float32",
    batch: int = 1,
    threads: int | None = None,
    warmup: int = 10,
    runs: int = 30,
    rounds: int = 10,
    seed: int = 0,
    extra: Sequence[Timed] = (),
    statistic: str = DEFAULT_STATISTIC,
) -> list[InSitu]:
    """Time each plan's pieces in place (see the module's docstring) and each member whole, all of
    them in interleaved rounds (:func:`~._latency.time_interleaved`: each round, in a shuffled
    order, every member runs ``ceil(runs / rounds)`` times whole and as often with timestamps), so
    a drift of the machine's speed while they are timed touches them all alike.

    ``build`` compiles a plan (:func:`archsearch.build`); each member's weights are seeded by
    ``seed``. Each piece's time is the ``statistic`` (:data:`~._latency.STATISTICS`, default the
    median) over the stamped runs of its stretches in one forward
    pass, less the calibrated cost of a timestamp (CPU); each whole is timed without timestamps.
    ``extra`` items (e.g. the calibration reference, :mod:`._latency_reference`) are timed in the
    same rounds; their runs are left in their ``samples``.

    Raises:
        ValueError: an unknown dtype or statistic, ``runs < 4`` or ``rounds < 1``.
        RuntimeError: CUDA asked for where there is none.
    """
    torch_dt = torch_dtype(dtype)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA latency was asked for, but no CUDA device is available")
    hosts = [_Host(plan, build, dev, torch_dt, batch, seed) for plan in plans]
    cost = hook_cost_ms(device, threads)
    items: list[Timed] = []
    for host in hosts:
        host.cost = cost
        items.append(Timed(host.call))
        items.append(Timed(host.stamped_call, setup=host.hook, teardown=host.unhook, collect=host.collect))
    results = time_interleaved(
        [*items, *extra],
        device=device,
        dtype=dtype,
        batch=batch,
        warmup=warmup,
        runs=runs,
        rounds=rounds,
        threads=threads,
        seed=seed,
    )
    return [
        InSitu(
            [
                (p, statistic_ms(times, statistic), _piece_weights(host.model, host.plan, p))
                for p, times in zip(host.pieces, host.per_piece, strict=True)
            ],
            whole,
        )
        for host, whole in zip(hosts, results[: len(items) : 2], strict=True)
    ]


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
