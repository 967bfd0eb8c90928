"""pydantic's validation errors as :class:`Issue` objects placed on the YAML.

One translation for specs, search spaces and experiments: ``file:line: path: message (got ...);
allowed: ...``. The keys a mapping takes and the kinds a discriminated union accepts are read
from the root model validated, so no caller registers anything here.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import Issue
from ._model import describe_model
from ._yaml import SourceMap

__all__ = [
    "BOUND_WORDS",
    "FieldIssue",
    "did_you_mean",
    "expected_noun",
    "union_kinds",
    "validation_issues",
]


class FieldIssue(ValueError):
    """Raised by a field validator for an error that names the value got and what is allowed:
    ``path: message (got value); allowed: allowed``, like the schema's own errors."""

    def __init__(self, message: str, value: Any, allowed: str):
        super().__init__(message)
        self.value, self.allowed = value, allowed


def union_kinds(annotated: Any) -> tuple[str, ...]:
    """The ``kind`` names a discriminated union (``Annotated[A | B, Field(discriminator=...)]``)
    accepts, in order."""
    return tuple(k for m in _members(annotated) for k in _kind_names(m))


def _kind_names(model: type[BaseModel]) -> tuple[str, ...]:
    """The ``kind`` names a tagged model takes: every value of its ``Literal`` (``CifarData`` is
    both ``cifar10`` and ``cifar100``), else its default."""
    annotation = model.model_fields["kind"].annotation
    if get_origin(annotation) is typing.Literal:
        return tuple(str(a) for a in get_args(annotation))
    return (model.model_fields["kind"].default,)


@functools.cache
def _index(root: type[BaseModel]) -> tuple[dict[str, type[BaseModel]], dict[str, tuple[str, ...]]]:
    """Every model reachable from ``root`` by class name, and field name -> the kinds of the
    discriminated union it holds (for "missing kind" messages)."""
    models: dict[str, type[BaseModel]] = {}
    kinds: dict[str, tuple[str, ...]] = {}
    todo = [root]
    while todo:
        model = todo.pop()
        if model.__name__ in models:
            continue
        models[model.__name__] = model
        for name, field in model.model_fields.items():
            members = [m for m in _members(field.annotation) if isinstance(m, type)]
            tagged = [m for m in members if issubclass(m, BaseModel) and "kind" in m.model_fields]
            if field.discriminator == "kind" or len(tagged) > 1:
                kinds.setdefault(name, tuple(k for m in tagged for k in _kind_names(m)))
            todo.extend(m for m in members if issubclass(m, BaseModel))
            for m in _members(field.annotation):
                if get_origin(m) is list:
                    todo.extend(
                        a
                        for a in _members(get_args(m)[0])
                        if isinstance(a, type) and issubclass(a, BaseModel)
                    )
    return models, kinds


#: pydantic error types that mean "this value has the wrong type" -> what was expected instead.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


#: Python type names -> the words for them (``int`` -> ``an integer``).
_TYPE_NOUNS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def expected_noun(kind: str, type_name: str = "") -> str | None:
    """The words for what a value should be: by its type's name (``int``), else by pydantic's
    error type (``int_parsing``); ``None`` when neither is known. The CLI's option errors and
    the YAML's use the same words."""
    return _TYPE_NOUNS.get(type_name) or _EXPECTED.get(kind)


@dataclass(eq=False)
class _Error:
    """One pydantic error placed on the data: its path, and the union alternative it came from."""

    path: tuple[str | int, ...]
    raw: Any
    site: tuple[str | int, ...] | None = None  # path of the innermost union (scalar | list) it is inside
    branch: str | None = None  # pydantic's name of the alternative, e.g. 'list[constrained-int]'
    at_site: bool = False  # about the union's value itself, not an item inside it
    sites: tuple[tuple[str | int, ...], ...] = ()  # every union it is inside (a mixer or a list of them)


def validation_issues(
    exc: ValidationError, data: Any, source: SourceMap, root: type[BaseModel]
) -> list[Issue]:
    """pydantic's errors from validating ``data`` as ``root`` (a spec, space or experiment
    model), as :class:`Issue` objects placed on the YAML by ``source``: each names the path, the
    value got and what is allowed (keys of the mapping, kinds of the union, a close match)."""
    errors = [_place(err, data) for err in exc.errors(include_url=False)]
    issues: list[Issue] = []
    done: set[tuple[Any, ...]] = set()
    for err in errors:
        if err.site is not None:
            group = [e for e in errors if err.site in e.sites]
            wrong_type = [e for e in group if e.at_site and e.site == err.site and e.raw["type"] in _EXPECTED]
            if len(wrong_type) == len(group):  # no alternative takes this type: say what would
                if ("union", err.site) not in done:
                    done.add(("union", err.site))
                    issues.append(_union_issue(group, source, root))
                continue
            if err in wrong_type:  # another alternative fits the type; its own error is the one to show
                continue
        issue = _issue(err, data, source, root)
        key = (issue.path, issue.message)
        if key not in done:
            done.add(key)
            issues.append(issue)
    return issues


def _place(err: Any, data: Any) -> _Error:
    """Map pydantic's error location onto the data, dropping the tags it inserts for unions."""
    path: list[str | int] = []
    current = data
    out = _Error((), err)
    tagged = None  # the mapping whose union tag was skipped (a field may share the kind's name)
    for part in err["loc"]:
        if isinstance(current, dict) and current.get("kind") == part and tagged is not current:
            tagged = current
            continue  # the tag of a discriminated union (mixer, embed, stem): the kind itself
        if isinstance(current, str) and part == current:
            continue  # the same, for the ``mixer: conv`` shorthand
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            current = current[part]
            path.append(part)
        elif isinstance(part, str) and (not part.isidentifier() or part in _UNION_TAGS):
            # an alternative of a plain union, e.g. ``int | list[int]`` (the innermost one counts)
            out.site, out.branch = tuple(path), part
            out.sites += (tuple(path),)
        elif isinstance(part, str) and isinstance(current, dict):
            path.append(part)  # a missing key
            current = None
    out.path = tuple(path)
    out.at_site = out.site is not None and out.path == out.site
    return out


_UNION_TAGS = {"int", "float", "str", "bool", "list", "dict"}


def _issue(err: _Error, data: Any, source: SourceMap, root: type[BaseModel]) -> Issue:
    raw, path = err.raw, err.path
    kind, ctx, value = raw["type"], raw.get("ctx") or {}, raw.get("input")
    extra: dict[str, Any] = {}
    if kind in ("extra_forbidden", "invalid_key"):  # invalid_key: a key that is not a string
        key = raw["loc"][-1]
        if path and path[-1] == key:
            path = path[:-1]
        path = (*path, key if isinstance(key, str) else str(key))  # ``3:`` is a key, not an index
        model = _model_at(raw["loc"][:-1], root)
        allowed = list(model.model_fields) if model is not None else []
        message = f"unknown key {key!r}" + (f" in {describe_model(model)}" if model is not None else "")
        message += did_you_mean(key, allowed)
        extra = {"allowed": ", ".join(allowed)} if allowed else {}
    elif kind == "union_tag_invalid":
        given = _get(data, path)
        tag = given.get("kind") if isinstance(given, dict) else given
        if isinstance(given, dict):  # ``mixer: {kind: lstm}``; the shorthand ``mixer: lstm`` has no 'kind'
            path = (*path, "kind")
        kinds = ctx["expected_tags"].replace("'", "").split(", ")
        if isinstance(tag, str):
            message = f"unknown kind {tag!r}{did_you_mean(tag, kinds)}"
            extra = {"allowed": ", ".join(kinds)}
        else:  # pydantic shows ``kind: null`` as the tag 'None'
            message, extra = "expected a kind name", {"value": tag, "allowed": ", ".join(kinds)}
    elif kind == "union_tag_not_found":
        message = "missing 'kind'" + _node_hint(_get(data, path))
        extra = {"allowed": ", ".join(_index(root)[1].get(_field(path), ()))}
    elif kind == "missing":
        key = raw["loc"][-1]
        if path and path[-1] == key:  # name the mapping the key is missing from
            path = path[:-1]
        message = f"missing required key {key!r}"
    elif kind == "literal_error":
        options = [o.strip(" '") for o in ctx["expected"].replace(" or ", ", ").split(",")]
        message = f"not an allowed value{did_you_mean(value, options)}{_node_hint(value)}"
        extra = {"value": value, "allowed": ", ".join(options)}
    elif kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}{_hint(_EXPECTED[kind], value)}"
        extra = {"value": value}
        if kind in ("model_type", "model_attributes_type"):
            extra["allowed"] = _mapping_allowed(path, ctx, root)
    elif kind in BOUND_WORDS:
        word, key = BOUND_WORDS[kind]
        bound = ctx[key]
        message = f"must be {word} {int(bound) if isinstance(bound, float) and bound.is_integer() else bound}"
        extra = {"value": value}
    elif kind in ("too_short", "too_long"):
        word = "at least" if kind == "too_short" else "at most"
        limit = ctx["min_length" if kind == "too_short" else "max_length"]
        message = f"needs {word} {limit} item{'s' if limit != 1 else ''}, not {ctx['actual_length']}"
        extra = {"value": value}
    elif kind == "string_pattern_mismatch":  # e.g. a device: say the names, not the regex
        message = "not an allowed value"
        extra = {"value": value, "allowed": _pattern_words(ctx.get("pattern", ""))}
    elif kind == "value_error":
        message = raw["msg"].removeprefix("Value error, ")
        error = ctx.get("error")
        if isinstance(error, FieldIssue):
            message, extra = str(error), {"value": error.value, "allowed": error.allowed}
    else:
        message = raw["msg"].removeprefix("Input should be ")
        message = message[0].lower() + message[1:]
        extra = {"value": value}
    return source.issue(path, message, **extra)


#: pydantic's error types for a bound -> the words and the bound's key in the error's context.
BOUND_WORDS = {
    "greater_than": ("greater than", "gt"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("at most", "le"),
}


def _union_issue(group: list[_Error], source: SourceMap, root: type[BaseModel]) -> Issue:
    """One value that fits none of the alternatives by type, e.g. ``kv_stride: two``; where one
    alternative is a kind's mapping (``mixer``: one, or a list of them), what it accepts."""
    first = group[0]
    assert first.site is not None
    nouns = list(dict.fromkeys(_noun(e.branch or "", e.raw["type"]) for e in group))
    expected = " or ".join(nouns)
    value = first.raw.get("input")
    mapping = next((e for e in group if e.raw["type"] in ("model_type", "model_attributes_type")), None)
    allowed = _mapping_allowed(first.site, mapping.raw.get("ctx") or {}, root) if mapping else ""
    if allowed and any(n.startswith("a list") for n in nouns):
        allowed += ", or a list of them (one per block)"
    extra = {"allowed": allowed} if allowed else {}
    return source.issue(first.site, f"expected {expected}{_hint(expected, value)}", value=value, **extra)


def _noun(branch: str, kind: str) -> str:
    """``'list[constrained-int]'`` -> ``'a list of integers'``."""
    name = branch.removeprefix("constrained-")
    if name.startswith("list[") and name.endswith("]"):
        inner = _noun(name[5:-1], "")
        plural = {"an integer": "integers", "a number": "numbers", "a string": "strings"}.get(inner)
        return f"a list of {plural}" if plural else "a list"
    return expected_noun(kind, name) or name


def _node_hint(value: Any) -> str:
    """A choice node where a plain value is needed: a search space's grammar in a spec or experiment."""
    if isinstance(value, dict) and {"choice", "int", "float"} & set(value):
        return (
            "; choice nodes ({choice: ...}, {int: ...}, {float: ...}) belong in search spaces only"
            " (a space file is checked with `archsearch space FILE`)"
        )
    return ""


def _hint(expected: str, value: Any) -> str:
    """Why a value of the right look was refused: a quoted number, a boolean for a number, or a
    choice node outside a search space."""
    if _node_hint(value):
        return _node_hint(value)
    numeric = "integer" in expected or "number" in expected
    if numeric and isinstance(value, bool):
        return ", not true/false"
    if numeric and isinstance(value, str):
        try:
            int(value) if "integer" in expected else float(value)
        except ValueError:
            return ""
        return f"; a quoted number is a string: write {value} without quotes"
    if "integer" in expected and isinstance(value, float) and value.is_integer():
        return f"; write {int(value)} without the decimal point"
    if expected == "true or false" and isinstance(value, str):
        return "; a quoted word is a string: write true or false without quotes"
    if expected == "true or false" and isinstance(value, int | float):
        return ", not a number"
    return ""


def _pattern_words(pattern: str) -> str:
    """``^(auto|cpu|cuda(:\\d+)?)$`` -> ``auto, cpu, cuda, cuda:N``; any other regex as it is."""
    inner = pattern.removeprefix("^(").removesuffix(")$")
    if inner == pattern or not re.fullmatch(r"[a-z_|]+(\(:\\d\+\)\?[a-z_|]*)*", inner):
        return f"text matching {pattern}"
    words = []
    for word in inner.split("|"):
        name, optional, _ = word.partition("(:\\d+)?")
        words += [name, f"{name}:N"] if optional else [name]
    return ", ".join(words)


def did_you_mean(given: Any, options: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the option closest to ``given`` (difflib), or ``""``."""
    close = difflib.get_close_matches(str(given), options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close and close[0] != given else ""


def _field(path: tuple[str | int, ...]) -> str:
    return next((str(p) for p in reversed(path) if isinstance(p, str)), "")


def _mapping_allowed(path: tuple[str | int, ...], ctx: dict[str, Any], root: type[BaseModel]) -> str:
    models, all_kinds = _index(root)
    model = models.get(ctx.get("class_name", ""))
    if model is not None:
        return "keys " + ", ".join(model.model_fields)
    kinds = all_kinds.get(_field(path))
    if kinds:
        return "a kind name (" + ", ".join(kinds) + ") or a mapping with 'kind'"
    return ""


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The schema object at pydantic's error location ``loc`` (union tags included), if one."""
    options: list[Any] = [root]
    for part in loc:
        if isinstance(part, str) and not part.isidentifier():
            continue  # pydantic's name of a union's alternative (``tagged-union[...]``)
        found: list[Any] = []
        members = [u for option in options for u in _members(option)]
        union = len(members) > 1
        for t in members:
            if isinstance(t, type) and issubclass(t, BaseModel):
                if union and "kind" in t.model_fields and t.model_fields["kind"].default == part:
                    found.append(t)  # the tag pydantic inserts for a discriminated union
                elif isinstance(part, str) and part in t.model_fields:
                    found.append(t.model_fields[part].annotation)
            elif get_origin(t) is list and isinstance(part, int):
                found.append(get_args(t)[0])
        options = found
    models = {
        u for option in options for u in _members(option) if isinstance(u, type) and issubclass(u, BaseModel)
    }
    return models.pop() if len(models) == 1 else None


def _members(annotation: Any) -> list[Any]:
    """Unwrap ``Annotated`` and unions into their concrete alternatives."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _members(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _members(a)]
    return [annotation]


def _get(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
