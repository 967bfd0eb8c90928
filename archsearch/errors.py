"""The error types: bad specs (naming the file, the line, the YAML path, the value and what is
allowed), a search that cannot go on, and an export that fails or does not match."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ExportError", "InputSizeError", "Issue", "SearchError", "SpecError", "format_path"]

_MISSING = object()


def format_path(path: Sequence[str | int]) -> str:
    """``("stages", 2, "mixer", "kv_stride")`` -> ``"stages[2].mixer.kv_stride"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


@dataclass(frozen=True)
class Issue:
    """One problem in a spec: where it is, what was there, and what is allowed."""

    path: tuple[str | int, ...]
    message: str
    value: Any = _MISSING
    allowed: str | None = None
    file: str | None = None
    line: int | None = None
    cause: str | None = None
    """What made the spec wrong when it is not the spec itself, e.g. ``<override> input_size=100``
    (a keyword override of :func:`archsearch.load_spec`): shown first, the spec's place after the
    message."""

    @property
    def location(self) -> str:
        """``file:line``, ``file``, ``line N`` or empty, as far as they are known."""
        if self.file:
            return f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"line {self.line}" if self.line is not None else ""

    def __str__(self) -> str:
        where = self.cause or self.location
        head = [part for part in (where, format_path(self.path) if self.path else "") if part]
        text = ": ".join([*head, self.message])
        if self.cause and self.location:
            text += f" (at {self.location})"
        if self.value is not _MISSING:
            text += f" (got {_show(self.value)})"
        if self.allowed:
            text += f"; allowed: {self.allowed}"
        return text


def _show(value: Any) -> str:
    """A value as the YAML author wrote it: ``null``/``true``/``false`` rather than Python's names."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


class SpecError(ValueError):
    """A spec (or space, or experiment) that cannot be loaded, validated or built.

    ``issues`` lists every problem found; ``str(error)`` shows each on its own line as
    ``file:line: yaml.path: message (got value); allowed: ...``.
    """

    def __init__(self, issues: Issue | Sequence[Issue]):
        self.issues: tuple[Issue, ...] = (issues,) if isinstance(issues, Issue) else tuple(issues)
        if not self.issues:
            raise ValueError("SpecError needs at least one issue")
        super().__init__("\n".join(str(i) for i in self.issues))

    @property
    def path(self) -> str:
        """The YAML path of the first issue, e.g. ``stages[2].mixer.kv_stride``."""
        return format_path(self.issues[0].path)

    @property
    def line(self) -> int | None:
        return self.issues[0].line

    @property
    def file(self) -> str | None:
        return self.issues[0].file


class InputSizeError(ValueError):
    """A model got an input of another size than it was built for (``input.size``) while a part
    of it depends on that size and ``dynamic_size`` is off. ``built`` and ``given`` are the
    ``(height, width)`` of the built and the given input; the message names both, the part and
    the two ways out (``dynamic_size: true``, or a model built at the given size)."""

    def __init__(self, message: str, built: tuple[int, int], given: tuple[int, int]):
        super().__init__(message)
        self.built = built
        self.given = given


class SearchError(RuntimeError):
    """The search cannot go on (a study that does not match the experiment, an exhausted space)."""


class ExportError(RuntimeError):
    """An export that cannot be written or whose self-check fails: a weights file that is not a
    checkpoint or does not fit the model, a missing optional package, an unsupported format, or an
    exported model whose outputs differ from PyTorch's by more than the tolerance.

    ``str(error)`` is one line that names the file concerned. ``max_abs_diff`` is set when the
    self-check failed (the exported file is kept, for inspection), else None.
    """

    def __init__(self, message: str, *, max_abs_diff: float | None = None):
        super().__init__(message)
        self.max_abs_diff = max_abs_diff
