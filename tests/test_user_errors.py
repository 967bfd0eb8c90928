"""What a new user gets wrong, met with a clear error: a model called on a tensor of another shape
than the images it was built for, a misspelt zoo name."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import archsearch
from archsearch import SpecError
from archsearch.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def small_deit():
    """deit-ti at 32 px (2x2 patches of 16): an absolute position table, so it checks its size."""
    return archsearch.create_model("deit-ti", input_size=32, num_classes=10).eval()


@pytest.mark.parametrize(
    ("shape", "says"),
    [
        ((3, 32, 32), r"got a tensor of shape \(3, 32, 32\); add the batch axis: x\.unsqueeze\(0\)"),
        ((1, 1, 3, 32, 32), r"got a tensor of shape \(1, 1, 3, 32, 32\)"),
        ((1, 4, 32, 32), r"got 4 channels \(shape \(1, 4, 32, 32\)\); .*in_chans=4"),
    ],
)
def test_a_model_names_the_image_shape_it_takes(small_deit, shape, says):
    with pytest.raises(
        ValueError, match=r"deit-ti takes \(batch, 3, height, width\) images .*input\.channels"
    ):
        small_deit(torch.zeros(shape))
    with pytest.raises(ValueError, match=says):
        small_deit(torch.zeros(shape))


def test_a_backbone_names_the_image_shape_it_takes():
    net = archsearch.create_model("resnet-50", input_size=64, features_only=True)
    with pytest.raises(ValueError, match=r"resnet-50 takes \(batch, 3, height, width\) images"):
        net(torch.zeros(1, 1, 64, 64))


def test_the_shape_check_leaves_tracing_alone(small_deit):
    traced = torch.jit.trace(small_deit, torch.zeros(2, 3, 32, 32))
    assert traced(torch.zeros(3, 3, 32, 32)).shape == (3, 10)


@pytest.mark.parametrize(
    ("typed", "meant"), [("resnet50", "resnet-50"), ("Deit-Ti", "deit-ti"), ("cvt13", "cvt-13")]
)
def test_a_misspelt_zoo_name_suggests_the_model_meant(typed, meant):
    with pytest.raises(
        SpecError, match=rf"no file and no zoo model named '{typed}' \(did you mean '{meant}'\?\)"
    ):
        archsearch.create_model(typed)
    result = runner.invoke(app, ["validate", typed])
    assert result.exit_code == 2 and f"did you mean '{meant}'?" in result.output


@pytest.mark.parametrize("source", [None, 3, 2.5, b"deit-ti"])
def test_create_model_of_a_non_name_says_what_a_spec_is(source):
    with pytest.raises(TypeError, match=r"zoo name, a YAML path, a dict or a Spec; got \w+"):
        archsearch.create_model(source)


@pytest.mark.parametrize("name", ["", "   "])
def test_create_model_of_an_empty_name_lists_the_zoo(name):
    with pytest.raises(SpecError, match="empty name") as info:
        archsearch.create_model(name)
    assert "deit-ti" in str(info.value)


@pytest.mark.parametrize("pattern", [3, None, [1], ["cvt*", None]])
def test_list_models_of_a_non_pattern_says_what_a_pattern_is(pattern):
    with pytest.raises(TypeError, match="list of patterns"):
        archsearch.list_models(pattern)
    with pytest.raises(TypeError, match="exclude"):
        archsearch.list_models("*", exclude=pattern)


def test_list_models_takes_a_tuple_of_patterns():
    assert archsearch.list_models(("cvt*", "deit-t*"), exclude=("cvt-21",)) == ["cvt-13", "deit-ti"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["trials", "x.yaml", "--limit", "-1"],
            "error: --limit: must be at least 0 (got -1); allowed: an integer, at least 0",
        ),
        (
            ["export", "resnet-50", "--batch", "0"],
            "error: --batch (-b): must be at least 1 (got 0); allowed: an integer, at least 1",
        ),
        (
            ["export", "resnet-50", "--tolerance", "-1"],
            "error: --tolerance: must be at least 0 (got -1); allowed: a number, at least 0",
        ),
        (
            ["export", "resnet-50", "--tolerance", "tiny"],
            "error: --tolerance: expected a number (got 'tiny'); allowed: a number, at least 0",
        ),
        (["export", "resnet-50", "--opset", "0"], "error: --opset: must be at least 1 (got 0)"),
        (
            ["search", "x.yaml", "--trials", "-1"],
            "error: --trials (-n): must be at least 1 (got -1); allowed: an integer, at least 1 and at most",
        ),
        (["search", "x.yaml", "-n", "many"], "error: --trials (-n): expected an integer (got 'many')"),
        (["worker", "x.yaml", "--trials", "0"], "error: --trials (-n): must be at least 1 (got 0)"),
        (["worker", "x.yaml", "--heartbeat", "0"], "error: --heartbeat: must be at least 1 (got 0)"),
        (["space", "x.yaml", "-n", "-1"], "error: --samples (-n): must be at least 0 (got -1)"),
        (["profile", "resnet-50", "--threads", "0"], "error: --threads: must be at least 1 (got 0)"),
        (["profile", "resnet-50", "--runs", "2"], "error: --runs: must be at least 4 (got 2)"),
        (
            ["compile", "resnet-50", "--resolution", "-5"],
            "error: --resolution (-r): must be at least 1 (got -5)",
        ),
        (["compile", "resnet-50", "--num-classes", "0"], "error: --num-classes: must be at least 1 (got 0)"),
        (
            ["latency-table", "x.yaml", "--threads", "abc"],
            "error: --threads: expected an integer (got 'abc')",
        ),
        (["latency-table", "x.yaml", "--rounds", "0"], "error: --rounds: must be at least 1 (got 0)"),
        (["train", "resnet-50", "--stop-after", "0"], "error: --stop-after: must be at least 1 (got 0)"),
        # click's usage errors too: no usage box (README: every bad input is one error: line)
        (
            ["compile", "deit-ti", "--resolutio", "3"],
            "error: --resolutio: no such option (did you mean --resolution?); allowed: --json,",
        ),
        (["compil", "deit-ti"], "error: compil: no such command (did you mean compile?); allowed: export,"),
        (["compile"], "error: archsearch compile: missing argument SPEC; allowed: a spec YAML file or a zoo"),
        (["compile", "deit-ti", "--resolution"], "error: --resolution: needs a value (see archsearch"),
        (["compile", "a", "b"], "error: archsearch compile: got unexpected extra argument(s) (b)"),
        (["--bogus"], "error: --bogus: no such option; allowed: --version, --help"),
    ],
)
def test_a_bad_option_value_is_one_error_line_with_what_is_allowed(args, says):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split())
    assert "Usage:" not in result.output and "Traceback" not in result.output and "╭" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_resume_and_fresh_together_say_what_is_allowed(tmp_path):
    result = runner.invoke(app, ["search", str(tmp_path / "e.yaml"), "--resume", "--fresh"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "error: --resume and --fresh contradict each other" in text
    assert "allowed: one of them, or neither" in text
    assert not list(tmp_path.iterdir())  # nothing read or written


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--resolution", "99999"], "error: --resolution 99999: input.size: must be at most 8192"),
        (
            ["--resolution", "100"],
            "error: --resolution 100: stages[0].embed.stride: the 100x100 map is not divisible into 16x16 "
            "patches (at ",
        ),
        (["--num-classes", "99999999"], "error: --num-classes 99999999: head.num_classes: must be at most"),
        (
            ["--set", "input.size=100"],
            "error: <command line> input.size=100: stages[0].embed.stride: the 100x100 map is not divisible",
        ),
    ],
)
def test_an_error_an_override_option_causes_names_the_option(args, says):
    """A zoo model is fine as it is: what --resolution, --num-classes or --set breaks is theirs,
    not the zoo file's (the spec's own place follows the message when it is elsewhere)."""
    result = runner.invoke(app, ["compile", "deit-ti", *args])
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split())
    assert result.output.startswith(says[:9]) and len(result.output.strip().splitlines()) == 1
    if args[-1].endswith("100"):  # the spec's own place follows, as a shape no longer fits
        assert "zoo/deit-ti.yaml:6) (got 16); allowed: strides dividing both sides" in result.output


def test_a_keyword_override_error_keeps_the_spec_s_own_problems_on_its_file(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "input: {size: 32}\nstages:\n  - {embed: {kind: patch, stride: 4}, dim: 32, depth: 1,\n"
        "     mixer: {kind: attention, heads: 4}, mlp_ratio: -1}\n"
    )
    with pytest.raises(SpecError) as info:
        archsearch.load_spec(spec, input_size=99999)
    lines = str(info.value).splitlines()
    assert any(line.startswith(f"{spec}:4: stages[0].mlp_ratio: must be") for line in lines), lines
    assert any(line.startswith("<override> input_size=99999: input.size: must be") for line in lines), lines
