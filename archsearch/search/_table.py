"""Trials as one table: the same columns whichever backend ran them.

Columns: ``trial``, ``state``, ``outcome``, ``spec_hash``, ``spec`` (the concrete spec as JSON),
the metrics (``accuracy``, ``macs``, ``params``, ``latency_ms``, ``memory_mb``, proxy scores, as
far as measured), ``epochs``, ``duration_s``, ``eval_s``, ``reason``, ``duplicate_of``, then one
``choice.<name>`` column per sampled parameter (empty where a nested choice did not exist). A
one-shot study also has ``inherited_accuracy`` and ``retrained_accuracy`` after ``accuracy``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from ..errors import Issue, SpecError
from ._experiment import METRICS, Experiment, load_experiment
from ._ledger import count_trials, outcome_of
from ._oneshot import RETRAINED
from ._storage import open_storage, open_study

__all__ = ["BASE_COLUMNS", "load_results", "load_study", "trials_table", "without_duplicates"]

BASE_COLUMNS = [
    "trial",
    "state",
    "outcome",
    "spec_hash",
    "spec",
    *METRICS,
    "epochs",
    "duration_s",
    "eval_s",
    "reason",
    "duplicate_of",
]


def _row(t: FrozenTrial) -> dict[str, Any]:
    attrs = t.user_attrs
    duration = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start
        else math.nan
    )
    row: dict[str, Any] = {
        "trial": t.number,
        "state": t.state.name,
        "outcome": outcome_of(t),
        "spec_hash": attrs.get("spec_hash"),
        "spec": attrs.get("spec"),
        **{m: attrs.get(m, math.nan) for m in METRICS},
        "epochs": attrs.get("epochs", math.nan),
        "duration_s": duration,
        "eval_s": attrs.get("eval_s", math.nan),
        "reason": attrs.get("reason"),
        "duplicate_of": attrs.get("duplicate_of"),
    }
    row.update({f"choice.{k}": v for k, v in t.params.items()})
    return row


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """Every trial of ``study`` as a row (see the module docstring for the columns)."""
    trials = study.get_trials(deepcopy=False)
    rows = [_row(t) for t in trials]
    frame = pd.DataFrame(rows, columns=None if rows else BASE_COLUMNS)
    for column in BASE_COLUMNS:
        if column not in frame:
            frame[column] = math.nan
    choices = sorted(c for c in frame.columns if c.startswith("choice."))
    frame = frame[[*BASE_COLUMNS, *choices]]
    retrained = study.user_attrs.get(RETRAINED)
    if retrained is not None or any("inherited_accuracy" in t.user_attrs for t in trials):
        # one-shot: the accuracy with inherited weights, and after retraining from scratch
        at = list(frame.columns).index("accuracy") + 1
        inherited = [t.user_attrs.get("inherited_accuracy", math.nan) for t in trials]
        frame.insert(at, "inherited_accuracy", inherited)
        again = [float((retrained or {}).get(str(t.number), math.nan)) for t in trials]
        frame.insert(at + 1, "retrained_accuracy", again)
    return frame.astype({"duplicate_of": "Int64"}) if len(frame) else frame


def load_study(source: str | Experiment, study_name: str | None = None) -> optuna.Study:
    """The study behind ``source``: an experiment (a YAML file, whose relative paths are read from
    its folder, or a loaded :class:`~archsearch.search.Experiment`), a storage URL, a ``.db``
    SQLite file or a journal file. A storage holding several studies needs ``study_name``; an
    experiment names its own study, and another ``study_name`` is refused (it was ignored).
    Nothing is written: a read-only file is enough, and a missing one is not created."""
    if isinstance(source, Experiment) or Path(source).suffix in (".yaml", ".yml"):
        experiment = source if isinstance(source, Experiment) else load_experiment(source)
        if study_name is not None and study_name != experiment.study_name:
            raise SpecError(
                Issue(
                    (),
                    f"the experiment {experiment.name!r} searches the study {experiment.study_name!r}, "
                    f"not {study_name!r}",
                    file="--study",
                    value=study_name,
                    allowed=f"{experiment.study_name!r}; for another study give its storage "
                    f"({experiment.storage_url}) or override backend.study_name=",
                )
            )
        storage = open_storage(experiment.storage_url, writable=False)  # reading creates nothing
        return open_study(experiment, create=False, storage=storage, writable=False)
    path = Path(source)
    if "://" in source or source.startswith("journal:"):
        url = source
    elif path.is_file():
        url = f"sqlite:///{path}" if path.suffix in (".db", ".sqlite", ".sqlite3") else f"journal:{path}"
    else:
        raise SpecError(
            Issue(
                (),
                "no experiment file, storage URL or storage file here",
                file=source,
                allowed="an experiment .yaml, sqlite:///path.db, postgresql://..., a .db or journal file",
            )
        )
    missing = _missing_file(url)
    if missing is not None:
        raise SpecError(
            Issue((), f"no such storage file: {missing} does not exist", file=source, allowed=_STORAGES)
        )
    storage = open_storage(url, writable=False)
    names = optuna.get_all_study_names(storage)
    if not names:
        raise SpecError(
            Issue(
                (),
                "the storage holds no study yet"
                if study_name is None
                else f"no study named {study_name!r} in the storage (it holds no study yet)",
                file=source,
                allowed="a storage that `archsearch search` has written to, or the experiment .yaml",
            )
        )
    if study_name is None:
        if len(names) != 1:
            raise SpecError(
                Issue(
                    (),
                    f"the storage holds {len(names)} studies; name one with --study",
                    file=source,
                    allowed=", ".join(names),
                )
            )
        study_name = names[0]
    if study_name not in names:
        raise SpecError(
            Issue((), f"no study named {study_name!r} in the storage", file=source, allowed=", ".join(names))
        )
    return optuna.load_study(study_name=study_name, storage=storage)


#: What ``load_study`` reads, for its errors.
_STORAGES = (
    "the storage file a search wrote (runs/<experiment>/study.journal, or the experiment's "
    "backend.storage), a postgresql:// URL, or the experiment .yaml"
)


def _missing_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` or ``journal:`` URL when it does not exist, else ``None``."""
    if not url.startswith(("journal:", "sqlite:///")):
        return None
    path = Path(url.removeprefix("journal:").removeprefix("sqlite:///"))
    return None if path.exists() else path


def load_results(source: str | optuna.Study, study_name: str | None = None) -> Any:
    """A study as :class:`archsearch.report.StudyResults`: objectives, the trial table, and what
    was searched (input size, channels, classes, dataset), from the study alone."""
    from ..report import Objective, StudyResults

    study = source if isinstance(source, optuna.Study) else load_study(source, study_name)
    stored = study.user_attrs.get("objectives") or [
        {"metric": f"value_{i}"} for i in range(len(study.directions))
    ]
    objectives = [
        Objective(o["metric"], "maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize")
        for o, d in zip(stored, study.directions, strict=True)
    ]
    meta = study.user_attrs.get("experiment", {})
    size = meta.get("input_size", [224, 224])
    trials = trials_table(study)
    measured = study.user_attrs.get("latency_measured") or {}
    if measured:  # predicted latency, timed whole on the front (search._front_latency)
        trials["latency_measured_ms"] = [float(measured.get(str(n), math.nan)) for n in trials["trial"]]
    # a duplicate carries its original's values: one architecture is one point on the front
    duplicate = trials["outcome"] == "duplicate"
    trials.loc[duplicate, "state"] = "PRUNED"
    trials.loc[duplicate & trials["reason"].isna(), "reason"] = "the same architecture as an earlier trial"
    return StudyResults(
        study_name=study.study_name,
        objectives=objectives,
        trials=trials,
        input_size=(int(size[0]), int(size[1])),
        channels=int(meta.get("channels", 3)),
        num_classes=int(meta.get("num_classes", 1000)),
        dataset=str(meta.get("dataset", "unknown")),
        study=study,
        counts=count_trials(study.get_trials(deepcopy=False), [o.direction for o in objectives]).as_dict(),
    )


def without_duplicates(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of ``study`` without its duplicate trials, for Optuna's own tools.

    A duplicate (a candidate whose architecture was already evaluated) is stored PRUNED; the
    samplers see it with its original's values through the ledger's view (:mod:`._ledger`).
    Studies made before issue 19 stored it as a COMPLETE copy, which Optuna's plots and
    ``best_trials`` count as a second result: give them this copy
    (``optuna.visualization.plot_pareto_front(without_duplicates(study))``). The copy has the
    study's name, directions, metric names and user attributes, and every other trial unchanged;
    making it logs nothing (Optuna's "A new study created in memory" line is silenced).
    """
    from ..report import memory_study

    copy = memory_study(study.directions, study.study_name)
    for key, value in study.user_attrs.items():
        copy.set_user_attr(key, value)
    if study.metric_names is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            copy.set_metric_names(list(study.metric_names))
    copy.add_trials([t for t in study.get_trials(deepcopy=False) if outcome_of(t) != "duplicate"])
    return copy
