"""Costs: traced counts of built models, analytic costs of specs, latency and memory."""

from ._analytic import Cost, CostReport, analytic_costs
from ._traced import TracedCounts, UncountedOpsWarning, count_params, count_traced

__all__ = [
    "Cost",
    "CostReport",
    "TracedCounts",
    "UncountedOpsWarning",
    "analytic_costs",
    "count_params",
    "count_traced",
]
