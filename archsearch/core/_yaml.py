"""YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with start marks; we convert nodes to plain Python values and
record the line of every mapping key and sequence item in a :class:`SourceMap`, keyed by its
path. Errors later in the pipeline look their path up here to name the line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._errors import Issue, SpecError

__all__ = ["SourceMap", "load_yaml_text", "read_yaml_file"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-5`` as a float (YAML 1.2), not as a string (YAML 1.1)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        #: id of a mapping node -> ids of its own (not merged) key nodes, taken before flattening.
        self.explicit_keys: dict[int, set[int]] = {}


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


@dataclass
class SourceMap:
    """Lines (1-based) of the values of a loaded YAML document, keyed by path."""

    file: str | None = None
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of its deepest ancestor that has one."""
        path = tuple(path)
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def issue(self, path: Sequence[str | int], message: str, **kwargs: Any) -> Issue:
        return Issue(tuple(path), message, file=self.file, line=self.line_of(path), **kwargs)

    def error(self, path: Sequence[str | int], message: str, **kwargs: Any) -> SpecError:
        return SpecError(self.issue(path, message, **kwargs))


def read_yaml_file(source: str | os.PathLike[str], what: str, a_what: str) -> tuple[Any, SourceMap]:
    """Read one YAML file (a spec, a space, an experiment: ``what``, with its article in ``a_what``);
    a missing file, a directory or unreadable bytes are a :class:`SpecError` naming the file."""
    path = Path(source)
    if not path.is_file():
        state = f"is a directory, not {a_what} file" if path.is_dir() else "does not exist"
        raise SpecError(Issue((), f"{what} file {state}", file=str(source)))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(Issue((), f"cannot read the {what} file: {exc}", file=str(source))) from None
    return load_yaml_text(text, file=str(source))


def load_yaml_text(text: str, file: str | None = None) -> tuple[Any, SourceMap]:
    """Parse one YAML document; return its value and the lines of everything in it."""
    source = SourceMap(file=file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            what = "has only comments" if text.strip() else "is empty"
            raise SpecError(
                Issue((), f"the file {what}; a spec is a mapping with at least 'stages'", file=file, line=1)
            )
        source.lines[()] = node.start_mark.line + 1
        value = _convert(loader, node, (), source)
    except yaml.MarkedYAMLError as exc:
        line, message = _syntax_error(exc)
        raise SpecError(Issue((), f"YAML syntax error: {message}", file=file, line=line)) from None
    except yaml.YAMLError as exc:  # pragma: no cover - other reader errors (bad encoding, ...)
        raise SpecError(Issue((), f"YAML error: {exc}", file=file)) from None
    finally:
        loader.dispose()
    return value, source


#: PyYAML's token names, as a reader would say them.
_TOKENS = {
    "<block end>": "the end of the block",
    "<block mapping start>": "a new key",
    "<block sequence start>": "a new list",
    "<stream end>": "the end of the file",
    "?": "a new key",
    "-": "a list item",
}


def _words(problem: str) -> str:
    for token, words in _TOKENS.items():
        problem = problem.replace(f"'{token}'", words)
        if token.startswith("<"):
            problem = problem.replace(token, words)
    return problem


def _syntax_error(exc: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """The line to blame and a plain-words message for a YAML scanner, parser or composer error.

    PyYAML marks where it gave up; for an unclosed bracket or quote, or a key without its
    ``:``, the mistake is where the construct began, so that line is named instead.
    """
    problem, context = exc.problem or "", exc.context or ""
    at, start = exc.problem_mark, exc.context_mark
    line = at.line + 1 if at is not None else (start.line + 1 if start is not None else None)
    col = f"column {at.column + 1}" if at is not None else "the end"
    where = f"line {at.line + 1}, {col}" if at is not None else "the end"
    problem = _words(problem)
    if start is not None and context.startswith("while parsing a flow "):
        bracket = "{" if "mapping" in context else "["
        closing = "}" if bracket == "{" else "]"
        got = problem.split("but got ", 1)[-1]
        found = "the file ends" if got == "the end of the file" else f"found {got} on {where}"
        return start.line + 1, (
            f"the '{bracket}' at column {start.column + 1} is never closed: "
            f"expected ',' or '{closing}', but {found}"
        )
    if start is not None and context == "while scanning a quoted scalar":
        ends = "the file ends" if "end of stream" in problem else f"{problem} on {where}"
        return start.line + 1, (
            f"the quoted string starting at column {start.column + 1} is never closed ({ends})"
        )
    if start is not None and context == "while scanning a simple key":
        return start.line + 1, (
            f"the key at column {start.column + 1} is not followed by ':' "
            "(or a value spans several lines without quotes)"
        )
    if "character '\\t'" in problem:
        return line, f"a tab character at {col}; YAML indents with spaces only"
    if problem == "mapping values are not allowed here":
        return line, (
            f"unexpected ':' at {col}; check this line's indentation, or quote a value that contains ': '"
        )
    block_end = context.startswith("while parsing a block") and "the end of the block" in problem
    if start is not None and block_end:
        found = problem.partition(", but found ")[2] or "more"
        return line, (
            f"bad indentation at {col}: expected the end of the block that starts on line "
            f"{start.line + 1}, but found {found}"
        )
    if problem.startswith("could not determine a constructor for the tag"):
        tag = problem.rpartition(" ")[2].replace("tag:yaml.org,2002:", "!!")
        return line, f"the tag {tag} at {col} is not supported; a spec holds only plain YAML values"
    if context == "expected a single document in the stream":
        return line, "a second YAML document ('---'); a spec file holds exactly one"
    text = f"{problem} ({context})" if context and problem else problem or context or str(exc)
    return line, f"{text} at {col}" if at is not None else text


def _convert(loader: _Loader, node: yaml.Node, path: tuple[str | int, ...], source: SourceMap) -> Any:
    if isinstance(node, yaml.MappingNode):
        explicit = loader.explicit_keys.setdefault(
            id(node), {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        )
        loader.flatten_mapping(node)  # resolves '<<' merge keys: merged pairs first, then the explicit ones
        out: dict[Any, Any] = {}
        given: dict[Any, int] = {}  # explicit keys -> their line
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise source.error(path, "mapping keys must be plain names", value=key)
            child = (*path, key if isinstance(key, str) else str(key))
            line = key_node.start_mark.line + 1
            if id(key_node) in explicit:
                if key in given:
                    raise SpecError(
                        Issue(
                            child,
                            f"duplicate key {key!r} (first given on line {given[key]})",
                            file=source.file,
                            line=line,
                        )
                    )
                given[key] = line
            if key in out:  # a later merge, or an explicit key, overrides a merged one
                for stale in [p for p in source.lines if p[: len(child)] == child]:
                    del source.lines[stale]
            source.lines[child] = line
            out[key] = _convert(loader, value_node, child, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            source.lines[(*path, i)] = item.start_mark.line + 1
            items.append(_convert(loader, item, (*path, i), source))
        return items
    return loader.construct_object(node, deep=True)
