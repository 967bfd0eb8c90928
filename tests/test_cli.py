"""The command line on valid input (errors are covered in test_spec_errors.py)."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

import archsearch
from archsearch.cli import app

runner = CliRunner()


def test_validate_zoo_models():
    result = runner.invoke(app, ["validate", *archsearch.zoo_names()])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == len(archsearch.zoo_names())


def test_compile_json_agrees_with_the_built_model():
    result = runner.invoke(app, ["compile", "cvt-13", "--json", "--resolution", "160"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    model = archsearch.create_model("cvt-13", input_size=160)
    assert data["params"] == sum(p.numel() for p in model.parameters())
    assert [s["blocks"] for s in data["stages"]] == [1, 2, 10]
    assert [s["output"] for s in data["stages"]] == [[64, 40, 40], [192, 20, 20], [384, 10, 10]]
    assert (
        data["stem_params"] + data["head_params"] + sum(s["params"] for s in data["stages"]) == data["params"]
    )


def test_compile_table_lists_every_stage():
    result = runner.invoke(app, ["compile", "bot-50"])
    assert result.exit_code == 0
    for text in ("stem", "bottleneck", "mhsa", "2048x7x7", "20,852,008"):
        assert text in result.output


def test_zoo_lists_every_model_with_params():
    result = runner.invoke(app, ["zoo", "--json"])
    rows = {r["name"]: r["params"] for r in json.loads(result.output)}
    assert set(rows) == set(archsearch.zoo_names())
    with torch.device("meta"):
        assert rows["deit-s"] == sum(p.numel() for p in archsearch.create_model("deit-s").parameters())


def test_schema_is_json_schema(tmp_path):
    result = runner.invoke(app, ["schema"])
    schema = json.loads(result.output)
    assert schema["title"] == "Spec" and "stages" in schema["required"]
    out = tmp_path / "schema.json"
    assert runner.invoke(app, ["schema", "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) == schema
