"""What a report is written from: a study's objectives and its trials as one table.

The search engine builds :class:`StudyResults`; the report only reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pandas as pd

if TYPE_CHECKING:
    import optuna

__all__ = ["STATES", "Objective", "StudyResults", "memory_study"]

#: Trial states, in the order reports list them.
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


@dataclass(frozen=True)
class Objective:
    """One objective of a study: a column of ``trials`` and whether to minimise or maximise it."""

    metric: str
    """A column of the trials table: ``accuracy``, ``macs``, ``latency_ms``, ``params``, ``memory_mb``, ..."""
    direction: Literal["minimize", "maximize"]


@dataclass
class StudyResults:
    """A finished (or running) study, as the search engine hands it to reports.

    ``trials`` has one row per trial with the columns ``trial`` (int), ``state`` (``COMPLETE``,
    ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``), ``spec_hash``, ``spec`` (JSON of the concrete
    spec, or None), the metric columns (``accuracy`` as a fraction, ``macs``, ``params``,
    ``latency_ms``, optionally ``memory_mb`` and zero-cost proxies), ``epochs``, ``duration_s``,
    ``reason``, ``duplicate_of`` and one ``choice.<path>`` column per sampled choice (NaN where
    the choice did not exist in that trial).
    """

    study_name: str
    objectives: list[Objective]
    trials: pd.DataFrame
    input_size: tuple[int, int]
    """(height, width) of the searched specs."""
    channels: int
    num_classes: int
    dataset: str
    study: optuna.Study | None = None
    """The Optuna study, for parameter importances; None skips them (the report says so)."""
    counts: dict[str, int] | None = None
    """The trials by outcome as the search engine counts them (``evaluated``, ``complete``,
    ``early-stopped``, ``failed``, ``duplicate``, ``rejected``, ``skipped``, ``interrupted``,
    ``running``, ``front``); None: the report counts ``state``s instead."""


def memory_study(
    directions: Sequence[Literal["minimize", "maximize"] | optuna.study.StudyDirection], study_name: str
) -> optuna.Study:
    """``optuna.create_study`` in memory, for a copy or a view of results, without Optuna's
    ``[I ...] A new study created in memory`` log line (its verbosity is lowered to WARNING while
    the study is made, then put back)."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
    try:
        return optuna.create_study(directions=directions, study_name=study_name)
    finally:
        optuna.logging.set_verbosity(verbosity)
