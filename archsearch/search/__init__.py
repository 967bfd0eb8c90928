"""The search engine: experiments, the Optuna backend, early stopping, the trial table."""

from ._early_stop import Curve, dominated_at
from ._experiment import (
    COST_METRICS,
    METRICS,
    EarlyStopping,
    Experiment,
    Objective,
    OptunaBackend,
    Sampler,
    load_experiment,
)
from ._optuna import SearchError, SearchProgress, SearchSummary, open_storage, open_study, run_search
from ._table import BASE_COLUMNS, load_results, load_study, trials_table

__all__ = [
    "BASE_COLUMNS",
    "COST_METRICS",
    "METRICS",
    "Curve",
    "EarlyStopping",
    "Experiment",
    "Objective",
    "OptunaBackend",
    "Sampler",
    "SearchError",
    "SearchProgress",
    "SearchSummary",
    "dominated_at",
    "load_experiment",
    "load_results",
    "load_study",
    "open_storage",
    "open_study",
    "run_search",
    "trials_table",
]
