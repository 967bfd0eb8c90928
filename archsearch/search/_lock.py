"""One run at a time per study on a file storage: a lock file beside the journal (or SQLite file).

Two ``archsearch search`` runs of one study on a file storage cannot cooperate: each owns the
study, so the second would take the first's running trial for one a dead run left behind, fail it
as interrupted, and the first would crash telling it (Optuna's ``UpdateFinishedTrialError``).
Cooperation needs what the PostgreSQL workers have (a lock for every claim, heartbeats to tell a
dead worker from a slow one); two CPU-bound runs on one machine would also slow each other far
more than twice. So a file storage is searched by one run at a time, and the second run refuses at
once, naming the first: its host, pid, start time and command.

The lock is ``<storage file>.<study>.lock`` (``runs/quickstart/study.journal.quickstart.lock``),
held with ``flock`` for the whole run. The kernel releases it when the process ends in any way
(Ctrl-C, a crash, ``kill -9``): a killed run never blocks a resume, and nobody has to delete a
stale file. The file holds the owner's host, pid, start time and command, for the message, and is
removed when its run ends (a run that locked a file which was removed meanwhile locks the new one,
so two runs never hold two different files). Since a run holds the lock while it recovers the
study, every trial it finds RUNNING was left by a run that is gone, and only those are failed as
interrupted and retried.

Where ``flock`` is not available (not a POSIX system, or a file system without locks), the lock
falls back to the file's contents: a lock naming a live process on this host (same pid and the
same process start time) refuses; one naming a dead process is taken over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import SearchError

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system
    fcntl = None  # type: ignore[assignment]

__all__ = ["StudyInUse", "StudyLock", "lock_path"]


def lock_path(storage_file: Path, study_name: str) -> Path:
    """``runs/q/study.journal`` and study ``q`` -> ``runs/q/study.journal.q.lock``."""
    slug = re.sub(r"[^\w.-]", "_", study_name) or "study"
    return storage_file.with_name(f"{storage_file.name}.{slug}.lock")


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks since boot), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    now = _process_start(pid)
    return started is None or now is None or now == started


class StudyInUse(SearchError):
    """Another run holds the study: ``owner`` says who (``host``, ``pid``, ``since``, ``command``)."""

    def __init__(self, study: str, lock: Path, owner: dict[str, Any]):
        self.study, self.lock, self.owner = study, lock, owner
        who = (
            f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')} since {owner.get('since', '?')}"
            if owner
            else "a process that is just starting"
        )
        command = f" ({owner['command']})" if owner.get("command") else ""
        super().__init__(
            f"study {study!r} is in use by another run: {who}{command}. One run at a time searches "
            "a study on a file storage (a second one would fail the first's running trial); wait for "
            "it to end or stop it (its trials are kept, the next run resumes them), or use a "
            f"PostgreSQL storage and `archsearch worker` to share the study. Lock: {lock}"
        )


class StudyLock:
    """Holds ``lock_path(storage_file, study)`` for a run: ``with StudyLock(path, name): ...``.

    Raises:
        StudyInUse: (a :class:`~archsearch.SearchError`) on entering, when a live run holds it.
    """

    def __init__(self, storage_file: Path, study_name: str):
        self.path = lock_path(storage_file, study_name)
        self.study = study_name
        self.fd: int | None = None

    def owner(self) -> dict[str, Any]:
        """What the lock file says about its holder (empty if nothing readable)."""
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def held(self) -> bool:
        """Whether a live run seems to hold the lock, from its file alone (nothing is locked): not
        when the file is missing or empty or names a process on this host that is gone (a run
        killed with ``kill -9`` leaves its file; its RUNNING trials are then left over)."""
        owner = self.owner()
        if not owner.get("pid"):
            return False
        return owner.get("host") != socket.gethostname() or _alive(int(owner["pid"]), owner.get("started"))

    def _me(self) -> dict[str, Any]:
        argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else []
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "started": _process_start(os.getpid()),
            "command": " ".join(argv)[:300],
            "study": self.study,
        }

    def __enter__(self) -> StudyLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(50):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                locked = self._flock(fd)
                if not locked and locked is not None:
                    raise StudyInUse(self.study, self.path, self._holder())
                if locked and not self._same_file(fd):
                    os.close(fd)  # its run removed the file as it ended: lock the new one
                    continue
                if locked is None:  # no flock here: the file's contents decide
                    owner = self.owner()
                    here = owner.get("host") == socket.gethostname()
                    alive = not here or _alive(int(owner.get("pid") or 0), owner.get("started"))
                    if owner.get("pid") and owner.get("pid") != os.getpid() and alive:
                        raise StudyInUse(self.study, self.path, owner)
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(self._me()).encode(), 0)
            except BaseException:
                os.close(fd)
                raise
            self.fd = fd
            return self
        raise SearchError(f"could not take the lock {self.path}: it keeps being replaced")  # pragma: no cover

    def _same_file(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _flock(self, fd: int) -> bool | None:
        """True when locked, False when another process holds it, None when there is no flock."""
        if fcntl is None:  # pragma: no cover
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            return None  # ENOLCK, EOPNOTSUPP, ...: a file system without locks
        return True

    def _holder(self) -> dict[str, Any]:
        """The holder's record; it may be a moment before a process that just locked writes it."""
        for _ in range(20):
            owner = self.owner()
            if owner.get("pid") and (
                owner.get("host") != socket.gethostname() or _alive(int(owner["pid"]), owner.get("started"))
            ):
                return owner
            time.sleep(0.05)
        return self.owner()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still locked: a run waiting on this file locks a new one
        os.close(self.fd)  # releases the flock
        self.fd = None
