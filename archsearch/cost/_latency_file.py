"""The one check of a latency table file's contents: its JSON parsed and validated against a small
pydantic schema before anything reads it, so a damaged or hand-edited table gives one message per
problem that names the file, the line, the entry (``pieces.<key>.ms``), the value got and what is
allowed, never a traceback from deep inside a prediction.

Only the fields that are read are checked (``ms`` of each piece, ``measured_ms`` and ``pieces`` of
each member, the harness counts, the fingerprint, the ``statistic`` and each calibration anchor's
``spec``, ``hash`` and ``ms``); keys the schema does not know are kept as they
are, so loading and saving a table loses nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core import SourceMap, load_yaml_text, validation_issues
from ..errors import Issue, SpecError
from ._latency import STATISTICS, Statistic

__all__ = ["FORMAT", "VERSION", "read_table_file"]

FORMAT = "archsearch-latency-table"
VERSION = 1

_Ms = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""A time in milliseconds: a finite number, at least 0."""

#: What a table file is, for the messages about one that is not.
WRITTEN_BY = "a JSON latency table written by `archsearch latency-table`"


class _Entry(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class PieceEntry(_Entry):
    """One piece's timing: ``{"ms": 0.41, "iqr_ms": 0.02, "min_ms": 0.39, "params": 49408, ...}``."""

    ms: _Ms
    """Time of the piece (ms), in the table's ``statistic`` of the runs (the median by default)."""
    iqr_ms: _Ms = 0.0
    min_ms: _Ms | None = None
    params: Annotated[int, Field(ge=0)] = 0
    """Elements of the piece's weights (parameters and buffers)."""
    what: str = ""
    how: str = "alone"
    samples: list[_Ms] = []
    """In-place timings the statistic is taken over (``how: in_situ``)."""


class MemberEntry(_Entry):
    """A whole member timed for the overhead fit: ``{"hash", "measured_ms", "pieces": [keys]}``."""

    hash: str = ""
    measured_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """The member's time (ms) in the table's statistic, a finite number above 0."""
    pieces: list[str] = []
    """The keys of its pieces in the table."""
    host: bool | None = None
    """Whether pieces were timed inside it (``None``: a table written before this was kept)."""


class AnchorEntry(_Entry):
    """A calibration anchor (:mod:`._latency_anchors`): ``{"hash", "ms", "spec"}``. The spec is
    only checked to be a mapping: one that no longer normalises to its hash is skipped when
    calibrating, not refused here."""

    spec: dict[str, Any]
    """The member's canonical spec."""
    hash: str
    """Its spec hash."""
    ms: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """Its time (ms) at the table's speed, in the table's statistic: a finite number above 0."""


class HarnessEntry(_Entry):
    """How pieces and members were timed: untimed ``warmup`` runs, ``runs`` timed ones in ``rounds``."""

    warmup: Annotated[int, Field(ge=0)] = 10
    runs: Annotated[int, Field(ge=1)] = 30
    rounds: Annotated[int, Field(ge=1)] = 10


class FingerprintEntry(BaseModel):
    """The setting the table was timed in (:class:`~._latency_table.Fingerprint`)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    device: str
    threads: Annotated[int, Field(ge=1)] | None
    torch: str
    dtype: str
    batch: Annotated[int, Field(ge=1)]
    fused_attention: bool
    compiled: bool = False


class TableFile(BaseModel):
    """A latency table file (see :mod:`._latency_table` for the layout); ``reference`` is read
    leniently (an unreadable one is timed again), so it is not checked here."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    format: str
    version: int
    fingerprint: FingerprintEntry
    harness: HarnessEntry | None = None
    statistic: Statistic = "median"
    """The statistic of the runs every entry holds (:data:`~._latency.STATISTICS`; a table
    written before the choice existed has none and holds medians)."""
    heap: Literal["steady", "default"] | None = None
    """How the C heap was held while the entries were timed (:func:`~._heap.heap_mode`; absent
    in tables written before 2026-12-01)."""
    pieces: dict[str, PieceEntry] | None = None
    """Piece key -> its timing."""
    members: list[MemberEntry] | None = None
    spaces: list[str] | None = None
    anchors: list[AnchorEntry] | None = None
    """Calibration anchors (absent in older tables)."""
    reference: Any = None


def read_table_file(file: Path) -> dict[str, Any]:
    """The parsed contents of the latency table ``file``, checked against :class:`TableFile` (the
    returned dict is the file's own, unchanged: unknown keys are kept).

    Raises:
        SpecError: one issue per problem, each naming the file and, where there is one, the line
            and the entry: an unreadable, empty or non-JSON file (with the line and column of the
            syntax error), a file that is not a latency table or of another format version, and
            each entry of the wrong type or out of range (``pieces`` that is not a mapping, a
            piece's ``ms`` that is missing, not a number, NaN or negative, ``members`` that is not
            a list, an unknown ``statistic`` or ``heap``, an anchor without a mapping ``spec``, a string
            ``hash`` or a finite ``ms`` above 0...), with what is allowed.
    """
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(Issue((), f"cannot read the latency table: {reason}", file=name)) from None
    if not text.strip():
        raise SpecError(Issue((), "the latency table file is empty", file=name, line=1, allowed=WRITTEN_BY))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            Issue(
                (),
                f"the latency table is not valid JSON: {exc.msg} at column {exc.colno}",
                file=name,
                line=exc.lineno,
                allowed=WRITTEN_BY,
            )
        ) from None
    except ValueError as exc:  # e.g. a number too long to convert
        raise SpecError(Issue((), f"the latency table is not valid JSON: {exc}", file=name)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpecError(
            Issue((), f"not a latency table (its 'format' is not {FORMAT!r})", file=name, allowed=WRITTEN_BY)
        )
    if data.get("version") != VERSION:
        raise SpecError(
            Issue(
                ("version",),
                "a latency table of another format version",
                value=data.get("version"),
                file=name,
                allowed=str(VERSION),
            )
        )
    try:
        TableFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_issues(exc, data, text, name)) from None
    return data


def _issues(exc: ValidationError, data: dict[str, Any], text: str, name: str) -> list[Issue]:
    """The validation errors as issues placed on the file's lines (JSON read as YAML for them:
    only when something is wrong, since a table's YAML parse is slow), with what is allowed where
    pydantic's message does not say it."""
    try:
        source = load_yaml_text(text, name, a_what="a latency table", needs="'pieces'")[1]
    except SpecError:  # JSON that YAML does not take: no lines, the paths still say where
        source = SourceMap(file=name)
    issues = []
    for issue in validation_issues(exc, data, source, TableFile):
        allowed = issue.allowed or _allowed(issue.path, issue.message)
        message = issue.message
        if message == "a finite number":  # pydantic's "Input should be a finite number" (NaN, inf)
            message = "must be a finite number"
        issues.append(Issue(issue.path, message, issue.value, allowed, issue.file, issue.line))
    return issues


def _allowed(path: tuple[str | int, ...], message: str) -> str | None:
    """What the entry at ``path`` (or the key a "missing required key 'k'" message names) holds."""
    if message.startswith("missing required key "):
        path = (*path, message.split("'")[1])
    if len(path) == 1:
        return _ALLOWED.get(f".{path[0]}")
    if len(path) == 2 and path[0] in ("pieces", "members", "anchors"):
        return _ALLOWED[f"{path[0]}[]"]
    return _ALLOWED.get(f"{path[0]}[].{path[-1]}", _ALLOWED.get(str(path[-1])))


#: What a field holds, for messages (a key with a leading dot: the top-level field; ``[]``: an item).
_ALLOWED = {
    ".pieces": "a mapping of piece key -> {ms: median time, ...}",
    ".members": "a list of {hash, measured_ms, pieces: [piece keys]}",
    ".harness": "a mapping {warmup, runs, rounds} of counts",
    ".spaces": "a list of space names",
    ".fingerprint": "a mapping {device, threads, torch, dtype, batch, fused_attention, compiled}",
    ".statistic": ", ".join(STATISTICS),
    ".anchors": "a list of {spec, hash, ms}",
    "anchors[]": "a mapping {spec, hash, ms}: a member's canonical spec, its spec hash, its time",
    "anchors[].spec": "a mapping: the member's canonical spec",
    "anchors[].hash": "a string: the spec hash of the anchor's spec",
    "anchors[].ms": "a finite number of milliseconds, above 0",
    "pieces[]": "a mapping {ms, iqr_ms, min_ms, params, what, how, samples} with at least ms",
    "members[]": "a mapping {hash, measured_ms, pieces} with at least measured_ms",
    "ms": "a finite number of milliseconds, at least 0",
    "iqr_ms": "a finite number of milliseconds, at least 0",
    "min_ms": "a finite number of milliseconds, at least 0",
    "samples": "a list of finite numbers of milliseconds, at least 0",
    "measured_ms": "a finite number of milliseconds, above 0",
    "params": "a whole number, at least 0",
}
