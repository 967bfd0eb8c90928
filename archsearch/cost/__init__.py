"""Costs: traced counts of built models, analytic costs of specs, latency and memory."""

from ._analytic import Cost, CostReport, analytic_costs
from ._latency import LatencyCache, LatencyResult, device_name, measure_latency
from ._memory import CudaPeakMemory, cuda_peak_memory, saved_activation_bytes
from ._profile import Profile, profile
from ._traced import TracedCounts, UncountedOpsWarning, count_params, count_traced, op_kind

__all__ = [
    "Cost",
    "CostReport",
    "CudaPeakMemory",
    "LatencyCache",
    "LatencyResult",
    "Profile",
    "TracedCounts",
    "UncountedOpsWarning",
    "analytic_costs",
    "count_params",
    "count_traced",
    "cuda_peak_memory",
    "device_name",
    "measure_latency",
    "op_kind",
    "profile",
    "saved_activation_bytes",
]
