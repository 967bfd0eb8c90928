"""One trial ledger, three backends: the same small study, resumed after a run that left a failed
trial and a trial running, gives the same states and counts in process, on PostgreSQL workers and
on Ray; and a candidate is normalised once."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from archsearch.cli import app
from archsearch.report import compute_report
from archsearch.search import (
    Heartbeats,
    count_trials,
    load_experiment,
    load_results,
    open_storage,
    open_study,
    run_search,
    trials_table,
)
from archsearch.search import _candidate as candidate_module
from archsearch.search._ledger import sampler_trials
from archsearch.space import OptunaSuggest, RandomSuggest, load_space

from .test_search import QUICK, SPACE

optuna.logging.set_verbosity(optuna.logging.WARNING)

CLAIM = "worker"  # the attribute a worker claims a trial with


def _members() -> list[tuple[dict[str, Any], int]]:
    """Distinct members of SPACE (params, MACs), cheapest first."""
    space = load_space(SPACE, num_classes=10)
    seen: dict[str, tuple[dict[str, Any], int]] = {}
    for seed in range(300):
        c = space.candidate(RandomSuggest(seed))
        assert c.plan is not None and c.costs is not None
        seen.setdefault(candidate_module.plan_hash(c.plan), (dict(c.sample.params), c.costs.macs))
    return sorted(seen.values(), key=lambda m: m[1])


MEMBERS = _members()
A, X, C = (m[0] for m in MEMBERS[:3])  # evaluated, interrupted then retried, failed before
R, R_MACS = MEMBERS[-1]  # over the MACs limit: rejected
assert MEMBERS[2][1] < R_MACS

#: trial number -> (outcome, state) after the run, whatever the backend.
EXPECTED = [
    ("failed", TrialState.FAIL),  # 0: failed in an earlier run
    ("interrupted", TrialState.FAIL),  # 1: left running by an earlier run
    ("complete", TrialState.COMPLETE),  # 2: A
    ("duplicate", TrialState.PRUNED),  # 3: A again: PRUNED, never a COMPLETE copy
    ("duplicate", TrialState.PRUNED),  # 4: C again: a duplicate of a failed trial is PRUNED
    ("rejected", TrialState.PRUNED),  # 5: R, over the limit
    ("duplicate", TrialState.PRUNED),  # 6: R again: answered from the ledger, not a new rejection
    ("complete", TrialState.COMPLETE),  # 7: the retry of 1
]
RETRY = len(EXPECTED) - 1


def _experiment(run: Path, backend: dict[str, Any], name: str):
    return load_experiment(
        {
            "name": name,
            "space": {**SPACE, "constraints": {"macs": {"max": R_MACS - 1}}},
            "data": {"kind": "digits"},
            **QUICK,
            "sampler": {"kind": "random", "seed": 0},
            "early_stopping": {"kind": "none"},
            "trials": 3,
            "backend": backend,
            "run_dir": str(run),
        }
    )


def _seed(experiment, storage=None) -> None:
    """What an earlier run left: trial 0 failed on C, trial 1 running on X (claimed, with one old
    heartbeat where the storage keeps them); then A, A, C, R and R queued."""
    study = open_study(experiment, storage=storage)
    space = load_space(experiment.space_source(), num_classes=10)
    for params, state in ((C, TrialState.FAIL), (X, TrialState.RUNNING)):
        study.enqueue_trial(params)
        trial = study.ask()
        candidate = space.candidate(OptunaSuggest(trial))  # records the distributions
        assert candidate.plan is not None
        trial.set_user_attr("spec_hash", candidate_module.plan_hash(candidate.plan))
        if state == TrialState.FAIL:
            trial.set_user_attr("outcome", "failed")
            trial.set_user_attr("reason", "RuntimeError: boom")
            study.tell(trial, state=TrialState.FAIL)
        else:
            trial.set_user_attr(CLAIM, "gone:1")
            trial.set_user_attr("outcome", "interrupted")
            trial.set_user_attr("reason", "interrupted: its worker gone:1 stopped sending heartbeats")
            if hasattr(study._storage, "record_heartbeat"):
                study._storage.record_heartbeat(trial._trial_id)
    for params in (A, A, C, R, R):
        study.enqueue_trial(params)


def _check(summary) -> None:
    study = summary.study
    trials = study.get_trials(deepcopy=False)
    got = [(t.user_attrs.get("outcome"), t.state) for t in trials]
    assert got == EXPECTED, got
    assert trials[3].values is None and trials[3].user_attrs["duplicate_of"] == 2
    assert trials[3].user_attrs["reason"] == "the same architecture as trial 2 (complete)"
    assert trials[4].user_attrs["duplicate_of"] == 0
    assert trials[4].user_attrs["reason"] == "the same architecture as trial 0 (failed)"
    assert trials[5].user_attrs["reason"].startswith("constraints: macs")
    assert trials[6].user_attrs["duplicate_of"] == 5
    assert trials[6].user_attrs["reason"] == "the same architecture as trial 5 (rejected)"
    # the samplers see the repeated rejection as infeasible, as they see the rejection itself
    assert trials[6].user_attrs["constraints"] == trials[5].user_attrs["constraints"]
    shown = sampler_trials(trials, summary.experiment.directions)
    assert shown[6].state == shown[5].state == TrialState.COMPLETE and shown[6].values == shown[5].values
    retry = trials[RETRY]
    assert retry.params == trials[1].params and retry.user_attrs["retry_of"] == 1
    assert retry.user_attrs["spec_hash"] == trials[1].user_attrs["spec_hash"]
    counts = summary.counts
    assert (counts.evaluated, counts.complete, counts.failed, counts.early_stopped) == (3, 2, 1, 0)
    assert (counts.duplicate, counts.rejected, counts.interrupted, counts.skipped) == (3, 1, 1, 0)
    assert counts.running == 0 and counts.total == len(trials) == 8
    assert summary.outcomes == {"complete": 2, "duplicate": 3, "rejected": 1}
    # the front: complete trials only (the duplicate copy of trial 2 is not a member of its own)
    values = [t.values for t in trials if t.user_attrs.get("outcome") == "complete"]
    directions = summary.experiment.directions
    assert counts.front == count_trials(trials, directions).front >= 1
    front_by_pareto = sum(
        not any(
            all((o[i] >= v[i]) if d == "maximize" else (o[i] <= v[i]) for i, d in enumerate(directions))
            and o != v
            for o in values
        )
        for v in values
    )
    assert counts.front == front_by_pareto
    # the report and `archsearch trials` count the same way
    results = load_results(study)
    assert results.counts == counts.as_dict()
    data = compute_report(results, zoo=False)
    assert len(data.front) == counts.front
    assert data.trials_summary() == (
        f"8 trials: 3 evaluated (2 complete, 1 failed), 3 duplicate, 1 rejected, 1 interrupted; "
        f"{counts.front} on the front"
    )
    assert data.trials_summary() == f"{counts.total} trials: {counts.line()}"  # as `archsearch trials`
    table = trials_table(study)
    assert list(table["outcome"]) == [o for o, _ in EXPECTED]


def test_the_ledger_in_process(tmp_path):
    exp = _experiment(tmp_path / "run", {"kind": "optuna"}, "inprocess")
    _seed(exp)
    summary = run_search(exp)
    _check(summary)
    source = exp.storage_url.removeprefix("journal:")
    result = CliRunner().invoke(app, ["trials", source])
    assert result.exit_code == 0, result.output
    assert "8 trials: 3 evaluated (2 complete, 1 failed), 3 duplicate, 1 rejected, 1 interrupted;" in (
        " ".join(result.output.split())
    )


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_the_ledger_on_postgres_workers(tmp_path, postgres):
    exp = _experiment(tmp_path / "run", {"kind": "optuna", "storage": postgres.url}, "workers")
    beats = Heartbeats(interval_s=1, grace_s=2, max_retry=3)
    _seed(exp, storage=open_storage(postgres.url, heartbeats=beats))
    time.sleep(2.5)  # trial 1's only heartbeat goes stale: its worker is dead
    summary = run_search(exp, heartbeats=beats)
    trials = summary.study.get_trials(deepcopy=False)
    assert trials[1].user_attrs["reason"].startswith("interrupted: its worker gone:1")
    assert trials[RETRY].user_attrs[CLAIM] != "gone:1"
    _check(summary)


def test_the_ledger_on_ray(tmp_path):
    pytest.importorskip("ray")
    backend = {"kind": "ray", "cpus_per_trial": 1, "max_concurrent": 1}
    exp = _experiment(tmp_path / "run", backend, "ray")
    _seed(exp)
    summary = run_search(exp)
    trials = summary.study.get_trials(deepcopy=False)
    assert trials[1].user_attrs["reason"] == "left running by a run that stopped"
    assert all("ray_trial_id" in trials[n].user_attrs for n in (2, RETRY))
    _check(summary)


# ---------------------------------------------------------------------------------------- normalise once


def _count_normalize(monkeypatch) -> dict[str, int]:
    """Count every call of ``archsearch.spec.normalize`` through any module's name for it, and
    those made inside ``spec_hash``."""
    import archsearch.spec

    real = archsearch.spec.normalize
    real_hash = candidate_module.spec_hash
    calls = {"all": 0, "in_hash": 0, "hashing": 0}

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls["all"] += 1
        calls["in_hash"] += bool(calls["hashing"])
        return real(*args, **kwargs)

    def hashing(*args: Any, **kwargs: Any) -> Any:
        calls["hashing"] += 1
        try:
            return real_hash(*args, **kwargs)
        finally:
            calls["hashing"] -= 1

    for name, module in list(sys.modules.items()):
        if name.startswith("archsearch") and getattr(module, "normalize", None) is real:
            monkeypatch.setattr(module, "normalize", counting)
    monkeypatch.setattr(candidate_module, "spec_hash", hashing)
    return calls


def _normalise_run(tmp_path, monkeypatch) -> tuple[dict[str, int], list]:
    shapes = {**SPACE, "input": {"size": 8, "channels": 1}}  # some members leave no tokens: invalid
    exp = load_experiment(
        {
            "name": "once",
            "space": {**shapes, "constraints": {"macs": {"max": MEMBERS[len(MEMBERS) // 2][1]}}},
            "data": {"kind": "digits"},
            **QUICK,
            "sampler": {"kind": "random", "seed": 3},
            "trials": 3,
            "run_dir": str(tmp_path / "run"),
        }
    )
    calls = _count_normalize(monkeypatch)
    summary = run_search(exp)
    return calls, summary.study.get_trials(deepcopy=False)


def test_a_candidate_is_normalised_once_from_check_to_evaluation(tmp_path, monkeypatch):
    calls, trials = _normalise_run(tmp_path, monkeypatch)
    outcomes = [t.user_attrs["outcome"] for t in trials]
    assert outcomes.count("complete") == 3
    # one normalisation per candidate: evaluated, duplicate or rejected (an invalid one fails in it)
    assert calls["all"] - calls["in_hash"] == len(trials)


def test_the_spec_hash_reads_the_plan(tmp_path, monkeypatch):
    calls, trials = _normalise_run(tmp_path, monkeypatch)
    assert calls["in_hash"] == 0 and calls["all"] == len(trials)


def test_after_a_forced_evaluator_change_only_its_own_trials_are_duplicates(tmp_path):
    """Trials scored by the evaluator before an accepted change (``evaluator_changes``) are counted
    but not indexed: the same architecture proposed again is evaluated anew, never a duplicate of
    the old evaluator's values; one evaluated after the change is a duplicate as before."""
    from optuna.distributions import IntDistribution

    from archsearch.search._ledger import Ledger

    experiment = _experiment(tmp_path / "run", {"kind": "optuna"}, "changed")
    study = optuna.create_study(directions=experiment.directions)

    def evaluated(spec_hash: str) -> None:
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": 0},
                distributions={"x": IntDistribution(0, 1)},
                values=[0.5] * len(experiment.directions),
                user_attrs={"outcome": "complete", "spec_hash": spec_hash},
            )
        )

    evaluated("old")  # trial 0, under the first evaluator
    ledger = Ledger(experiment, study)
    ledger.reindex()
    assert ledger.seen("old") is not None and ledger.evaluated == 1
    study.set_user_attr("evaluator_changes", [{"from_trial": 1, "changes": {"steps": [1, 2]}}])
    ledger.reindex()
    assert ledger.seen("old") is None  # evaluated again under the new evaluator
    assert ledger.evaluated == 1  # the old trial still counts towards the budget
    assert not ledger.points
    evaluated("old")  # trial 1: the same architecture, scored by the new evaluator
    ledger.index(study.trials[1])
    assert ledger.seen("old").number == 1
    fresh = Ledger(experiment, study)  # a new run: the same rule from the stored change
    fresh.reindex()
    assert fresh.seen("old").number == 1 and fresh.evaluated == 2


def test_a_rejection_is_answered_from_the_ledger_only_under_the_space_that_made_it(tmp_path):
    """A point rejected before is a duplicate of its rejection while the space is the same; after
    the constraints change (looser, on resume) it is checked afresh, a new rejection if it fails."""
    from archsearch.search._ledger import Ledger

    experiment = _experiment(tmp_path / "run", {"kind": "optuna"}, "space-changed")
    study = optuna.create_study(directions=experiment.directions)
    tight = load_space(experiment.space_source(), num_classes=10)
    loose = load_space({**SPACE, "constraints": {"macs": {"max": R_MACS + 1}}}, num_classes=10)
    first = Ledger(experiment, study, tight)
    study.enqueue_trial(R)
    trial = study.ask()
    assert isinstance(candidate_module.check_candidate(tight, OptunaSuggest(trial), "r"), str)
    record = first.rejection(trial.params, "constraints: macs")
    assert record.outcome == "rejected" and record.attrs["space_digest"] == first.digest
    first.tell(trial, record)
    again = Ledger(experiment, study, tight)
    again.reindex()
    repeat = again.rejection(dict(trial.params), "constraints: macs")
    assert repeat.outcome == "duplicate" and repeat.attrs["duplicate_of"] == trial.number
    changed = Ledger(experiment, study, loose)
    changed.reindex()
    assert changed.digest != first.digest
    assert changed.rejection(dict(trial.params), "constraints: macs").outcome == "rejected"


def test_a_latency_bounds_table_is_part_of_the_space_digest(tmp_path):
    """Rejections over a latency bound are answered from the ledger only while its table file is
    the one they were checked against: a re-measured table (other bytes) gives another digest."""
    from archsearch.search._ledger import space_digest

    table = tmp_path / "t.json"
    space = load_space(
        {**SPACE, "constraints": {"latency_ms": {"max": 6, "table": str(table)}}}, num_classes=10
    )
    missing = space_digest(space)
    table.write_text('{"pieces": {"a": {"ms": 1.0}}}')
    measured = space_digest(space)
    assert space_digest(space) == measured != missing
    table.write_text('{"pieces": {"a": {"ms": 1.5}}}')
    assert space_digest(space) not in (measured, missing)
    assert space_digest(load_space(SPACE, num_classes=10)) not in (measured, missing)
