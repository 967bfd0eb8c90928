"""How many intra-op threads a CPU training run uses: ``threads: auto``.

torch runs one operator on several OpenMP threads that meet at a barrier at its end. When another
process holds one of those cores, every operator waits for the thread that shares it (the kernel
gives that thread half the core, a time slice at a time), so a small model trained on two threads
beside one busy process ran about 25x slower than alone (issue 18). ``auto`` picks the count:

1. **The ceiling**: torch's thread setting when the run starts (``OMP_NUM_THREADS``, Ray's CPUs
   per trial, ``torch.set_num_threads``), the CPUs this process may run on
   (``os.sched_getaffinity``) and the cgroup's CPU quota (``cpu.max``), whichever is smallest.
2. **Free cores**, re-read at every epoch: the CPUs this process may run on minus the cores other
   processes kept busy, from ``/proc/stat``'s per-CPU busy time less this process's own CPU time
   (:class:`CpuSampler`), over the time since the previous reading (the previous epoch; at least
   0.1 s), rounded to whole cores; at least 1. Where ``/proc/stat`` cannot be read, every core of
   the ceiling counts as free.
3. **What the model can use**: the first time more than one core is free, the run times a few
   steps at 1 thread and at 2, 4, ... up to the free count (one untimed warm-up step at each
   count, then :data:`PROBE_STEPS` timed ones, the fastest kept) and keeps a larger count only
   where its step is at least :data:`MIN_GAIN` faster than the smaller count kept so far.

The run then uses ``min(what the model can use, free cores)`` threads. Thread counts change the
order of floating-point sums, so two runs of one seed that pick different counts may differ in the
last digits; a fixed ``threads: N`` makes reruns bit-identical on the CPU.

The OpenMP threads must also not spin while they wait: ``archsearch`` sets ``OMP_WAIT_POLICY``
to ``PASSIVE`` before torch is first imported (unless it is set already): :mod:`archsearch._openmp`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "MIN_GAIN",
    "PROBE_STEPS",
    "AutoThreads",
    "CpuSampler",
    "core_ceiling",
    "cpu_quota",
    "oversubscription",
    "shared_sampler",
]

#: Timed steps per thread count while probing (after one untimed warm-up step).
PROBE_STEPS = 3
#: A larger thread count is kept only when its fastest step is this much faster (a fraction).
MIN_GAIN = 0.1
#: Shortest window over which other processes' CPU use is measured, in seconds.
MIN_WINDOW_S = 0.1
#: A reading older than this is stale: the next one samples a fresh window.
MAX_WINDOW_S = 30.0


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def cpu_quota(root: str | os.PathLike[str] = "/sys/fs/cgroup") -> int | None:
    """Whole CPUs the cgroup's quota allows (``cpu.max`` of cgroup v2, or ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us`` of v1), rounded up; ``None`` without a quota or where none is readable."""
    base = Path(root)
    try:
        quota, period = (base / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((base / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else max(1, math.ceil(quota_us / period_us))


def core_ceiling(torch_threads: int) -> int:
    """The most threads ``auto`` may use: ``torch_threads`` (torch's current setting), the CPUs
    this process may run on and the cgroup quota, whichever is smallest (at least 1)."""
    quota = cpu_quota()
    return max(1, min(torch_threads, len(_affinity()), quota if quota is not None else torch_threads))


def oversubscription(threads: int | None) -> str | None:
    """A warning when ``threads`` CPU threads are more than the cores this process may use (its
    CPU affinity and the cgroup quota, :func:`core_ceiling`): the latency then timed is that of
    an oversubscribed CPU (``profile --threads 999`` on 2 cores: ~900 ms for a model of ~20 ms).
    ``None`` when they fit or ``threads`` is ``None`` (torch's own setting)."""
    if threads is None or (cores := core_ceiling(threads)) >= threads:
        return None
    return (
        f"--threads {threads} is more than the {cores} core{'s' if cores != 1 else ''} this process may use: "
        "the latency is that of an oversubscribed CPU (set --threads at most the free cores)"
    )


class CpuSampler:
    """How many cores other processes keep busy on the CPUs this process may run on.

    Reads the per-CPU lines of ``/proc/stat`` (busy = all time but idle and iowait) and this
    process's CPU time (all its threads, :func:`time.process_time`); the difference between two
    readings, as a share of the window, is what the other processes used.
    """

    def __init__(
        self,
        cpus: set[int] | None = None,
        *,
        stat: str | os.PathLike[str] = "/proc/stat",
        clock: Callable[[], float] = time.monotonic,
        own_cpu: Callable[[], float] = time.process_time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.cpus = _affinity() if cpus is None else set(cpus)
        self.stat = Path(stat)
        self.clock, self.own_cpu, self.sleep = clock, own_cpu, sleep
        self._last = self._read()

    def _read(self) -> tuple[int, int, float, float] | None:
        """(busy ticks, all ticks) over ``self.cpus``, own CPU seconds, clock; ``None`` if unreadable."""
        try:
            lines = self.stat.read_text().splitlines()
        except OSError:
            return None
        busy = total = 0
        for line in lines:
            name, _, rest = line.partition(" ")
            if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in self.cpus:
                continue
            ticks = [int(v) for v in rest.split()[:8]]  # user nice system idle iowait irq softirq steal
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            busy += sum(ticks) - idle
            total += sum(ticks)
        return (busy, total, self.own_cpu(), self.clock()) if total else None

    def others_busy(self) -> float | None:
        """Cores other processes kept busy since the previous call (or since this sampler was made),
        e.g. ``1.0`` beside one single-threaded busy loop. Sleeps until at least
        :data:`MIN_WINDOW_S` has passed; a reading older than :data:`MAX_WINDOW_S` is replaced by a
        fresh window. ``None`` where ``/proc/stat`` cannot be read."""
        if self._last is None or self.clock() - self._last[3] > MAX_WINDOW_S:
            self._last = self._read()
            if self._last is None:
                return None
        waited = self.clock() - self._last[3]
        if waited < MIN_WINDOW_S:
            self.sleep(MIN_WINDOW_S - waited)
        now = self._read()
        if now is None:
            return None
        before, self._last = self._last, now
        ticks, wall = now[1] - before[1], now[3] - before[3]
        if ticks <= 0 or wall <= 0:
            return 0.0
        busy_cores = (now[0] - before[0]) / ticks * len(self.cpus)
        own_cores = (now[2] - before[2]) / wall
        return max(0.0, busy_cores - own_cores)

    def free_cores(self, ceiling: int) -> int:
        """Cores free for this process, at most ``ceiling`` and at least 1: the CPUs it may run
        on less the cores other processes kept busy (rounded to the nearest whole core)."""
        others = self.others_busy()
        if others is None:
            return ceiling
        return max(1, min(ceiling, len(self.cpus) - math.floor(others + 0.5)))


_shared_sampler: CpuSampler | None = None


def shared_sampler() -> CpuSampler:
    """One sampler per process, so that a run's first reading spans the time since the previous run."""
    global _shared_sampler
    if _shared_sampler is None:
        _shared_sampler = CpuSampler()
    return _shared_sampler


class AutoThreads:
    """The thread count of each step of one training run under ``threads: auto`` (module docstring).

    The trainer calls :meth:`start_epoch` before each epoch, :meth:`threads` before each step and
    :meth:`record` with the step's wall time (seconds) after it.
    """

    def __init__(self, ceiling: int, sampler: CpuSampler | None, *, probe_steps: int = PROBE_STEPS):
        self.ceiling, self.sampler, self.probe_steps = max(1, ceiling), sampler, probe_steps
        self.free = self.ceiling
        self.useful: int | None = None
        """Threads the model can use (``None`` until probed)."""
        self._counts: list[int] = []  # the counts still to probe
        self._times: dict[int, list[float]] = {}
        self._current = 1

    def start_epoch(self) -> int:
        """Re-read the free cores; returns them."""
        if self.sampler is not None and self.ceiling > 1:
            self.free = self.sampler.free_cores(self.ceiling)
        return self.free

    def threads(self) -> int:
        """Threads for the next step."""
        if self.free <= 1:
            self._counts, self._times = [], {}  # a probe cut short by load starts over later
            self._current = 1
            return 1
        if self.useful is None:
            if not self._counts:
                self._counts = _probe_counts(self.free)
            self._current = self._counts[0]
            return self._current
        self._current = min(self.useful, self.free)
        return self._current

    def record(self, seconds: float) -> None:
        """The wall time of the step just run (on :meth:`threads`' count)."""
        if self.useful is not None or not self._counts:
            return
        times = self._times.setdefault(self._current, [])
        times.append(seconds)
        if len(times) > self.probe_steps:  # the first one was the warm-up
            self._counts.pop(0)
            if not self._counts:
                self.useful = _fewest_fast_enough({n: min(t[1:]) for n, t in self._times.items()}, MIN_GAIN)


def _probe_counts(free: int) -> list[int]:
    """1, 2, 4, ... up to ``free``, and ``free`` itself."""
    counts, n = [], 1
    while n < free:
        counts.append(n)
        n *= 2
    return [*counts, free]


def _fewest_fast_enough(step_s: dict[int, float], gain: float) -> int:
    """Walking up the thread counts, a larger one replaces the one kept when its step is at least
    ``gain`` (a fraction) faster."""
    kept = min(step_s)
    for n in sorted(step_s):
        if step_s[n] < (1 - gain) * step_s[kept]:
            kept = n
    return kept
