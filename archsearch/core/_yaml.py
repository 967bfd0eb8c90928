"""YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with start marks; we convert nodes to plain Python values and
record the line of every mapping key and sequence item in a :class:`SourceMap`, keyed by its
path. Errors later in the pipeline look their path up here to name the line.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import Issue, SpecError
from ._bounds import MAX_YAML_NODES

__all__ = ["MAX_FILE_BYTES", "SourceMap", "load_yaml_text", "read_yaml_file"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-5`` as a float (YAML 1.2), not as a string (YAML 1.1)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        #: id of a mapping node -> ids of its own (not merged) key nodes, taken before flattening.
        self.explicit_keys: dict[int, set[int]] = {}
        #: values converted so far, an alias counted each time it is used (see MAX_YAML_NODES).
        self.converted = 0


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


#: The largest spec, space or experiment file read, in bytes (1 MiB). The shipped files are a few
#: KiB; the bound keeps a wrong path (a log, a dataset, ``/dev/zero``) from being read for ever.
MAX_FILE_BYTES = 1 << 20

#: Byte-order marks of encodings other than UTF-8 (longest first: UTF-32 LE starts like UTF-16 LE).
_FOREIGN_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_yaml_file(
    source: str | os.PathLike[str], what: str, a_what: str, *, needs: str = "'stages'"
) -> tuple[Any, SourceMap]:
    """Read and parse one YAML file: a spec, a space or an experiment (``what``, with its article
    in ``a_what``; ``needs`` names the keys it must have, for the message on an empty file).

    The file must be a regular file of at most :data:`MAX_FILE_BYTES` bytes of UTF-8 text (a UTF-8
    byte-order mark is allowed and dropped) without control characters. Special files (a FIFO, a
    device) are refused from their type, without reading them, so that a wrong path never hangs.

    Raises:
        SpecError: one issue naming the file (and the line, where there is one) for a missing file,
            a directory, a special file, an unreadable or oversized file, bytes that are not UTF-8
            (a UTF-16 or UTF-32 byte-order mark is named as such), control characters, or YAML
            that does not parse.
    """
    file = str(source)

    def fail(message: str, line: int | None = None) -> SpecError:
        return SpecError(Issue((), message, file=file, line=line))

    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise fail(f"{what} file does not exist") from None
    except IsADirectoryError:
        raise fail(f"{what} file is a directory, not {a_what} file") from None
    except OSError as exc:
        raise fail(f"cannot open the {what} file: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise fail(f"{what} file is a directory, not {a_what} file")
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "a special file")
            raise fail(f"{what} file is {kind}, not {a_what} file; give the path of a regular YAML file")
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise fail(f"cannot read the {what} file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > MAX_FILE_BYTES:
        raise fail(f"{what} file is larger than {MAX_FILE_BYTES // (1 << 20)} MiB, the most that is read")
    return load_yaml_text(_decode(b"".join(chunks), what, fail), file=file, a_what=a_what, needs=needs)


def _decode(data: bytes, what: str, fail: Callable[..., SpecError]) -> str:
    """UTF-8 text without its byte-order mark; other encodings and control characters are errors."""
    for bom, encoding in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise fail(
                f"{what} file is {encoding} text (it starts with a {encoding} byte-order mark); "
                "save it as UTF-8"
            )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise fail(
            f"{what} file is not UTF-8 text: byte 0x{byte} at column {column} cannot be decoded; "
            "save it as UTF-8",
            line,
        ) from None
    return text


def load_yaml_text(
    text: str, file: str | None = None, *, a_what: str = "a spec", needs: str = "'stages'"
) -> tuple[Any, SourceMap]:
    """Parse one YAML document; return its value and the lines of everything in it. An empty
    document is an error that says what the file should hold (``a_what`` with the keys ``needs``)."""
    source = SourceMap(file=file)
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad is not None:  # PyYAML's reader would refuse it with a traceback-shaped message
        bad_line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise SpecError(
            Issue(
                (),
                f"control character U+{ord(bad.group()[0]):04X} at column {column}; "
                "a YAML file holds printable text only",
                file=file,
                line=bad_line,
            )
        )
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            what = "has only comments" if text.strip() else "is empty"
            raise SpecError(
                Issue((), f"the file {what}; {a_what} is a mapping with at least {needs}", file=file, line=1)
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
    "<scalar>": "a value",
    "<alias>": "an alias",
    "<anchor>": "an anchor",
    "<tag>": "a tag",
    "<directive>": "a directive",
    "<document start>": "'---'",
    "<document end>": "'...'",
    "?": "a new key",
    "-": "a list item",
    "\\x00": "the end of the file",  # the reader's end marker, as the scanner shows it
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
    if start is not None and context in ("while parsing a flow sequence", "while parsing a flow mapping"):
        bracket = "{" if "mapping" in context else "["
        closing = "}" if bracket == "{" else "]"
        got = re.split(r"but (?:got|found) ", problem, maxsplit=1)[-1]
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
    if context.endswith(" node") and problem.startswith("expected the node content"):
        got = problem.partition(", but found ")[2] or "something else"
        hint = "; inside [ ] or { } items are separated by commas, not '- '" if got == "a list item" else ""
        return line, f"expected a value at {col}, but found {got}{hint}"
    if start is not None and context in ("while scanning an alias", "while scanning an anchor"):
        what, mark = ("alias", "*") if context.endswith("alias") else ("anchor", "&")
        return start.line + 1, (
            f"the {what} at column {start.column + 1} has no name: '{mark}' starts an {what}, followed by "
            f"letters or digits (quote a value that starts with '{mark}')"
        )
    if problem.startswith("found undefined alias "):
        name = problem.rpartition(" ")[2].strip("'")
        return line, f"the alias '*{name}' at {col} names no anchor: mark a value above it '&{name}'"
    if context.startswith("found duplicate anchor "):  # PyYAML: context first, then "second occurrence"
        name = context.split("'")[1]
        first = f" (first on line {start.line + 1})" if start is not None else ""
        return line, f"the anchor '&{name}' at {col} is given twice{first}; give each anchor its own name"
    if "that cannot start any token" in problem and "'\\t'" not in problem:  # tabs: below
        char = problem.removeprefix("found character ").partition(" that")[0]
        return line, f"the character {char} at {col} cannot start a value; put the value in quotes"
    if problem.startswith("expected '---', but found ") and not context:
        found = problem.removeprefix("expected '---', but found ")
        return line, (
            f"{found} at {col} after the end of the YAML document (a '...' or '%' line before it ends "
            "the document); remove that line"
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
        if found in ("']'", "'}'"):
            opening = "[" if found == "']'" else "{"
            return line, f"a {found} at {col} closes nothing: no '{opening}' before it is open"
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
    loader.converted += 1
    if loader.converted > MAX_YAML_NODES:  # aliases repeating aliases ("billion laughs")
        raise SpecError(
            Issue(
                path[:1],
                f"the YAML expands to more than {MAX_YAML_NODES:,} values (each use of an alias "
                "'*name' repeats everything it names); write the values out or use fewer aliases",
                file=source.file,
                line=source.line_of(path[:1]),
            )
        )
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
