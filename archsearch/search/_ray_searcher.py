"""The Ray backend's searcher (in the driver): the experiment's Optuna study behind a Tune searcher.

:class:`OptunaSpaceSearcher` (a ``ray.tune.search.Searcher``) wraps the experiment's Optuna study
on its journal file. For each Ray trial it asks Optuna, samples the space through
:class:`~archsearch.space.OptunaSuggest` and checks the candidate once (shapes, constraints, spec
hash) *before* anything is dispatched: rejected and duplicate candidates are told to Optuna at
once by the trial ledger's rules (:mod:`._ledger`) and never reach Ray (a duplicate of a trial
still running waits for it and takes its values). A dispatched trial receives the checked spec
itself, as plain data, not the parameters to sample it again. When a Ray trial ends the searcher
tells Optuna every objective value, with the user attributes the Optuna backends write
(``outcome``, ``reason``, ``spec``, ``spec_hash``, the metrics, ``curve``, ...), so
:func:`~archsearch.search.trials_table` and the reports read every backend alike. (Ray's own
``OptunaSearch`` is not used: it drops intermediate results of multi-objective studies and never
passes constraints.) Resume: Optuna trials the driver had asked for but Ray had not recorded are
failed as *interrupted* and re-queued by the ledger.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher

from ..space import OptunaSuggest, SearchSpace
from ._backend import SearchProgress
from ._candidate import check_candidate
from ._evaluate import objective_values, plain_attrs
from ._experiment import Experiment
from ._ledger import Ledger, Record, duplicate_record
from ._pareto_asha import STOP_REASONS
from ._storage import open_study

__all__ = ["DRIVERS", "Driver", "OptunaSpaceSearcher"]


@dataclass
class Driver:
    """What the search in this process shares with its searcher (which Tune pickles and restores)."""

    budget: int
    deadline: float | None
    progress: SearchProgress | None
    experiment_dir: str
    max_failures: int
    outcomes: dict[str, int] = field(default_factory=dict)
    error: str | None = None


#: The search running in this driver, by study name.
DRIVERS: dict[str, Driver] = {}


@dataclass
class _Live:
    optuna_id: int
    number: int
    spec_hash: str
    stale: bool = False  # finished in the study before a restore: Ray's re-run of it is ignored


class OptunaSpaceSearcher(Searcher):
    """A Tune searcher over an archsearch space, backed by the experiment's Optuna study.

    Tune pickles it with the Tuner and saves :meth:`save` snapshots with its experiment state;
    the study (and its ledger) is opened lazily in the driver, never pickled.
    """

    def __init__(self, experiment: Experiment, space: SearchSpace):
        super().__init__(metric=None, mode=None)
        self.experiment, self.space = experiment, space
        self.live: dict[str, _Live] = {}
        self._ledger: Ledger | None = None
        self._waiting: dict[str, list[int]] = {}  # spec hash -> Optuna trial ids of waiting duplicates

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_ledger=None, _waiting={})
        return state

    # ------------------------------------------------------------------ Tune's save / restore

    def save(self, checkpoint_path: str) -> None:
        live = {k: [v.optuna_id, v.number, v.spec_hash] for k, v in self.live.items() if not v.stale}
        Path(checkpoint_path).write_text(json.dumps({"live": live}))

    def restore(self, checkpoint_path: str) -> None:
        data = json.loads(Path(checkpoint_path).read_text())
        self.live = {k: _Live(int(i), int(n), str(h)) for k, (i, n, h) in data["live"].items()}
        self._ledger = None  # reconciled with the journal on first use

    # ------------------------------------------------------------------ the study

    @property
    def driver(self) -> Driver:
        return DRIVERS[self.experiment.study_name]

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = self._open()
        return self._ledger

    @property
    def study(self) -> optuna.Study:
        return self.ledger.study

    def _open(self) -> Ledger:
        """Open the study; settle the trials a dead driver left RUNNING (asked by a driver that died
        before Ray recorded the trial: interrupted, run again); index the rest."""
        study = open_study(self.experiment, create=True)
        live_ids = {v.optuna_id: k for k, v in self.live.items()}
        dead = set()
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.RUNNING and t._trial_id not in live_ids:
                dead.add(t._trial_id)
            elif t.state != TrialState.RUNNING and t._trial_id in live_ids:
                self.live[live_ids[t._trial_id]].stale = True
        ledger = Ledger(self.experiment, study, self.space)
        ledger.recover(left_running=dead)
        return ledger

    def _running(self) -> int:
        return sum(not v.stale for v in self.live.values())

    def _finish(self, optuna_id: int, record: Record, **attrs: Any) -> FrozenTrial:
        ledger = self.ledger
        frozen = ledger.tell(optuna_id, record, **attrs)
        driver = DRIVERS.get(self.experiment.study_name)
        if driver is not None:
            driver.outcomes[record.outcome] = driver.outcomes.get(record.outcome, 0) + 1
            if driver.progress:
                driver.progress.trial_finished(frozen, ledger.counts())
        return frozen

    # ------------------------------------------------------------------ asking

    def suggest(self, trial_id: str) -> dict[Any, Any] | None:  # or Searcher.FINISHED
        ledger, driver = self.ledger, self.driver
        while True:
            out_of_time = driver.deadline is not None and time.monotonic() > driver.deadline
            if out_of_time or driver.error or ledger.evaluated + self._running() >= driver.budget:
                return Searcher.FINISHED if self._running() == 0 else None  # type: ignore[return-value]
            trial = ledger.study.ask()
            name = f"{self.experiment.study_name}-t{trial.number}"
            checked = check_candidate(self.space, OptunaSuggest(trial), name)
            if isinstance(checked, str):
                self._finish(trial._trial_id, ledger.rejection(trial.params, checked))
            else:
                h = checked.spec_hash
                ledger.label(trial, checked)
                seen = ledger.seen(h)
                if seen is not None:
                    self._finish(trial._trial_id, duplicate_record(seen))
                elif any(v.spec_hash == h and not v.stale for v in self.live.values()):
                    self._waiting.setdefault(h, []).append(trial._trial_id)
                else:
                    trial.set_user_attr("ray_trial_id", trial_id)
                    ledger.count_streak(True, self.space.size())
                    self.live[trial_id] = _Live(trial._trial_id, trial.number, h)
                    if driver.progress:
                        driver.progress.trial_started(trial.number, dict(trial.params), {})
                    return {"trial": trial.number, "spec": checked.data, "spec_hash": h}
            driver.error = ledger.count_streak(False, self.space.size()) or driver.error

    # ------------------------------------------------------------------ results

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        driver = DRIVERS.get(self.experiment.study_name)
        live = self.live.get(trial_id)
        if driver and driver.progress and live and "epoch" in result and "accuracy" in result:
            driver.progress.epoch(live.number, int(result["epoch"]), float(result["accuracy"]))

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.ledger  # noqa: B018 (opens and reconciles the study first)
        live = self.live.pop(trial_id, None)
        if live is None or live.stale:
            return
        payload = json.loads(result["archsearch"]) if result and "archsearch" in result else {}
        metrics = plain_attrs(payload.get("metrics", {}))
        attrs: dict[str, Any] = {"ray_node_id": payload.get("node_id"), "eval_s": payload.get("eval_s")}
        stop_reason = STOP_REASONS.pop(trial_id, None)
        failed = Record("failed", TrialState.FAIL)
        if error:
            driver = DRIVERS.get(self.experiment.study_name)
            retries = driver.max_failures if driver else "its"
            where = f" (Ray's error.txt under {driver.experiment_dir})" if driver else ""
            reason = f"the Ray trial failed after {retries} retries{where}"
            frozen = self._finish(live.optuna_id, failed, reason=reason, **attrs, **metrics)
        elif payload.get("failed"):
            frozen = self._finish(live.optuna_id, failed, reason=payload["failed"], **attrs, **metrics)
        elif payload.get("final"):
            values = objective_values(self.experiment, metrics)
            if all(math.isfinite(v) for v in values):
                record = Record("complete", TrialState.COMPLETE, values)
                frozen = self._finish(live.optuna_id, record, **attrs, **metrics)
            else:
                reason = f"non-finite objective values {values}"
                frozen = self._finish(live.optuna_id, failed, reason=reason, **attrs, **metrics)
        else:  # stopped by the scheduler after an epoch
            curve = list(payload.get("curve", []))
            metrics.update(curve=curve, epochs=len(curve), accuracy=curve[-1] if curve else math.nan)
            record = Record("early-stopped", TrialState.PRUNED)
            reason = stop_reason or "stopped by Ray Tune"
            frozen = self._finish(live.optuna_id, record, reason=reason, **attrs, **metrics)
        for waiting in self._waiting.pop(live.spec_hash, []):
            self._finish(waiting, duplicate_record(frozen))
