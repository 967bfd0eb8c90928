"""The quickstart's speed under load: alone, then beside one busy process, in one run (issue 18).

Runs ``archsearch search experiments/quickstart.yaml`` exactly as a user does (the CLI, in a fresh
process, report included), each time in a fresh temporary directory (its own study journal,
report and latency cache), first alone and then beside one single-threaded busy loop (a Python
``while True: pass`` in a subprocess, started a second before). Prints wall time, CPU time
(the search process and its children), trials evaluated, trials complete and the best accuracy
of each run, and the ratio of the two wall times. Targets: alone at most 150 s on 2 cores
(the full 20 trials); beside one busy process at most 2x alone.

    python benchmarks/quickstart_load.py                        # the quickstart as shipped
    python benchmarks/quickstart_load.py --trials 4 --epochs 2  # a shorter comparison
    python benchmarks/quickstart_load.py --threads 2            # as before issue 18: two threads always
    python benchmarks/quickstart_load.py --trials 1 --steps 4 --no-report --out /tmp/q.json  # seconds

Writes benchmarks/results/quickstart_load.json (``--out`` elsewhere). A run that passes
``--timeout`` seconds is interrupted (Ctrl-C: completed trials stay stored) and counted as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
EXPERIMENT = ROOT / "experiments" / "quickstart.yaml"
BUSY_LOOP = "while True:\n    pass\n"
TARGET_ALONE_S = 150.0
TARGET_RATIO = 2.0


def experiment_copy(
    folder: Path, *, epochs: int | None, steps: int | None, threads: int | str | None = "keep"
) -> Path:
    """The quickstart experiment, written into ``folder`` with its space as an absolute path, its
    study and report inside ``folder`` and, if given, a shorter training budget or another
    ``threads`` setting (``"keep"``: the experiment's own)."""
    data = yaml.safe_load(EXPERIMENT.read_text())
    data["name"] = "quickstart"
    data["space"] = str((EXPERIMENT.parent / data["space"]).resolve())
    data["run_dir"] = str(folder / "runs")
    data["report"] = str(folder / "report")
    evaluator = dict(data.get("evaluator", {}))
    if steps is not None:
        evaluator.pop("epochs", None)
        evaluator["steps"] = steps
    elif epochs is not None:
        evaluator["epochs"] = epochs
    if threads != "keep":
        evaluator["threads"] = threads
    data["evaluator"] = evaluator
    path = folder / "quickstart.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _cpu_s(usage: Any) -> float:
    return float(usage.ru_utime + usage.ru_stime)


def run_quickstart(
    label: str,
    *,
    trials: int | None,
    epochs: int | None,
    steps: int | None,
    threads: int | str | None,
    report: bool,
    timeout: float,
) -> dict[str, Any]:
    """One quickstart run in a fresh directory; wall and CPU seconds, trials and best accuracy."""
    from archsearch.search import count_trials, load_experiment, load_study

    with tempfile.TemporaryDirectory(prefix=f"quickstart-{label}-") as tmp:
        folder = Path(tmp)
        path = experiment_copy(folder, epochs=epochs, steps=steps, threads=threads)
        command = [sys.executable, "-m", "archsearch.cli", "search", str(path)]
        if trials is not None:
            command += ["--trials", str(trials)]
        if not report:
            command.append("--no-report")
        path_before = os.environ.get("PYTHONPATH")
        python_path = os.pathsep.join([str(ROOT), *([path_before] if path_before else [])])
        env = {**os.environ, "ARCHSEARCH_CACHE": str(folder / "cache"), "PYTHONPATH": python_path}
        log = folder / "log.txt"
        load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
        with log.open("w") as out:
            start = time.perf_counter()
            child = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
            timed_out = False
            while True:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - start > timeout and not timed_out:
                    timed_out = True
                    child.send_signal(signal.SIGINT)  # completed trials stay stored
                time.sleep(0.05)
            wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        code = child.returncode
        if code != 0 and not timed_out:
            tail = "\n".join(log.read_text().splitlines()[-20:])
            raise RuntimeError(f"{label}: `{' '.join(command)}` exited {code}:\n{tail}")
        experiment = load_experiment(path)
        study = load_study(str(path))
        found = study.get_trials(deepcopy=False)
        counts = count_trials(found, experiment.directions)
        accuracies = [
            float(t.user_attrs["accuracy"])
            for t in found
            if t.user_attrs.get("outcome") == "complete" and "accuracy" in t.user_attrs
        ]
    return {
        "run": label,
        "wall_s": wall,
        "cpu_s": _cpu_s(usage),
        "trials_evaluated": counts.evaluated,
        "trials_complete": counts.complete,
        "best_accuracy": max(accuracies, default=float("nan")),
        "timed_out": timed_out,
        "load_average_before": list(load_before) if load_before else None,
    }


@contextlib.contextmanager
def busy_process() -> Any:
    """One single-threaded busy loop in a subprocess while the block runs; yields a dict that gets
    the loop's CPU seconds when it is stopped."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    info: dict[str, Any] = {"pid": proc.pid}
    start = time.perf_counter()
    time.sleep(1.0)  # let it start spinning (and show up in the load) before the quickstart does
    try:
        yield info
    finally:
        proc.kill()
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = -9
        info["wall_s"] = time.perf_counter() - start
        info["cpu_s"] = _cpu_s(usage)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, help="override the trial budget (default: the experiment's 20)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="override the training epochs per trial")
    budget.add_argument("--steps", type=int, help="train each trial for this many steps instead")
    parser.add_argument(
        "--threads",
        default="keep",
        help="the evaluator's threads: auto, N or null (default: the experiment's own)",
    )
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end of each run")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="interrupt a run after this many seconds"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "quickstart_load.json", help="the JSON written")
    args = parser.parse_args(argv)
    threads: int | str | None = args.threads
    if args.threads == "null":
        threads = None
    elif args.threads.isdigit():
        threads = int(args.threads)
    options = {
        "trials": args.trials,
        "epochs": args.epochs,
        "steps": args.steps,
        "threads": threads,
        "report": not args.no_report,
        "timeout": args.timeout,
    }
    alone = run_quickstart("alone", **options)
    with busy_process() as busy:
        beside = run_quickstart("beside_busy", **options)
    beside["busy_process"] = busy
    ratio = beside["wall_s"] / alone["wall_s"]
    full = args.trials is None and args.epochs is None and args.steps is None and threads == "keep"
    result = {
        "runs": [alone, beside],
        "ratio_beside_to_alone": ratio,
        "targets": {
            "alone_s_at_most": TARGET_ALONE_S if full else None,
            "ratio_at_most": TARGET_RATIO,
            "alone_met": alone["wall_s"] <= TARGET_ALONE_S if full else None,
            "ratio_met": ratio <= TARGET_RATIO,
        },
        "options": options,
        "machine": {
            "cpus": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
    }
    print(f"{'run':14} {'wall s':>9} {'CPU s':>9} {'evaluated':>10} {'complete':>9} {'best acc':>9}")
    for row in (alone, beside):
        note = "  (timed out)" if row["timed_out"] else ""
        print(
            f"{row['run']:14} {row['wall_s']:>9.1f} {row['cpu_s']:>9.1f} {row['trials_evaluated']:>10} "
            f"{row['trials_complete']:>9} {row['best_accuracy']:>9.3f}{note}"
        )
    print(f"busy process: {busy['cpu_s']:.1f} CPU s in {busy['wall_s']:.1f} s")
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"beside one busy process / alone: {ratio:.2f}x (target <= {TARGET_RATIO:g}x: {verdict})")
    if full:
        verdict = "met" if alone["wall_s"] <= TARGET_ALONE_S else "NOT met"
        print(f"alone: {alone['wall_s']:.1f} s (target <= {TARGET_ALONE_S:g} s on 2 cores: {verdict})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
