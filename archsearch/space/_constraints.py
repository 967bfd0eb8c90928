"""A space's ``constraints``: limits on a candidate's analytic costs, checked before it is built."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from ..core import FieldIssue, NormalizedSpec, SourceMap, StrictModel
from ..cost import DEFAULT_STATISTIC, CostReport, Fingerprint, LatencyPredictor, Statistic
from ..errors import SpecError

__all__ = ["Bound", "Constraints", "LatencyBound", "load_constraints"]


class Bound(StrictModel):
    """An inclusive range; either end may be left open. ``min <= max`` must hold (a range no
    candidate can fit is refused when the space loads, not after hundreds of rejections)."""

    min: Annotated[float, Field(ge=0)] | None = None
    max: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldIssue(
                "`min <= max` must hold, or no candidate fits",
                {"min": self.min, "max": self.max},
                f"a min at most the max {self.max:g}",
            )
        return self


class LatencyBound(Bound):
    """A range of predicted latency (ms), from the latency table of a device setting: checked
    before anything is built, like MACs (the prediction builds no model; pieces the table lacks
    are timed once and added)."""

    device: str = "cpu"
    """Where the latency is predicted for (``cpu``, ``cuda``)."""
    batch: Annotated[int, Field(gt=0)] = 1
    threads: Annotated[int, Field(gt=0)] | None = None
    """CPU threads (default: torch's current setting)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    statistic: Statistic = DEFAULT_STATISTIC
    """Which statistic of the timed runs the table holds and the bound applies to
    (:data:`archsearch.cost.STATISTICS`); a table of another statistic is refused."""
    table: str | None = None
    """The latency table file (a relative path is read from the space file's folder). Default: this
    device setting's table in the cache (``archsearch latency-table`` fills it)."""

    def predictor(self, folder: Path | None = None) -> LatencyPredictor:
        """The predictor of this bound's table (opened once per bound and folder).

        Raises:
            TableMismatch: the table was measured in another device setting, or holds another
                statistic."""
        key = (self, folder)
        if key not in _PREDICTORS:
            table = self.table
            if table is not None and folder is not None and not Path(table).expanduser().is_absolute():
                table = str(folder / Path(table).expanduser())
            fingerprint = Fingerprint.here(
                self.device, threads=self.threads, dtype=self.dtype, batch=self.batch
            )
            _PREDICTORS[key] = LatencyPredictor.open(table, fingerprint, self.statistic)
        return _PREDICTORS[key]


_PREDICTORS: dict[tuple[LatencyBound, Path | None], LatencyPredictor] = {}


class Constraints(StrictModel):
    """Limits checked with the analytic cost model before a candidate is built or trained."""

    params: Bound | None = None
    """Parameter count (all parameters, frozen ones included)."""
    macs: Bound | None = None
    """Multiply-accumulates of one forward pass at batch 1."""
    flops: Bound | None = None
    """The same as ``macs``: papers' "FLOPs" count multiply-accumulates (fvcore's convention)."""
    latency_ms: LatencyBound | None = None
    """Predicted latency in milliseconds (``{max: 5.0, device: cpu, batch: 1, threads: 2}``), from
    a latency table: no candidate is built or timed to check it."""

    @field_validator("flops")
    @classmethod
    def _synonyms_agree(cls, flops: Bound | None, info: ValidationInfo) -> Bound | None:
        """``macs`` and ``flops`` bound one figure: together they must leave a range."""
        macs = info.data.get("macs")
        if macs is not None and flops is not None:
            lows = [b.min for b in (macs, flops) if b.min is not None]
            highs = [b.max for b in (macs, flops) if b.max is not None]
            if lows and highs and max(lows) > min(highs):
                raise FieldIssue(
                    "`flops` is a synonym of `macs`, and together their limits leave no range",
                    {name: b.model_dump(exclude_none=True) for name, b in (("macs", macs), ("flops", flops))},
                    "one of them, or limits whose largest min is at most their smallest max",
                )
        return flops

    @property
    def limited(self) -> bool:
        """Whether a params, MACs or FLOPs limit is set: those give Optuna's constraint values
        (:meth:`values`). A ``latency_ms`` bound rejects candidates but is not given to samplers."""
        return any(
            b is not None and (b.min is not None or b.max is not None) for _, b, _ in self._bounds(None)
        )

    def _bounds(self, costs: CostReport | None) -> list[tuple[str, Bound | None, int]]:
        """Each cost limit with its name and the value of ``costs`` it bounds (0 without costs)."""
        params = costs.params if costs is not None else 0
        macs = costs.macs if costs is not None else 0
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

    def violations(
        self, costs: CostReport, plan: NormalizedSpec | None = None, folder: Path | None = None
    ) -> list[str]:
        """Human-readable reasons ``costs`` (and, for a latency bound, the predicted latency of
        ``plan``; ``folder``: where a relative table path is read from) fall outside the limits
        (empty when they fit)."""
        out = []
        if self.latency_ms is not None and plan is not None:
            ms = self.latency_ms.predictor(folder).predict(plan)
            if self.latency_ms.min is not None and ms < self.latency_ms.min:
                out.append(f"latency_ms {ms:.3g} (predicted) < min {self.latency_ms.min:g}")
            if self.latency_ms.max is not None and ms > self.latency_ms.max:
                out.append(f"latency_ms {ms:.3g} (predicted) > max {self.latency_ms.max:g}")
        for name, bound, value in self._bounds(costs):
            if bound is None:
                continue
            if bound.min is not None and value < bound.min:
                out.append(f"{name} {value:,} < min {bound.min:,.0f}")
            if bound.max is not None and value > bound.max:
                out.append(f"{name} {value:,} > max {bound.max:,.0f}")
        return out


def load_constraints(raw: Any, source: SourceMap) -> Constraints:
    """A space's ``constraints:`` mapping (``None``: no limits) as :class:`Constraints`.

    Raises :class:`SpecError` with one issue per problem, each at its line in ``source``: unknown
    keys, wrong types, and ranges no candidate fits (``min`` above ``max``, or ``macs`` and
    ``flops`` limits that leave no range), naming the got value and what is allowed."""
    if raw is None:
        return Constraints()
    try:
        return Constraints.model_validate(raw)
    except ValidationError as exc:  # restated with the line and what is allowed
        issues = []
        for err in exc.errors(include_url=False):
            path = ("constraints", *err["loc"])
            issue = (err.get("ctx") or {}).get("error")
            if isinstance(issue, FieldIssue):  # a range no candidate fits
                issues.append(source.issue(path, str(issue), value=issue.value, allowed=issue.allowed))
                continue
            message = err["msg"].removeprefix("Input should be ")
            issues.append(
                source.issue(
                    path,
                    message.replace("Extra inputs are not permitted", "unknown key"),
                    value=err.get("input"),
                    allowed="params, macs (or flops), each {min, max}; latency_ms {min, max, device, "
                    "batch, threads, dtype, table}",
                )
            )
        raise SpecError(issues or [source.issue(("constraints",), str(exc))]) from None
