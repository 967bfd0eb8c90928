"""Bad input the QA pass qa11 found, besides unwritable outputs (tests/test_output_paths.py):
each met with a clear error instead of being ignored or ending in an unrelated traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archsearch
from archsearch.cli import app

SPACE = {
    "input": {"size": 8},
    "stages": [
        {"embed": {"kind": "conv", "stride": 2}, "dim": {"choice": [8, 16]}, "depth": 1, "mixer": "conv"}
    ],
    "head": {"num_classes": 3},
}


def test_trials_of_an_experiment_refuses_another_study(tmp_path: Path) -> None:
    # `archsearch trials E.yaml --study nope` listed the experiment's own study without a word
    (tmp_path / "space.yaml").write_text(json.dumps(SPACE))
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(json.dumps({"space": "space.yaml", "objectives": [{"metric": "macs"}]}))
    result = CliRunner().invoke(app, ["trials", str(experiment), "--study", "nope"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = " ".join(result.output.split())
    assert "error: --study: the experiment 'exp' searches the study 'exp', not 'nope' (got 'nope')" in line
    assert "allowed: 'exp'; for another study give its storage" in line
    assert not (tmp_path / "runs").exists()  # refused before the storage is opened


@pytest.mark.parametrize("given", ["deit-ti", {"stages": []}, None])
def test_normalize_of_a_non_spec_says_what_it_takes(given: object) -> None:
    # normalize("deit-ti") was AttributeError: 'str' object has no attribute 'name'
    with pytest.raises(TypeError, match=r"normalize takes a Spec, not a \w+ .*archsearch.load_spec"):
        archsearch.normalize(given)  # type: ignore[arg-type]
    assert archsearch.normalize(archsearch.load_spec("deit-ti")).name == "deit-ti"


def test_the_front_table_counts_one_trial_in_the_singular() -> None:
    # a search with one member on the front printed "Pareto front (1 trials)"
    from types import SimpleNamespace

    from archsearch.cli._search import _front_table

    objectives = [SimpleNamespace(metric="macs")]
    one = _front_table([{"trial": 0, "macs": 1e6, "mixers": "conv"}], objectives)
    assert one.title == "Pareto front (1 trial)"
    assert _front_table([], objectives).title == "Pareto front (0 trials)"


def test_the_readme_s_option_defaults_are_the_command_line_s() -> None:
    # the README said `--statistic` defaults to `median`; latency-table's default is fastest_quarter
    import re

    import typer.main

    from archsearch.cost import DEFAULT_STATISTIC

    text = " ".join((Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8").split())
    stated = {
        m.group(1): m.group(2) for m in re.finditer(r"`--([\w-]+)[^`]*`[^.;]{0,40}?\(default (\w+)", text)
    }
    statistic = re.search(r"`--statistic` chooses [^.]*?\(below; default `(\w+)`\)", text)
    assert statistic is not None and statistic.group(1) == DEFAULT_STATISTIC
    stated["statistic"] = statistic.group(1)
    assert {"statistic", "rounds", "members", "heartbeat", "grace", "max-retry"} <= set(stated)
    group = typer.main.get_command(app)
    defaults: dict[str, set[str]] = {}
    for command in group.commands.values():  # type: ignore[attr-defined]
        for param in command.params:
            for opt in param.opts:
                defaults.setdefault(opt.lstrip("-"), set()).add(str(param.default))
    for option, value in stated.items():
        assert value in defaults.get(option, set()), (option, value, defaults.get(option))


@pytest.mark.parametrize("command", ["validate", "compile", "profile", "space"])
def test_an_experiment_given_as_a_spec_or_space_is_named_as_one(tmp_path: Path, command: str) -> None:
    # `archsearch validate E.yaml` listed each experiment key as unknown to a spec, and `space
    # E.yaml` said a space needs 'stages'; `search` of a spec already said what it was
    (tmp_path / "space.yaml").write_text(json.dumps(SPACE))
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(json.dumps({"space": "space.yaml", "objectives": [{"metric": "macs"}]}))
    result = CliRunner().invoke(app, [command, str(experiment)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    line = " ".join(result.output.split())
    what = "a search space: its space is space.yaml" if command == "space" else "an architecture spec"
    assert f"exp.yaml:1: this is an experiment, not {what}" in line and "`archsearch search` runs it" in line


def test_tiny_costs_are_not_shown_as_zero_millions() -> None:
    # a 3,328-parameter member was "0.00M" in trials, the front and `archsearch space`
    from archsearch.cli._progress import fmt

    assert fmt("params", 3328) == "0.00333M" and fmt("macs", 5776) == "0.00578M"
    assert fmt("params", 409_722) == "0.41M" and fmt("macs", 2.17e6) == "2.17M" and fmt("macs", 0) == "0.00M"


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("cvt-13", "cvt-13 is a zoo model, a concrete spec (`archsearch compile cvt-13` builds it)"),
        ("cvt13_nas", "(did you mean 'search_spaces/cvt13_nas.yaml'?)"),
        ("nothing-here", "nothing-here: search space file does not exist"),
    ],
)
def test_a_bare_name_that_is_no_space_file_says_what_it_is(name: str, said: str, monkeypatch) -> None:
    # `archsearch space cvt-13` said only that the file does not exist
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # where search_spaces/ is
    result = CliRunner().invoke(app, ["space", name])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert said in " ".join(result.output.split()), result.output


def test_more_threads_than_cores_is_warned_of() -> None:
    # `profile --threads 999` timed an oversubscribed CPU (893 ms) without a word
    from archsearch.evaluate import core_ceiling, oversubscription

    cores = core_ceiling(10**6)
    assert oversubscription(None) is None and oversubscription(cores) is None and oversubscription(1) is None
    said = oversubscription(cores + 1)
    assert said is not None and f"--threads {cores + 1} is more than the {cores} core" in said


def test_trials_says_running_trials_no_run_holds_were_left_over(tmp_path: Path) -> None:
    # after `kill -9`, `trials` showed the abandoned trial as running without a word
    from archsearch.search import StudyLock, load_experiment, open_study

    (tmp_path / "space.yaml").write_text(json.dumps(SPACE))
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(
        json.dumps({"space": "space.yaml", "objectives": [{"metric": "macs"}], "trials": 1})
    )
    assert CliRunner().invoke(app, ["search", str(experiment)]).exit_code == 0
    loaded = load_experiment(experiment)
    open_study(loaded, create=False).ask()  # a trial left RUNNING, as by a killed run
    note = "no run holds this study now, so its running trials were left by a run that stopped"
    for args in (["trials", str(experiment)], ["trials", str(experiment), "--limit", "0"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0 and note in " ".join(result.output.split()), result.output
    with StudyLock(loaded.storage_file, loaded.study_name):  # a live run holds the study
        result = CliRunner().invoke(app, ["trials", str(experiment)])
    assert (
        result.exit_code == 0 and "running" in result.output and note not in " ".join(result.output.split())
    )
