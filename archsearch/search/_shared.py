"""Many workers, one study: how processes on one or many machines share an Optuna study on PostgreSQL.

Every worker (``archsearch worker``, or ``archsearch search`` on a ``postgresql://`` storage) runs
the trial loop of :mod:`._loop` (ask -> check -> evaluate -> tell) with the trial ledger's rules
(:mod:`._ledger`). Two things change.

**Slots: the budget is exact and no architecture is evaluated twice.** A candidate is trained
only after it *claims a slot*. Claims are decided one at a time across all workers, under a
PostgreSQL advisory lock on the study (``pg_advisory_xact_lock``, released when the claiming
transaction ends, or when a dead worker's connection goes). Under the lock the worker reads every
trial of the study and counts the slots taken by others:

* evaluated trials (outcome ``complete``, ``early-stopped`` or ``failed``);
* claimed trials still RUNNING (user attribute ``worker``), alive or not yet found stale;
* queued retries (user attribute ``retry_of``, WAITING or popped but not yet claimed); a fresh
  trial counts all of them, a retry only those queued before it: retries go first.

Then, in this order:

1. a trial with the same spec hash that is evaluated, or claimed and running, makes the candidate
   a *duplicate* of it (the ledger's rule: its values when it is complete, PRUNED otherwise):
   never trained again;
2. ``taken >= budget`` makes the candidate *skipped* (PRUNED: other workers hold the last slots);
3. otherwise the trial claims: it records ``worker`` (``host:pid``) and, in advance, ``outcome:
   interrupted`` with the reason a dead worker leaves, which telling the trial replaces.

A slot moves from claimed to evaluated in one write (Optuna's tell), and is only freed when a
claimed trial ends interrupted, so the evaluated trials never exceed the budget, and the study
ends with exactly ``budget`` of them. A worker stops once ``evaluated >= budget``; while the other
slots are all taken, it waits (checking for stale trials: a dead worker's slot comes back).

**Heartbeats and retries.** From the moment a trial is asked until it is told, a daemon thread
(:class:`Heartbeat`) records a heartbeat on it every ``interval`` seconds
(``RDBStorage.record_heartbeat``, as Optuna's own ``optimize`` does). Before each trial and while
waiting, a worker calls :func:`optuna.storages.fail_stale_trials` under the lock: a RUNNING trial
with no heartbeat for ``grace`` seconds is set FAIL, by one worker only (the storage refuses a
second), and keeps the ``interrupted`` outcome and reason it claimed with. The storage's stale
callback, :class:`RetryStale`, queues its params again as a WAITING trial with ``retry_of`` (the
stale trial's number) and Optuna's ``failed_trial`` / ``retry_history`` system attributes (so
``RetryHeartbeatStaleTrialCallback.retry_history`` reads them), at most ``max_retry`` times per
chain. The retry has the same params, hence the same spec hash; an interrupted trial is not
evaluated, so the retry is no duplicate of it. A worker stopped with Ctrl-C queues its retry itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from ._ledger import CLAIM, EVALUATED

__all__ = [
    "Claim",
    "Heartbeat",
    "Heartbeats",
    "RetryStale",
    "SharedStudy",
    "Slots",
    "count_slots",
    "decide",
    "is_shared",
    "sqlalchemy_url",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Heartbeats:
    """How workers notice each other's deaths."""

    interval_s: int = 10
    """Seconds between the heartbeats of a running trial."""
    grace_s: int = 60
    """Seconds without a heartbeat after which a running trial is failed as interrupted."""
    max_retry: int | None = 3
    """Retries of one interrupted architecture (``None``: no limit)."""

    def __post_init__(self) -> None:
        if self.interval_s < 1 or self.grace_s < 1:
            raise ValueError(
                "heartbeat interval and grace must be at least 1 s, "
                f"but got {self.interval_s} and {self.grace_s}"
            )
        if self.grace_s <= self.interval_s:
            raise ValueError(
                f"`grace > heartbeat` must hold (a trial would go stale between two heartbeats), "
                f"but got grace {self.grace_s} s and heartbeat {self.interval_s} s"
            )

    @property
    def poll_s(self) -> float:
        """How often a waiting worker looks at the study again."""
        return float(min(self.interval_s, 5))


def is_shared(url: str) -> bool:
    """Whether a storage URL is a PostgreSQL database that several workers may share."""
    return url.startswith(("postgresql://", "postgresql+", "postgres://"))


def sqlalchemy_url(url: str) -> str:
    """``postgresql://...`` with the psycopg2 driver named, as SQLAlchemy wants it."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url.removeprefix(prefix)
    return url


# ---------------------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class Slots:
    """The budget slots held by trials other than the one claiming."""

    evaluated: int = 0
    claimed: int = 0
    waiting: int = 0
    """Retries queued and not yet asked for (a worker that asks gets one)."""
    popped: int = 0
    """Retries asked for by a worker and not yet claimed."""

    @property
    def taken(self) -> int:
        return self.evaluated + self.claimed + self.waiting + self.popped


@dataclass(frozen=True)
class Claim:
    """What a candidate may do: ``claim`` its slot, be a ``duplicate`` of ``other``, or be ``skipped``."""

    kind: Literal["claim", "duplicate", "skipped"]
    slots: Slots
    other: FrozenTrial | None = None


def _evaluated(t: FrozenTrial) -> bool:
    return t.state.is_finished() and t.user_attrs.get("outcome") in EVALUATED


def _claimed(t: FrozenTrial) -> bool:
    return t.state == TrialState.RUNNING and CLAIM in t.user_attrs


def count_slots(trials: Sequence[FrozenTrial], number: int | None = None, *, retry: bool = False) -> Slots:
    """The slots taken by ``trials`` other than trial ``number``; a ``retry`` counts only the
    retries queued before it."""
    evaluated = claimed = waiting = popped = 0
    for t in trials:
        if t.number == number:
            continue
        if _evaluated(t):
            evaluated += 1
        elif _claimed(t):
            claimed += 1
        elif "retry_of" in t.user_attrs and (not retry or number is None or t.number < number):
            if t.state == TrialState.WAITING:
                waiting += 1
            elif t.state == TrialState.RUNNING:
                popped += 1
    return Slots(evaluated, claimed, waiting, popped)


def decide(trials: Sequence[FrozenTrial], trial: FrozenTrial, spec_hash: str, budget: int) -> Claim:
    """The rule of the module docstring, for ``trial`` (RUNNING, sampled) among the study's ``trials``."""
    retry = "retry_of" in trial.user_attrs
    slots = count_slots(trials, trial.number, retry=retry)
    same = [
        t
        for t in trials
        if t.number != trial.number
        and t.user_attrs.get("spec_hash") == spec_hash
        and (_evaluated(t) or _claimed(t))
    ]
    if same:  # the first evaluated one, else the first running one
        return Claim("duplicate", slots, min(same, key=lambda t: (not _evaluated(t), t.number)))
    if slots.taken >= budget:
        return Claim("skipped", slots)
    return Claim("claim", slots)


# ---------------------------------------------------------------------------------------- heartbeats


class _HeartbeatStorage(Protocol):
    def record_heartbeat(self, trial_id: int) -> None: ...


class Heartbeat:
    """Records heartbeats on one trial from a daemon thread, from ``with`` until its end.

    The first heartbeat is recorded before ``with`` returns: a trial with none is never found
    stale. A failed heartbeat (the database unreachable for a moment) is logged, not raised."""

    def __init__(self, storage: _HeartbeatStorage, trial_id: int, interval_s: float):
        self.storage, self.trial_id, self.interval_s = storage, trial_id, interval_s
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-trial-{trial_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._beat()

    def _beat(self) -> None:
        try:
            self.storage.record_heartbeat(self.trial_id)
            self.beats += 1
        except Exception as exc:  # the next one may get through; the grace period allows for it
            log.warning("heartbeat of trial id %s failed: %s", self.trial_id, exc)


class RetryStale:
    """The stale-trial callback: queue a dead worker's trial again, with the same params.

    Like Optuna's ``RetryHeartbeatStaleTrialCallback`` (same ``failed_trial`` and ``retry_history``
    system attributes), but the retry carries only ``retry_of`` as a user attribute, not the dead
    trial's claim and outcome. Trials that never claimed a slot (the worker died while sampling)
    are not retried."""

    def __init__(self, max_retry: int | None = None):
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> FrozenTrial | None:
        if not trial.params or (CLAIM not in trial.user_attrs and "retry_of" not in trial.user_attrs):
            return None
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if self.max_retry is not None and len(history) > self.max_retry:
            return None
        retry = optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={"retry_of": trial.number},
            system_attrs={
                **trial.system_attrs,
                "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                "retry_history": history,
            },
        )
        study.add_trial(retry)
        return retry


# ---------------------------------------------------------------------------------------- the study


def lock_key(study_name: str) -> int:
    """The advisory-lock key of a study: a signed 64-bit hash of its name."""
    digest = hashlib.blake2b(f"archsearch:{study_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SharedStudy:
    """A study's lock, heartbeats and stale-trial check, for one worker."""

    def __init__(self, url: str, study_name: str, heartbeats: Heartbeats):
        import sqlalchemy

        self.heartbeats = heartbeats
        self.worker = self.worker_name()
        self._key = lock_key(study_name)
        # a worker that vanishes holding the lock (its machine gone, no TCP reset) loses it after
        # ``grace`` s idle: the server ends that session, as it does at once for a killed process
        idle = f"-c idle_in_transaction_session_timeout={heartbeats.grace_s * 1000}"
        self._engine = sqlalchemy.create_engine(
            sqlalchemy_url(url),
            pool_pre_ping=True,
            pool_size=1,
            max_overflow=1,
            connect_args={"options": idle},
        )
        self._text = sqlalchemy.text

    @staticmethod
    def worker_name() -> str:
        """This process, as ``host:pid``."""
        return f"{socket.gethostname()}:{os.getpid()}"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the study's advisory lock (one holder across all workers) for the block."""
        with self._engine.begin() as conn:
            conn.execute(self._text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._key})
            yield

    def fail_stale(self, study: optuna.Study) -> None:
        """Fail (and so retry) the trials whose worker stopped sending heartbeats; hold the lock."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)

    def heartbeat(self, storage: Any, trial_id: int) -> Heartbeat:
        return Heartbeat(storage, trial_id, self.heartbeats.interval_s)

    def epitaph(self) -> str:
        """The reason a claimed trial keeps if its worker never tells it."""
        return (
            f"its worker {self.worker} stopped sending heartbeats "
            f"(no heartbeat for {self.heartbeats.grace_s} s); retried as a new trial"
        )

    def close(self) -> None:
        self._engine.dispose()
