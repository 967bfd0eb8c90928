"""The search engine: experiments, the backends behind one interface, the trial ledger, early
stopping, the trial table, one-shot scoring (:class:`OneShot`)."""

from ..errors import SearchError
from ._backend import Backend, NothingRun, SearchProgress, SearchSummary
from ._candidate import prepare as prepare_experiment
from ._devices import check_devices
from ._early_stop import Curve, dominated_at
from ._experiment import (
    COST_METRICS,
    METRICS,
    EarlyStopping,
    Experiment,
    Objective,
    OptunaBackend,
    RayBackend,
    Sampler,
    load_experiment,
)
from ._ledger import EVALUATED, OUTCOMES, TrialCounts, count_trials, outcome_of
from ._lock import StudyInUse, StudyLock
from ._loop import TrialLoop
from ._oneshot import RETRAINED, OneShot, retrain_config, retrain_front
from ._paths import project_folder
from ._run import BACKENDS, backend_for, run_search
from ._samplers import (
    GP_MAX_BUDGET,
    SAMPLER_KINDS,
    auto_kind,
    auto_setting,
    benchmark_problem,
    benchmark_rankings,
    gp_pays,
    ranking_column,
    sampler_kind,
)
from ._shared import Heartbeats, SharedStudy, is_shared
from ._signals import Terminated, sigterm_as_interrupt
from ._storage import CONNECT_TIMEOUT_S, mask_url, open_storage, open_study
from ._table import BASE_COLUMNS, load_results, load_study, trials_table, without_duplicates

__all__ = [
    "BACKENDS",
    "BASE_COLUMNS",
    "CONNECT_TIMEOUT_S",
    "COST_METRICS",
    "EVALUATED",
    "GP_MAX_BUDGET",
    "METRICS",
    "OUTCOMES",
    "RETRAINED",
    "SAMPLER_KINDS",
    "Backend",
    "Curve",
    "EarlyStopping",
    "Experiment",
    "Heartbeats",
    "NothingRun",
    "Objective",
    "OneShot",
    "OptunaBackend",
    "RayBackend",
    "Sampler",
    "SearchError",
    "SearchProgress",
    "SearchSummary",
    "SharedStudy",
    "StudyInUse",
    "StudyLock",
    "Terminated",
    "TrialCounts",
    "TrialLoop",
    "auto_kind",
    "auto_setting",
    "backend_for",
    "benchmark_problem",
    "benchmark_rankings",
    "check_devices",
    "count_trials",
    "dominated_at",
    "gp_pays",
    "is_shared",
    "load_experiment",
    "load_results",
    "load_study",
    "mask_url",
    "open_storage",
    "open_study",
    "outcome_of",
    "prepare_experiment",
    "project_folder",
    "ranking_column",
    "retrain_config",
    "retrain_front",
    "run_search",
    "sampler_kind",
    "sigterm_as_interrupt",
    "trials_table",
    "without_duplicates",
]
