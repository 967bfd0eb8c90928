"""Samplers and duplicates (issue 19): duplicates never consume the budget; every sampler keeps
to the space's constraints and its per-block, nested and conditional choices, resumes, and
reproduces its sequence from its seed; bad sampler options are errors with a line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from archsearch import SpecError
from archsearch.search import (
    GP_MAX_BUDGET,
    SAMPLER_KINDS,
    auto_kind,
    auto_setting,
    benchmark_problem,
    benchmark_rankings,
    count_trials,
    gp_pays,
    load_experiment,
    open_study,
    ranking_column,
    run_search,
    sampler_kind,
)
from archsearch.search._ledger import sampler_trials
from archsearch.search._mutate import MutateSuggest
from archsearch.space import RandomSuggest, load_space

from .helpers import QUICK, tiny_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

KINDS = [k for k in SAMPLER_KINDS if k != "auto"]

#: 6 members: width 8, 16 or 24, and a conv or an attention mixer.
SIX = {
    **tiny_space(dims=(8, 16, 24), depth=1),
}
SIX["stages"] = [
    {**SIX["stages"][0], "mixer": {"choice": ["conv", {"kind": "attention", "heads": 2, "qkv": "dw_bn"}]}},
    {**SIX["stages"][1]},
]
SIX["stages"][0]["mlp_ratio"] = 2

#: per-block (mlp_ratio over 2 blocks), nested (kv_stride inside the attention option), conditional
#: (mlp_ratio only for attention), a depth range, and a MACs limit that rejects part of the space.
RICH = tiny_space(dims=(8, 16, 24), depth=2)
RICH["stages"][0]["depth"] = {"int": [1, 2]}
RICH_LIMIT = 1.4e6


def _options(kind: str) -> dict[str, Any]:
    return {
        "evolution": {"population_size": 4, "sample_size": 2},
        "nsga2": {"population_size": 4},
        "tpe": {"startup_trials": 4},
        "gp": {"startup_trials": 4},
    }.get(kind, {})


def _experiment(run: Path, kind: str, space: dict[str, Any], trials: int, seed: int = 0, **more: Any):
    return load_experiment(
        {
            "name": f"s-{kind}",
            "space": space,
            "data": {"kind": "digits"},
            **QUICK,
            "sampler": {"kind": kind, "seed": seed, **_options(kind)},
            "trials": trials,
            "run_dir": str(run),
            **more,
        }
    )


def _evaluated(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.user_attrs.get("outcome") == "complete"]


@pytest.mark.parametrize("kind", KINDS)
def test_duplicates_never_consume_the_budget(tmp_path, kind):
    assert load_space(SIX).size() == 6
    summary = run_search(_experiment(tmp_path / kind, kind, SIX, trials=6))
    trials = summary.study.trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    hashes = [t.user_attrs["spec_hash"] for t in complete]
    assert len(hashes) == 6 == len(set(hashes)), "6 distinct members, each evaluated once"
    assert all(t.user_attrs["outcome"] == "complete" for t in complete), "no COMPLETE copies"
    duplicates = [t for t in trials if t.user_attrs.get("outcome") == "duplicate"]
    assert all(t.state == TrialState.PRUNED and "duplicate_of" in t.user_attrs for t in duplicates)
    assert summary.counts.duplicate == len(duplicates) and summary.counts.evaluated == 6
    assert summary.counts.running == 0  # no redraw is left queued


def test_a_duplicate_is_redrawn_as_a_new_member(tmp_path):
    """The sampler proposes a known member: the next trial is a mutant of it, new and queued."""
    exp = _experiment(tmp_path / "r", "random", SIX, trials=2)
    space = load_space(SIX, num_classes=10)
    member = space.sample(RandomSuggest(3)).params
    study = open_study(exp)
    study.enqueue_trial(member)
    study.enqueue_trial(member)
    summary = run_search(exp)
    trials = summary.study.trials
    assert [t.user_attrs["outcome"] for t in trials] == ["complete", "duplicate", "complete"]
    assert trials[2].user_attrs["redraw_of"] == 1
    assert trials[2].user_attrs["spec_hash"] != trials[0].user_attrs["spec_hash"]


def _check_member(space, trial) -> None:
    """The trial's parameters are exactly what the space draws for its spec (no parameter of a
    branch not taken, every per-block draw present), within the limits."""
    spec = space.spec_from_params(trial.params)  # raises on a missing, unused or out-of-domain one
    stage = spec.stages[0]
    depth = stage.depth
    per_block = [n for n in trial.params if ".blocks." in n]
    if stage.mixer.kind == "attention":
        assert sorted(per_block) == [f"stages.0.blocks.{b}.mlp_ratio" for b in range(depth)]
        assert "stages.0.mixer[attention].kv_stride" in trial.params
    else:
        assert per_block == [] and not any("[attention]" in n for n in trial.params)
    assert trial.user_attrs["macs"] <= RICH_LIMIT
    assert all(v <= 0 for v in trial.user_attrs["constraints"])


@pytest.mark.parametrize("kind", KINDS)
def test_every_sampler_keeps_to_the_constraints_and_the_choices_and_resumes(tmp_path, kind):
    space_data = {**RICH, "constraints": {"macs": {"max": RICH_LIMIT}}}
    space = load_space(space_data, num_classes=10)
    first = run_search(_experiment(tmp_path / kind, kind, space_data, trials=5))
    assert first.evaluated == 5
    before = [t.number for t in _evaluated(first.study)]
    resumed = run_search(_experiment(tmp_path / kind, kind, space_data, trials=10))
    assert resumed.evaluated == 10
    trials = resumed.study.trials
    evaluated = _evaluated(resumed.study)
    assert len(evaluated) == 10 == len({t.user_attrs["spec_hash"] for t in evaluated})
    assert [t.number for t in evaluated[:5]] == before
    for t in evaluated:
        _check_member(space, t)
    rejected = [t for t in trials if t.user_attrs.get("outcome") == "rejected"]
    for t in rejected:  # rejected over the limit: its costs and constraint values are kept
        if t.user_attrs["reason"].startswith("constraints"):
            assert t.user_attrs["macs"] > RICH_LIMIT and max(t.user_attrs["constraints"]) > 0


@pytest.mark.parametrize("kind", KINDS)
def test_each_seed_reproduces_its_sequence(tmp_path, kind):
    def sequence(run: str, seed: int) -> list[str]:
        exp = _experiment(tmp_path / run, kind, RICH, trials=7, seed=seed)
        return [str(t.params) for t in run_search(exp).study.trials]

    first = sequence("a", 1)
    assert sequence("b", 1) == first
    assert sequence("c", 2) != first


@pytest.mark.parametrize("kind", ["random", "tpe", "nsga2", "gp"])
def test_a_resumed_search_does_not_replay_the_first_runs_proposals(tmp_path, kind):
    """The sampler of a resumed study is not seeded afresh with the same seed: its proposals (not
    the ledger's redraws) differ from the first run's, which it would otherwise repeat one by one."""

    def proposed(trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
        queued = ("redraw_of", "retry_of")
        return [t.params for t in trials if not any(k in t.user_attrs for k in queued)]

    # TPE and GP still in their random startup phase, NSGA-II in its random first generation, when
    # resumed (past them they would not replay anyway)
    phase = {"tpe": {"startup_trials": 10}, "gp": {"startup_trials": 10}, "nsga2": {"population_size": 16}}
    sampler = {"kind": kind, "seed": 0, **phase.get(kind, {})}
    first = run_search(_experiment(tmp_path / kind, kind, RICH, 4, sampler=sampler)).study.trials
    resumed = run_search(_experiment(tmp_path / kind, kind, RICH, 8, sampler=sampler)).study.trials
    resumed = resumed[len(first) :]
    before, after = proposed(first), proposed(resumed)
    assert min(len(before), len(after)) >= 3
    assert after[:3] != before[:3], "the first run's proposals again, in its order"


def test_evolution_resumes_its_sequence_exactly(tmp_path):
    whole = run_search(_experiment(tmp_path / "whole", "evolution", RICH, trials=9))
    run_search(_experiment(tmp_path / "parts", "evolution", RICH, trials=4))
    parts = run_search(_experiment(tmp_path / "parts", "evolution", RICH, trials=9))
    assert [t.params for t in parts.study.trials] == [t.params for t in whole.study.trials]
    parents = [t.system_attrs.get("evolution:parent") for t in whole.study.trials]
    assert any(p is not None for p in parents), "the budget reaches the evolution phase"


def test_mutation_changes_one_choice_and_opens_branches_at_random():
    space = load_space(RICH, num_classes=10)
    rng = np.random.default_rng(0)
    parent = space.sample(RandomSuggest(5)).params
    for name in parent:
        child = space.sample(MutateSuggest(parent, {name}, rng)).params
        assert child[name] != parent[name]
        kept = {n for n in parent if n != name and n in child}
        assert all(child[n] == parent[n] for n in kept)
        space.spec_from_params(child)  # a valid point of the space, branches included


def test_samplers_see_duplicates_as_their_values_and_rejected_as_infeasible(tmp_path):
    space_data = {**RICH, "constraints": {"macs": {"max": RICH_LIMIT}}}
    summary = run_search(_experiment(tmp_path / "v", "random", space_data, trials=12))
    trials = summary.study.get_trials(deepcopy=False)
    shown = sampler_trials(trials, summary.experiment.directions)
    by_number = {t.number: t for t in trials}
    for t, s in zip(trials, shown, strict=True):
        complete = [c.values for c in trials if c.state == TrialState.COMPLETE and c.number < t.number]
        outcome = t.user_attrs.get("outcome")
        if outcome == "duplicate" and by_number[t.user_attrs["duplicate_of"]].state == TrialState.COMPLETE:
            assert (
                s.state == TrialState.COMPLETE and s.values == by_number[t.user_attrs["duplicate_of"]].values
            )
        elif outcome == "rejected" and t.user_attrs.get("constraints") and complete:
            assert s.state == TrialState.COMPLETE
            assert s.values == [min(v[0] for v in complete), max(v[1] for v in complete)]
        else:
            assert s is t
    assert t.state == by_number[t.number].state  # the storage is unchanged
    assert count_trials(trials, summary.experiment.directions) == summary.counts


@pytest.mark.parametrize(
    ("sampler", "message"),
    [
        (
            "{kind: tpe, population_size: 4}",
            r"x\.yaml:5: sampler\.population_size: sampler 'tpe' takes no 'population_size'; it is an option "
            r"of nsga2, evolution, auto \(got 4\); allowed: kind, seed, startup_trials",
        ),
        (
            "{kind: evolution, population_size: 4, sample_size: 6}",
            r"x\.yaml:5: sampler\.sample_size: a tournament draws its members from the population "
            r"\(got 6\); allowed: at most 4",
        ),
        (
            "{kind: random, startup_trials: 3}",
            r"sampler\.startup_trials: sampler 'random' takes no 'startup_trials'.*allowed: kind, seed$",
        ),
        (
            "{kind: bayes}",
            r"sampler\.kind: not an allowed value.*allowed: auto, gp, evolution, nsga2, tpe, random",
        ),
    ],
)
def test_bad_sampler_options_name_the_line_the_value_and_what_is_allowed(tmp_path, sampler, message):
    file = tmp_path / "x.yaml"
    file.write_text(
        "space: s.yaml\nobjectives:\n  - {metric: macs}\n  - {metric: params}\n" + f"sampler: {sampler}\n"
    )
    with pytest.raises(SpecError, match=message):
        load_experiment(file)


def test_the_report_draws_random_search_band_where_the_objectives_are_analytic(tmp_path):
    from archsearch.report import compute_report, write_report
    from archsearch.search import load_results

    space_data = {**RICH, "constraints": {"macs": {"max": RICH_LIMIT}}}
    exp = _experiment(
        tmp_path / "a",
        "evolution",
        space_data,
        trials=8,
        objectives=[{"metric": "macs"}, {"metric": "params", "direction": "maximize"}],
    )
    summary = run_search(exp)
    results = load_results(summary.study)
    files = write_report(results, tmp_path / "report", zoo=False, space=summary.space)
    data = compute_report(results, zoo=False, space=summary.space)
    band = data.random_band
    assert band is not None and len(band) == summary.counts.complete
    assert list(band["trial"]) == list(data.history["trial"])
    assert (band["low"] <= band["median"]).all() and (band["median"] <= band["high"]).all()
    assert band["median"].is_monotonic_increasing
    text = files.report_md.read_text()
    assert "**random search on the same space**, 8 members: hypervolume" in text
    # without the space, or with an objective that needs an evaluation: stated as unavailable
    alone = compute_report(results, zoo=False)
    assert alone.random_band is None and any("written without the search space" in n for n in alone.notes)
    trained = run_search(_experiment(tmp_path / "b", "random", RICH, trials=3))
    other = compute_report(load_results(trained.study), zoo=False, space=trained.space)
    assert other.random_band is None
    assert any("objective grad_norm needs an evaluation" in n for n in other.notes)


def test_the_search_quality_benchmark_runs_quick(tmp_path):
    """``benchmarks/search_quality.py --quick``: every output, in seconds (one problem here)."""
    import importlib.util
    import json

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "search_quality.py"
    spec = importlib.util.spec_from_file_location("search_quality", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["search_quality"] = bench  # dataclasses look their module up
    spec.loader.exec_module(bench)
    argv = [
        "--quick",
        "--out",
        str(tmp_path),
        "--problems",
        "hybrid_stages",
        "--samplers",
        "random",
        "evolution",
    ]
    results = bench.main(argv)
    table = results["problems"]["hybrid_stages"]["table"]
    assert set(table) == {"random", "evolution"} and table["random"]["seeds"] == 2
    assert "4" in table["evolution"] and "8" in table["random"]  # N and 2N
    assert json.loads((tmp_path / "search_quality.json").read_text())["ns"] == [4]
    assert "| evolution |" in (tmp_path / "search_quality.md").read_text()
    assert (tmp_path / "search_quality.png").stat().st_size > 10_000
    assert (tmp_path / "cache" / "search_quality_hybrid_stages.jsonl").exists()


ROOT = Path(__file__).resolve().parent.parent
#: The benchmark's stored results (``benchmarks/search_quality.py``; committed beside its table).
BENCHMARK = ROOT / "benchmarks" / "results" / "search_quality.json"
#: The space of each problem of the benchmark.
PROBLEM_SPACES = {"cvt13": "cvt13_nas", "hybrid_small": "hybrid_small", "hybrid_stages": "hybrid_stages"}


def _stored() -> dict[str, Any]:
    import json

    return json.loads(BENCHMARK.read_text())


def _best(problem: dict[str, Any], view: str, column: int, seeds: int) -> list[str]:
    """The samplers best first as the stored medians say (a tie on the median to the higher lower
    quartile), recomputed from the stored tables: per trial at ``column`` evaluations, or at equal
    wall time for a budget of ``column``."""
    if view == "wall":
        table = problem["wall"][str(column)]["table"]
        assert all(row["seeds"] == seeds for row in table.values())
        at = {kind: row["hv"] for kind, row in table.items()}
    else:
        small = problem.get("small_table") or {}
        if small and all(str(column) in row for row in small.values()):  # more seeds, small budgets
            table, seeds = small, max(row[str(column)][3] for row in small.values())
            assert seeds >= 5
        else:
            table = problem["table"]
        at = {kind: row[str(column)] for kind, row in table.items()}
        assert all(v[3] == seeds for v in at.values()), f"a sampler lacks seeds at {column}"
    return sorted(at, key=lambda kind: (-at[kind][0], -at[kind][1], kind))


def test_the_rankings_auto_follows_are_the_benchmarks():
    """``sampler_rankings.json`` (what ``auto`` reads) is what the stored results rank: every
    column recomputed from the stored medians, every sampler with all its seeds; each problem's
    space is of its own kind by the size thresholds."""
    stored = _stored()
    rankings = benchmark_rankings()
    assert set(rankings) == set(stored["problems"]) == set(PROBLEM_SPACES)
    for name, problem in stored["problems"].items():
        assert rankings[name] == problem["rankings"], name
        for view, columns in rankings[name].items():
            for column, ranking in columns.items():
                best = _best(problem, view, int(column), len(stored["seeds"]))
                assert ranking == best, (name, view, column)
        size = load_space(ROOT / "search_spaces" / f"{PROBLEM_SPACES[name]}.yaml", num_classes=10).size()
        assert benchmark_problem(size) == name
    assert benchmark_problem(2**26, "supernet") == "hybrid_small"  # the one-shot problem
    assert rankings["hybrid_small"]["wall"], "the one-shot problem has a wall-time ranking"


def test_the_ranking_column_is_the_nearest_stored_budget():
    assert ranking_column([20, 50, 100, 200], 20) == 20
    assert ranking_column([20, 50, 100, 200], 1000) == 200
    assert ranking_column([20, 50, 100, 200], 5) == 20
    assert ranking_column([50, 100], 70) == 50  # log scale: 70/50 < 100/70
    assert ranking_column([50, 100], 75) == 100
    with pytest.raises(ValueError, match="no stored budget"):
        ranking_column([], 10)


def test_auto_picks_by_the_space_size_the_budget_and_the_evaluator(tmp_path):
    small, mid, large = 1_296_000, 2_571_912, 2**26  # the sizes of the three problems' spaces
    rankings = benchmark_rankings()

    def first(problem: str, view: str, budget: int, skip_gp: bool = False) -> str:
        columns = rankings[problem][view]
        ranking = columns[str(ranking_column([int(n) for n in columns], budget))]
        return next(k for k in ranking if not (skip_gp and k == "gp"))

    assert auto_kind(6, 10, 2) == auto_kind(large, large, 2) == "random"  # the budget covers the space
    assert auto_setting(small) == ("hybrid_small", "trial")
    assert auto_setting(large, "supernet") == ("hybrid_small", "wall")
    assert auto_setting(mid, "zero_cost") == ("hybrid_stages", "trial")
    with pytest.raises(TypeError):  # the budget is no part of the setting (it picks the column)
        auto_setting(small, 20, "train")  # type: ignore[call-arg]
    for size, problem in ((small, "hybrid_small"), (mid, "hybrid_stages"), (large, "cvt13")):
        for budget in (10, 20, 50, 100, 200, GP_MAX_BUDGET):
            assert auto_kind(size, budget, 2) == first(problem, "trial", budget), (problem, budget)
        # beyond GP_MAX_BUDGET a GP proposal costs about a short training: GP is passed over
        assert auto_kind(size, 1000, 2) == first(problem, "trial", 1000, skip_gp=True)
    for size in (small, large):  # one-shot: at equal wall time, GP's proposals counted
        for budget in (100, 200, 1000):
            assert auto_kind(size, budget, 2, evaluator="supernet") == first("hybrid_small", "wall", budget)
    assert not gp_pays(100, "supernet") and gp_pays(100, "zero_cost")
    assert not gp_pays(GP_MAX_BUDGET + 1, "train")
    # run: the budget covers the space -> random; it does not -> the small spaces' first
    summary = run_search(_experiment(tmp_path / "auto", "auto", SIX, trials=6))
    assert summary.counts.evaluated == 6 == summary.counts.complete
    assert summary.study.sampler.inner.__class__.__name__ == "RandomSampler"
    exp = _experiment(tmp_path / "rich", "auto", RICH, trials=3)
    expected = {"nsga2": "NSGAIISampler", "tpe": "TPESampler", "gp": "GPSampler", "random": "RandomSampler"}
    expected["evolution"] = "EvolutionSampler"
    assert sampler_kind(exp) == first("hybrid_small", "trial", 3)
    assert run_search(exp).study.sampler.inner.__class__.__name__ == expected[sampler_kind(exp)]


def test_auto_is_the_default_sampler():
    exp = load_experiment(
        {"space": SIX, "data": {"kind": "digits"}, **QUICK, "trials": 6}  # no sampler
    )
    assert exp.sampler.kind == "auto" and sampler_kind(exp) == "random"


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "experiments").glob("*.yaml")))
def test_every_shipped_experiment_runs_the_sampler_the_benchmark_ranks_best(name):
    """The sampler each shipped experiment runs is the best of the stored results for its setting:
    its problem, per trial or at equal wall time, at the stored budget nearest its own (recomputed
    from the stored medians; GP passed over per trial where it does not pay); the benchmark's own
    table of the shipped experiments says the same."""
    stored = _stored()
    exp = load_experiment(ROOT / "experiments" / name)
    size = load_space(exp.space_source(), num_classes=10).size()
    problem, view = auto_setting(size, exp.evaluator.kind)
    columns = [int(n) for n in stored["problems"][problem]["rankings"][view]]
    column = ranking_column(columns, exp.trials)
    ranking = _best(stored["problems"][problem], view, column, len(stored["seeds"]))
    best = next(k for k in ranking if k != "gp" or view == "wall" or gp_pays(exp.trials, exp.evaluator.kind))
    assert sampler_kind(exp) == best, f"{name}: {problem} {view} at {column}: {ranking}"
    setting = stored["settings"][Path(name).stem]
    assert (setting["problem"], setting["view"], setting["column"]) == (problem, view, column)
    assert setting["best"] == best
