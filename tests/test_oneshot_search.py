"""One-shot search through `archsearch search`: the supernet is trained once beside the study,
members are scored with inherited weights, the best of the front are retrained, and winners
come out as YAML + weights that create_model loads."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

import archsearch
from archsearch import SpecError
from archsearch.search import load_experiment, load_study, run_search, trials_table

from .helpers import tiny_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _experiment(tmp_path: Path, **changes):
    data = {
        "name": "os",
        "space": tiny_space(dims=(8, 16), depth=1),
        "data": {"kind": "digits"},
        "evaluator": {
            "kind": "supernet",
            "epochs": 1,
            "batch_size": 128,
            "flip": False,
            "threads": 1,
            "calibration_batches": 1,
            "retrain": {"epochs": 1, "top": 1},
        },
        "objectives": [{"metric": "accuracy"}, {"metric": "macs"}],
        "sampler": {"kind": "random", "seed": 0},
        "trials": 4,
        "run_dir": str(tmp_path / "run"),
    }
    data.update(changes)
    return load_experiment(data)


def test_oneshot_search_scores_members_retrains_the_best_and_exports_winners(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path)
    run_search(experiment)
    checkpoint = tmp_path / "run" / "supernet.pt"
    assert checkpoint.is_file()
    study = load_study(experiment)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(0 <= t.user_attrs["inherited_accuracy"] <= 1 for t in complete)
    retrained = study.user_attrs["retrained"]
    assert len(retrained) == 1
    table = trials_table(study)
    assert table["retrained_accuracy"].notna().sum() == 1
    assert table["inherited_accuracy"].notna().sum() == len(complete)
    (number,) = retrained
    spec_file = tmp_path / "run" / "winners" / f"os-t{number}.yaml"
    (weights,) = [p for p in spec_file.parent.iterdir() if p.stem == spec_file.stem and p.suffix != ".yaml"]
    model = archsearch.create_model(spec_file, weights=weights).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)
    # a second run resumes: the finished supernet is loaded, not trained again
    before = checkpoint.stat().st_mtime_ns
    run_search(_experiment(tmp_path, trials=5))
    assert checkpoint.stat().st_mtime_ns == before
    assert len(load_study(experiment).user_attrs["retrained"]) >= 1


def test_a_wrong_supernet_setting_names_its_line(tmp_path: Path) -> None:
    file = tmp_path / "e.yaml"
    file.write_text(
        "space: s.yaml\nevaluator:\n  kind: supernet\n  sampling: greedy\nobjectives: [{metric: accuracy}]\n"
    )
    with pytest.raises(SpecError, match=r"e\.yaml:4: evaluator\.sampling.*uniform.*sandwich"):
        load_experiment(file)
