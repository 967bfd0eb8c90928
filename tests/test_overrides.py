"""Command-line overrides as Hydra and OmegaConf users write them: ``archsearch search E.yaml
evaluator.epochs=2 sampler.seed=3 trials=40``, ``archsearch compile SPEC --set stages.0.dim=96``;
values read as YAML, checked by the same schema, errors naming ``<command line>`` and the key."""

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
from archsearch.core import apply_dotlist, parse_override
from archsearch.search import load_experiment, load_study

from .helpers import QUICK, tiny_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
runner = CliRunner()
SPACE = tiny_space(dims=(8, 16), depth=1)


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("trials=40", ("trials",), 40),
        ("evaluator.lr=1e-3", ("evaluator", "lr"), 1e-3),
        ("sampler.kind=tpe", ("sampler", "kind"), "tpe"),
        ("objectives.0.metric=macs", ("objectives", 0, "metric"), "macs"),
        ("objectives[1].direction=max", ("objectives", 1, "direction"), "max"),
        ("stages.0.mlp_ratio=[2, 4]", ("stages", 0, "mlp_ratio"), [2, 4]),
        ("early_stopping={kind: none}", ("early_stopping",), {"kind": "none"}),
        ("+backend.timeout_s=60", ("backend", "timeout_s"), 60),
        ("evaluator.flip=false", ("evaluator", "flip"), False),
        ("name='3'", ("name",), "3"),
        ("run_dir=", ("run_dir",), None),
    ],
)
def test_an_override_is_a_key_path_and_a_yaml_value(text, path, value):
    o = parse_override(text)
    assert o.path == path and o.value == value and o.text == text and not o.deletes


def test_overrides_set_create_and_remove_keys_without_touching_the_original():
    data = {"evaluator": {"kind": "train"}, "objectives": [{"metric": "accuracy"}], "early_stopping": {}}
    out = apply_dotlist(
        data, ["evaluator.epochs=2", "sampler.seed=3", "objectives.0.direction=max", "~early_stopping"]
    )
    assert out == {
        "evaluator": {"kind": "train", "epochs": 2},
        "objectives": [{"metric": "accuracy", "direction": "max"}],
        "sampler": {"seed": 3},
    }
    assert data["evaluator"] == {"kind": "train"} and "early_stopping" in data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs", "<command line> epochs: an override is KEY=VALUE; allowed: e.g. evaluator.epochs=2"),
        ("a..b=1", "<command line> a..b=1: 'a..b' is not a key path"),
        ("objectives.3.metric=macs", "objectives is a list of 1 item(s); no item 3; allowed: indices 0 to 0"),
        ("trials.max=3", "<command line> trials.max=3: trials is 20, not a mapping: it has no key 'max'"),
        ("x=[1, 2", "<command line> x=[1, 2: the value '[1, 2' is not YAML"),
    ],
)
def test_malformed_overrides_name_the_command_line(text, message):
    with pytest.raises(SpecError) as info:
        apply_dotlist({"trials": 20, "objectives": [{"metric": "accuracy"}]}, [text])
    assert message in str(info.value)


def _experiment(tmp_path: Path) -> Path:
    path = tmp_path / "E.yaml"
    data = {"space": SPACE, **QUICK, "sampler": {"kind": "random", "seed": 0}, "trials": 3}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_overrides_change_the_experiment(tmp_path):
    exp = load_experiment(_experiment(tmp_path), ["trials=40", "sampler.seed=3", "evaluator.batch_size=8"])
    assert exp.trials == 40 and exp.sampler.seed == 3 and exp.evaluator.batch_size == 8
    plain = load_experiment(_experiment(tmp_path))
    assert plain.trials == 3 and plain.sampler.seed == 0


def test_an_override_changes_the_run(tmp_path):
    path = _experiment(tmp_path)
    result = runner.invoke(app, ["search", str(path), "trials=1", "sampler.seed=5", "--no-report"])
    assert result.exit_code == 0, result.output
    study = load_study(str(path))
    assert sum(t.user_attrs["outcome"] == "complete" for t in study.trials) == 1  # not the file's 3
    fresh = tmp_path / "seeded"
    fresh.mkdir()
    other = runner.invoke(
        app, ["search", str(path), "trials=1", "sampler.seed=5", f"run_dir={fresh}", "--no-report"]
    )
    assert other.exit_code == 0, other.output
    again = load_study(load_experiment(path, [f"run_dir={fresh}"]))
    assert again.trials[0].params == study.trials[0].params  # the same seed suggests the same member


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "evaluator.batch_size=abc",
            "error: <command line> evaluator.batch_size=abc: evaluator.batch_size: "
            "expected an integer (got 'abc')",
        ),
        (
            "sampler.sed=3",
            "error: <command line> sampler.sed=3: sampler.sed: unknown key 'sed' in Sampler (kind 'auto') "
            "(did you mean 'seed'?); allowed: kind, seed, population_size, sample_size, startup_trials",
        ),
        (
            "sampler.kind=grid",
            "error: <command line> sampler.kind=grid: sampler.kind: not an allowed value (got 'grid'); "
            "allowed: auto, gp, evolution, nsga2, tpe, random",
        ),
        ("trials=0", "error: <command line> trials=0: trials: must be greater than 0 (got 0)"),
    ],
)
def test_a_bad_override_is_one_error_naming_the_command_line_and_the_key(tmp_path, override, line):
    result = runner.invoke(app, ["search", str(_experiment(tmp_path)), override])
    assert result.exit_code == 2 and result.stdout == "" and "Traceback" not in result.output
    assert result.stderr.splitlines() == [line]


def test_an_error_in_the_file_still_names_its_line(tmp_path):
    path = tmp_path / "E.yaml"
    path.write_text(f"space: {json.dumps(SPACE)}\n{yaml.safe_dump(QUICK)}trials: -1\n")
    result = runner.invoke(app, ["search", str(path), "sampler.seed=3"])
    assert result.exit_code == 2
    last = len(path.read_text().splitlines())
    assert result.stderr == f"error: {path}:{last}: trials: must be greater than 0 (got -1)\n"


def test_spec_commands_take_set(tmp_path):
    result = runner.invoke(app, ["validate", "deit-ti", "--set", "head.num_classes=10", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["num_classes"] == 10
    result = runner.invoke(app, ["compile", "deit-ti", "--set", "stages.0.dim=96", "--json"])
    assert result.exit_code == 0, result.output
    model = archsearch.create_model(archsearch.load_spec("deit-ti", dotlist=["stages.0.dim=96"]))
    assert json.loads(result.stdout)["params"] == sum(p.numel() for p in model.parameters())
    result = runner.invoke(app, ["compile", "deit-ti", "--set", "stages.0.mixer.heads=5"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: <command line> stages.0.mixer.heads=5: stages[0].mixer.heads: "
        "heads must divide the dim 192 (got 5)"
    )
    result = runner.invoke(app, ["profile", "deit-ti", "--set", "stages.0.depth=x", "--no-latency"])
    assert result.exit_code == 2 and "<command line> stages.0.depth=x: stages[0].depth" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["compile", "deit-ti", "-r", "100000"],
            "--resolution 100000: input.size: must be at most",
        ),
        (
            ["compile", "deit-ti", "--num-classes", "100000000"],
            "--num-classes 100000000: head.num_classes: must be at most",
        ),
        (
            ["profile", "deit-ti", "-r", "100000", "--no-latency"],
            "--resolution 100000: input.size",
        ),
        (["export", "deit-ti", "-r", "100000"], "--resolution 100000: input.size"),
        (["train", "deit-ti", "--num-classes", "100000000"], "--num-classes 100000000: head"),
        # --resolution wins over --set input.size: the error is the option's
        (
            ["compile", "deit-ti", "--set", "input.size=64", "-r", "100000"],
            "--resolution 100000",
        ),
    ],
)
def test_a_bad_value_given_by_an_option_names_the_option_not_the_file(args, says):
    """``--resolution`` and ``--num-classes`` replace a spec value: an error about it blamed the
    file's line of the value it replaced (``deit-ti.yaml:3: input.size: must be at most 8192``)."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {says}")
    assert "deit-ti.yaml" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_latency_table_resolution_names_the_option(tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    result = runner.invoke(app, ["latency-table", str(space), "--resolution", "100000"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --resolution 100000: input.size: must be at most")


def test_load_space_puts_an_issue_caused_by_an_override_down_to_it(tmp_path):
    """As load_spec does: an issue the space has only with a keyword override names the override
    (Issue.cause) and not the file's line of the value it replaced; the space's own issues keep
    their place; without overrides nothing changes."""
    from archsearch.space import load_space

    file = tmp_path / "s.yaml"
    file.write_text(yaml.safe_dump(SPACE))
    with pytest.raises(SpecError) as caught:
        load_space(file, input_size=100000)
    (issue,) = caught.value.issues
    assert issue.cause == "<override> input_size=100000" and issue.file is None and issue.line is None
    assert str(issue).startswith("<override> input_size=100000: input.size: must be at most")
    with pytest.raises(SpecError) as caught:
        load_space(load_space(file), num_classes=100_000_000)  # a loaded space, overridden again
    assert [i.cause for i in caught.value.issues] == ["<override> num_classes=100000000"]
    broken = {**SPACE, "stages": [{**SPACE["stages"][0], "depth": 0}, SPACE["stages"][1]]}
    file.write_text(yaml.safe_dump(broken))
    with pytest.raises(SpecError) as caught:  # the file's own issue: at its line, whatever the override
        load_space(file, input_size=32)
    assert all(i.cause is None and i.file == str(file) and i.line for i in caught.value.issues)
