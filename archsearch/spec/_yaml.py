"""YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with start marks; we convert nodes to plain Python values and
record the line of every mapping key and sequence item in a :class:`SourceMap`, keyed by its
path. Errors later in the pipeline look their path up here to name the line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .._errors import Issue, SpecError

__all__ = ["SourceMap", "load_yaml_text"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-5`` as a float (YAML 1.2), not as a string (YAML 1.1)."""


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


def load_yaml_text(text: str, file: str | None = None) -> tuple[Any, SourceMap]:
    """Parse one YAML document; return its value and the lines of everything in it."""
    source = SourceMap(file=file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise source.error((), "the file is empty; a spec is a mapping with at least 'stages'")
        source.lines[()] = node.start_mark.line + 1
        value = _convert(loader, node, (), source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{exc.context}, {problem}"
        raise SpecError(Issue((), f"YAML syntax error: {problem}", file=file, line=line)) from None
    except yaml.YAMLError as exc:  # pragma: no cover - other reader errors (bad encoding, ...)
        raise SpecError(Issue((), f"YAML error: {exc}", file=file)) from None
    finally:
        loader.dispose()
    return value, source


def _convert(loader: _Loader, node: yaml.Node, path: tuple[str | int, ...], source: SourceMap) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves '<<' merge keys
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise source.error(path, "mapping keys must be plain names", value=key)
            child = (*path, key) if isinstance(key, str | int) else (*path, str(key))
            if key in out:
                first = source.lines.get(child)
                raise SpecError(
                    Issue(child, f"duplicate key {key!r} (first given on line {first})",
                          file=source.file, line=key_node.start_mark.line + 1)
                )
            source.lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(loader, value_node, child, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            source.lines[(*path, i)] = item.start_mark.line + 1
            items.append(_convert(loader, item, (*path, i), source))
        return items
    return loader.construct_object(node, deep=True)
