#!/usr/bin/env python3
"""CPU inference latency of every zoo model, side by side with its reference implementation.

Usage::

    python benchmarks/zoo_speed.py                                   # whole zoo, batch 1 and 8
    python benchmarks/zoo_speed.py --models resnet-50,deit-ti,cvt-13 --runs 20
    python benchmarks/zoo_speed.py --threads 4 --batch 1,16 --ref-python /path/to/venv/bin/python

Each model runs at its native resolution in eval mode under ``torch.inference_mode`` with a fixed
thread count (``torch.set_num_threads`` in every measuring process), and the table reports the median
and interquartile range (IQR) of the per-forward latency in milliseconds.

Reference implementations (timm, official microsoft/CvT) live in a separate virtual environment
built by ``shared/tools/reference-env.sh`` (default ``/tmp/archsearch-ref``). The project never
imports them: the script re-invokes itself as a long-lived worker process, once with the project's
python (``--worker ours``) and once with the reference python (``--worker ref``), and talks to both
over stdin/stdout with one JSON object per line. Both workers are alive at the same time but only
one computes at any moment; after ``--warmup`` forwards each, the orchestrator alternates timing
rounds between them (ours, ref, ref, ours, ...; by default one forward per round) and pools all
rounds into the statistics, so machine load hits both sides alike. Besides the ratio of the medians
the table shows the "paired" ratio, the median over rounds of ours/ref within a round (the steadier
estimate under moderate noise), and "bg", the CPU load of other processes while timing (from /proc):
rows with bg above ~0.2 cores were measured on a shared machine and should be rerun.
``--wait-quiet SECONDS`` makes each round wait for the machine to calm down first.

Before timing, where a reference exists, the reference worker perturbs its weights and BN statistics
(so zero-initialised layers take part), saves its state dict with an input and its output at batch 2
to a temporary ``.pt`` file, and our worker copies those tensors into our model (paired by order, see
:func:`pair_state_dicts`) and reports ``max|ours - ref|``. Both models are then timed with the same
weights. Rows whose ratio ours/ref exceeds ``--target`` (1.05) are marked. Results also go to
``benchmarks/results/zoo_speed.json``.

To add a reference for a new zoo model, add one line to :data:`REFERENCES`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and archsearch are imported inside functions: the reference venv runs this file too
    import torch
    from torch import nn

# zoo name -> reference: "timm:<model name>", "cvt:<depth,depth,depth>" (official microsoft/CvT, loaded
# by load_cvt.py from --cvt-ref), or None when no reference implementation exists.
REFERENCES: dict[str, str | None] = {
    "resnet-50": "timm:resnet50",
    "bot-50": None,
    "vit-b16": "timm:vit_base_patch16_224",
    "deit-s": "timm:deit_small_patch16_224",
    "deit-ti": "timm:deit_tiny_patch16_224",
    "cvt-13": "cvt:1,2,10",
    "cvt-21": "cvt:1,4,16",
    "t2t-vit-t-14": None,  # yitu-opensource/T2T-ViT: not in timm (equivalence checked in its tests' notes)
    "pvt-v2-b1": "timm:pvt_v2_b1",
    "swin-t": "timm:swin_tiny_patch4_window7_224",
    "convnext-t": "timm:convnext_tiny",
    "mobilevit-s": "timm:mobilevit_s",
    "mobilevit-xxs": "timm:mobilevit_xxs",
}

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "zoo_speed.json"
DEFAULT_REF_PYTHON = "/tmp/archsearch-ref/bin/python"
DEFAULT_CVT_REF = "/tmp/cvt_ref"
PROTOCOL_PREFIX = "@@zoo_speed "  # marks the worker's protocol lines on stdout
EQUIV_BATCH = 2
SEED = 0


# --------------------------------------------------------------------------------------------------
# Shared helpers (also importable from the reference venv: stdlib + torch only)
# --------------------------------------------------------------------------------------------------


def pair_state_dicts(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor] | None, str]:
    """Pair the tensors of ``source`` with those of ``target`` in registration order.

    Floating-point parameters and buffers are paired one to one in the order the two state dicts list
    them (module registration order), and every pair must have the same shape. Integer buffers
    (BatchNorm's ``num_batches_tracked``, relative-position index tables) are not weights: they are
    left out of the pairing and ``target`` keeps its own.

    Returns ``(new_target_state, "")`` on success and ``(None, reason)`` when the two do not pair.
    """
    src = [(k, v) for k, v in source.items() if v.is_floating_point()]
    dst = [(k, v) for k, v in target.items() if v.is_floating_point()]
    if len(src) != len(dst):
        return None, f"{len(src)} reference tensors vs {len(dst)} ours"
    out = dict(target)
    for i, ((sk, sv), (dk, dv)) in enumerate(zip(src, dst, strict=True)):
        if sv.shape != dv.shape:
            return None, f"tensor {i}: ref {sk} {tuple(sv.shape)} vs ours {dk} {tuple(dv.shape)}"
        out[dk] = sv.detach().clone().to(dv.dtype)
    return out, ""


def _perturb_(model: nn.Module, seed: int) -> None:
    """Give every floating-point tensor of ``model`` non-trivial values, keeping BN variances positive."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            else:
                t.add_(torch.randn(t.shape, generator=gen) * 0.02)


def _build_ours(name: str) -> tuple[nn.Module, tuple[int, int]]:
    """Our zoo model and its native input (height, width)."""
    import archsearch

    model = archsearch.create_model(name)
    shape = model.plan.input_shape
    return model, (shape.height, shape.width)


def _build_ref(name: str, cvt_dir: str) -> tuple[nn.Module, tuple[int, int]]:
    """The reference implementation of zoo model ``name`` (see :data:`REFERENCES`) and its input size."""
    target = REFERENCES.get(name)
    if target is None:
        raise ValueError(f"no reference implementation for {name!r}")
    kind, _, arg = target.partition(":")
    if kind == "timm":
        import timm

        model = timm.create_model(arg, pretrained=False)
        _, h, w = model.pretrained_cfg.get("input_size", (3, 224, 224))
        return model, (int(h), int(w))
    if kind == "cvt":
        sys.path.insert(0, cvt_dir)
        import load_cvt

        depths = tuple(int(d) for d in arg.split(","))
        return load_cvt.build(depths=depths, num_classes=1000), (224, 224)
    raise ValueError(f"unknown reference kind {kind!r} in {target!r}")


# --------------------------------------------------------------------------------------------------
# Worker: builds one model, then answers JSON requests on stdin
# --------------------------------------------------------------------------------------------------


def _time_forward(
    model: nn.Module, x: torch.Tensor, warmup: int, runs: int, warmup_s: float = 0.0
) -> list[float]:
    """``warmup`` untimed forwards, continued until ``warmup_s`` seconds have passed, then ``runs``
    timed ones. The time floor matters for the first, fast model of a run: a few forwards of a
    fresh process are not enough to reach steady state (allocator, oneDNN primitive caches)."""
    import torch

    times: list[float] = []
    with torch.inference_mode():
        start = time.perf_counter()
        done = 0
        while done < warmup or (warmup and time.perf_counter() - start < warmup_s):
            model(x)
            done += 1
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    return times


def _worker_main(args: argparse.Namespace) -> int:
    proto: IO[str] = sys.stdout
    sys.stdout = sys.stderr  # anything the libraries print must not reach the protocol stream

    def reply(obj: dict[str, Any]) -> None:
        proto.write(PROTOCOL_PREFIX + json.dumps(obj) + "\n")
        proto.flush()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    try:
        if args.worker == "ours":
            model, size = _build_ours(args.model)
        else:
            model, size = _build_ref(args.model, args.cvt_ref)
    except Exception as exc:
        reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    model.eval()
    hello: dict[str, Any] = {
        "ok": True,
        "size": size,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": sys.executable,
    }
    if args.worker == "ref":
        with contextlib.suppress(ImportError):
            import timm

            hello["timm"] = timm.__version__
    reply(hello)

    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        cmd = req["cmd"]
        try:
            if cmd == "quit":
                reply({"ok": True})
                return 0
            if cmd == "time":
                gen = torch.Generator().manual_seed(SEED)
                x = torch.randn(req["batch"], 3, *size, generator=gen)
                times = _time_forward(model, x, req["warmup"], req["runs"], req.get("warmup_s", 0.0))
                reply({"ok": True, "times_ms": times})
            elif cmd == "save":  # reference side of the equivalence check
                _perturb_(model, SEED + 1)
                gen = torch.Generator().manual_seed(SEED + 2)
                x = torch.randn(EQUIV_BATCH, 3, *size, generator=gen)
                with torch.inference_mode():
                    y = model(x)
                torch.save({"state": model.state_dict(), "input": x, "output": y}, req["path"])
                reply({"ok": True})
            elif cmd == "check":  # our side: copy the reference weights in and compare outputs
                saved = torch.load(req["path"], weights_only=True)
                state, reason = pair_state_dicts(saved["state"], model.state_dict())
                if state is None:
                    reply({"ok": True, "status": "mismatch", "reason": reason})
                    continue
                model.load_state_dict(state, strict=True)
                with torch.inference_mode():
                    y = model(saved["input"])
                ref = saved["output"].reshape(y.shape)
                diff = (y - ref).abs().max().item()
                reply(
                    {
                        "ok": True,
                        "status": "ok",
                        "max_abs_diff": diff,
                        "max_abs_ref": ref.abs().max().item(),
                        "tensors": len(state),
                    }
                )
            else:
                reply({"ok": False, "error": f"unknown command {cmd!r}"})
        except Exception as exc:
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return 0


# --------------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------------


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


def _wait_quiet(pids: Sequence[int], max_wait: float, threshold: float = 0.25) -> None:
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
            str(Path(__file__).resolve()),
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
def _worker(python: str, side: str, model: str, args: argparse.Namespace) -> Iterator[Worker]:
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


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _equivalence(ours: Worker, ref: Worker) -> dict[str, Any]:
    fd, path = tempfile.mkstemp(suffix=".pt", prefix="zoo_speed_")
    os.close(fd)
    try:
        ref.request(cmd="save", path=path)
        return ours.request(cmd="check", path=path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _bench_model(
    name: str, args: argparse.Namespace, ref_python: str | None
) -> tuple[list[Row], dict[str, Any]]:
    """Equivalence check, then interleaved timing rounds, for one zoo model at every batch size."""
    target = REFERENCES.get(name)
    use_ref = ref_python is not None and target is not None
    cvt_missing = not (Path(args.cvt_ref) / "load_cvt.py").is_file()
    if use_ref and target is not None and target.startswith("cvt:") and cvt_missing:
        _log(f"  {name}: reference not available ({args.cvt_ref}/load_cvt.py missing)")
        use_ref = False
    rows = [Row(name, b, target if use_ref else None) for b in args.batch]
    info: dict[str, Any] = {"reference": target if use_ref else None}
    with contextlib.ExitStack() as stack:
        ours = stack.enter_context(_worker(sys.executable, "ours", name, args))
        info["ours_worker"] = ours.hello
        ref: Worker | None = None
        if use_ref:
            assert ref_python is not None
            try:
                ref = stack.enter_context(_worker(ref_python, "ref", name, args))
                info["ref_worker"] = ref.hello
            except WorkerError as exc:
                _log(f"  {name}: reference failed to start: {exc}")
                info["ref_error"] = str(exc)
        if ref is not None and ref.hello["size"] != ours.hello["size"]:
            _log(f"  {name}: note: reference native size {ref.hello['size']} != ours {ours.hello['size']}")
        equal = "-"
        if ref is not None:
            try:
                eq = _equivalence(ours, ref)
            except WorkerError as exc:
                eq = {"status": "error", "reason": str(exc)}
            info["equivalence"] = eq
            if eq["status"] == "ok":
                equal = f"{eq['max_abs_diff']:.1e}"
                _log(
                    f"  {name}: max|ours - ref| = {eq['max_abs_diff']:.3e} "
                    f"(max|ref| = {eq['max_abs_ref']:.3e}, {eq['tensors']} tensors paired)"
                )
            else:
                equal = eq["status"]
                _log(f"  {name}: equivalence {eq['status']}: {eq.get('reason')}")
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
                    _wait_quiet([w.pid for _, w in sides], args.wait_quiet)
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
            _log(
                f"  {name} batch {row.batch}: ours {row.ours.median_ms:.2f} ms"
                + (f", ref {row.ref.median_ms:.2f} ms" if row.ref else "")
                + f"{ratio}"
                f"  [{time.perf_counter() - t0:.0f} s{bg}]"
            )
    return rows, info


def _table(rows: Sequence[Row], target: float) -> str:
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


def _csv_ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="CPU inference latency of the archsearch zoo vs the reference implementations "
        "(timm, official CvT), measured side by side in interleaved rounds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--models", default="all", help="comma-separated zoo names, or all of zoo_names()")
    p.add_argument("--batch", type=_csv_ints, default="1,8", help="comma-separated batch sizes")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in each measuring process")
    p.add_argument("--warmup", type=int, default=5, help="warm-up forwards before the first round")
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=2.0,
        help="keep warming up until this many seconds have passed",
    )
    p.add_argument("--runs", type=int, default=20, help="timed forwards per model, batch and side (at least)")
    p.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="alternating ours/ref rounds to split the runs into (0: one forward per round)",
    )
    p.add_argument("--rewarm", type=int, default=0, help="untimed forwards at the start of each round")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each round wait up to this long for other processes to use < 0.25 cores "
        "(for shared machines; the waiting is not timed)",
    )
    p.add_argument("--target", type=float, default=1.05, help="mark rows whose ours/ref ratio exceeds this")
    p.add_argument(
        "--ref-python",
        default=DEFAULT_REF_PYTHON,
        help="python of the reference venv (shared/tools/reference-env.sh)",
    )
    p.add_argument("--cvt-ref", default=DEFAULT_CVT_REF, help="directory holding official CvT's load_cvt.py")
    p.add_argument("--no-ref", action="store_true", help="time only ours")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    p.add_argument("--worker", choices=("ours", "ref"), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.runs < 4 or not 0 <= args.rounds <= args.runs or args.threads < 1 or not args.batch:
        p.error("need --runs >= 4, 0 <= --rounds <= --runs, --threads >= 1 and at least one batch size")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker:
        return _worker_main(args)

    import archsearch

    names = [m.strip() for m in args.models.split(",") if m.strip() not in ("", "all")]
    names = names or list(archsearch.zoo_names())
    unknown = sorted(set(names) - set(archsearch.zoo_names()))
    if unknown:
        print(f"unknown zoo models: {', '.join(unknown)}", file=sys.stderr)
        return 2
    ref_python: str | None = args.ref_python
    if args.no_ref or not (ref_python and os.access(ref_python, os.X_OK)):
        print("reference: not available")
        ref_python = None
    else:
        print(f"reference: {ref_python}")
    print(
        f"threads {args.threads}, batch {args.batch}, warm-up {args.warmup}, "
        f">= {args.runs} timed runs in {args.rounds or args.runs} interleaved rounds",
        flush=True,
    )

    rows: list[Row] = []
    models: dict[str, Any] = {}
    start = time.perf_counter()
    for name in names:
        _log(f"{name} ...")
        try:
            model_rows, info = _bench_model(name, args, ref_python)
        except WorkerError as exc:
            _log(f"  {name}: failed: {exc}")
            model_rows = [
                Row(name, b, REFERENCES.get(name), error=str(exc), equal="error") for b in args.batch
            ]
            info = {"error": str(exc)}
        rows += model_rows
        models[name] = info
    elapsed = time.perf_counter() - start

    print()
    print(_table(rows, args.target))
    print(
        f"\nmedian (IQR) of the per-forward latency in ms; ours/ref = ratio of the medians; "
        f"paired = median over rounds of ours/ref\nwithin the round; max|diff| = max|ours - ref| at batch "
        f"{EQUIV_BATCH} with the reference's weights copied into ours;\nbg = cores used by other processes "
        f"while timing (above ~0.2 the machine was shared: latencies are inflated and ratios unreliable)."
        f"\ntotal {elapsed:.0f} s"
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "warmup": args.warmup,
            "runs": args.runs,
            "rounds": args.rounds or args.runs,
            "rewarm": args.rewarm,
            "wait_quiet_s": args.wait_quiet,
            "target_ratio": args.target,
            "ref_python": ref_python,
            "cvt_ref": args.cvt_ref,
            "elapsed_s": round(elapsed, 1),
        },
        "models": models,
        "rows": [{**asdict(r), "ratio": r.ratio} for r in rows],
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
