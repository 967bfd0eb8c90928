"""Loading specs from files, zoo names or dicts, with errors that point at the line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from .._errors import Issue, SpecError
from ._normalize import NormalizedSpec, normalize
from ._schema import Embed, Mixer, Spec, Stem
from ._yaml import SourceMap, load_yaml_text

__all__ = ["ZOO_DIR", "load_spec", "spec_from_dict", "validate_spec", "zoo_names"]

ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"

#: Field name -> the kinds its discriminated union accepts (for "missing kind" messages).
def _kinds(annotated: Any) -> tuple[str, ...]:
    inner = get_args(annotated)[0]
    return tuple(m.model_fields["kind"].default for m in (get_args(inner) or (inner,)))


_KINDS = {"mixer": _kinds(Mixer), "embed": _kinds(Embed), "stem": _kinds(Stem)}


def zoo_names() -> list[str]:
    """Names of the architectures shipped in ``archsearch/zoo``."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def load_spec(source: str | os.PathLike[str] | Mapping[str, Any] | Spec, **overrides: Any) -> Spec:
    """Load and validate a spec from a YAML file, a zoo name, a dict, or a :class:`Spec`.

    ``overrides`` replace values before validation: ``num_classes``, ``input_size`` (int or
    ``[h, w]``), ``in_chans``, ``name``. Raises :class:`SpecError` naming the file, line and
    YAML path of every problem, including impossible shapes.
    """
    if isinstance(source, Spec):
        if not overrides:
            validate_spec(source)
            return source
        data, smap = source.model_dump(exclude_none=True), source._source or SourceMap()
    elif isinstance(source, Mapping):
        data, smap = dict(source), SourceMap()
    else:
        data, smap = _read(source)
    return spec_from_dict(_apply_overrides(data, overrides), smap)


def _read(source: str | os.PathLike[str]) -> tuple[Any, SourceMap]:
    path = Path(source)
    if not path.exists() and isinstance(source, str) and os.sep not in source and not source.endswith(".yaml"):
        zoo = ZOO_DIR / f"{source}.yaml"
        if not zoo.exists():
            raise SpecError(Issue((), f"no file and no zoo model named {source!r}",
                                  allowed="a YAML path or one of " + ", ".join(zoo_names())))
        path = zoo
    if not path.is_file():
        what = "is a directory, not a spec file" if path.is_dir() else "does not exist"
        raise SpecError(Issue((), f"spec file {what}", file=str(source)))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(Issue((), f"cannot read the spec file: {exc}", file=str(source))) from None
    data, smap = load_yaml_text(text, file=str(source))
    if isinstance(data, dict) and "name" not in data:
        data["name"] = path.stem
    return data, smap


def _apply_overrides(data: Any, overrides: Mapping[str, Any]) -> Any:
    if not overrides or not isinstance(data, dict):
        return data
    data = dict(data)
    known = {"num_classes", "input_size", "in_chans", "name"}
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
    return data


def spec_from_dict(data: Any, source: SourceMap | None = None) -> Spec:
    """Validate plain data (as loaded from YAML) into a :class:`Spec`, then check its shapes."""
    source = source or SourceMap()
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "nothing"
        raise source.error((), f"a spec must be a mapping with keys such as input, stem, stages, head; got a {kind}",
                           allowed=", ".join(Spec.model_fields))
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_issues(exc, data, source)) from None
    spec._source = source
    normalize(spec, source)
    return spec


def validate_spec(spec: Spec) -> NormalizedSpec:
    """Check a spec's shapes; return its normalised form."""
    return normalize(spec)


def _issues(exc: ValidationError, data: Any, source: SourceMap) -> list[Issue]:
    issues: list[Issue] = []
    seen: dict[tuple[Any, ...], int] = {}
    for err in exc.errors(include_url=False):
        path = _data_path(err["loc"], data)
        kind, ctx = err["type"], err.get("ctx") or {}
        value = err.get("input")
        extra: dict[str, Any] = {}
        if kind == "unknown_key":
            path = (*path, ctx["key"])
            message, extra = f"unknown key {ctx['key']!r} in {ctx['model']}", {"allowed": ctx["allowed"]}
        elif kind == "union_tag_invalid":
            path = (*path, "kind")
            message = f"unknown kind {ctx['tag']!r}"
            extra = {"allowed": ctx["expected_tags"].replace("'", "")}
        elif kind == "union_tag_not_found":
            message = "missing 'kind'"
            field = next((p for p in reversed(path) if isinstance(p, str)), "")
            extra = {"allowed": ", ".join(_KINDS.get(str(field), ()))}
        elif kind == "missing":
            message = f"missing required key {path[-1]!r}"
        elif kind == "literal_error":
            message, extra = "not an allowed value", {"value": value, "allowed": ctx["expected"].replace("'", "")}
        else:
            message = err["msg"][0].lower() + err["msg"][1:]
            extra = {"value": value}
        if path in seen:  # alternatives of one union (e.g. a number or a per-block list)
            prev = issues[seen[path]]
            if message not in prev.message:
                issues[seen[path]] = Issue(prev.path, f"{prev.message}, or {message}", prev.value,
                                           prev.allowed, prev.file, prev.line)
            continue
        seen[path] = len(issues)
        issues.append(source.issue(path, message, **extra))
    return issues


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[str | int, ...]:
    """Map pydantic's error location onto the data, dropping union tags it inserts."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            current = current[part]
            path.append(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            path.append(part)
        elif isinstance(part, str) and (isinstance(current, dict) and part.isidentifier()
                                        and part not in _UNION_TAGS and not _is_tag(current, part)):
            path.append(part)  # a missing key
            current = None
    return tuple(path)


_UNION_TAGS = {"int", "float", "str", "bool", "list", "dict"}


def _is_tag(current: dict[str, Any], part: str) -> bool:
    return current.get("kind") == part
