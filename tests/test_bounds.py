"""Sizes that would exhaust the memory are one ``error:`` line naming the file, the line and the
bound (``archsearch.core``'s ``MAX_*`` constants), exit status 2, and quick: nothing of that size
is allocated first."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archsearch.cli import app
from archsearch.core import (
    MAX_BLOCKS,
    MAX_CLASSES,
    MAX_DEPTH,
    MAX_INPUT_SIDE,
    MAX_KERNEL,
    MAX_LIST,
    MAX_RANGE_VALUES,
    MAX_RATIO,
    MAX_TRIALS,
    MAX_WIDTH,
    MAX_YAML_NODES,
)
from archsearch.spec import Stage, schema_markdown

_ENV = {"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "300"}
_ROOT = Path(__file__).resolve().parents[1]


def _stage(**fields: str) -> str:
    body = {"dim": "16", "depth": "1", "mixer": "conv", **fields}
    return "stages:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in body.items()) + "\n"


SPECS = {
    # id: (spec text, line, text the error must contain)
    "depth": (_stage(depth="1000000000000"), 3, f"stages[0].depth: must be at most {MAX_DEPTH}"),
    "total-blocks": (
        "input: {size: 8, channels: 1}\n"
        f"depths: [{', '.join(['1000'] * 11)}]\n"
        "stages:\n" + "  - {dim: 8, mixer: conv}\n" * 11,
        2,
        f"depths[10]: the stages up to this one hold 11,000 blocks, more than the {MAX_BLOCKS:,}",
    ),
    "dim": (_stage(dim="100000"), 2, f"stages[0].dim: must be at most {MAX_WIDTH}"),
    "heads": (
        _stage(mixer="{kind: attention, heads: 1000000}"),
        4,
        f"stages[0].mixer.heads: must be at most {MAX_WIDTH}",
    ),
    "token-dim": (
        "input: {size: 64}\n" + _stage(embed="{kind: t2t, token_dim: 70000}", mixer="attention"),
        6,
        f"stages[0].embed.token_dim: must be at most {MAX_WIDTH}",
    ),
    "input-size": (
        "input: {size: [224, 100000]}\n" + _stage(),
        1,
        f"input.size[1]: must be at most {MAX_INPUT_SIDE}",
    ),
    "kernel": (
        _stage(mixer="{kind: conv, kernel: 65}"),
        4,
        f"stages[0].mixer.kernel: must be at most {MAX_KERNEL}",
    ),
    "per-block-list": (
        _stage(depth="2", mixer="{kind: attention, kv_stride: [" + ", ".join(["1"] * (MAX_LIST + 1)) + "]}"),
        4,
        f"stages[0].mixer.kv_stride: needs at most {MAX_LIST} items, not {MAX_LIST + 1}",
    ),
    "mlp-ratio": (
        _stage(mixer="attention", mlp_ratio="1.0e+9"),
        5,
        f"stages[0].mlp_ratio: must be at most {MAX_RATIO:g}",
    ),
    "num-classes": (
        _stage() + "head: {num_classes: 1000000000}\n",
        5,
        f"head.num_classes: must be at most {MAX_CLASSES}",
    ),
}


def _one_error(args: list[str]) -> str:
    start = time.monotonic()
    result = CliRunner().invoke(app, args, env=_ENV)
    assert time.monotonic() - start < 5, "a bound must be checked before anything large is built"
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("case", SPECS, ids=str)
def test_validate_refuses_a_size_over_its_bound(tmp_path, case):
    text, line, message = SPECS[case]
    file = tmp_path / "big.yaml"
    file.write_text(text)
    error = _one_error(["validate", str(file)])
    assert error.startswith(f"error: {file}:{line}: "), error
    assert message in error


def test_validate_refuses_yaml_aliases_that_expand_into_a_huge_tree(tmp_path):
    """The "billion laughs": nine levels of ten aliases would be 10**9 values."""
    rows = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    rows.append("stages: *i")
    file = tmp_path / "laughs.yaml"
    file.write_text("\n".join(rows) + "\n")
    error = _one_error(["validate", str(file)])
    assert error.startswith(f"error: {file}:6: f: the YAML expands to more than {MAX_YAML_NODES:,} values")


def test_space_refuses_an_integer_range_with_too_many_values(tmp_path):
    file = tmp_path / "space.yaml"
    file.write_text(
        "input: {size: 16, channels: 1}\nstages:\n  - embed: {kind: patch, stride: 4}\n"
        "    dim: {int: [8, 1000000000000], step: 8}\n    depth: 1\n    mixer: conv\n"
    )
    error = _one_error(["space", str(file)])
    assert error.startswith(f"error: {file}:4: stages[0].dim.int: the range takes 125,000,000,000 values")
    assert f"at most {MAX_RANGE_VALUES:,} values" in error


def test_search_refuses_too_many_trials_before_creating_anything(tmp_path):
    file = tmp_path / "experiment.yaml"
    file.write_text(
        f"space: {_ROOT / 'search_spaces' / 'hybrid_small.yaml'}\n"
        "data: {kind: digits}\nevaluator: {kind: zero_cost}\nobjectives: [{metric: macs}]\n"
        f"trials: 10000000000\nrun_dir: {tmp_path / 'run'}\n"
    )
    error = _one_error(["search", str(file)])
    assert error.startswith(f"error: {file}:5: trials: must be at most {MAX_TRIALS}")
    assert not (tmp_path / "run").exists()


def test_the_bounds_are_documented_where_the_schema_is():
    markdown = schema_markdown()
    for text in (
        f"int ≤ {MAX_DEPTH:,}",
        f"int ≤ {MAX_WIDTH:,}",
        f"int ≤ {MAX_KERNEL:,}",
        f"≤ {MAX_INPUT_SIDE:,}",
    ):
        assert text in markdown
    assert f"{MAX_BLOCKS:,} blocks" in (Stage.model_fields["depth"].description or "")
    readme = (_ROOT / "README.md").read_text()
    for value in (
        MAX_DEPTH,
        MAX_BLOCKS,
        MAX_WIDTH,
        MAX_INPUT_SIDE,
        MAX_CLASSES,
        MAX_RANGE_VALUES,
        MAX_YAML_NODES,
    ):
        assert f"{value:,}" in readme
