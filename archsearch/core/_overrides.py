"""Command-line overrides, as Hydra and OmegaConf users write them: ``evaluator.epochs=2``.

An override is ``KEY=VALUE``. ``KEY`` is a dotted path into the YAML document (``sampler.seed``,
``objectives.0.metric`` or ``objectives[0].metric``, ``stages.1.dim``); ``VALUE`` is read as YAML
(a scalar or a flow collection: ``2``, ``1e-3``, ``none``, ``[1, 2]``, ``{kind: none}``;
``KEY=`` is ``null``). A leading ``+`` (Hydra's "add a key") is accepted and means the same;
``~KEY`` removes a key. Missing mappings on the way are created; every value is then checked by
the same schema as the file, and an error about an overridden value names ``<command line>``
instead of the file and line (:func:`command_line_issues`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import Issue, SpecError, format_path
from ._yaml import load_yaml_text

__all__ = ["COMMAND_LINE", "OVERRIDE", "Override", "apply_dotlist", "command_line_issues", "parse_override"]

#: How an issue about an overridden value names its origin (in place of ``file:line``).
COMMAND_LINE = "<command line>"
#: How an issue caused by a keyword override of :func:`archsearch.load_spec` names its origin,
#: followed by ``KEY=VALUE`` (``<override> input_size=100``); the CLI names its option instead.
OVERRIDE = "<override>"

_DELETE = object()
_KEY = re.compile(r"[A-Za-z_][\w-]*|\d+")


@dataclass(frozen=True)
class Override:
    """One parsed override: the path it sets, the value (YAML-parsed), and the text given."""

    path: tuple[str | int, ...]
    value: Any
    text: str

    @property
    def deletes(self) -> bool:
        return self.value is _DELETE


def _error(text: str, message: str, **kwargs: Any) -> SpecError:
    return SpecError(Issue((), message, file=f"{COMMAND_LINE} {text}", **kwargs))


def _parse_key(key: str, text: str) -> tuple[str | int, ...]:
    """``objectives[0].metric`` or ``objectives.0.metric`` -> ``("objectives", 0, "metric")``."""
    dotted = re.sub(r"\[(\d+)\]", r".\1", key)
    parts = dotted.split(".")
    if not key or any(not _KEY.fullmatch(p) for p in parts):
        raise _error(
            text,
            f"{key!r} is not a key path",
            allowed="dotted names and list indices, e.g. evaluator.epochs=2, objectives.0.metric=macs",
        )
    return tuple(int(p) if p.isdigit() else p for p in parts)


def parse_override(text: str) -> Override:
    """Parse one ``KEY=VALUE`` (or ``~KEY``) override.

    Raises:
        SpecError: naming ``<command line>`` and the override, for text without ``=``, a key
            that is not a dotted path, or a value that is not YAML.
    """
    if text.startswith("~"):
        return Override(_parse_key(text[1:].partition("=")[0], text), _DELETE, text)
    key, eq, raw = text.removeprefix("+").partition("=")
    if not eq:
        raise _error(
            text,
            "an override is KEY=VALUE",
            allowed="e.g. evaluator.epochs=2, sampler.seed=3, trials=40, ~early_stopping",
        )
    path = _parse_key(key.strip(), text)
    if not raw.strip():
        return Override(path, None, text)
    try:
        value, _ = load_yaml_text(raw)
    except SpecError as exc:
        reason = exc.issues[0].message.removeprefix("YAML syntax error: ")
        raise _error(text, f"the value {raw!r} is not YAML: {reason}") from None
    return Override(path, value, text)


def apply_dotlist(data: Any, overrides: Sequence[str | Override]) -> Any:
    """A deep copy of ``data`` (a YAML document: mappings and lists) with ``overrides`` applied
    in order; missing mappings on a path are created.

    Raises:
        SpecError: naming ``<command line>``, the override and the key, when a path goes through
            a value that is not a mapping or a list, or a list index is out of range.
    """
    data = copy.deepcopy(data)
    for item in overrides:
        o = item if isinstance(item, Override) else parse_override(item)
        if not isinstance(data, dict):
            raise _error(o.text, "the document is not a mapping, so it takes no overrides")
        node: Any = data
        for i, key in enumerate(o.path):
            last = i == len(o.path) - 1
            where = format_path(o.path[:i]) if i else "the document"
            if isinstance(node, list):
                if not isinstance(key, int) or not -len(node) <= key < len(node):
                    raise _error(
                        o.text,
                        f"{where} is a list of {len(node)} item(s); no item {key!r}",
                        allowed=f"indices 0 to {len(node) - 1}" if node else "none (the list is empty)",
                    )
            elif isinstance(node, dict):
                key = str(key)
            else:
                raise _error(o.text, f"{where} is {node!r}, not a mapping: it has no key {str(key)!r}")
            if last:
                if o.deletes:
                    if isinstance(node, dict):
                        node.pop(key, None)
                    else:
                        del node[key]
                else:
                    node[key] = o.value
            else:
                if isinstance(node, dict) and not isinstance(node.get(key), dict | list):
                    node[key] = {} if node.get(key) is None else node[key]
                node = node[key]
    return data


def command_line_issues(exc: SpecError, overrides: Sequence[Override], file: str | None) -> SpecError:
    """``exc`` with every issue about an overridden value (its path inside an override's path, in
    ``file`` or no file) placed on ``<command line>`` and the override's text instead of a line."""
    if not overrides:
        return exc
    issues = []
    for issue in exc.issues:
        hit = next(
            (o for o in reversed(overrides) if issue.path[: len(o.path)] == o.path and len(o.path) > 0),
            None,
        )
        if hit is not None and issue.file in (file, None):
            issue = replace(issue, file=f"{COMMAND_LINE} {hit.text}", line=None)
        issues.append(issue)
    return SpecError(issues)
