"""The Ray backend on a real two-node Ray cluster on loopback: trials on both nodes, a node lost
mid-search, a driver killed mid-search and restored; and the Pareto ASHA's rung decisions."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from ray.tune.schedulers import TrialScheduler  # noqa: E402

from archsearch.cli import app  # noqa: E402
from archsearch.search import load_experiment, open_storage, run_search, trials_table  # noqa: E402
from archsearch.search._pareto_asha import STOP_REASONS, ParetoASHA, rung_decision, rungs  # noqa: E402

from .helpers import QUICK, tiny_space  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent
RAY = [sys.executable, "-m", "ray.scripts.scripts"]
SPACE = tiny_space(dims=(8, 16), depth=1)  # the space of test_search.py

# ------------------------------------------------------------------------------ the rung rule


def test_rungs_are_grace_times_powers_of_eta_below_the_budget():
    assert rungs(9, 1, 3) == [1, 3]
    assert rungs(6, 2, 3) == [2]
    assert rungs(1, 1, 3) == []


def test_a_rung_keeps_its_pareto_front_and_stops_dominated_trials():
    # accuracy at the rung, then MACs (lower is better)
    entries = {"big": [0.9, 10.0], "also-big": [0.5, 10.0], "cheap": [0.3, 1.0], "mid": [0.2, 5.0]}
    # fronts: big 0, cheap 0, also-big 1 (big is as costly and better), mid 1 (cheap dominates it)
    decisions = {k: rung_decision(k, entries, eta=3, min_trials=3)[0] for k in entries}
    assert decisions == {"big": False, "cheap": False, "also-big": True, "mid": True}
    # a single-metric ASHA would keep the two most accurate and stop the cheap one
    assert sorted(entries, key=lambda k: -entries[k][0])[:2] == ["big", "also-big"]
    # too few trials at the rung: nothing stops
    few = {"big": [0.9, 10.0], "also-big": [0.5, 10.0]}
    assert rung_decision("also-big", few, min_trials=3) == (False, "2 trials at this rung (fewer than 3)")


def test_the_whole_front_goes_on_even_when_larger_than_the_quota():
    entries = {str(i): [0.1 * i, float(i)] for i in range(9)}  # a trade-off line: all on front 0
    assert not any(rung_decision(k, entries, eta=3)[0] for k in entries)


def test_the_scheduler_decides_at_rungs_only_and_says_why():
    asha = ParetoASHA(max_epochs=9, grace_epochs=1, eta=3, min_trials=3)
    assert asha.rung_epochs == [1, 3]
    results = {
        "a": {"epoch": 1, "accuracy": 0.8, "cost_0": 5.0, "cost_1": 2.0},
        "b": {"epoch": 1, "accuracy": 0.7, "cost_0": 1.0, "cost_1": 1.0},
        "c": {"epoch": 1, "accuracy": 0.6, "cost_0": 6.0, "cost_1": 3.0},  # dominated by a and b
    }
    assert [asha.decide(k, r) for k, r in results.items()] == [
        TrialScheduler.CONTINUE,
        TrialScheduler.CONTINUE,
        TrialScheduler.STOP,
    ]
    assert STOP_REASONS.pop("c").startswith("stopped by Pareto ASHA at epoch 1 (accuracy 0.6000): on front 1")
    # between rungs, and the final summary without an epoch, pass through
    assert asha.decide("c2", {"epoch": 2, "accuracy": 0.0, "cost_0": 9.0, "cost_1": 9.0}) == "CONTINUE"
    assert asha.decide("c3", {"final": True}) == TrialScheduler.CONTINUE
    # a cheaper trial that learns slower survives the rung
    assert asha.decide("d", {"epoch": 1, "accuracy": 0.1, "cost_0": 0.5, "cost_1": 0.5}) == "CONTINUE"


def test_importing_the_search_engine_does_not_import_ray():
    code = "import sys, archsearch.search, archsearch.cli; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_ray_backend_block_is_validated():
    exp = load_experiment(_data(Path("/tmp/x"), "auto"))
    assert exp.backend.kind == "ray" and exp.backend.address == "auto"
    assert exp.storage_url == "journal:/tmp/x/study.journal"
    with pytest.raises(Exception, match="unknown key 'gpus'"):
        load_experiment({**_data(Path("/tmp/x"), None), "backend": {"kind": "ray", "gpus": 1}})


# ------------------------------------------------------------------------------ a real cluster


@dataclass
class Cluster:
    address: str
    env: dict[str, str]
    head_dir: str
    worker_dir: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(marker: str) -> set[int]:
    """The processes whose command line names ``marker`` (a node's temp dir), with descendants."""
    procs: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(entry)] = (ppid, cmd)
    found = {p for p, (_, cmd) in procs.items() if marker in cmd and p != os.getpid()}
    while True:
        more = {p for p, (ppid, _) in procs.items() if ppid in found} - found
        if not more:
            return found
        found |= more


def _kill_node(temp_dir: str) -> None:
    """Kill one Ray node's processes by id (``ray stop`` would stop every node on this machine)."""
    for pid in _tree(temp_dir):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _trials_on(temp_dir: str) -> list[int]:
    """The Tune trial actors (``ray::ImplicitFunc``) running on the node of ``temp_dir``."""
    out = []
    for pid in _tree(temp_dir):
        try:
            if b"ImplicitFunc" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    token = secrets.token_hex(32)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    # The GCS declares a node dead after `failure_threshold` failed health checks `period_ms` apart
    # (Ray's defaults: 5 x 3 s). A killed node refuses the check at once, so 3 x 1 s finds it in
    # about 3 s; a live node still has the default 10 s per check to answer. Until the node is
    # found dead Ray may place a new trial on it, which then waits minutes to be rescheduled.
    health = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
    env = {
        **os.environ,
        **auth,
        **health,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    head_dir = tempfile.mkdtemp(prefix="arh-")  # short: Ray's socket paths must fit in 107 bytes
    worker_dir = tempfile.mkdtemp(prefix="arw-")
    port = _free_port()
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    try:
        subprocess.run(
            [
                *RAY,
                "start",
                "--head",
                f"--port={port}",
                "--include-dashboard=false",
                f"--temp-dir={head_dir}",
                *common,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [*RAY, "start", f"--address=127.0.0.1:{port}", f"--temp-dir={worker_dir}", *common],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield Cluster(f"127.0.0.1:{port}", env, head_dir, worker_dir)
    finally:
        _kill_node(worker_dir)
        _kill_node(head_dir)
        for folder in (worker_dir, head_dir):
            shutil.rmtree(folder, ignore_errors=True)


def _data(run: Path, address: str | None, **changes) -> dict:
    space = {**SPACE, "constraints": {"macs": {"max": 400_000}}}  # rejects some members
    data = {
        "name": "r",
        "space": space,
        "data": {"kind": "digits"},
        **QUICK,
        "sampler": {"kind": "random", "seed": 0},
        "trials": 6,
        "run_dir": str(run),
        "backend": {"kind": "ray", "address": address, "max_concurrent": 2, "max_failures": 3},
    }
    data.update(changes)
    return data


def _study(run: Path) -> optuna.Study | None:
    path = run / "study.journal"
    if not path.exists():
        return None
    try:
        return optuna.load_study(study_name="r", storage=open_storage(f"journal:{path}"))
    except KeyError:
        return None


SEARCH = "import sys; from archsearch.search import load_experiment, run_search; "
SEARCH += "run_search(load_experiment(sys.argv[1]))"


def _search(cluster: Cluster, data: dict, tmp_path: Path) -> subprocess.Popen:
    """A search as its own driver process (the test process never joins the cluster)."""
    path = tmp_path / f"{Path(data['run_dir']).name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return subprocess.Popen(
        [sys.executable, "-c", SEARCH, str(path)],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(driver: subprocess.Popen) -> None:
    output, _ = driver.communicate(timeout=240)
    assert driver.returncode == 0, output[-3000:]


def _outcomes(study: optuna.Study, outcome: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("outcome") == outcome]


def _dispatched(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("ray_trial_id")]


def test_a_search_runs_on_both_nodes_with_the_optuna_backends_table(cluster, tmp_path):
    # four trials: the first two run at once, one per node (max_concurrent 2, a CPU each); seed 0
    # draws an over-the-limit member first, so a rejection comes before any dispatch
    data = _data(tmp_path / "ray", cluster.address, trials=4)
    _finish(_search(cluster, data, tmp_path))
    study = _study(tmp_path / "ray")
    assert study is not None
    trials = study.get_trials(deepcopy=False)
    done = _outcomes(study, "complete")
    assert len(done) == 4
    assert len({t.user_attrs["ray_node_id"] for t in done}) == 2, "both nodes ran trials"
    # rejection and dedup happen before dispatch: only new, admissible architectures reach Ray
    dispatched = _dispatched(study)
    assert len(dispatched) == 4 == len({t.user_attrs["spec_hash"] for t in dispatched})
    assert all(t.user_attrs["macs"] <= 400_000 for t in dispatched)
    others = [t for t in trials if t not in dispatched]
    assert {t.user_attrs["outcome"] for t in others} <= {"rejected", "duplicate"}
    assert any(t.user_attrs["outcome"] == "rejected" for t in others)
    assert all(t.values is not None and len(t.values) == 2 for t in done)
    # the same experiment on the Optuna backend: the same table columns
    local = run_search(
        load_experiment({**data, "run_dir": str(tmp_path / "optuna"), "backend": {"kind": "optuna"}})
    )
    ray_table, optuna_table = trials_table(study), trials_table(local.study)
    assert list(ray_table.columns) == list(optuna_table.columns)
    assert (ray_table["outcome"] == "complete").sum() == (optuna_table["outcome"] == "complete").sum()
    # the CLI reads the Ray results from the journal
    result = CliRunner().invoke(app, ["trials", str(tmp_path / "ray" / "study.journal")])
    assert result.exit_code == 0, result.output
    assert "complete" in result.output


def test_a_killed_driver_is_restored_keeping_completed_trials(cluster, tmp_path):
    run = tmp_path / "run"
    # killed once 2 of 5 are complete, with up to 2 in flight (max_concurrent 2): the restored run
    # resumes those and asks the restored searcher for the rest
    data = _data(run, cluster.address, trials=5)
    driver = _search(cluster, data, tmp_path)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            study = _study(run)
            if study and len(_outcomes(study, "complete")) >= 2:
                break
            assert driver.poll() is None, "the search ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no trial completed in 90 s")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    study = _study(run)
    assert study is not None
    before = {t.number: t.values for t in study.get_trials() if t.user_attrs.get("outcome") == "complete"}
    assert 2 <= len(before) < 5
    assert (run / "ray" / "r").is_dir()

    _finish(_search(cluster, data, tmp_path))  # restores Ray's experiment and the study
    study = _study(run)
    assert study is not None
    trials = study.get_trials(deepcopy=False)
    for number, values in before.items():
        assert trials[number].values == values and trials[number].user_attrs["outcome"] == "complete"
    done = _outcomes(study, "complete")
    assert len(done) == 5
    assert len({t.user_attrs["spec_hash"] for t in done}) == 5


def test_losing_a_node_mid_search_retries_its_trials(cluster, tmp_path):
    run = tmp_path / "run"
    killed = threading.Event()

    def kill_the_worker_node() -> None:
        """Once a trial has run for a while on the worker node (past its start-up), kill the node."""
        seen: dict[int, float] = {}  # trial actors running there now -> since when
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = time.monotonic()
            seen = {pid: seen.get(pid, now) for pid in _trials_on(cluster.worker_dir)}
            if any(now - first > 1.5 for first in seen.values()):  # one is mid-training there
                _kill_node(cluster.worker_dir)
                killed.set()
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=kill_the_worker_node, daemon=True)
    watcher.start()
    train = {
        "evaluator": {"kind": "train", "epochs": 12, "batch_size": 128, "flip": False},
        "objectives": [{"metric": "accuracy"}, {"metric": "macs"}],
        "early_stopping": {"kind": "none"},
    }
    # two trials start at once, one per node; the worker node's is killed, retried on the head
    _finish(_search(cluster, _data(run, cluster.address, trials=2, **train), tmp_path))
    watcher.join()
    assert killed.is_set(), "no trial ran on the worker node"
    study = _study(run)
    assert study is not None
    trials = study.get_trials(deepcopy=False)
    assert len(_outcomes(study, "complete")) == 2, [t.user_attrs.get("reason") for t in trials]
    assert not _outcomes(study, "failed")
    state = sorted((run / "ray" / "r").glob("experiment_state-*.json"))[-1].read_text()
    failures = [int(n) for n in re.findall(r'num_failures\\": (\d+)', state)]
    assert sum(failures) >= 1, "the trial on the lost node failed and was retried"
