"""A space's ``constraints``: limits on a candidate's analytic costs, checked before it is built."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..core import StrictModel
from ..cost import CostReport

__all__ = ["Bound", "Constraints"]


class Bound(StrictModel):
    """An inclusive range; either end may be left open."""

    min: Annotated[float, Field(ge=0)] | None = None
    max: Annotated[float, Field(gt=0)] | None = None


class Constraints(StrictModel):
    """Limits checked with the analytic cost model before a candidate is built or trained."""

    params: Bound | None = None
    """Parameter count (all parameters, frozen ones included)."""
    macs: Bound | None = None
    """Multiply-accumulates of one forward pass at batch 1."""
    flops: Bound | None = None
    """The same as ``macs``: papers' "FLOPs" count multiply-accumulates (fvcore's convention)."""

    def violations(self, costs: CostReport) -> list[str]:
        """Human-readable reasons ``costs`` falls outside the limits (empty when it fits)."""
        out = []
        for name, bound, value in (
            ("params", self.params, costs.params),
            ("macs", self.macs, costs.macs),
            ("macs", self.flops, costs.macs),
        ):
            if bound is None:
                continue
            if bound.min is not None and value < bound.min:
                out.append(f"{name} {value:,} < min {bound.min:,.0f}")
            if bound.max is not None and value > bound.max:
                out.append(f"{name} {value:,} > max {bound.max:,.0f}")
        return out
