"""A space's ``constraints``: limits on a candidate's analytic costs, checked before it is built."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from ..core import FieldIssue, NormalizedSpec, SourceMap, StrictModel, validation_issues
from ..cost import DEFAULT_STATISTIC, CostReport, Fingerprint, LatencyPredictor, Statistic, default_table_path
from ..errors import Issue, SpecError

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

    def table_file(self, folder: Path | None = None) -> Path:
        """The file this bound's table is read from (and pieces timed on demand are added to):
        ``table`` (a relative path from ``folder``), else this device setting's table in the cache
        (:func:`archsearch.cost.default_table_path`; it may not exist yet)."""
        if self.table is None:
            return default_table_path(self._fingerprint(), self.statistic)
        file = Path(self.table).expanduser()
        return folder / file if folder is not None and not file.is_absolute() else file

    def predictor(self, folder: Path | None = None) -> LatencyPredictor:
        """The predictor of this bound's table (opened once per bound and folder).

        Raises:
            SpecError: ``table`` names a file that does not exist, or a folder (path ``table``).
            TableMismatch: the table was measured in another device setting, or holds another
                statistic."""
        key = (self, folder)
        if key not in _PREDICTORS:
            table = None
            if self.table is not None:
                file = self.table_file(folder)
                if not file.is_file():
                    raise SpecError(
                        Issue(("table",), _missing_table(self.table, file, folder), allowed=_TABLES)
                    )
                table = str(file)
            _PREDICTORS[key] = LatencyPredictor.open(table, self._fingerprint(), self.statistic)
        return _PREDICTORS[key]

    def _fingerprint(self) -> Fingerprint:
        return Fingerprint.here(self.device, threads=self.threads, dtype=self.dtype, batch=self.batch)


#: What a space's ``latency_ms.table`` takes.
_TABLES = (
    "a table `archsearch latency-table SPACE --out PATH` wrote, or no `table` (this device "
    "setting's table in the cache, made and filled on demand)"
)


def _missing_table(table: str, file: Path, folder: Path | None) -> str:
    kind = "is a folder, not a latency table" if file.is_dir() else "does not exist"
    where = f" (read from the space file's folder: {file})" if str(file) != table and folder else ""
    return f"{table} {kind}{where}"


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

    def predictor(
        self, folder: Path | None = None, source: SourceMap | None = None
    ) -> LatencyPredictor | None:
        """The latency bound's predictor (``None`` without a bound), its table read from
        ``folder`` when relative.

        Raises:
            SpecError: (or its :class:`TableMismatch`) a latency table that is missing, cannot be
                read or was measured in another setting: each issue placed by ``source`` at
                ``constraints.latency_ms.table`` (``space.yaml:LINE: ...table: t.json does not
                exist``), the table's own ``file:line`` after it."""
        if self.latency_ms is None:
            return None
        try:
            return self.latency_ms.predictor(folder)
        except SpecError as exc:
            raise _at_table(exc, source or SourceMap()) from None

    def violations(
        self,
        costs: CostReport,
        plan: NormalizedSpec | None = None,
        folder: Path | None = None,
        source: SourceMap | None = None,
    ) -> list[str]:
        """Human-readable reasons ``costs`` (and, for a latency bound, the predicted latency of
        ``plan``; ``folder``: where a relative table path is read from) fall outside the limits
        (empty when they fit). Raises :class:`SpecError` as :meth:`predictor`."""
        out = []
        predictor = self.predictor(folder, source) if plan is not None else None
        if self.latency_ms is not None and predictor is not None and plan is not None:
            ms = predictor.predict(plan)
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


def _at_table(exc: SpecError, source: SourceMap) -> SpecError:
    """``exc`` (of the same class) with each issue placed at the space's
    ``constraints.latency_ms.table``: the table's own ``file:line: ...`` follows the space's."""
    path = ("constraints", "latency_ms", "table")
    issues = [
        source.issue(path, i.message, allowed=i.allowed)
        if i.path == ("table",)
        else source.issue(path, str(i))
        for i in exc.issues
    ]
    return type(exc)(issues)


#: What each limit's ``min`` and ``max`` take: counts and milliseconds are never negative, and a
#: ``max`` of 0 leaves no candidate (every model has parameters, MACs and a latency).
_LIMIT_UNITS = {
    "params": "a parameter count, e.g. 5.0e6",
    "macs": "multiply-accumulates, e.g. 40.0e6",
    "flops": "multiply-accumulates, e.g. 40.0e6",
    "latency_ms": "milliseconds, e.g. 5.0",
}


class _Root(StrictModel):
    """The ``constraints:`` key alone, so that pydantic's errors are placed on the space's YAML."""

    constraints: Constraints | None = None


def load_constraints(raw: Any, source: SourceMap) -> Constraints:
    """A space's ``constraints:`` mapping (``None``: no limits) as :class:`Constraints`.

    Raises :class:`SpecError` with one issue per problem, each at its line in ``source``: unknown
    keys, wrong types, and ranges no candidate fits (``min`` above ``max``, or ``macs`` and
    ``flops`` limits that leave no range), naming the got value and what is allowed (for a
    ``min``: a number >= 0, for a ``max``: a number > 0, with the limit's unit)."""
    if raw is None:
        return Constraints()
    try:
        return _Root.model_validate({"constraints": raw}).constraints or Constraints()
    except ValidationError as exc:  # restated with the line and what is allowed
        issues = [_allowed(issue) for issue in validation_issues(exc, {"constraints": raw}, source, _Root)]
        raise SpecError(issues or [source.issue(("constraints",), str(exc))]) from None


def _allowed(issue: Issue) -> Issue:
    """``issue``, with what a limit's ``min``, ``max`` (with its unit), ``batch`` or ``threads``
    takes when it names nothing allowed."""
    path = issue.path
    if issue.allowed or len(path) != 3 or path[1] not in _LIMIT_UNITS:
        return issue
    field = path[2]
    if field in ("min", "max"):
        bound = "a number >= 0" if field == "min" else "a number > 0"
        return dataclasses.replace(issue, allowed=f"{bound} ({_LIMIT_UNITS[str(path[1])]})")
    if path[1] == "latency_ms" and field in ("batch", "threads"):
        allowed = "an integer >= 1" + (", or null (torch's setting)" if field == "threads" else "")
        return dataclasses.replace(issue, allowed=allowed)
    return issue
