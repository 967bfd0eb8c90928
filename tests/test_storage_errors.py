"""Storages that cannot be opened: one line naming the URL (password masked) and exit status 2.

Issue 17, item 3: a PostgreSQL server that is down, a wrong password, a missing database, a SQLite
path whose folder is a file, a journal that is a folder or may not be written; through ``search``,
``trials``, ``report`` and ``worker``. A failed open never changes an existing study.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from archsearch.cli import app
from archsearch.search import SearchError, mask_url, open_storage

from .pg import TemporaryPostgres, find_postgres

runner = CliRunner()

SPACE = {
    "input": {"size": 16, "channels": 1},
    "stages": [
        {
            "embed": {"kind": "conv", "kernel": 3, "stride": 2, "padding": 1},
            "dim": {"choice": [8, 16]},
            "depth": 1,
            "mixer": "conv",
        }
    ],
    "head": {"num_classes": 10},
}
NEEDS_PSYCOPG2 = pytest.mark.skipif(
    importlib.util.find_spec("psycopg2") is None, reason="no psycopg2: pip install 'archsearch[cluster]'"
)
AS_ROOT = os.geteuid() == 0


def _experiment(tmp_path: Path, storage: str, name: str = "exp") -> Path:
    path = tmp_path / f"{name}.yaml"
    data = {
        "space": SPACE,
        "objectives": [{"metric": "macs"}],
        "evaluator": {"kind": "train", "steps": 1, "batch_size": 16},  # costs are what is searched
        "backend": {"storage": storage},
        "trials": 2,
        "run_dir": str(tmp_path / "run"),
        "report": str(tmp_path / "report"),
    }
    path.write_text(yaml.safe_dump(data))
    return path


def _invoke(command: str, experiment: Path, tmp_path: Path, *extra: str) -> str:
    """Run one command on the experiment; assert exit 2, one error line and no traceback."""
    args = [command, str(experiment), *extra]
    if command == "report":
        args += ["--out", str(tmp_path / "out")]
    start = time.perf_counter()
    result = runner.invoke(app, args)
    assert time.perf_counter() - start < 30  # the connection is refused at once, not after a timeout
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    if command == "report":
        assert not (tmp_path / "out").exists()
    return " ".join(result.output.split())  # the console may wrap a long line


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mask_url() -> None:
    assert mask_url("postgresql://user:secret@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert mask_url("postgresql://user:p%40ss@host/db") == "postgresql://user:***@host/db"
    assert mask_url("postgresql://user@host/db") == "postgresql://user@host/db"
    assert mask_url("journal:runs/x/study.journal") == "journal:runs/x/study.journal"


@NEEDS_PSYCOPG2
@pytest.mark.parametrize("command", ["search", "trials", "report", "worker"])
def test_a_server_that_is_down(tmp_path: Path, command: str) -> None:
    port = _free_port()  # nothing listens there: as postgresql://user@127.0.0.1:9/db on most hosts
    exp = _experiment(tmp_path, f"postgresql://user:hunter2@127.0.0.1:{port}/db")
    line = _invoke(command, exp, tmp_path)
    assert f"error: cannot open the storage postgresql://user:***@127.0.0.1:{port}/db: " in line
    assert "Connection refused" in line and "hunter2" not in line


# ------------------------------------------------------------------------- a server with a password


@pytest.fixture(scope="module")
def guarded_postgres() -> Iterator[TemporaryPostgres]:
    """A throwaway server (as tests/test_workers.py starts it) whose TCP logins need the password
    ``right`` (scram-sha-256); its socket stays trusted, for setting the password."""
    if find_postgres() is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
    if importlib.util.find_spec("psycopg2") is None:
        pytest.skip("no psycopg2: pip install 'archsearch[cluster]'")
    import psycopg2

    with TemporaryPostgres() as pg:
        sql = f"ALTER USER {pg.user} PASSWORD 'right'"
        pg._run(str(pg.bin / "psql"), "-h", str(pg.root), "-p", str(pg.port), "-U", pg.user, "-c", sql)
        hba = pg.root / "data" / "pg_hba.conf"
        rules = [line for line in hba.read_text().splitlines() if not line.startswith("host")]
        hba.write_text("\n".join([*rules, "host all all 127.0.0.1/32 scram-sha-256", ""]))
        pg._run(str(pg.bin / "pg_ctl"), "-D", str(pg.root / "data"), "reload")
        for _ in range(100):  # the reload is a signal: wait until a login without password fails
            try:
                psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user, dbname=pg.database).close()
            except psycopg2.OperationalError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the server still accepts logins without a password")
        yield pg


@pytest.mark.parametrize("command", ["search", "trials", "report", "worker"])
def test_a_wrong_password(guarded_postgres: TemporaryPostgres, tmp_path: Path, command: str) -> None:
    pg = guarded_postgres
    exp = _experiment(tmp_path, f"postgresql://{pg.user}:wrong@127.0.0.1:{pg.port}/{pg.database}")
    line = _invoke(command, exp, tmp_path)
    url = f"postgresql://{pg.user}:***@127.0.0.1:{pg.port}/{pg.database}"
    assert f"error: cannot open the storage {url}: " in line
    assert f'password authentication failed for user "{pg.user}"' in line
    # the password is printed nowhere (search prints the resolved places first, under tmp_path,
    # whose name holds the test's name: the error itself must not hold the word at all)
    assert ":wrong@" not in line and "wrong" not in line[line.index("error:") :]


@pytest.mark.parametrize("command", ["search", "trials", "report", "worker"])
def test_a_missing_database(guarded_postgres: TemporaryPostgres, tmp_path: Path, command: str) -> None:
    pg = guarded_postgres
    exp = _experiment(tmp_path, f"postgresql://{pg.user}:right@127.0.0.1:{pg.port}/absent")
    line = _invoke(command, exp, tmp_path)
    assert f"error: cannot open the storage postgresql://{pg.user}:***@127.0.0.1:{pg.port}/absent: " in line
    assert 'database "absent" does not exist' in line and "right@" not in line


def test_the_right_password_opens(guarded_postgres: TemporaryPostgres) -> None:
    pg = guarded_postgres
    storage = open_storage(f"postgresql://{pg.user}:right@127.0.0.1:{pg.port}/{pg.database}")
    assert storage.get_all_studies() == []


# ---------------------------------------------------------------------------------------- files


@pytest.mark.parametrize("command", ["search", "trials", "report"])
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_folder_on_the_way_that_is_a_file(tmp_path: Path, command: str, kind: str) -> None:
    (tmp_path / "blocker").write_text("a file\n")
    name = "blocker/sub/study.db" if kind == "sqlite" else "blocker/study.journal"
    exp = _experiment(tmp_path, name)
    line = _invoke(command, exp, tmp_path)
    url = f"sqlite:///{tmp_path / name}" if kind == "sqlite" else f"journal:{tmp_path / name}"
    assert f"error: cannot open the storage {url}: {tmp_path / 'blocker'} is a file, not a folder" in line
    assert (tmp_path / "blocker").read_text() == "a file\n"


@pytest.mark.parametrize("command", ["search", "trials", "report"])
def test_a_journal_that_is_a_folder(tmp_path: Path, command: str) -> None:
    (tmp_path / "study.journal").mkdir()
    line = _invoke(command, _experiment(tmp_path, "study.journal"), tmp_path)
    path = tmp_path / "study.journal"
    assert f"error: cannot open the storage journal:{path}: {path} is a folder, not a journal file" in line


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a journal holding a finished two-trial study (searched once per module)."""
    root = tmp_path_factory.mktemp("searched")
    result = runner.invoke(app, ["search", str(_experiment(root, "study.journal")), "--no-report"])
    assert result.exit_code == 0, result.output
    return (root / "study.journal").read_bytes()


@pytest.fixture
def study(searched: bytes, tmp_path: Path) -> Path:
    """That journal, as ``study.journal`` beside this test's ``exp.yaml``."""
    _experiment(tmp_path, "study.journal")
    (tmp_path / "study.journal").write_bytes(searched)
    return tmp_path / "study.journal"


def _read_only(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Take write permission away from ``path`` (a file or folder). Root may write anything, so as
    root the permission check is made to answer as it does for other users."""
    path.chmod(0o555 if path.is_dir() else 0o444)
    if AS_ROOT:
        access = os.access

        def no_write(target: object, mode: int, **kwargs: object) -> bool:
            if Path(str(target)) == path and mode & os.W_OK:
                return False
            return access(target, mode, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "access", no_write)


@pytest.mark.parametrize("command", ["search", "trials", "report"])
def test_a_journal_without_write_permission(
    study: Path, tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = study.read_bytes()
    _read_only(study, monkeypatch)
    exp = _experiment(tmp_path, "study.journal")
    if command == "search":  # writing is refused before anything is written
        line = _invoke(command, exp, tmp_path)
        assert f"error: cannot open the storage journal:{study}: no permission to write {study}" in line
    else:  # reading needs no write permission
        args = [command, str(exp)] + (["--out", str(tmp_path / "out")] if command == "report" else [])
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert study.read_bytes() == before


def test_a_folder_without_write_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(locked, monkeypatch)
    line = _invoke("search", _experiment(tmp_path, "locked/study.db"), tmp_path)
    assert f"no permission to write in the folder {locked}" in line
    assert list(locked.iterdir()) == []


def test_a_study_survives_a_failed_open(study: Path, tmp_path: Path) -> None:
    """An existing journal named as a SQLite file (or its folder as a journal): the open fails and
    the study's bytes are unchanged, nothing is moved aside or created beside it."""
    before, files = study.read_bytes(), sorted(tmp_path.iterdir())
    as_sqlite = tmp_path / "study.db"
    os.link(study, as_sqlite)  # the same bytes under a .db name: SQLite must not take them over
    line = _invoke("search", _experiment(tmp_path, "study.db", name="other"), tmp_path)
    assert f"error: cannot open the storage sqlite:///{as_sqlite}: file is not a database" in line
    as_sqlite.unlink()
    for storage in (f"sqlite:///{study}", f"journal:{tmp_path}"):
        with pytest.raises(SearchError, match="cannot open the storage"):
            open_storage(storage)
    _invoke("search", _experiment(tmp_path, str(tmp_path), name="other"), tmp_path)
    (tmp_path / "other.yaml").unlink()
    assert study.read_bytes() == before
    assert sorted(tmp_path.iterdir()) == files
    result = runner.invoke(app, ["trials", str(tmp_path / "exp.yaml")])
    assert result.exit_code == 0 and "2 trials" in result.output


def test_reading_a_missing_study_creates_nothing(tmp_path: Path) -> None:
    """``trials`` on an experiment that never ran: an error, and no empty journal left behind."""
    exp = _experiment(tmp_path, "runs/study.journal")
    result = runner.invoke(app, ["trials", str(exp)])
    assert result.exit_code == 2 and "no study named 'exp'" in result.output
    assert not (tmp_path / "runs").exists()


def test_fresh_in_a_folder_without_write_permission(
    searched: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``search --fresh`` moves the old journal aside: in a folder that may not be written that is
    one error line (no PermissionError traceback), and the journal stays where and as it was."""
    locked = tmp_path / "locked"
    locked.mkdir()
    journal = locked / "study.journal"
    journal.write_bytes(searched)
    exp = _experiment(tmp_path, "locked/study.journal")
    _read_only(locked, monkeypatch)
    result = runner.invoke(app, ["search", str(exp), "--fresh", "--no-report"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    line = " ".join(result.output.split())
    assert (
        f"error: cannot open the storage journal:{journal}: no permission to write in the folder {locked}"
        in line
    )
    assert sorted(p.name for p in locked.iterdir()) == ["study.journal"]
    assert journal.read_bytes() == searched


def test_fresh_when_the_rename_itself_fails(
    searched: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move refused by the system after the checks passed (a read-only mount, say) is one line too."""
    exp = _experiment(tmp_path, "study.journal")
    (tmp_path / "study.journal").write_bytes(searched)

    def refuse(self: Path, target: object) -> Path:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "rename", refuse)
    line = _invoke("search", exp, tmp_path, "--fresh", "--no-report")
    journal = tmp_path / "study.journal"
    assert (
        f"error: cannot open the storage journal:{journal}: cannot move {journal} aside: Permission denied"
        in line
    )
    assert journal.read_bytes() == searched


def test_fresh_moves_a_writable_journal_aside(searched: bytes, tmp_path: Path) -> None:
    """The checks do not stop a --fresh that can work: the old journal is kept beside the new one."""
    exp = _experiment(tmp_path, "study.journal")
    (tmp_path / "study.journal").write_bytes(searched)
    result = runner.invoke(app, ["search", str(exp), "--fresh", "--no-report"])
    assert result.exit_code == 0, result.output
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("study.") and p.name != "study.journal"]
    assert len(moved) == 1 and moved[0].read_bytes() == searched
    said = f"--fresh: moved the old study file {tmp_path / 'study.journal'} to {moved[0]}"
    assert said in " ".join(result.output.split())  # it used to go aside silently


@pytest.mark.parametrize("out", ["blocker", "blocker/sub"])
def test_a_report_folder_that_is_a_file(study: Path, tmp_path: Path, out: str) -> None:
    """``report --out FILE`` is one line before the study is read (was NotADirectoryError)."""
    (tmp_path / "blocker").write_text("a file\n")
    result = runner.invoke(app, ["report", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = " ".join(result.output.split())
    blocker = tmp_path / "blocker"
    assert line == f"error: --out: {blocker} is a file, not a folder; allowed: a folder (made when missing)"
    assert (tmp_path / "blocker").read_text() == "a file\n"


def test_a_report_folder_without_write_permission(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(locked, monkeypatch)
    result = runner.invoke(app, ["report", str(tmp_path / "exp.yaml"), "--out", str(locked / "r")])
    assert result.exit_code == 2, result.output
    assert f"no permission to write in the folder {locked}" in " ".join(result.output.split())
    assert list(locked.iterdir()) == []


def test_an_experiments_report_that_is_a_file_is_refused_before_the_search(tmp_path: Path) -> None:
    """``report: FILE`` in the experiment: the error names its line, and no study is created (the
    search used to run to the end, then fail writing the report)."""
    exp = _experiment(tmp_path, "study.journal")
    (tmp_path / "report").write_text("a file\n")
    line = _invoke("search", exp, tmp_path)
    number = 1 + yaml.safe_dump(yaml.safe_load(exp.read_text())).splitlines().index(
        f"report: {tmp_path / 'report'}"
    )
    assert (
        f"error: {exp}:{number}: report: cannot write the report into {tmp_path / 'report'}: "
        f"{tmp_path / 'report'} is a file, not a folder; allowed: a folder (made when missing), "
        "or --no-report"
    ) in line
    assert not (tmp_path / "study.journal").exists()
    assert runner.invoke(app, ["search", str(exp), "--no-report"]).exit_code == 0  # nothing else is wrong


def test_a_journal_cut_mid_record_is_repaired_before_anything_is_appended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crash mid-write leaves the journal's last record without its newline; the next run must
    not append onto it (that made every trial of the study unreadable): the torn bytes are set
    aside, the complete records kept, and new trials land after them."""
    import optuna

    path = tmp_path / "study.journal"
    url = f"journal:{path}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    for x in range(3):
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=float(x)))
    whole = path.read_bytes()
    path.write_bytes(whole[:-40])  # the last record, cut

    assert open_storage(url, writable=False) is not None  # reading changes nothing
    assert path.read_bytes() == whole[:-40]

    study = optuna.load_study(study_name="s", storage=open_storage(url))
    (aside,) = tmp_path.glob("study.journal.torn-*")
    kept = path.read_bytes()
    assert kept.endswith(b"\n") and kept + aside.read_bytes() == whole[:-40]
    assert "its last record was cut off" in capsys.readouterr().err
    before = len(study.trials)
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=9.0))
    reread = optuna.load_study(study_name="s", storage=open_storage(url, writable=False))
    assert len(reread.trials) == before + 1 and reread.trials[-1].value == 9.0
    assert open_storage(url) is not None and len(list(tmp_path.glob("study.journal.torn-*"))) == 1


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda line: line[:60] + b'"' + line[61:], "not a journal record (Expecting"),
        (lambda line: line[:60] + b"\xff" + line[61:], "not a journal record (a byte that is not UTF-8 at"),
        (lambda line: b"[1]\n", "not a journal record (not a JSON object with an op_code)"),
        (
            lambda line: b'{"op_code": 0, "worker_id": "w"}\n',
            "not a journal record (op_code 0 without its 'study_name' field)",
        ),
        (
            lambda line: b'{"op_code": 99, "worker_id": "w"}\n',
            "not a journal record (op_code 99 is not one Optuna knows)",
        ),
    ],
)
@pytest.mark.parametrize("command", ["search", "trials", "report"])
def test_a_journal_damaged_mid_file_names_its_line(
    study: Path, tmp_path: Path, command: str, damage: Callable[[bytes], bytes], reason: str
) -> None:
    """A record damaged in the middle of the journal: Optuna names only the record's column
    (``line 1 column 61``); the error names the file's line and what to do, and changes nothing."""
    lines = study.read_bytes().splitlines(keepends=True)
    lines[4] = damage(lines[4])
    study.write_bytes(b"".join(lines))
    before, files = study.read_bytes(), sorted(tmp_path.iterdir())
    line = _invoke(command, _experiment(tmp_path, "study.journal"), tmp_path)
    assert f"error: cannot open the storage journal:{study}: {study}:5: {reason}" in line
    assert "the file is left unchanged: restore it from a copy, or move it aside" in line
    assert "line 1 column" not in line
    assert study.read_bytes() == before and sorted(tmp_path.iterdir()) == files


@pytest.mark.parametrize("command", ["trials", "report"])
def test_an_empty_journal_is_said_to_be_empty(tmp_path: Path, command: str) -> None:
    """An empty journal file (a search cut off before its first record) is not only 'never
    searched': the message says the file is empty; a missing file does not say so."""
    exp = _experiment(tmp_path, "study.journal")
    (tmp_path / "study.journal").touch()
    line = _invoke(command, exp, tmp_path)
    assert (
        f"error: no study named 'exp' in journal:{tmp_path / 'study.journal'}: the file is empty "
        "(0 bytes), so it was never searched; allowed: run `archsearch search" in line
    )
    (tmp_path / "study.journal").unlink()
    assert "the file is empty" not in _invoke(command, exp, tmp_path)
