"""Many workers, one study: the slot rule, heartbeats and retries, and three ``archsearch worker``
processes on a real PostgreSQL server (started on loopback for the session), one of them killed."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial
from typer.testing import CliRunner

from archsearch.cli import app
from archsearch.search._shared import (
    CLAIM,
    Heartbeat,
    Heartbeats,
    RetryStale,
    SharedStudy,
    count_slots,
    decide,
)

from .helpers import tiny_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent

#: 36 architectures; with 100 training steps on one thread a trial takes about 0.5 to 2 s.
SPACE = tiny_space()


# ---------------------------------------------------------------------------------------- the rule

DIST = {"a": CategoricalDistribution(["x", "y", "z"])}


def _trial(number: int, state: TrialState, **attrs) -> FrozenTrial:
    t = create_trial(
        state=state,
        params={"a": "x"},
        distributions=DIST,
        values=[1.0] if state == TrialState.COMPLETE else None,
        user_attrs=attrs,
    )
    t.number = number
    return t


def _me(number: int, **attrs) -> FrozenTrial:
    return _trial(number, TrialState.RUNNING, spec_hash="mine", **attrs)


def test_slots_count_evaluated_claimed_and_queued_retries_not_rejected_or_interrupted():
    trials = [
        _trial(0, TrialState.COMPLETE, outcome="complete", spec_hash="h0"),
        _trial(1, TrialState.FAIL, outcome="failed", spec_hash="h1"),
        _trial(2, TrialState.PRUNED, outcome="early-stopped", spec_hash="h2"),
        _trial(3, TrialState.PRUNED, outcome="rejected"),
        _trial(4, TrialState.PRUNED, outcome="duplicate", spec_hash="h0"),
        _trial(5, TrialState.FAIL, outcome="interrupted", spec_hash="h5", **{CLAIM: "a:1"}),
        _trial(6, TrialState.RUNNING, outcome="interrupted", spec_hash="h6", **{CLAIM: "b:2"}),
        _trial(7, TrialState.RUNNING),  # asked, not claimed (still sampling)
        _trial(8, TrialState.WAITING, retry_of=5),
    ]
    slots = count_slots(trials)
    assert (slots.evaluated, slots.claimed, slots.waiting, slots.popped) == (3, 1, 1, 0)
    assert slots.taken == 5
    # a retry asked for by a worker still holds its slot until it claims or ends
    trials[-1] = _trial(8, TrialState.RUNNING, retry_of=5)
    assert count_slots(trials).popped == 1


def test_a_claim_needs_a_free_slot_and_a_new_spec_hash():
    done = [_trial(i, TrialState.COMPLETE, outcome="complete", spec_hash=f"h{i}") for i in range(3)]
    running = _trial(3, TrialState.RUNNING, outcome="interrupted", spec_hash="r", **{CLAIM: "b:2"})
    me = _me(4)
    assert decide([*done, running, me], me, "mine", budget=5).kind == "claim"
    # the last slot is held by another worker's running trial
    verdict = decide([*done, running, me], me, "mine", budget=4)
    assert verdict.kind == "skipped" and verdict.slots.taken == 4
    # the same architecture, running elsewhere or evaluated: a duplicate, budget or not
    assert decide([*done, running, me], me, "r", budget=9).other is running
    late = _trial(5, TrialState.COMPLETE, outcome="complete", spec_hash="r")
    assert decide([*done, running, late, me], me, "r", budget=1).other is late  # evaluated first
    # an interrupted trial neither holds a slot nor makes its retry a duplicate
    dead = _trial(3, TrialState.FAIL, outcome="interrupted", spec_hash="mine", **{CLAIM: "b:2"})
    retry = _me(4, retry_of=3)
    assert decide([*done, dead, retry], retry, "mine", budget=4).kind == "claim"


def test_queued_retries_go_before_fresh_trials():
    done = [_trial(i, TrialState.COMPLETE, outcome="complete", spec_hash=f"h{i}") for i in range(3)]
    first = _trial(3, TrialState.WAITING, retry_of=0)
    second = _trial(4, TrialState.WAITING, retry_of=1)
    fresh = _me(5)
    # two slots left, both reserved by queued retries: a fresh candidate is skipped
    assert decide([*done, first, second, fresh], fresh, "mine", budget=5).kind == "skipped"
    # a retry counts only the retries queued before it
    popped = _me(4, retry_of=1)
    assert decide([*done, first, popped], popped, "mine", budget=5).kind == "claim"
    assert decide([*done, first, popped], popped, "mine", budget=4).kind == "skipped"


# ---------------------------------------------------------------------------------------- heartbeats


class _Beats:
    def __init__(self, fail_at: int | None = None):
        self.calls: list[float] = []
        self.fail_at = fail_at

    def record_heartbeat(self, trial_id: int) -> None:
        self.calls.append(time.monotonic())
        if len(self.calls) == self.fail_at:
            raise ConnectionError("database unreachable")


def test_the_heartbeat_thread_beats_at_once_then_every_interval_until_the_trial_ends(caplog):
    storage = _Beats(fail_at=2)
    with caplog.at_level(logging.WARNING), Heartbeat(storage, 7, 0.05) as beat:
        assert len(storage.calls) == 1  # before the trial runs: a trial with none is never stale
        assert beat._thread.daemon
        time.sleep(0.33)
    n = len(storage.calls)
    assert 5 <= n <= 9 and beat.beats == n - 1  # the failed one is logged and the beats go on
    assert "heartbeat of trial id 7 failed" in caplog.text
    assert not beat._thread.is_alive()
    time.sleep(0.12)
    assert len(storage.calls) == n  # stopped with the trial


def test_heartbeat_settings_are_checked():
    with pytest.raises(ValueError, match="grace > heartbeat"):
        Heartbeats(interval_s=10, grace_s=10)


def test_a_stale_claimed_trial_is_queued_again_with_its_params_and_retry_chain():
    study = optuna.create_study()
    trial = study.ask()
    trial.suggest_categorical("a", ["x", "y", "z"])
    trial.set_user_attr(CLAIM, "a:1")
    trial.set_user_attr("outcome", "interrupted")
    dead = study.tell(trial, state=TrialState.FAIL)
    retry = RetryStale(max_retry=2)(study, dead)
    assert retry is not None and retry.state == TrialState.WAITING
    again = study.ask()
    assert again.params == dead.params and again.user_attrs == {"retry_of": dead.number}
    assert study.trials[-1].system_attrs["failed_trial"] == dead.number
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(study.trials[-1])
    assert history == [0]
    again.set_user_attr(CLAIM, "b:2")
    second = RetryStale(max_retry=2)(study, study.tell(again, state=TrialState.FAIL))
    assert second is not None and second.system_attrs["retry_history"] == [0, 1]
    assert second.system_attrs["failed_trial"] == 0
    last = study.ask()
    assert RetryStale(max_retry=2)(study, study.tell(last, state=TrialState.FAIL)) is None  # 3rd retry
    unclaimed = study.ask()  # died while sampling: nothing to retry
    unclaimed.suggest_categorical("a", ["x", "y", "z"])
    assert RetryStale()(study, study.tell(unclaimed, state=TrialState.FAIL)) is None


def test_worker_refuses_a_file_storage(tmp_path):
    exp = tmp_path / "x.yaml"
    exp.write_text(yaml.safe_dump({"space": SPACE, "objectives": [{"metric": "macs"}]}))
    result = CliRunner().invoke(app, ["worker", str(exp)])
    assert result.exit_code == 2 and "PostgreSQL" in result.output


# ---------------------------------------------------------------------------------------- PostgreSQL


def test_racing_claims_on_postgres_take_one_slot_per_architecture_and_never_exceed_the_budget(postgres):
    """Six threads, each a worker with its own connections, claim at the same instant."""
    from archsearch.search import open_storage

    beats = Heartbeats(1, 3)
    optuna.create_study(study_name="race", storage=open_storage(postgres.url))
    barrier = threading.Barrier(6)
    verdicts: list[tuple[str, str]] = []

    def worker(i: int) -> None:
        shared = SharedStudy(postgres.url, "race", beats)
        study = optuna.load_study(study_name="race", storage=open_storage(postgres.url))
        trial = study.ask()
        spec = "same" if i < 3 else f"other{i}"  # three sample one architecture, three others
        trial.set_user_attr("spec_hash", spec)
        barrier.wait()
        with shared.lock():
            trials = study.get_trials(deepcopy=False)
            me = next(t for t in trials if t.number == trial.number)
            verdict = decide(trials, me, spec, budget=3)
            if verdict.kind == "claim":
                trial.set_user_attr(CLAIM, f"t{i}")
        verdicts.append((spec, verdict.kind))
        shared.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    claimed = [spec for spec, kind in verdicts if kind == "claim"]
    assert len(verdicts) == 6 and len(claimed) == 3 and len(set(claimed)) == 3
    same = [kind for spec, kind in verdicts if spec == "same"]
    # who gets the lock first decides whether "same" gets one of the three slots; never two
    assert same.count("claim") <= 1
    if same.count("claim") == 1:
        assert sorted(same) == ["claim", "duplicate", "duplicate"]
    else:
        assert set(same) == {"skipped"}  # the three other architectures took every slot first


def _write_experiment(tmp_path: Path, url: str, name: str, trials: int) -> Path:
    path = tmp_path / f"{name}.yaml"
    experiment = {
        "name": name,
        "space": SPACE,
        "data": {"kind": "digits"},
        "evaluator": {
            "kind": "train",
            "epochs": None,
            "steps": 100,
            "batch_size": 64,
            "flip": False,
            "threads": 1,
            "amp": False,
        },
        "objectives": [{"metric": "accuracy"}, {"metric": "macs"}],
        "sampler": {"kind": "random", "seed": 0},
        "early_stopping": {"kind": "none"},
        "trials": trials,
        "backend": {"storage": url},
        "run_dir": str(tmp_path / "run"),
    }
    path.write_text(yaml.safe_dump(experiment))
    return path


def _logs(tmp_path: Path) -> str:
    return "\n".join((tmp_path / f"worker{i}.log").read_text() for i in range(3))


def test_three_workers_share_a_study_and_a_killed_workers_trial_is_retried(postgres, tmp_path):
    budget = 8
    exp = _write_experiment(tmp_path, postgres.url, "three", budget)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from archsearch.cli import main; main()", "worker", str(exp)]
    command += ["--heartbeat", "1", "--grace", "3", "--max-retry", "2"]
    logs = [open(tmp_path / f"worker{i}.log", "w") for i in range(3)]  # noqa: SIM115
    workers = [
        subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path) for log in logs
    ]
    victim = workers[0]
    name = f"{socket.gethostname()}:{victim.pid}"
    try:
        # watch the storage until the victim's trial is claimed and evaluating, then kill it
        from archsearch.search import open_storage

        storage = open_storage(postgres.url)
        deadline = time.monotonic() + 60
        killed: FrozenTrial | None = None
        while killed is None and time.monotonic() < deadline and victim.poll() is None:
            time.sleep(0.05)
            try:
                study = optuna.load_study(study_name="three", storage=storage)
            except KeyError:
                continue
            running = [
                t
                for t in study.get_trials(states=(TrialState.RUNNING,))
                if t.user_attrs.get(CLAIM) == name and "macs" in t.user_attrs
            ]
            if running:
                victim.send_signal(signal.SIGKILL)
                killed = running[0]
        assert killed is not None, f"the first worker never started a trial: {_logs(tmp_path)}"
        codes = [w.wait(timeout=90) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        for log in logs:
            log.close()
    output = _logs(tmp_path)
    assert codes == [-signal.SIGKILL, 0, 0], output
    trials = optuna.load_study(study_name="three", storage=storage).trials
    evaluated = [t for t in trials if t.user_attrs.get("outcome") in ("complete", "early-stopped", "failed")]
    assert len(evaluated) == budget, output
    hashes = [t.user_attrs["spec_hash"] for t in evaluated]
    assert len(set(hashes)) == len(hashes)
    assert not [t for t in trials if not t.state.is_finished()]
    dead = trials[killed.number]
    assert dead.state == TrialState.FAIL and dead.user_attrs["outcome"] == "interrupted"
    assert name in dead.user_attrs["reason"] and "heartbeat" in dead.user_attrs["reason"]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == dead.number]
    assert retry.params == dead.params and retry.system_attrs["failed_trial"] == dead.number
    assert retry.user_attrs["outcome"] == "complete" and retry.user_attrs[CLAIM] != name
    assert {t.user_attrs.get(CLAIM) for t in evaluated} - {name} != set()
