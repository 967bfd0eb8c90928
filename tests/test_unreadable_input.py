"""Unreadable spec, space and experiment files: one ``error: FILE: ...`` line and exit status 2.

Issue 17, item 2: control characters, bytes that are not UTF-8, a UTF-16 byte-order mark, a
directory, a FIFO (which must not hang) and a file over the size bound, through each command that
reads such a file: ``validate`` (a spec), ``space`` (a search space), ``search`` (an experiment).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archsearch.cli import app
from archsearch.core import MAX_FILE_BYTES
from archsearch.spec import load_spec

runner = CliRunner()

#: what each kind of file is called in messages, and the command that reads it
COMMANDS = {"spec": "validate", "search space": "space", "experiment": "search"}


def _control(path: Path) -> None:
    path.write_bytes(b"\x00\x01\x02name: x\n")


def _invalid_utf8(path: Path) -> None:
    path.write_bytes(b"name: caf\xe9\nstages: []\n")


def _utf16(path: Path) -> None:
    path.write_bytes("name: x\n".encode("utf-16"))  # starts with the UTF-16 LE byte-order mark


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _oversize(path: Path) -> None:
    path.write_bytes(b"name: x\n" + b"#" * MAX_FILE_BYTES + b"\n")


#: case -> (how to make the file, what the one error line says after "FILE[:line]: ")
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "control-chars": (_control, "control character U+0000 at column 1"),
    "invalid-utf8": (_invalid_utf8, "{what} file is not UTF-8 text: byte 0xe9 at column 10"),
    "utf16-bom": (_utf16, "{what} file is UTF-16 text (it starts with a UTF-16 byte-order mark)"),
    "directory": (_directory, "{what} file is a directory"),
    "fifo": (_fifo, "{what} file is a named pipe (FIFO), not a"),
    "oversize": (_oversize, "{what} file is larger than 1 MiB"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("what", list(COMMANDS))
def test_unreadable_file_is_one_error_line(tmp_path: Path, what: str, case: str) -> None:
    make, expected = CASES[case]
    path = tmp_path / "bad.yaml"
    make(path)
    start = time.perf_counter()
    result = runner.invoke(app, [COMMANDS[what], str(path)])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    line = " ".join(result.output.split())  # the console may wrap a long line
    assert line.startswith(f"error: {path}"), result.output
    assert expected.format(what=what) in line, result.output
    assert elapsed < 5


def test_special_files_are_refused_from_their_type_without_reading(tmp_path: Path) -> None:
    """A FIFO without a writer and a device that never ends are refused at once, in a fresh
    process (no hang, no read for ever): ``python -m archsearch.cli`` runs every command."""
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a named pipe (FIFO)"), (Path("/dev/zero"), "a character device")):
        done = subprocess.run(
            [sys.executable, "-m", "archsearch.cli", "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "300"},
        )
        assert done.returncode == 2, done.stderr
        assert (
            done.stderr.strip() == f"error: {path}: spec file is {kind}, not a spec file; give the path "
            "of a regular YAML file"
        )


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark (Windows editors write one) is dropped: the file reads as without it."""
    plain = Path(__file__).parents[1] / "archsearch" / "zoo" / "deit-ti.yaml"
    bom = tmp_path / "deit-ti.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert load_spec(bom).model_dump() == load_spec(plain).model_dump()


def test_control_characters_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bell.yaml"
    path.write_bytes(b"name: x\nstages:\n  - depth: 1\x07\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"error: {path}:3: control character U+0007 at column 13" in " ".join(result.output.split())


def test_a_file_at_the_size_bound_is_read(tmp_path: Path) -> None:
    """The bound refuses larger files only: a file of exactly MAX_FILE_BYTES still loads."""
    plain = (Path(__file__).parents[1] / "archsearch" / "zoo" / "deit-ti.yaml").read_bytes()
    path = tmp_path / "padded.yaml"
    path.write_bytes(plain + b"#" * (MAX_FILE_BYTES - len(plain) - 1) + b"\n")
    assert path.stat().st_size == MAX_FILE_BYTES
    assert load_spec(path).name == "padded"
