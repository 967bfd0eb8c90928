"""Output files that cannot be written (QA pass qa11): `export -o`, `latency-table --out`,
`schema -o` and `report --out` each say so in one ``error:`` line naming the path and the reason,
exit status 2, before the work whose result the file would hold; never an OSError traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from archsearch.cli import app
from archsearch.core import output_file_problem

runner = CliRunner()

#: a folder nobody can make files in, root included
PROC = Path("/proc")
needs_proc = pytest.mark.skipif(not (PROC / "self").is_dir(), reason="needs Linux's /proc")

SPEC = {
    "input": {"size": 8},
    "stages": [{"embed": {"kind": "conv", "stride": 2}, "dim": 8, "depth": 1, "mixer": "conv"}],
    "head": {"num_classes": 3},
}
SPACE = {**SPEC, "stages": [{**SPEC["stages"][0], "dim": {"choice": [8, 16]}}]}


def _error(args: list[str]) -> str:
    """Run the CLI; assert exit 2, exactly one ``error:`` line and no traceback; that line."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return " ".join(result.output.replace("\n ", " ").split())


def _file(tmp_path: Path, name: str, data: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_output_file_problem_names_each_reason(tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert output_file_problem(tmp_path) == "is a folder"
    assert output_file_problem(a_file / "x.json") == f"{a_file} is a file, not a folder"
    assert output_file_problem(tmp_path / "new" / "x.json") is None  # the folder is made, as writers do
    assert (tmp_path / "new").is_dir() and not list((tmp_path / "new").iterdir())  # the probe is gone
    if (PROC / "self").is_dir():
        assert output_file_problem(PROC / "x.json").startswith("cannot write in its folder /proc (")
        assert output_file_problem(PROC / "d" / "x.json").startswith("cannot make its folder /proc/d (")


@needs_proc
@pytest.mark.parametrize("format", ["safetensors", "onnx", "torchscript"])
def test_export_to_a_folder_it_cannot_write_in(tmp_path: Path, format: str) -> None:
    # safetensors ended in its SafetensorError traceback; onnx and torchscript blamed the exporter
    # ("torch.onnx cannot export ...: FileNotFoundError") after trying both of torch's exporters
    pytest.importorskip("onnx" if format == "onnx" else "safetensors")
    spec = _file(tmp_path, "s.yaml", SPEC)
    line = _error(["export", spec, "--format", format, "-o", f"/proc/x.{format}"])
    assert f"error: /proc/x.{format}: cannot write in its folder /proc (" in line
    assert "allowed: a file path in a folder you can write" in line
    assert "cannot export" not in line and "cannot trace" not in line


def test_export_under_a_file(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    spec = _file(tmp_path, "s.yaml", SPEC)
    line = _error(["export", spec, "--format", "safetensors", "-o", f"{spec}/x.safetensors"])
    assert f"{spec} is a file, not a folder" in line


@needs_proc
def test_latency_table_out_is_refused_before_any_timing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it used to time every piece, then end in an OSError traceback when it saved the table
    import archsearch.space

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pieces were timed")

    monkeypatch.setattr(archsearch.space, "fill_table", never)
    space = _file(tmp_path, "space.yaml", SPACE)
    line = _error(["latency-table", space, "--threads", "1", "--out", "/proc/t.json"])
    assert "error: --out: cannot write /proc/t.json: cannot write in its folder /proc (" in line
    a_file = Path(space)
    line = _error(["latency-table", space, "--threads", "1", "--out", f"{a_file}/t.json"])
    assert f"--out: cannot write {a_file}/t.json: {a_file} is a file, not a folder" in line


def test_schema_output_it_cannot_write(tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    line = _error(["schema", "-o", f"{a_file}/schema.json"])
    assert f"error: --output: cannot write {a_file}/schema.json: {a_file} is a file, not a folder" in line
    if (PROC / "self").is_dir():
        assert "cannot write in its folder /proc" in _error(["schema", "-o", "/proc/schema.json"])
    assert runner.invoke(app, ["schema", "-o", str(tmp_path / "ok" / "schema.json")]).exit_code == 0


def test_report_into_a_folder_the_system_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # report_folder_problem reads permission bits, which /proc or a read-only mount pass for root;
    # the write's own OSError was a traceback
    import sys
    import types

    import archsearch.report

    search = types.ModuleType("archsearch.search")
    search.load_study = lambda source: types.SimpleNamespace(user_attrs={}, directions=[])  # type: ignore[attr-defined]
    search.load_results = lambda study: types.SimpleNamespace(study_name="x")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "archsearch.search", search)

    def refused(results: Any, out: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError(2, "No such file or directory", str(Path(out) / "winners"))

    monkeypatch.setattr(archsearch.report, "write_report", refused)
    target = tmp_path / "rep"
    line = _error(["report", "x.yaml", "--out", str(target)])
    assert (
        f"error: cannot write the report into {target}: {target}/winners: No such file or directory" in line
    )
