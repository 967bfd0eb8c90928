"""The orchestrator side of ``zoo_speed.py``: worker processes spoken to over pipes, the background
CPU load, the equivalence check, interleaved timing rounds and the results table."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _zoo_reference import REFERENCES
from _zoo_worker import PROTOCOL_PREFIX

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "zoo_speed.py"  # the workers are this script run with --worker


class CpuMeter:
    """Background CPU load: busy CPU time of the whole machine minus that of the given processes.

    Reads ``/proc/stat`` and ``/proc/<pid>/stat`` (Linux); elsewhere :meth:`cores` returns None.
    """

    def __init__(self, pids: Sequence[int]):
        self.pids = [os.getpid(), *pids]
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._start = self._sample()

    def _sample(self) -> tuple[float, int, int] | None:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
            busy = sum(v) - v[3] - v[4]  # user nice system [idle iowait] irq softirq steal
            own = 0
            for pid in self.pids:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                own += int(fields[11]) + int(fields[12])  # utime + stime, all threads
            return time.perf_counter(), busy, own
        except (OSError, ValueError, IndexError):
            return None

    def cores(self) -> float | None:
        """Average number of cores used by other processes since construction."""
        end = self._sample()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return None
        foreign = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return max(0.0, foreign / self._hz / (end[0] - self._start[0]))


def wait_quiet(pids: Sequence[int], max_wait: float, threshold: float = 0.25) -> None:
    """Wait (at most ``max_wait`` s) until other processes use less than ``threshold`` cores."""
    deadline = time.perf_counter() + max_wait
    while time.perf_counter() < deadline:
        meter = CpuMeter(pids)
        time.sleep(0.2)
        load = meter.cores()
        if load is None or load < threshold:
            return


class WorkerError(RuntimeError):
    pass


class Worker:
    """A ``--worker`` subprocess of this script, spoken to with one JSON object per line."""

    def __init__(self, python: str, side: str, model: str, args: argparse.Namespace):
        self.side = side
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(args.threads)
        env["PYTHONWARNINGS"] = "ignore"
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in close())
        cmd = [
            python,
            str(SCRIPT),
            "--worker",
            side,
            "--model",
            model,
            "--threads",
            str(args.threads),
            "--cvt-ref",
            args.cvt_ref,
        ]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            cwd=str(HERE),
        )
        self.hello = self._read()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(PROTOCOL_PREFIX):
                reply: dict[str, Any] = json.loads(line[len(PROTOCOL_PREFIX) :])
                if not reply.get("ok"):
                    raise WorkerError(f"{self.side} worker: {reply.get('error')}")
                return reply
        self._proc.wait()
        self._stderr.seek(0)
        tail = self._stderr.read()[-2000:]
        raise WorkerError(f"{self.side} worker exited ({self._proc.returncode}):\n{tail}")

    def request(self, **req: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(req) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # _read reports the exit with the worker's stderr
        return self._read()

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self.request(cmd="quit")
                self._proc.wait(timeout=30)
            except (WorkerError, OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()


@contextlib.contextmanager
def open_worker(python: str, side: str, model: str, args: argparse.Namespace) -> Iterator[Worker]:
    w = Worker(python, side, model, args)
    try:
        yield w
    finally:
        w.close()


@dataclass
class Stats:
    median_ms: float
    iqr_ms: float
    q1_ms: float
    q3_ms: float
    n: int
    times_ms: list[float] = field(repr=False)

    @classmethod
    def of(cls, times: Sequence[float]) -> Stats:
        q1, q2, q3 = statistics.quantiles(times, n=4, method="inclusive")
        return cls(q2, q3 - q1, q1, q3, len(times), [round(t, 4) for t in times])

    def cell(self) -> str:
        return f"{self.median_ms:9.2f} ({self.iqr_ms:6.2f})"


@dataclass
class Row:
    model: str
    batch: int
    reference: str | None
    ours: Stats | None = None
    ref: Stats | None = None
    equal: str = "-"  # max|diff| as text, "mismatch", "error" or "-"
    error: str | None = None
    paired_ratio: float | None = None  # median over rounds of (ours / ref) within the round
    background_cores: float | None = None  # CPU load of other processes while timing

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.ref is None:
            return None
        return self.ours.median_ms / self.ref.median_ms


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def equivalence(ours: Worker, ref: Worker) -> dict[str, Any]:
    fd, path = tempfile.mkstemp(suffix=".pt", prefix="zoo_speed_")
    os.close(fd)
    try:
        ref.request(cmd="save", path=path)
        return ours.request(cmd="check", path=path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def bench_model(
    name: str, args: argparse.Namespace, ref_python: str | None
) -> tuple[list[Row], dict[str, Any]]:
    """Equivalence check, then interleaved timing rounds, for one zoo model at every batch size."""
    target = REFERENCES.get(name)
    use_ref = ref_python is not None and target is not None
    cvt_missing = not (Path(args.cvt_ref) / "load_cvt.py").is_file()
    if use_ref and target is not None and target.startswith("cvt:") and cvt_missing:
        log(f"  {name}: reference not available ({args.cvt_ref}/load_cvt.py missing)")
        use_ref = False
    rows = [Row(name, b, target if use_ref else None) for b in args.batch]
    info: dict[str, Any] = {"reference": target if use_ref else None}
    with contextlib.ExitStack() as stack:
        ours = stack.enter_context(open_worker(sys.executable, "ours", name, args))
        info["ours_worker"] = ours.hello
        ref: Worker | None = None
        if use_ref:
            assert ref_python is not None
            try:
                ref = stack.enter_context(open_worker(ref_python, "ref", name, args))
                info["ref_worker"] = ref.hello
            except WorkerError as exc:
                log(f"  {name}: reference failed to start: {exc}")
                info["ref_error"] = str(exc)
        if ref is not None and ref.hello["size"] != ours.hello["size"]:
            log(f"  {name}: note: reference native size {ref.hello['size']} != ours {ours.hello['size']}")
        equal = "-"
        if ref is not None:
            try:
                eq = equivalence(ours, ref)
            except WorkerError as exc:
                eq = {"status": "error", "reason": str(exc)}
            info["equivalence"] = eq
            if eq["status"] == "ok":
                equal = f"{eq['max_abs_diff']:.1e}"
                log(
                    f"  {name}: max|ours - ref| = {eq['max_abs_diff']:.3e} "
                    f"(max|ref| = {eq['max_abs_ref']:.3e}, {eq['tensors']} tensors paired)"
                )
            else:
                equal = eq["status"]
                log(f"  {name}: equivalence {eq['status']}: {eq.get('reason')}")
        sides: list[tuple[str, Worker]] = [("ours", ours)] + ([("ref", ref)] if ref is not None else [])
        rounds = args.rounds or args.runs
        per_round = math.ceil(args.runs / rounds)
        for row in rows:
            row.equal = equal
            times: dict[str, list[float]] = {s: [] for s, _ in sides}
            round_ratios: list[float] = []
            t0 = time.perf_counter()
            for _, w in sides:  # warm-up, ours then ref
                w.request(
                    cmd="time", batch=row.batch, warmup=args.warmup, runs=0, warmup_s=args.warmup_seconds
                )
            meter = CpuMeter([w.pid for _, w in sides])
            for r in range(rounds):
                if args.wait_quiet > 0:
                    wait_quiet([w.pid for _, w in sides], args.wait_quiet)
                order = sides if r % 2 == 0 else sides[::-1]  # ABBA: neither side always goes first
                medians: dict[str, float] = {}
                for side, w in order:
                    reply = w.request(cmd="time", batch=row.batch, warmup=args.rewarm, runs=per_round)
                    times[side] += reply["times_ms"]
                    medians[side] = statistics.median(reply["times_ms"])
                if "ref" in medians:
                    round_ratios.append(medians["ours"] / medians["ref"])
            row.background_cores = meter.cores()
            row.ours = Stats.of(times["ours"])
            if "ref" in times:
                row.ref = Stats.of(times["ref"])
                row.paired_ratio = statistics.median(round_ratios)
            ratio = f", ratio {row.ratio:.3f}" if row.ratio is not None else ""
            ratio += f" (paired {row.paired_ratio:.3f})" if row.paired_ratio is not None else ""
            bg = f", background {row.background_cores:.2f} cores" if row.background_cores is not None else ""
            log(
                f"  {name} batch {row.batch}: ours {row.ours.median_ms:.2f} ms"
                + (f", ref {row.ref.median_ms:.2f} ms" if row.ref else "")
                + f"{ratio}"
                f"  [{time.perf_counter() - t0:.0f} s{bg}]"
            )
    return rows, info


def table(rows: Sequence[Row], target: float) -> str:
    head = (
        f"{'model':<10} {'batch':>5}  {'ours ms (IQR)':>18}  {'ref ms (IQR)':>18}  "
        f"{'ours/ref':>8}  {'paired':>6}  {'max|diff|':>9}  {'bg':>4}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        ours = row.ours.cell() if row.ours else f"{'error':>18}"
        ref = row.ref.cell() if row.ref else f"{'-':>18}"
        ratio = f"{row.ratio:8.3f}" if row.ratio is not None else f"{'-':>8}"
        paired = f"{row.paired_ratio:6.3f}" if row.paired_ratio is not None else f"{'-':>6}"
        mark = f"  <-- > {target:.2f}" if row.ratio is not None and row.ratio > target else ""
        bg = f"{row.background_cores:4.2f}" if row.background_cores is not None else f"{'-':>4}"
        cells = f"{ours}  {ref}  {ratio}  {paired}  {row.equal:>9}  {bg}"
        lines.append(f"{row.model:<10} {row.batch:>5}  {cells}{mark}")
    return "\n".join(lines)
