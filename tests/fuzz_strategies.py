"""Hypothesis strategies that mutate YAML files (for tests/test_fuzz.py).

:func:`mutants` draws one file of a :class:`Corpus` and mutates it, either as data (parsed, changed
in one to three places, dumped back to YAML) or as bytes (the text itself, so that what a dump never
writes is tried too: bad bytes, truncation, tabs, duplicate keys, anchors, aliases, tags).
"""

from __future__ import annotations

import copy
import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from archsearch.search import Experiment
from archsearch.spec import Spec

__all__ = ["Corpus", "mutants"]

Path_ = tuple[Any, ...]


def _schema_words() -> list[str]:
    """Every key and every enumerated value the spec and experiment schemas name."""
    words: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    words.update(value)
                if key in ("enum", "const"):
                    words.update(
                        v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)
                    )
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(Spec.model_json_schema())
    walk(Experiment.model_json_schema())
    words.update(("choice", "int", "float", "step", "log", "per_block", "constraints", "max", "min"))
    return sorted(words)


WORDS = _schema_words()


@dataclass
class Corpus:
    """Shipped files by name: their text and their data."""

    texts: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # hypothesis shows the strategy in its messages: keep it short
        return f"Corpus({', '.join(self.texts)})"

    @classmethod
    def of(cls, files: Sequence[Path]) -> Corpus:
        texts = {f.name: f.read_text(encoding="utf-8") for f in files}
        return cls(texts, {name: yaml.safe_load(text) for name, text in texts.items()})


# --------------------------------------------------------------------------- values

_NUMBERS = [0, -1, 1, 2, 3, 7, 64, 1000, 1001, 65537, 2**31, 2**63, -(2**63), 10**30, 10**400]
_FLOATS = [0.0, -0.0, 0.5, -1.5, 1e-308, 5e-324, 1e308, -1e308, math.inf, -math.inf, math.nan, 1e10]


def _typo(word: str) -> st.SearchStrategy[str]:
    """Near misses of ``word``: a letter dropped, doubled or swapped, a case or separator change."""
    if not word:
        return st.just("x")
    i = st.integers(0, len(word) - 1)
    return st.one_of(
        i.map(lambda k: word[:k] + word[k + 1 :]),
        i.map(lambda k: word[:k] + word[k] + word[k:]),
        i.map(lambda k: word[:k] + word[k + 1 : k + 2] + word[k : k + 1] + word[k + 2 :]),
        st.sampled_from(
            [word.upper(), word.title(), word.replace("_", "-"), word + "s", " " + word, word + " "]
        ),
    )


def _words() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(WORDS), st.sampled_from(WORDS).flatmap(_typo))


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(_NUMBERS),
    st.integers(),
    st.sampled_from(_FLOATS),
    st.floats(),
    _words(),
    st.text(max_size=12),
    st.sampled_from(
        ["", "yes", "~", "null", "1e3", "0x10", "1_000", "[1, 2]", "{a: 1}", "*a", "&b", "x" * 5000]
    ),
    st.sampled_from([datetime.date(2001, 12, 14), b"\x00\xff", {1, 2}]),
)

JUNK = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(_words(), st.integers(-2, 2), st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=8,
)


# --------------------------------------------------------------------------- tree edits


def _paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _get(node: Any, path: Path_) -> Any:
    for part in path:
        node = node[part]
    return node


def _set(root: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond a float (10**400)
        return math.inf


def _number_edits(value: int | float) -> st.SearchStrategy[Any]:
    near = [
        value + 1,
        value - 1,
        -value,
        value * 2,
        value * 1000,
        value // 2 if isinstance(value, int) else value / 3,
    ]
    return st.one_of(
        st.sampled_from(near),
        st.sampled_from(_NUMBERS + _FLOATS),
        st.just(_float(value) + 0.5),
        st.just(str(value)),
        st.just(_float(value)),
        st.just([value, value]),
    )


def _string_edits(value: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        _typo(value), st.just(""), st.just(value * 200), st.just([value]), st.just({"kind": value}), _words()
    )


def _dict_edits(value: dict[Any, Any]) -> st.SearchStrategy[Any]:
    keys = list(value)
    edits: list[st.SearchStrategy[Any]] = [
        st.tuples(st.one_of(_words(), st.integers(-1, 3), st.none(), st.booleans(), st.floats()), JUNK).map(
            lambda kv: {**value, kv[0]: kv[1]}
        ),
        st.just({}),
        st.just(list(value.values())),
        st.just({"choice": [value]}),
    ]
    if keys:
        pick = st.sampled_from(keys)
        edits += [
            pick.map(lambda k: {key: v for key, v in value.items() if key != k}),
            pick.flatmap(
                lambda k: _typo(str(k)).map(
                    lambda new: {(new if key == k else key): v for key, v in value.items()}
                )
            ),
            pick.map(lambda k: {k: value[k]}),
        ]
    return st.one_of(edits)


def _list_edits(value: list[Any]) -> st.SearchStrategy[Any]:
    edits: list[st.SearchStrategy[Any]] = [
        st.just([]),
        st.just({i: v for i, v in enumerate(value)}),
        st.just([value]),
        st.just(value + value),
    ]
    if value:
        index = st.integers(0, len(value) - 1)
        edits += [
            index.map(lambda i: value[:i] + value[i + 1 :]),
            index.map(lambda i: value[: i + 1] + value[i:]),
            st.sampled_from([2, 13, 100, 999, 1000, 1001, 3000]).map(lambda n: (value * n)[:n]),
            st.tuples(index, JUNK).map(lambda t: [*value[: t[0]], t[1], *value[t[0] + 1 :]]),
        ]
    return st.one_of(edits)


def _choice_nodes(value: Any) -> st.SearchStrategy[Any]:
    """Choice nodes around ``value``, good and bad (a search space takes them anywhere)."""
    n = st.one_of(st.sampled_from(_NUMBERS + _FLOATS), JUNK)
    return st.one_of(
        st.tuples(JUNK).map(lambda j: {"choice": [value, j[0]]}),
        st.just({"choice": []}),
        st.just({"choice": [value]}),
        JUNK.map(lambda j: {"choice": [value], "per_block": j}),
        st.tuples(n, n).map(lambda t: {"int": list(t)}),
        st.tuples(n, n, n).map(lambda t: {"int": [t[0], t[1]], "step": t[2]}),
        st.tuples(n, n, JUNK).map(lambda t: {"float": [t[0], t[1]], "log": t[2]}),
        st.just({"choice": [value], "int": [1, 2]}),
    )


@st.composite
def _edit(draw: st.DrawFn, root: Any, spaces: Corpus | None) -> Any:
    """``root`` changed at one place."""
    paths = _paths(root)
    path = draw(st.sampled_from(paths))
    value = _get(root, path)
    edits: list[st.SearchStrategy[Any]] = [
        JUNK,
        st.just(None),
        st.sampled_from(paths).map(lambda other: copy.deepcopy(_get(root, other))),
        _choice_nodes(value),
    ]
    if isinstance(value, bool):
        edits.append(st.sampled_from(["true", 1, 0, "yes", [value]]))
    elif isinstance(value, int | float):
        edits.append(_number_edits(value))
    elif isinstance(value, str):
        edits.append(_string_edits(value))
    elif isinstance(value, dict):
        edits.append(_dict_edits(value))
    elif isinstance(value, list):
        edits.append(_list_edits(value))
    if spaces is not None and path == ("space",):  # an experiment's space, written inline
        edits.append(_data_mutant(spaces, None).map(lambda t: t[1]))
    return _set(root, path, draw(st.one_of(edits)))


@st.composite
def _data_mutant(draw: st.DrawFn, corpus: Corpus, spaces: Corpus | None) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(corpus.data)))
    data = copy.deepcopy(corpus.data[name])
    for _ in range(draw(st.integers(1, 3))):
        data = draw(_edit(data, spaces))
    return name, data


def _dump(data: Any, unicode: bool, flow: bool | None) -> bytes:
    return yaml.safe_dump(
        data, sort_keys=False, allow_unicode=unicode, default_flow_style=flow, width=10**6
    ).encode()


# --------------------------------------------------------------------------- text edits

_INSERTS = [
    b"\x00",
    b"\x07",
    b"\x1b",
    b"\x7f",
    b"\x85",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xef\xbb\xbf",
    b"\t",
    b"\r",
    b"\r\n",
    b"\n",
    b": ",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b"'",
    b"&a ",
    b"*a",
    b"*nope",
    b"!",
    b"!!binary ",
    b"!!set ",
    b"!!python/object:os.system ",
    b"%YAML 1.1\n",
    b"---\n",
    b"...\n",
    b"? ",
    b"|\n",
    b">\n",
    b"<<: *a\n",
    b"@",
    b"`",
    b"#",
    b"\\",
    b"\xe2\x80\xa8",
    b"2001-12-14",
    b"=",
    b"1e999",
    b".nan",
    b"-.inf",
    b"0o17",
    b"0x1F",
    b"~",
]


@st.composite
def _text_mutant(draw: st.DrawFn, corpus: Corpus) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(corpus.texts)))
    data = corpus.texts[name].encode()
    for _ in range(draw(st.integers(1, 3))):
        lines = data.split(b"\n")
        at = draw(st.integers(0, len(data)))
        row = draw(st.integers(0, len(lines) - 1))
        other = draw(st.integers(0, len(lines) - 1))
        op = draw(st.integers(0, 9))
        if op == 0:
            data = data[:at] + draw(st.sampled_from(_INSERTS)) + data[at:]
        elif op == 1:
            data = data[:at]
        elif op == 2:
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif op == 3:  # a duplicated line: often a duplicate key
            lines.insert(row, lines[row])
            data = b"\n".join(lines)
        elif op == 4:
            del lines[row]
            data = b"\n".join(lines)
        elif op == 5:
            lines[row], lines[other] = lines[other], lines[row]
            data = b"\n".join(lines)
        elif op == 6:  # indentation: tabs, one space more or less
            line = lines[row]
            body = line.lstrip(b" ")
            indent = len(line) - len(body)
            lines[row] = (
                draw(st.sampled_from([b"\t", b" " * (indent + 1), b" " * max(indent - 1, 0), b"\t" * 2]))
                + body
            )
            data = b"\n".join(lines)
        elif op == 7:  # an anchor on one value, aliases and merge keys elsewhere
            key, sep, value = lines[row].partition(b": ")
            if sep:
                lines[row] = key + b": &a " + value
            use = draw(st.sampled_from([b"*a", b"<<: *a", b"[*a, *a, *a]", b"{<<: *a}"]))
            key2, sep2, _ = lines[other].partition(b": ")
            lines[other] = key2 + b": " + use if sep2 else lines[other] + b" " + use
            data = b"\n".join(lines)
        elif op == 8:
            data = data.replace(b"\n", draw(st.sampled_from([b"\r\n", b"\r", b"\n\n", b"\n#\n"])))
        else:  # a value replaced by a word of the schema or its near miss
            key, sep, _ = lines[row].partition(b": ")
            word = draw(st.one_of(_words(), st.sampled_from(["", "{", "[]", "{}", "null", "-1", "1e308"])))
            lines[row] = (key + b": " if sep else lines[row] + b" ") + word.encode()
            data = b"\n".join(lines)
    return name, data


def mutants(corpus: Corpus, *, spaces: Corpus | None = None) -> st.SearchStrategy[tuple[str, bytes]]:
    """``(file name, mutated bytes)`` drawn from ``corpus``; with ``spaces``, an experiment's
    ``space`` may also be replaced by a mutated space written inline."""
    as_data = st.tuples(
        _data_mutant(corpus, spaces), st.booleans(), st.sampled_from([None, False, True])
    ).map(lambda t: (t[0][0], _dump(t[0][1], t[1], t[2])))
    return st.one_of(as_data, _text_mutant(corpus))
