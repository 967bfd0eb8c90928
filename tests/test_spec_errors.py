"""Bad specs: every one raises SpecError naming the file, the line, the YAML path and what is allowed.

The corpus is data: ``tests/data/bad_specs/<folder>/<name>.yaml`` holds one malformed spec as it
stands, and ``tests/data/bad_specs/cases.toml`` gives for each the YAML path and the line its first
issue must point at and a regex its message must match (the header of that file says how to add a
case). The CLI turns the same errors into one ``error:`` line per issue on stderr and exit status
2, without a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archsearch
from archsearch import SpecError
from archsearch.cli import app
from archsearch.errors import format_path
from archsearch.kinds import MIXERS
from archsearch.spec import ZOO_DIR, load_spec

from .helpers import write_file

BAD_SPECS = Path(__file__).resolve().parent / "data" / "bad_specs"


@dataclass(frozen=True)
class BadSpec:
    """One case of ``cases.toml``: the file and what its first issue must say."""

    id: str  # <folder>/<name>
    file: Path  # the YAML file, or where none stands (see ``absent``)
    absent: str | None  # None: the file is there; "none": nothing is; "directory": a directory is
    path: str
    line: int | None
    match: str

    @property
    def text(self) -> str | None:
        return None if self.absent else self.file.read_text(encoding="utf-8")


def _load_corpus() -> list[BadSpec]:
    index = tomllib.loads((BAD_SPECS / "cases.toml").read_text(encoding="utf-8"))
    return [
        BadSpec(
            id=f"{folder}/{name}",
            file=BAD_SPECS / folder / f"{name}.yaml",
            absent=entry.get("file"),
            path=entry["path"],
            line=entry.get("line"),
            match=entry["match"].replace("{MIXERS}", ", ".join(MIXERS.names())),
        )
        for folder, cases in index.items()
        for name, entry in cases.items()
    ]


CORPUS = _load_corpus()
_BY_ID = {case.id: case for case in CORPUS}


def _place(tmp_path: Path, case: BadSpec) -> Path:
    """The path to give ``load_spec``: the case's own file, or a missing file or a directory in tmp."""
    if case.absent is None:
        return case.file
    path = tmp_path / "spec.yaml"
    if case.absent == "directory":
        path.mkdir()
    else:
        assert case.absent == "none", case
    return path


def test_the_corpus_is_large_and_its_ids_unique():
    ids = [case.id for case in CORPUS]
    assert len(ids) >= 35 and len(set(ids)) == len(ids)


def test_every_corpus_file_has_an_entry_and_every_entry_its_file():
    on_disk = {f"{f.parent.name}/{f.stem}" for f in BAD_SPECS.glob("*/*.yaml")}
    with_file = {case.id for case in CORPUS if case.absent is None}
    assert on_disk == with_file
    assert all(case.absent in (None, "none", "directory") for case in CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.id)
def test_malformed_spec_names_file_line_path_and_what_is_allowed(tmp_path, case):
    file = _place(tmp_path, case)
    path, line, match = case.path, case.line, case.match
    with pytest.raises(SpecError) as info:
        load_spec(str(file))
    err = info.value
    first = err.issues[0]
    assert err.path == format_path(first.path) == path
    assert first.line == err.line == line
    assert first.file == err.file == str(file)
    assert str(file) in str(err)
    location = f"{file}:{line}" if line is not None else str(file)
    assert str(first).startswith(location + ": ")
    if path != "<root>":
        assert f"{location}: {path}: " in str(first)
    assert re.search(match, str(first)), f"{str(first)!r} does not match {match!r}"
    for word in ("function-after", "constrained-", "list[", "Input should", "model_attributes_type"):
        assert word not in str(err)


def test_an_issue_is_one_line():
    for case in CORPUS:
        text = case.text
        if text is None:
            continue
        try:
            archsearch.spec.spec_from_dict(*archsearch.spec.load_yaml_text(text, "x.yaml"))
        except SpecError as err:
            assert all("\n" not in str(issue) for issue in err.issues), case.id
        else:  # pragma: no cover - every text in the corpus is bad
            pytest.fail(f"{case.id} loaded")


# --------------------------------------------------------------------------- several issues


def test_schema_errors_are_all_reported_at_once(tmp_path):
    file = write_file(
        tmp_path,
        textwrap.dedent("""\
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: conv
            bogus: 1
          - dim: 0
            depth: 1
            mixer: conv
        head:
          pool: max
        """),
    )
    with pytest.raises(SpecError) as info:
        load_spec(file)
    found = [(format_path(i.path), i.line) for i in info.value.issues]
    assert found == [("stages[0].bogus", 6), ("stages[1].dim", 7), ("head.pool", 11)]
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{file}:") for line in lines)


def test_shape_errors_of_a_stage_are_all_reported_at_once(tmp_path):
    file = write_file(
        tmp_path,
        textwrap.dedent("""\
        input: {size: 32}
        stages:
          - dim: 64
            depth: 2
            mixer: conv
            mlp_ratio: 4
            cls_token: true
            pos_embed: absolute
        """),
    )
    with pytest.raises(SpecError) as info:
        load_spec(file)
    found = [(format_path(i.path), i.line) for i in info.value.issues]
    assert found == [("stages[0].mlp_ratio", 6), ("stages[0].cls_token", 7), ("stages[0].pos_embed", 8)]


def test_a_scalar_or_list_value_reports_only_the_alternative_that_fits(tmp_path):
    # ``kv_stride`` is an int or a per-block list: a list with a bad item names the item, not "not an int"
    file = write_file(
        tmp_path,
        textwrap.dedent("""\
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, qkv: dw_bn, kv_stride: [2, 0], q_stride: []}
        """),
    )
    with pytest.raises(SpecError) as info:
        load_spec(file)
    assert [format_path(i.path) for i in info.value.issues] == [
        "stages[0].mixer.kv_stride[1]",
        "stages[0].mixer.q_stride",
    ]
    assert "needs at least 1 item, not 0" in str(info.value.issues[1])
    assert "integer" not in str(info.value)


# --------------------------------------------------------------------------- zoo specs edited in one place


ZOO_EDITS = [
    pytest.param(
        "cvt-13",
        "heads: 6",
        "heads: 5",
        "stages[2].mixer.heads",
        r"heads must divide the dim 384",
        id="cvt-13-heads",
    ),
    pytest.param(
        "cvt-13",
        "depths: [1, 2, 10]",
        "depths: [1, 2]",
        "depths",
        r"needs one depth per stage",
        id="cvt-13-depths",
    ),
    pytest.param(
        "deit-s", "depth: 12", "depth: 0", "stages[0].depth", r"must be greater than 0", id="deit-s-depth"
    ),
    pytest.param(
        "resnet-50",
        "dim: 1024, depth: 6, mixer: conv",
        "dim: 1024, depth: 6, mixer: lstm",
        "stages[2].mixer",
        r"unknown kind 'lstm'",
        id="resnet-50-mixer",
    ),
    pytest.param(
        "bot-50",
        "heads: 4}",
        "heads: 4, qkv_bias: maybe}",
        "stages[3].mixer.qkv_bias",
        r"expected true or false",
        id="bot-50-qkv-bias",
    ),
    pytest.param(
        "vit-b16",
        "head: {pool: cls",
        "head: {pool: cls, size: 3",
        "head.size",
        r"unknown key 'size' in Head",
        id="vit-b16-head",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "path", "match"), ZOO_EDITS)
def test_an_edited_zoo_spec_points_at_the_edited_line(tmp_path, name, old, new, path, match):
    text = (ZOO_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.count(old) >= 1
    at = text.index(old)
    line = text[:at].count("\n") + 1
    file = tmp_path / f"{name}.yaml"
    file.write_text(text[:at] + new + text[at + len(old) :], encoding="utf-8")
    with pytest.raises(SpecError, match=match) as info:
        load_spec(file)
    assert (info.value.path, info.value.line, info.value.file) == (path, line, str(file))


def test_an_override_that_breaks_a_zoo_model_names_the_zoo_file_and_line():
    with pytest.raises(SpecError, match=r"the 30x30 map is not divisible into 16x16 patches") as info:
        load_spec("deit-ti", input_size=30)
    err = info.value
    assert err.file == str(ZOO_DIR / "deit-ti.yaml")
    assert (err.path, err.line) == ("stages[0].embed.stride", 6)


def test_an_unknown_zoo_name_lists_the_zoo():
    says = r"no file and no zoo model named 'resnet-5' \(did you mean 'resnet-50'\?\); allowed: .*resnet-50"
    with pytest.raises(SpecError, match=says):
        load_spec("resnet-5")


# --------------------------------------------------------------------------- YAML merge keys


def test_an_explicit_key_overrides_a_merged_one(tmp_path):
    file = write_file(
        tmp_path,
        textwrap.dedent("""\
        input: {size: 32}
        stages:
          - &base {dim: 64, depth: 1, mixer: conv}
          - {<<: *base, dim: 128}
          - <<: *base
            mixer: {kind: conv, kernel: 0}
        """),
    )
    with pytest.raises(SpecError) as info:
        load_spec(file)
    # stage 1 overrides 'dim' without complaint; stage 2's own mixer replaces the merged one
    assert (info.value.path, info.value.line) == ("stages[2].mixer.kernel", 6)
    file.write_text(file.read_text().replace("kernel: 0", "kernel: 3"))
    assert [s.dim for s in load_spec(file).stages] == [64, 128, 64]


def test_a_key_twice_beside_a_merge_is_still_a_duplicate(tmp_path):
    file = write_file(
        tmp_path,
        "input: {size: 32}\nstages:\n  - &b {dim: 64, depth: 1, mixer: conv}\n"
        "  - {<<: *b, dim: 128, dim: 256}\n",
    )
    with pytest.raises(SpecError, match=r"duplicate key 'dim' \(first given on line 4\)") as info:
        load_spec(file)
    assert (info.value.path, info.value.line) == ("stages[1].dim", 4)


# --------------------------------------------------------------------------- the command line

CLI_CASES = [
    "missing-file",
    "yaml-unclosed-brace",
    "yaml-tab",
    "empty-file",
    "list-at-root",
    "unknown-key-stage",
    "depth-quoted-number",
    "unknown-mixer-kind",
    "heads-not-dividing-dim",
    "kv-stride-in-late-stage",
    "mlp-ratio-list-wrong-length",
    "pool-cls-without-cls-token",
    "directory",
]
_ENV = {"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "300"}


def _expected_cli_text(file: Path, path: str, line: int | None) -> str:
    location = f"{file}:{line}" if line is not None else str(file)
    return f"error: {location}: " + (f"{path}: " if path != "<root>" else "")


@pytest.mark.parametrize("command", ["validate", "compile"])
@pytest.mark.parametrize("case_id", CLI_CASES)
def test_cli_prints_one_clear_error_and_exits_2(tmp_path, command, case_id):
    case = _BY_ID[f"spec/{case_id}"]
    path, line, match = case.path, case.line, case.match
    file = _place(tmp_path, case)
    result = CliRunner().invoke(app, [command, str(file)], env=_ENV)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit(2), not an exception escaping
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(_expected_cli_text(file, path, line))
    assert re.search(match, lines[0])
    assert "Traceback" not in result.stderr


def test_cli_reports_every_issue_on_its_own_line(tmp_path):
    text = (
        "input: {size: 32}\nstages:\n  - {dim: 0, depth: 1, mixer: conv}\n"
        "  - {dim: 8, depth: -2, mixer: conv}\n"
    )
    file = write_file(tmp_path, text)
    result = CliRunner().invoke(app, ["validate", str(file)], env=_ENV)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {file}:3: stages[0].dim: must be greater than 0 (got 0)",
        f"error: {file}:4: stages[1].depth: must be greater than 0 (got -2)",
    ]


def test_cli_validate_stops_at_the_first_bad_file_with_status_2(tmp_path):
    file = write_file(tmp_path, "stages: 3\n")
    result = CliRunner().invoke(app, ["validate", "deit-ti", str(file)], env=_ENV)
    assert result.exit_code == 2
    assert result.stdout.startswith("ok deit-ti")
    assert result.stderr == f"error: {file}:1: stages: expected a list (got 3)\n"


@pytest.mark.parametrize("case_id", ["missing-file", "yaml-unclosed-brace"])
def test_cli_process_prints_no_traceback(tmp_path, case_id):
    """The real entry point, in a process of its own, for both commands."""
    case = _BY_ID[f"spec/{case_id}"]
    path, line = case.path, case.line
    file = _place(tmp_path, case)
    env = {**os.environ, **_ENV}
    entry = [sys.executable, "-c", "from archsearch.cli import main; main()"]
    procs = [
        subprocess.Popen(
            [*entry, command, str(file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for command in ("validate", "compile")
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, stderr
        assert "Traceback" not in stdout + stderr
        assert stdout == ""
        assert stderr.startswith(_expected_cli_text(file, path, line))
        assert stderr.count("\n") == 1


def test_cli_prints_values_that_look_like_markup_verbatim(tmp_path):
    file = write_file(tmp_path, "stages:\n  - {dim: 8, depth: 1, mixer: {kind: '[/x]'}}\n")
    result = CliRunner().invoke(app, ["validate", str(file)], env=_ENV)
    assert result.exit_code == 2
    assert "unknown kind '[/x]'" in result.stderr


def test_every_unknown_key_and_bad_value_of_one_mapping_is_reported_at_once(tmp_path):
    file = write_file(
        tmp_path, "stages:\n  - dim: 8\n    depth: 1\n    mixer: {kind: conv, kernal: 3, groups: 0, x: 1}\n"
    )
    with pytest.raises(SpecError) as info:
        archsearch.load_spec(file)
    paths = sorted(format_path(i.path) for i in info.value.issues)
    assert paths == ["stages[0].mixer.groups", "stages[0].mixer.kernal", "stages[0].mixer.x"]
    assert "did you mean 'kernel'" in str(info.value)
