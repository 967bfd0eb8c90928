"""Loading specs from files, zoo names or dicts, with errors that point at the line."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..core import (
    COMMAND_LINE,
    OVERRIDE,
    NormalizedSpec,
    SourceMap,
    apply_dotlist,
    command_line_issues,
    did_you_mean,
    parse_override,
    read_yaml_file,
    validation_issues,
)
from ..errors import Issue, SpecError
from ._normalize import normalize
from ._schema import Spec

__all__ = [
    "OVERRIDE",
    "ZOO_DIR",
    "apply_overrides",
    "is_experiment",
    "list_models",
    "load_spec",
    "override_issue",
    "spec_from_dict",
    "spec_yaml",
    "validate_spec",
    "zoo_names",
]

ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"


def zoo_names() -> list[str]:
    """Names of the architectures shipped in ``archsearch/zoo``."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def list_models(pattern: str | Sequence[str] = "*", exclude: str | Sequence[str] = ()) -> list[str]:
    """Zoo names matching ``pattern``, sorted, as timm's ``list_models``: shell-style wildcards
    (``*``, ``?``, ``[...]``; :mod:`fnmatch`), matched without regard to case; a list of patterns
    matches any of them, and names matching ``exclude`` (a pattern or a list) are left out.

    ``list_models("cvt*")`` -> ``["cvt-13", "cvt-21"]``; ``list_models()`` -> every zoo name;
    a pattern that matches nothing gives ``[]``.
    """
    include = _patterns(pattern, "pattern")
    leave = _patterns(exclude, "exclude")

    def hit(name: str, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)

    return [n for n in zoo_names() if hit(n, include) and not hit(n, leave)]


def _patterns(value: str | Sequence[str], name: str) -> list[str]:
    """``value`` (one shell-style pattern or a sequence of them) as a list; ``TypeError`` naming
    ``name`` for anything else (a number, ``None``)."""
    patterns = [value] if isinstance(value, str) else value
    if not isinstance(patterns, Sequence) or not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"list_models: {name} is a pattern or a list of patterns like 'cvt*'; got {value!r}")
    return list(patterns)


def load_spec(
    source: str | os.PathLike[str] | Mapping[str, Any] | Spec,
    *,
    dotlist: Sequence[str] = (),
    **overrides: Any,
) -> Spec:
    """Load and validate a spec from a YAML file, a zoo name, a dict, or a :class:`Spec`.

    ``overrides`` replace values before validation: ``num_classes``, ``input_size`` (int or
    ``[h, w]``), ``in_chans``, ``name``, ``dynamic_size``. ``dotlist`` holds command-line overrides
    (``stages.1.dim=96``, ``head.num_classes=10``: ``KEY=VALUE`` with a YAML value, as
    :func:`archsearch.core.apply_dotlist`), applied first. Raises :class:`SpecError` naming the
    file, line and YAML path of every problem, including impossible shapes (``<command line>`` and
    the override for a problem in an overridden value; ``<override> input_size=100`` for a problem
    the spec has only with a keyword override, such as a stride that no longer divides the input).
    """
    if isinstance(source, Spec):
        if not overrides and not dotlist:
            validate_spec(source)
            return source
        data, smap = source.model_dump(exclude_none=True), source._source or SourceMap()
    elif isinstance(source, Mapping):
        data, smap = dict(source), SourceMap()
    else:
        data, smap = _read(source)
    parsed = [parse_override(o) for o in dotlist]
    try:
        return spec_from_dict(apply_overrides(apply_dotlist(data, parsed), overrides), smap)
    except SpecError as exc:
        error = command_line_issues(exc, parsed, smap.file)
    if overrides:  # an issue the spec has only with them is theirs, wherever it shows
        own = _issues_of(apply_dotlist(data, parsed), smap, parsed)
        error = SpecError([i if str(i) in own else override_issue(i, overrides) for i in error.issues])
    if parsed:  # likewise an issue it has only with the command line's (a stride that no longer fits)
        own = _issues_of(data, smap, [])
        cause = f"{COMMAND_LINE} {' '.join(o.text for o in parsed)}"
        error = SpecError(
            [
                i
                if i.cause or str(i) in own or (i.file or "").startswith(COMMAND_LINE)
                else replace(i, cause=cause)
                for i in error.issues
            ]
        )
    raise error from None


def _issues_of(data: Any, smap: SourceMap, parsed: Sequence[Any]) -> set[str]:
    """The issues ``data`` has without the overrides being traced, as text (empty: none)."""
    try:
        spec_from_dict(data, smap)
    except SpecError as exc:
        return {str(i) for i in command_line_issues(exc, parsed, smap.file).issues}
    return set()


#: The spec path each keyword override sets (an issue inside it is that override's).
_OVERRIDE_PATHS = {"num_classes": ("head",), "in_chans": ("input", "channels"), "input_size": ("input",)}


def override_issue(issue: Issue, overrides: Mapping[str, Any]) -> Issue:
    """``issue`` (of a spec or a space loaded with the keyword ``overrides`` of
    :func:`apply_overrides`, and one it does not have without them) put down to the override that
    caused it (:attr:`Issue.cause`, ``<override> input_size=100``): the one whose path holds the
    issue's (then the file's place, a value the override replaced, is dropped), else the input
    size (which every shape follows), else the first; a shape that no longer fits keeps its file
    and line, shown after the message."""
    inside = [k for k, p in _OVERRIDE_PATHS.items() if k in overrides and issue.path[: len(p)] == p]
    key = (inside or [k for k in ("input_size", *overrides) if k in overrides])[0]
    value = overrides[key]
    shown = "x".join(map(str, value)) if isinstance(value, (list, tuple)) else value
    cause = f"{OVERRIDE} {key}={shown}"
    return replace(issue, cause=cause, file=None, line=None) if inside else replace(issue, cause=cause)


def _read(source: str | os.PathLike[str]) -> tuple[Any, SourceMap]:
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"a spec is a zoo name, a YAML path, a dict or a Spec; got {type(source).__name__} {source!r}"
        )
    if not str(source).strip():
        raise SpecError(
            Issue((), f"an empty name {source!r}", allowed="a YAML path or one of " + ", ".join(zoo_names()))
        )
    path = Path(source)
    bare_name = isinstance(source, str) and os.sep not in source and not source.endswith(".yaml")
    if not path.exists() and bare_name:
        zoo = ZOO_DIR / f"{source}.yaml"
        if not zoo.exists():
            raise SpecError(
                Issue(
                    (),
                    f"no file and no zoo model named {source!r}{_zoo_hint(str(source))}",
                    allowed="a YAML path or one of " + ", ".join(zoo_names()),
                )
            )
        path = source = zoo  # errors in a zoo model name the file to open
    data, smap = read_yaml_file(source, "spec", "a spec")
    if isinstance(data, dict) and "name" not in data:
        data["name"] = path.stem
    return data, smap


def apply_overrides(data: Any, overrides: Mapping[str, Any]) -> Any:
    """``data`` (a spec or space mapping) with ``overrides`` applied: ``num_classes``,
    ``input_size`` (int or ``[h, w]``), ``in_chans``, ``name``, ``dynamic_size``; raises
    :class:`SpecError` for any other key."""
    if not overrides or not isinstance(data, dict):
        return data
    data = dict(data)
    known = {"num_classes", "input_size", "in_chans", "name", "dynamic_size"}
    unknown = set(overrides) - known
    if unknown:
        raise SpecError(Issue((), f"unknown override(s) {sorted(unknown)}", allowed=", ".join(sorted(known))))
    if "num_classes" in overrides:
        data["head"] = {**data.get("head", {}), "num_classes": overrides["num_classes"]}
    if "input_size" in overrides:
        size = overrides["input_size"]
        data["input"] = {**data.get("input", {}), "size": list(size) if isinstance(size, tuple) else size}
    if "in_chans" in overrides:
        data["input"] = {**data.get("input", {}), "channels": overrides["in_chans"]}
    if "name" in overrides:
        data["name"] = overrides["name"]
    if "dynamic_size" in overrides:
        data["dynamic_size"] = overrides["dynamic_size"]
    return data


def is_experiment(data: Mapping[str, Any]) -> bool:
    """Whether the mapping read where a spec or a space was expected is an experiment (it has
    ``objectives`` or a ``space`` and no ``stages``): said in one line instead of an unknown-key
    error per experiment key."""
    return "stages" not in data and ("objectives" in data or "space" in data)


def spec_from_dict(data: Any, source: SourceMap | None = None, *, shapes: bool = True) -> Spec:
    """Validate plain data (as loaded from YAML) into a :class:`Spec`, then (unless ``shapes`` is
    false) check its shapes."""
    source = source or SourceMap()
    if not isinstance(data, dict):
        shown = {} if data is None else {"value": data}
        message = f"a spec must be a mapping of keys (input, stem, stages, head, ...), not {_a(data)}"
        raise source.error((), message, allowed="keys " + ", ".join(Spec.model_fields), **shown)
    if is_experiment(data):  # one line, not one a key
        space = (
            f" (`archsearch space` takes its space, {data['space']})"
            if isinstance(data.get("space"), str)
            else ""
        )
        message = f"this is an experiment, not an architecture spec: `archsearch search` runs it{space}"
        raise source.error((), message, allowed="a spec: a mapping with 'stages' (see `archsearch zoo`)")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(validation_issues(exc, data, source, Spec)) from None
    spec._source = source
    if shapes:
        normalize(spec, source)
    return spec


def _a(value: Any) -> str:
    """``[1]`` -> ``'a list'``: what a value is, in YAML's words."""
    if value is None:
        return "an empty document"
    if isinstance(value, bool):
        return "a boolean"
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(type(value), "a value")


def validate_spec(spec: Spec) -> NormalizedSpec:
    """Check a spec's shapes; return its normalised form."""
    return normalize(spec)


def spec_yaml(data: Mapping[str, Any], name: str | None = None) -> str:
    """A spec (plain data, as ``Spec.model_dump(mode="json")`` or a stored trial gives it) as the
    YAML archsearch writes everywhere (winners, one-shot members, ``archsearch train`` outputs):
    keys in the spec's order, short lists inline, lines up to 100 characters. ``name``, when
    given, replaces the spec's name and comes first. :func:`load_spec` reads it back to the same
    spec."""
    body = dict(data) if name is None else {"name": name, **{k: v for k, v in data.items() if k != "name"}}
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)


def _zoo_hint(name: str) -> str:
    """`` (did you mean 'resnet-50'?)`` for a zoo name given in another case, with ``_`` for
    ``-``, or close to one (``resnet50``, ``cvt13``); ``""`` when none is close."""
    names = zoo_names()
    folded = {n.lower(): n for n in names}
    key = name.lower().replace("_", "-")
    if key in folded:
        return f" (did you mean {folded[key]!r}?)"
    return did_you_mean(key, names)
