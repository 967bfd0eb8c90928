"""Where a study lives and how it is opened: storages, the study itself, samplers and pruners.

Shared by every backend (the Ray searcher keeps its study on a journal file too)."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import optuna
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend, JournalFileSymlinkLock

from ..core import shown
from ..errors import SearchError
from ._experiment import Experiment
from ._samplers import sampler_for
from ._shared import Heartbeats, RetryStale, is_shared, sqlalchemy_url

__all__ = [
    "CONNECT_TIMEOUT_S",
    "check_file_storage",
    "fresh_storage",
    "mask_url",
    "open_storage",
    "open_study",
    "removed_if_unused",
    "sampler_for",
    "stopping_kind",
]


#: Seconds a PostgreSQL connection may take to open before the storage is reported unreachable.
CONNECT_TIMEOUT_S = 10

#: RDBStorage's keyword for the stale-trial callback (renamed in Optuna 4.9).
_STALE_CALLBACK = (
    "heartbeat_stale_trial_callback"
    if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
    else "failed_trial_callback"
)


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``; other URLs as given."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    user, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in user:
        return url
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


def open_storage(
    url: str, *, heartbeats: Heartbeats | None = None, writable: bool = True
) -> optuna.storages.BaseStorage:
    """An Optuna storage from an URL (``sqlite:///PATH``, ``postgresql://...``) or ``journal:PATH``.

    PostgreSQL goes through psycopg2 with ``pool_pre_ping`` and a connection timeout of
    :data:`CONNECT_TIMEOUT_S` s; ``heartbeats`` (for a worker) turns on Optuna's heartbeats, with
    :class:`~._shared.RetryStale` as the stale-trial callback. A file storage's folders are created
    when ``writable``; with ``writable=False`` (reading a study: ``archsearch trials``, ``report``)
    a read-only file is enough, and a missing file (or an SQLite file without Optuna's tables, such
    as an empty one) gives an empty storage without creating or changing one.

    Raises:
        SearchError: ``cannot open the storage URL: REASON`` (URL with its password masked) when
            the server is down or refuses the login, the database is missing, a folder on the way
            is a file, the storage path is a folder, or a file or folder lacks the permission
            needed; for a journal with a damaged record, ``PATH:LINE: not a journal record
            (REASON)`` and what to do (the file is left unchanged). The file checks come before
            anything is created, so nothing is changed then.
    """
    try:
        if is_shared(url):
            return _postgres(url, heartbeats)
        if url.startswith(("journal:", "sqlite:///")):
            journal = url.startswith("journal:")
            path = Path(url.removeprefix("journal:").removeprefix("sqlite:///"))
            _check_file(path, writable, "journal" if journal else "SQLite")
            if not writable and (not path.exists() or (not journal and not _has_optuna_tables(path))):
                return optuna.storages.InMemoryStorage()  # nothing to read, and nothing is created
            path.parent.mkdir(parents=True, exist_ok=True)
            if journal:
                if writable:
                    set_aside_torn_tail(path)
                return _journal(path)
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120)
    except SearchError as exc:
        raise _cannot_open(url, str(exc)) from None
    except OSError as exc:
        raise _cannot_open(url, exc.strerror or str(exc)) from None
    except Exception as exc:  # SQLAlchemy's errors, and a URL it cannot parse
        raise _cannot_open(url, _reason(exc, url)) from None


def _has_optuna_tables(path: Path) -> bool:
    """Whether the SQLite file at ``path`` holds Optuna's ``studies`` table, read without writing
    (Optuna's RDBStorage would create its tables in it); a file that is not SQLite counts as
    holding them, so that opening it names the fault."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='studies'")
            return found.fetchone() is not None
    except sqlite3.Error:
        return True


def _journal(path: Path) -> optuna.storages.JournalStorage:
    """Optuna's journal storage on ``path``; a record it cannot read (Optuna names only the
    record's column: ``line 1 column 75``) raises :class:`SearchError` naming the file's line."""
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except (ValueError, KeyError, TypeError, IndexError, AssertionError) as exc:
        fault = _bad_record(path) or _unreplayable_record(path)
        if fault is None:
            raise
        raise SearchError(
            f"{path}:{fault}; the file is left unchanged: restore it from a copy, or move it aside to "
            "start afresh (`archsearch search EXPERIMENT --fresh` does)"
        ) from exc


def _bad_record(path: Path) -> str | None:
    """``LINE: not a journal record (REASON)`` for the first complete line of the journal at
    ``path`` that is not a JSON object with an ``op_code`` (lines count from 1), or ``None``."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                return None  # a torn last record: Optuna skips it, the next writer sets it aside
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                return f"{number}: not a journal record ({exc.msg} at column {exc.colno})"
            except UnicodeDecodeError as exc:
                return f"{number}: not a journal record (a byte that is not UTF-8 at column {exc.start + 1})"
            if not isinstance(record, dict) or not isinstance(record.get("op_code"), int):
                return f"{number}: not a journal record (not a JSON object with an op_code)"
    return None


class _CountingBackend(BaseJournalBackend):
    """A journal file read for Optuna's replay, counting the records it hands over (the record
    Optuna fails on is the last one read: its line is the count)."""

    def __init__(self, path: Path):
        self.inner, self.read = JournalFileBackend(str(path)), 0
        self.last: dict[str, Any] = {}

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        for log in self.inner.read_logs(log_number_from):
            self.read, self.last = self.read + 1, log
            yield log

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise RuntimeError("a journal is only read here")


def _unreplayable_record(path: Path) -> str | None:
    """``LINE: not a journal record (REASON)`` for the first record of the journal at ``path`` that
    is JSON with an ``op_code`` but one Optuna cannot apply (a field missing, an unknown op_code),
    or ``None`` when Optuna replays every record."""
    backend = _CountingBackend(path)
    try:
        optuna.storages.JournalStorage(backend)
    except (ValueError, KeyError, TypeError, IndexError, AssertionError) as exc:
        op = backend.last.get("op_code")
        if isinstance(exc, KeyError):
            why = f"op_code {op} without its {exc.args[0]!r} field"
        elif isinstance(exc, AssertionError):
            why = f"op_code {op} is not one Optuna knows"
        else:
            why = f"op_code {op}, which Optuna cannot apply: {type(exc).__name__}: {exc}"
        return f"{backend.read}: not a journal record ({why})"
    return None


def check_file_storage(url: str) -> None:
    """Refuse, before anything is created, a file storage whose folder cannot hold it (a folder on
    the way that is a file, the storage path a folder, a folder that may not be written): the
    ``cannot open the storage URL: REASON`` error of :func:`open_storage`. Other URLs pass."""
    if not url.startswith(("journal:", "sqlite:///")):
        return
    journal = url.startswith("journal:")
    path = Path(url.removeprefix("journal:").removeprefix("sqlite:///"))
    try:
        _check_path(path, "journal" if journal else "SQLite")
        _check_folder(path)
    except SearchError as exc:
        raise _cannot_open(url, str(exc)) from None


@contextlib.contextmanager
def removed_if_unused(url: str, file: Path) -> Iterator[None]:
    """Run the body; if it fails (an exception, Ctrl-C) and left a storage ``file`` that this run
    created holding no trial (data that would not load, an evaluator that failed before its first
    trial), remove the file and the folders made for it, so the next run does not look like a
    resume. A file that held anything before is never touched (``--fresh``'s new file is this
    run's: it is told apart by its inode)."""
    before = file.stat().st_ino if file.exists() else None
    new_folders = [p for p in file.parents if not p.exists()]  # the deepest first
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError, SearchError):
            if file.exists() and file.stat().st_ino != before and not _holds_trials(url):
                file.unlink()
                for folder in new_folders:
                    folder.rmdir()  # only while empty: OSError otherwise
        raise


def _holds_trials(url: str) -> bool:
    """Whether any study of the file storage at ``url`` holds a trial."""
    storage = open_storage(url, writable=False)
    try:
        summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
        return any(summary.n_trials for summary in summaries)
    finally:
        engine = getattr(storage, "engine", None)
        if engine is not None:
            engine.dispose()


def _cannot_open(url: str, reason: str) -> SearchError:
    return SearchError(f"cannot open the storage {mask_url(url)}: {reason}")


def _postgres(url: str, heartbeats: Heartbeats | None) -> optuna.storages.RDBStorage:
    if importlib.util.find_spec("psycopg2") is None:
        raise SearchError(
            "a postgresql:// storage needs the psycopg2 driver: pip install 'archsearch[cluster]'"
        )
    engine = {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    kwargs: dict[str, Any] = {"engine_kwargs": engine}
    if heartbeats is not None:
        kwargs.update(
            heartbeat_interval=heartbeats.interval_s,
            grace_period=heartbeats.grace_s,
            **{_STALE_CALLBACK: RetryStale(heartbeats.max_retry)},
        )
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(sqlalchemy_url(url), **kwargs)


def set_aside_torn_tail(path: Path) -> Path | None:
    """Cut a journal's last record if a crash left it without its newline, keeping its bytes.

    Optuna's journal reader skips a last line without a newline, but the next record appended
    would be written onto it, and from then on the file can no longer be read (every trial in it
    unreachable). Under the journal's own write lock (Optuna's :class:`JournalFileSymlinkLock`),
    the torn bytes are moved to ``<journal>.torn-<unix time>`` and the file is cut back to its last
    complete record; a note on standard error names both files. Nothing else is changed.

    Returns:
        The file the torn bytes were written to, or ``None`` when the journal ended cleanly (or is
        missing or empty).
    """
    if not _torn(path):  # the common case, without taking the lock
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        if not _torn(path):  # completed by a writer that held the lock
            return None
        with open(path, "rb+") as f:
            data = f.read()
            cut = data.rfind(b"\n") + 1
            torn = data[cut:]
            aside = path.with_name(f"{path.name}.torn-{int(time.time())}")
            aside.write_bytes(torn)
            f.truncate(cut)
    finally:
        lock.release()
    print(
        f"note: {path}: its last record was cut off ({len(torn)} bytes without a line end, as a "
        f"crash mid-write leaves it); moved to {aside}, the {cut} bytes before it are kept",
        file=sys.stderr,
        flush=True,
    )
    return aside


def _torn(path: Path) -> bool:
    """Whether the file at ``path`` is not empty and does not end with a newline."""
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        return size > 0 and f.seek(size - 1) >= 0 and f.read(1) != b"\n"


def _check_file(path: Path, writable: bool, kind: str) -> None:
    """Refuse, before anything is created, a file storage that could not be used: a folder on the
    way that is a file, a storage path that is a folder, a file or folder that may not be written
    (or, with ``writable=False``, a file that may not be read)."""
    _check_path(path, kind)
    if not writable:
        if path.exists() and not os.access(path, os.R_OK):
            raise SearchError(f"no permission to read {path}")
        return
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise SearchError(f"no permission to write {path}")
    _check_folder(path)


def _check_path(path: Path, kind: str) -> None:
    """Refuse a folder on the way to ``path`` that is a file, and a ``path`` that is a folder."""
    for parent in reversed(path.parents):
        if not parent.exists():
            break
        if not parent.is_dir():
            raise SearchError(f"{parent} is a file, not a folder")
    if path.is_dir():
        raise SearchError(f"{path} is a folder, not a {kind} file")


def _check_folder(path: Path) -> None:
    """Refuse a ``path`` whose nearest existing folder may not be written (new files, the
    journal's lock, SQLite's journal, a file moved aside)."""
    folder = next((p for p in path.parents if p.exists()), Path("."))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SearchError(f"no permission to write in the folder {folder}")


def _reason(exc: Exception, url: str) -> str:
    """The driver's own words (``exc.orig`` for SQLAlchemy), on one line, without the password."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(line.strip() for line in str(orig).splitlines() if line.strip())
    for prefix in ("FATAL:  ", "FATAL: "):
        text = text.replace(prefix, "")
    text = text.split(" (Background on this error at:")[0]
    password = urlsplit(url).password if "://" in url else None
    return (text.replace(password, "***") if password else text) or type(exc).__name__


def stopping_kind(experiment: Experiment) -> str:
    """How trials stop early: ``median``, ``hyperband``, ``dominance`` or ``none`` (nothing is learned
    epoch by epoch to judge); raises :class:`SearchError` for an Optuna pruner with several objectives."""
    kind = experiment.early_stopping.kind
    if kind is None:
        kind = "dominance" if len(experiment.objectives) > 1 else "median"
    metrics = [o.metric for o in experiment.objectives]
    if experiment.evaluator.kind != "train" or "accuracy" not in metrics:
        return "none"  # nothing is learned epoch by epoch to judge
    if len(metrics) > 1 and kind in ("median", "hyperband"):
        raise SearchError(
            f"early_stopping {kind!r} is one of Optuna's pruners, which cannot stop "
            "multi-objective trials; use 'dominance' or 'none'"
        )
    return kind


def _pruner(experiment: Experiment, kind: str) -> optuna.pruners.BasePruner:
    """Optuna's pruner for ``kind`` (a no-op one for ``dominance``, which the loop applies itself)."""
    cfg = experiment.early_stopping
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.min_trials, n_warmup_steps=cfg.warmup_epochs)
    if kind == "hyperband":
        epochs = getattr(experiment.evaluator, "epochs", None) or 10
        return optuna.pruners.HyperbandPruner(min_resource=max(cfg.warmup_epochs, 1), max_resource=epochs)
    return optuna.pruners.NopPruner()


def open_study(
    experiment: Experiment,
    *,
    create: bool = True,
    storage: optuna.storages.BaseStorage | None = None,
    writable: bool = True,
) -> optuna.Study:
    """The experiment's study in its storage (created if ``create``); its objectives must match.

    A study opened ``writable`` carries its objectives' metric names (``study.metric_names``, set
    on a study made before they were recorded too), so Optuna's own tools (``trials_dataframe``,
    ``optuna.visualization``, optuna-dashboard) label the values ``accuracy``, ``macs``, ..."""
    storage = storage or open_storage(experiment.storage_url)
    name = experiment.study_name
    try:
        study = optuna.load_study(
            study_name=name,
            storage=storage,
            sampler=sampler_for(experiment),
            pruner=_pruner(experiment, stopping_kind(experiment)),
        )
    except KeyError:
        if not create:
            file = experiment.file if experiment.file is not None else "<experiment>"
            raise SearchError(
                f"no study named {name!r} in {mask_url(experiment.storage_url)}: "
                f"{_empty_file(experiment.storage_url)}it was never searched; "
                f"allowed: run `archsearch search {file}` first"
            ) from None
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            directions=experiment.directions,
            sampler=sampler_for(experiment),
            pruner=_pruner(experiment, stopping_kind(experiment)),
        )
        study.set_user_attr("objectives", [o.model_dump(mode="json") for o in experiment.objectives])
        _name_metrics(study, experiment)
        return study
    stored = [d.name.lower() for d in study.directions]
    metrics = [o["metric"] for o in study.user_attrs.get("objectives", [])]
    if stored != experiment.directions or metrics != [o.metric for o in experiment.objectives]:
        raise SearchError(
            f"study {name!r} in {mask_url(experiment.storage_url)} has objectives {metrics} "
            f"({', '.join(stored)}); the experiment asks for {[o.metric for o in experiment.objectives]} "
            f"({', '.join(experiment.directions)}): give it another name or storage, "
            "or start afresh with --fresh"
        )
    if writable and study.metric_names is None:
        _name_metrics(study, experiment)
    return study


def _empty_file(url: str) -> str:
    """``the file is empty (0 bytes), so `` for a file storage whose file exists and is empty
    (a search cut off before its first record, or a file made by hand), else ``''``."""
    if not url.startswith(("journal:", "sqlite:///")):
        return ""
    path = Path(url.removeprefix("journal:").removeprefix("sqlite:///"))
    return "the file is empty (0 bytes), so " if path.is_file() and path.stat().st_size == 0 else ""


def _name_metrics(study: optuna.Study, experiment: Experiment) -> None:
    with warnings.catch_warnings():  # "experimental" since Optuna 3.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o.metric for o in experiment.objectives])


def fresh_storage(experiment: Experiment, say: Callable[[str], None] | None = None) -> Path | None:
    """Move an existing file storage aside, never deleting data (``study.journal`` ->
    ``study.<time>.journal``); a database storage is never touched. Returns where the file went
    (``None``: there was none), also told to ``say`` as ``--fresh: moved the old study file A to B``.

    Raises:
        SearchError: a database storage (nothing stored there is deleted), or a storage that could
            not be opened afterwards or cannot be moved (a folder without write permission, a
            folder on the way that is a file): ``cannot open the storage URL: REASON``, checked
            before the file is moved, so it stays where it was."""
    url = experiment.storage_url
    if not url.startswith(("sqlite:///", "journal:")):
        raise SearchError(
            "--fresh moves a study file aside; with a database storage, give the experiment "
            "another backend.study_name instead (nothing stored is deleted)"
        )
    journal = url.startswith("journal:")
    path = Path(url.removeprefix("sqlite:///").removeprefix("journal:"))
    try:
        _check_path(path, "journal" if journal else "SQLite")
        _check_folder(path)  # moving the file aside needs its folder writable, not the file
        if not path.exists():
            return None
        moved = path.with_name(f"{path.stem}.{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
        path.rename(moved)
    except SearchError as exc:
        raise _cannot_open(url, str(exc)) from None
    except OSError as exc:
        raise _cannot_open(url, f"cannot move {path} aside: {exc.strerror or exc}") from None
    if say is not None:
        say(f"--fresh: moved the old study file {shown(path)} to {shown(moved)}")
    return moved
