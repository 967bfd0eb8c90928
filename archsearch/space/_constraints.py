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

    @property
    def limited(self) -> bool:
        """Whether any limit is set."""
        return any(
            b is not None and (b.min is not None or b.max is not None) for _, b, _ in self._bounds(None)
        )

    def _bounds(self, costs: CostReport | None) -> list[tuple[str, Bound | None, float]]:
        params = float(costs.params) if costs is not None else 0.0
        macs = float(costs.macs) if costs is not None else 0.0
        return [("params", self.params, params), ("macs", self.macs, macs), ("macs", self.flops, macs)]

    def values(self, costs: CostReport) -> list[float]:
        """Optuna's constraint values (``constraints_func``): one per limit set, in the order
        params, macs, flops and min before max, each ``<= 0`` when met: ``value / max - 1`` and
        ``1 - value / min`` (relative, so limits of different units weigh alike)."""
        out = []
        for _, bound, value in self._bounds(costs):
            if bound is None:
                continue
            if bound.min is not None:
                out.append(1.0 - value / bound.min if bound.min > 0 else -1.0)
            if bound.max is not None:
                out.append(value / bound.max - 1.0)
        return out

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
