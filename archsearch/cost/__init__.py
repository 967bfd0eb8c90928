"""Costs: traced counts of built models, analytic costs of specs, latency (measured, or predicted
from per-device piece tables) and memory."""

from ._analytic import Breakdown, Cost, CostReport, analytic_costs
from ._heap import heap_is_steady, heap_left_alone, heap_mode, steady_heap
from ._insitu import InSitu, hook_cost_ms, time_in_situ, time_in_situ_many
from ._latency import (
    DEFAULT_STATISTIC,
    STATISTICS,
    LatencyCache,
    LatencyResult,
    Statistic,
    Timed,
    device_name,
    measure_latency,
    statistic_ms,
    time_call,
    time_interleaved,
)
from ._latency_anchors import ANCHOR_BUDGET_MS, ANCHOR_HARNESS, anchor_factor
from ._latency_reference import REFERENCE, Calibration, reference_call
from ._latency_table import Fingerprint, LatencyTable, TableMismatch, default_table_path
from ._memory import CudaPeakMemory, cuda_peak_memory, saved_activation_bytes
from ._overhead import MIN_NON_HOSTS, Overhead, fit_correction, fit_overhead, piece_kind
from ._pieces import BLOCK_INPUT, Piece, PieceTiming, clear_piece_keys, measure_piece, piece_keys, plan_pieces
from ._predict import LatencyPredictor
from ._profile import Profile, profile
from ._traced import TracedCounts, UncountedOpsWarning, count_params, count_traced, op_kind

__all__ = [
    "ANCHOR_BUDGET_MS",
    "ANCHOR_HARNESS",
    "BLOCK_INPUT",
    "DEFAULT_STATISTIC",
    "MIN_NON_HOSTS",
    "REFERENCE",
    "STATISTICS",
    "Breakdown",
    "Calibration",
    "Cost",
    "CostReport",
    "CudaPeakMemory",
    "Fingerprint",
    "InSitu",
    "LatencyCache",
    "LatencyPredictor",
    "LatencyResult",
    "LatencyTable",
    "Overhead",
    "Piece",
    "PieceTiming",
    "Profile",
    "Statistic",
    "TableMismatch",
    "Timed",
    "TracedCounts",
    "UncountedOpsWarning",
    "analytic_costs",
    "anchor_factor",
    "clear_piece_keys",
    "count_params",
    "count_traced",
    "cuda_peak_memory",
    "default_table_path",
    "device_name",
    "fit_correction",
    "fit_overhead",
    "heap_is_steady",
    "heap_left_alone",
    "heap_mode",
    "hook_cost_ms",
    "measure_latency",
    "measure_piece",
    "op_kind",
    "piece_keys",
    "piece_kind",
    "plan_pieces",
    "profile",
    "reference_call",
    "saved_activation_bytes",
    "statistic_ms",
    "steady_heap",
    "time_call",
    "time_in_situ",
    "time_in_situ_many",
    "time_interleaved",
]
