"""The search engine on real Optuna studies with tiny budgets: rejection, dedup, failures, resume,
early stopping, the trial table, experiments and their errors, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

import archsearch
from archsearch import SpecError
from archsearch.cli import app
from archsearch.cost import count_params
from archsearch.evaluate import TrainResult
from archsearch.search import (
    Curve,
    NothingRun,
    dominated_at,
    load_experiment,
    load_study,
    run_search,
    trials_table,
)
from archsearch.search import _evaluate as evaluate_module
from archsearch.space import RandomSuggest, load_space
from archsearch.spec import load_spec, spec_hash

from .helpers import QUICK, tiny_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent

SPACE = tiny_space(dims=(8, 16), depth=1)


def _experiment(tmp_path: Path, **changes):
    data = {
        "name": "t",
        "space": SPACE,
        "data": {"kind": "digits"},
        "evaluator": {"kind": "train", "epochs": 1, "batch_size": 128, "flip": False},
        "objectives": [{"metric": "accuracy"}, {"metric": "macs"}],
        "sampler": {"kind": "random", "seed": 0},
        "trials": 3,
        "run_dir": str(tmp_path / "run"),
    }
    data.update(changes)
    return load_experiment(data)


def _spy(monkeypatch, name: str, fail_at: int | None = None, exc: BaseException | None = None) -> list:
    """Count real evaluations through ``evaluate_module.<name>`` (optionally raising at call ``fail_at``)."""
    calls: list = []
    real = getattr(evaluate_module, name)

    def spy(model, data, config, **kwargs):
        calls.append(model)
        if len(calls) == fail_at:
            raise exc
        return real(model, data, config, **kwargs)

    monkeypatch.setattr(evaluate_module, name, spy)
    return calls


@pytest.fixture
def train_calls(monkeypatch):
    return _spy(monkeypatch, "train_and_evaluate")


@pytest.fixture
def score_calls(monkeypatch):
    return _spy(monkeypatch, "zero_cost_scores")


def _outcomes(study):
    return [t.user_attrs.get("outcome") for t in study.trials]


def test_a_search_stores_trials_with_specs_metrics_and_a_table(tmp_path, train_calls):
    summary = run_search(_experiment(tmp_path))
    study = summary.study
    complete = [t for t in study.trials if t.user_attrs["outcome"] == "complete"]
    assert summary.evaluated == 3 and len(train_calls) == 3 == len(complete)
    for t in complete:
        accuracy, macs = t.values
        assert 0.0 <= accuracy <= 1.0 and macs == t.user_attrs["macs"] > 0
        assert len(t.user_attrs["curve"]) == 1 and t.user_attrs["curve"][-1] == accuracy
    frame = trials_table(study)
    assert list(frame["trial"]) == [t.number for t in study.trials]
    assert {"accuracy", "macs", "params", "spec", "spec_hash", "reason", "outcome"} <= set(frame.columns)
    assert any(c.startswith("choice.stages.0.") for c in frame.columns)
    # the storage alone is enough to read it back
    again = load_study(str(tmp_path / "run" / "study.journal"))
    assert len(trials_table(again)) == len(frame)


def test_round_trip_trial_to_yaml_to_the_same_model(tmp_path):
    summary = run_search(_experiment(tmp_path, trials=4, **QUICK))
    space = load_space(SPACE, num_classes=10)
    for t in summary.study.trials:
        if t.user_attrs["outcome"] != "complete":
            continue
        path = tmp_path / f"t{t.number}.yaml"
        path.write_text(yaml.safe_dump(json.loads(t.user_attrs["spec"])))
        spec = load_spec(path)
        assert spec_hash(spec) == t.user_attrs["spec_hash"] == spec_hash(space.spec_from_params(t.params))
        assert count_params(archsearch.build(spec))[0] == t.user_attrs["params"]


def test_constraints_reject_candidates_before_training(tmp_path, score_calls):
    members = {c.spec_hash: c.costs.macs for c in _members(SPACE)}
    limit = sorted(members.values())[len(members) // 2]
    space = {**SPACE, "constraints": {"macs": {"max": limit}}}
    summary = run_search(_experiment(tmp_path, space=space, trials=2, **QUICK))
    rejected = [t for t in summary.study.trials if t.user_attrs["outcome"] == "rejected"]
    evaluated = [t for t in summary.study.trials if t.user_attrs["outcome"] == "complete"]
    assert rejected, "the limit is set so that some members exceed it"
    for t in rejected:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["reason"].startswith("constraints: macs")
        assert "eval_s" not in t.user_attrs
    assert len(score_calls) == len(evaluated) == 2
    assert all(t.user_attrs["macs"] <= limit for t in evaluated)


def _members(space):
    """Every member of a small space (by sampling it densely), with its costs."""
    sp = load_space(space, num_classes=10)
    out = {}
    for seed in range(200):
        c = sp.candidate(RandomSuggest(seed))
        c.spec_hash = spec_hash(c.spec)
        out[c.spec_hash] = c
    return list(out.values())


def test_the_same_architecture_is_not_trained_twice(tmp_path, score_calls):
    tiny = {**SPACE, "stages": [{**SPACE["stages"][0], "mixer": "conv"}, SPACE["stages"][1]]}  # 2 members
    summary = run_search(_experiment(tmp_path, space=tiny, trials=2, **QUICK))
    trials = summary.study.trials
    hashes = {t.user_attrs["spec_hash"] for t in trials if t.user_attrs["outcome"] == "complete"}
    assert len(hashes) == 2 == len(score_calls)
    duplicates = [t for t in trials if t.user_attrs["outcome"] == "duplicate"]
    for t in duplicates:
        original = summary.study.trials[t.user_attrs["duplicate_of"]]
        assert t.values is None and t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["spec_hash"] == original.user_attrs["spec_hash"]


def test_a_budget_larger_than_the_space_stops_once_every_member_is_proposed(tmp_path, score_calls):
    tiny = {**SPACE, "stages": [{**SPACE["stages"][0], "mixer": "conv"}, SPACE["stages"][1]]}  # 2 members
    with pytest.raises(archsearch.search.SearchError, match=r"all 2 members of the space .* lower `trials`"):
        run_search(_experiment(tmp_path, space=tiny, trials=5, **QUICK))
    study = load_study(str(tmp_path / "run" / "study.journal"))
    outcomes = _outcomes(study)
    assert outcomes.count("complete") == 2 == len(score_calls)  # what was evaluated is kept
    assert len(outcomes) < 10, outcomes  # not hundreds of duplicates before giving up


def test_a_space_whose_every_member_is_rejected_stops_without_hundreds_of_trials(tmp_path, score_calls):
    space = {**SPACE, "constraints": {"params": {"max": 10}}}  # 10 members, none this small
    with pytest.raises(archsearch.search.SearchError, match=r"all 10 members .*\(0 evaluated, 10 rejected\)"):
        run_search(_experiment(tmp_path, space=space, trials=2, **QUICK))
    outcomes = _outcomes(load_study(str(tmp_path / "run" / "study.journal")))
    assert len(outcomes) < 200 and not score_calls
    # each member rejected once; a member proposed again is a duplicate of its rejection
    assert outcomes.count("rejected") == 10 and set(outcomes) <= {"rejected", "duplicate"}


def test_resume_keeps_completed_trials_and_does_not_repeat_them(tmp_path, score_calls):
    first = run_search(_experiment(tmp_path, trials=2, **QUICK))
    before = {t.number: (t.values, t.user_attrs["spec_hash"]) for t in first.study.trials}
    second = run_search(_experiment(tmp_path, trials=4, **QUICK))
    trials = second.study.trials
    assert second.evaluated == 4 and len(score_calls) == 4
    for number, (values, h) in before.items():
        assert trials[number].values == values and trials[number].user_attrs["spec_hash"] == h
    evaluated = [t.user_attrs["spec_hash"] for t in trials if t.user_attrs["outcome"] == "complete"]
    assert len(evaluated) == len(set(evaluated)) == 4
    with pytest.warns(NothingRun, match="already has its 4 evaluated trials, so nothing was run"):
        third = run_search(_experiment(tmp_path, trials=4, **QUICK))  # nothing left to do
    assert third.outcomes == {} and len(third.study.trials) == len(trials) and third.nothing_run
    assert not second.nothing_run


def test_a_failing_trial_is_stored_with_its_reason_and_the_study_goes_on(tmp_path, monkeypatch):
    _spy(
        monkeypatch,
        "zero_cost_scores",
        fail_at=2,
        exc=RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    )
    summary = run_search(_experiment(tmp_path, trials=3, **QUICK))
    failed = [t for t in summary.study.trials if t.user_attrs["outcome"] == "failed"]
    assert len(failed) == 1 and failed[0].state == optuna.trial.TrialState.FAIL
    assert failed[0].user_attrs["reason"].startswith("out of memory")
    assert "macs" in failed[0].user_attrs  # what was measured before the failure is kept
    assert summary.outcomes == {"complete": 2, "failed": 1}


def test_a_diverging_trial_fails_with_the_reason(tmp_path):
    summary = run_search(
        _experiment(tmp_path, trials=1, evaluator={"kind": "train", "steps": 3, "lr": 1.0e6})
    )
    (trial,) = summary.study.trials
    assert trial.user_attrs["outcome"] == "failed" and trial.user_attrs["reason"].startswith("diverged")


def test_ctrl_c_keeps_completed_trials_and_resume_retries_the_interrupted_one(tmp_path, monkeypatch):
    _spy(monkeypatch, "zero_cost_scores", fail_at=2, exc=KeyboardInterrupt())
    first = run_search(_experiment(tmp_path, trials=3, **QUICK))
    assert first.interrupted and _outcomes(first.study) == ["complete", "interrupted"]
    lost = first.study.trials[1]
    second = run_search(_experiment(tmp_path, trials=3, **QUICK))
    retry = next(t for t in second.study.trials if t.user_attrs.get("retry_of") == lost.number)
    assert retry.params == lost.params and retry.user_attrs["outcome"] == "complete"
    assert second.evaluated == 3


def test_multi_objective_early_stopping_stops_dominated_trials(tmp_path, monkeypatch):
    """Fake training with a known learning curve per architecture: the bigger model learns slower,
    so once a small one has completed, the big one is dominated at epoch 2 and stopped there."""

    def fake_train(model, data, config, *, on_epoch=None):
        size = sum(p.numel() for p in model.parameters())
        curve = [round(q - size / 1e5, 6) for q in (0.5, 0.7, 0.8, 0.9)]  # bigger: costlier and worse
        for epoch, acc in enumerate(curve, 1):
            on_epoch(epoch, acc)
        return TrainResult(
            accuracy=curve[-1],
            curve=curve,
            epochs=4,
            steps=4,
            seconds=0.0,
            train_loss=1.0,
            images_per_second=1.0,
        )

    monkeypatch.setattr(evaluate_module, "train_and_evaluate", fake_train)
    exp = _experiment(
        tmp_path,
        trials=6,
        early_stopping={"kind": "dominance", "warmup_epochs": 2, "min_trials": 1},
        evaluator={"kind": "train", "epochs": 4},
    )
    summary = run_search(exp)
    trials = summary.study.trials
    stopped = [t for t in trials if t.user_attrs["outcome"] == "early-stopped"]
    assert stopped, "a bigger, worse architecture after a smaller one must be stopped"
    for t in stopped:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert len(t.user_attrs["curve"]) == 2  # stopped at epoch 2, when the warm-up ends
        other = trials[int(t.user_attrs["reason"].split("trial ")[1].split()[0])]
        assert other.number < t.number and other.user_attrs["outcome"] == "complete"
        assert other.user_attrs["macs"] <= t.user_attrs["macs"]
        assert other.user_attrs["curve"][1] >= t.user_attrs["curve"][1]
        cheaper = other.user_attrs["macs"] < t.user_attrs["macs"]
        assert ("at lower cost (" if cheaper else "at no greater cost (") in t.user_attrs["reason"]
    for t in trials:  # a trial no completed one dominated ran its whole budget
        if t.user_attrs["outcome"] == "complete":
            assert len(t.user_attrs["curve"]) == 4


def test_dominance_rule():
    done = [Curve(0, (100.0,), (0.5, 0.7)), Curve(1, (300.0,), (0.6, 0.9))]
    assert dominated_at(2, 0.65, (200.0,), done, min_trials=1) == (done[0], 0.7)
    assert dominated_at(2, 0.75, (200.0,), done, min_trials=1) is None  # better than the cheaper one
    assert dominated_at(2, 0.75, (400.0,), done, min_trials=1) == (done[1], 0.9)
    assert dominated_at(1, 0.1, (400.0,), done, warmup_epochs=2, min_trials=1) is None
    assert dominated_at(2, 0.1, (400.0,), done, min_trials=3) is None
    assert dominated_at(3, 0.1, (400.0,), done, min_trials=1) is None  # nobody has an epoch 3
    assert dominated_at(2, 0.7, (100.0,), done, min_trials=1) is None  # equal on everything
    assert dominated_at(2, 0.68, (200.0,), done, min_trials=1, margin=0.05) is None


def test_the_same_seed_suggests_the_same_architectures(tmp_path):
    exp = {**QUICK, "trials": 4, "sampler": {"kind": "nsga2", "seed": 7, "population_size": 4}}
    a = run_search(_experiment(tmp_path / "a", **exp))
    b = run_search(_experiment(tmp_path / "b", **exp))
    assert [t.params for t in a.study.trials] == [t.params for t in b.study.trials]


def test_single_objective_studies_prune_with_optuna(tmp_path):
    exp = _experiment(
        tmp_path,
        objectives=[{"metric": "accuracy"}],
        sampler={"kind": "tpe", "seed": 0},
        early_stopping={"kind": "median", "min_trials": 1, "warmup_epochs": 0},
        trials=3,
        evaluator={"kind": "train", "epochs": 2, "batch_size": 256, "flip": False},
    )
    summary = run_search(exp)
    assert summary.study.directions == [optuna.study.StudyDirection.MAXIMIZE]
    for t in summary.study.trials:
        assert t.user_attrs["outcome"] in ("complete", "early-stopped")
        if t.user_attrs["outcome"] == "complete":
            assert t.intermediate_values == {1: t.user_attrs["curve"][0], 2: t.user_attrs["curve"][1]}


# --------------------------------------------------------------------------- experiments


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_experiments_validate(path):
    exp = load_experiment(path)
    load_space(exp.space_source())
    assert exp.objectives[0].metric == "accuracy"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "space: s.yaml\nobjectives: [{metric: acuracy}]\n",
            "objectives[0].metric: not an allowed value (did you mean 'accuracy'?)",
        ),
        ("space: s.yaml\nobjectives: [{metric: accuracy}]\ntrails: 3\n", "unknown key 'trails'"),
        ("space: s.yaml\nobjectives: []\n", "objectives: needs at least 1 item"),
        ("space: s.yaml\nobjectives: [{metric: accuracy}, {metric: accuracy}]\n", "appear twice"),
        (
            "space: s.yaml\nevaluator: {kind: zero_cost}\nobjectives: [{metric: accuracy}]\n",
            "needs the train evaluator",
        ),
        ("space: s.yaml\ndata: {kind: mnist}\nobjectives: [{metric: accuracy}]\n", "unknown kind 'mnist'"),
        ("space: s.yaml\nobjectives: [{metric: macs, direction: down}]\n", "direction: not an allowed value"),
    ],
)
def test_experiment_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_experiment(path)
    assert "exp.yaml:" in str(info.value) and message in str(info.value)


def test_a_study_with_other_objectives_is_not_silently_reused(tmp_path):
    run_search(_experiment(tmp_path, trials=1, **QUICK))
    with pytest.raises(archsearch.search.SearchError, match="has objectives"):
        run_search(
            _experiment(
                tmp_path, trials=1, **{**QUICK, "objectives": [{"metric": "grad_norm"}, {"metric": "params"}]}
            )
        )


# --------------------------------------------------------------------------- CLI


def test_cli_space_warns_when_no_member_is_valid_and_bounds_its_samples(tmp_path):
    """A space none of whose members has valid shapes (heads never divide the width) showed "0 valid
    shapes" and exited 0 without a word; a search of it then rejected everything. And ``-n`` had no
    upper bound (100,000,000 on a one-member space ran for minutes)."""
    runner = CliRunner()
    space = {
        "input": {"size": 32, "channels": 3},
        "stages": [
            {
                "embed": {"kind": "conv", "kernel": 3, "stride": 2},
                "dim": {"choice": [30, 50]},
                "depth": 1,
                "mixer": {"kind": "attention", "heads": {"choice": [4, 8]}},
            }
        ],
        "head": {"num_classes": 10},
    }
    path = tmp_path / "none.yaml"
    path.write_text(yaml.safe_dump(space))
    result = runner.invoke(app, ["space", str(path), "-n", "2"])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "none of" in result.stderr and "has valid shapes" in result.stderr
    fine = runner.invoke(app, ["space", str(ROOT / "search_spaces" / "cvt13_nas.yaml"), "-n", "1"])
    assert fine.exit_code == 0 and "warning:" not in fine.stderr
    result = runner.invoke(app, ["space", str(path), "-n", "100000000"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --samples") and len(result.stderr.splitlines()) == 1


def test_cli_space_search_and_trials(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["space", str(ROOT / "search_spaces" / "cvt13_nas.yaml"), "-n", "2"])
    assert result.exit_code == 0, result.output
    assert "67,108,864 = 2^26 architectures" in result.output
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        yaml.safe_dump(
            {
                "space": SPACE,
                "evaluator": {"kind": "train", "epochs": 1, "batch_size": 128},
                "objectives": [{"metric": "accuracy"}, {"metric": "macs"}],
                "trials": 2,
                "run_dir": str(tmp_path / "run"),
                "report": str(tmp_path / "report"),
            }
        )
    )
    result = runner.invoke(app, ["search", str(exp)])
    assert result.exit_code == 0, result.output
    assert "Pareto front" in result.output
    assert (tmp_path / "report" / "index.html").is_file()  # the search writes its report at the end
    assert list((tmp_path / "report" / "winners").glob("*.yaml"))
    csv = tmp_path / "t.csv"
    result = runner.invoke(app, ["trials", str(exp), "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    assert "2 trials" in result.output and csv.read_text().startswith("trial,state,outcome")
    one = runner.invoke(app, ["trials", str(exp), "--limit", "1"])
    assert one.exit_code == 0 and one.output.count("complete") < result.output.count("complete")
    counts = runner.invoke(app, ["trials", str(exp), "--limit", "0"])  # README: only the counts
    assert counts.exit_code == 0 and counts.output.splitlines()[-1].startswith("2 trials: ")
    assert "outcome" not in counts.output and "┃" not in counts.output and "━" not in counts.output
    result = runner.invoke(app, ["trials", str(exp), "--limit", "-1"])  # was every row but the first
    assert result.exit_code == 2 and "--limit" in result.output and "Traceback" not in result.output
    never_run = tmp_path / "never-run.yaml"
    never_run.write_text(exp.read_text().replace(str(tmp_path / "run"), str(tmp_path / "elsewhere")))
    result = runner.invoke(app, ["trials", str(never_run)])  # a SearchError: one line, exit 2
    assert result.exit_code == 2 and "no study named" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["search", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "experiment file does not exist" in result.output
