"""A throwaway PostgreSQL server on loopback, for the worker and ledger tests and the scaling benchmark
(a test helper: it is not part of the package).

``initdb`` into a temporary directory, ``pg_ctl start`` on a free port of 127.0.0.1 with its socket
in that directory, one database, and ``pg_ctl stop -m immediate`` at the end. PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` system user (which Debian's
``postgresql`` package creates).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["TemporaryPostgres", "find_postgres"]


def find_postgres() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: Debian's ``/usr/lib/postgresql/<version>/bin``
    (newest first), else the ``PATH``; None when PostgreSQL is not installed."""
    for found in sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
        reverse=True,
    ):
        if (Path(found) / "initdb").exists() and (Path(found) / "pg_ctl").exists():
            return Path(found)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TemporaryPostgres:
    """``with TemporaryPostgres() as pg: pg.url`` -> ``postgresql://postgres@127.0.0.1:PORT/archsearch``."""

    def __init__(self, database: str = "archsearch", user: str = "postgres"):
        bin_dir = find_postgres()
        if bin_dir is None:
            raise FileNotFoundError("no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
        self.bin = bin_dir
        self.database, self.user = database, user
        self.port = _free_port()
        self.url = f"postgresql://{user}@127.0.0.1:{self.port}/{database}"
        self._as: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="archsearch-pg-"))
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise PermissionError(
                    "PostgreSQL will not run as root, and there is no postgres system user to run it as"
                ) from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, text=True)

    def start(self) -> TemporaryPostgres:
        data = self.root / "data"
        try:
            self._run(
                str(self.bin / "initdb"),
                "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-sync",
            )  # fmt: skip
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.root / "server.log"),
                "-o", options, "-w", "-t", "30", "start",
            )  # fmt: skip
            self._run(
                str(self.bin / "createdb"),
                "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            log = self.root / "server.log"
            self.stop()
            raise RuntimeError(
                f"{Path(exc.cmd[len(self._as)]).name} failed: {exc.stderr or exc.stdout}"
                + (log.read_text() if log.exists() else "")
            ) from None
        return self

    def stop(self) -> None:
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*self._as, str(self.bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
