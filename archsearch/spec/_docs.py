"""Reference tables of the grammar, generated from the schema so the docs cannot drift."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ..kinds import EMBEDS, MIXERS, STEMS
from ._schema import (
    Head,
    InputSpec,
    Spec,
    Stage,
)

__all__ = ["schema_markdown"]

_SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("spec (the root)", Spec),
    ("input", InputSpec),
    *((f"stem: {kind.name}", kind.schema) for kind in STEMS.values()),
    ("stages[i]", Stage),
    *((f"embed: {kind.name}", kind.schema) for kind in EMBEDS.values()),
    *((f"mixer: {kind.name}", kind.schema) for kind in MIXERS.values()),
    ("head", Head),
]


_NAMES: dict[type, str] = {InputSpec: "input", Stage: "stage", Head: "head"}


def _type_name(annotation: Any) -> str:
    """``int ≤ 65,536``, ``list (≤ 1,000) of int``: the type with the upper bounds the schema
    checks (:mod:`archsearch.core`'s ``MAX_*`` constants), read from the annotation itself."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extras = get_args(annotation)
        metadata = [m for extra in extras for m in (getattr(extra, "metadata", None) or [extra])]
        name = _type_name(inner)
        longest = next((m.max_length for m in metadata if getattr(m, "max_length", None) is not None), None)
        if longest is not None and name.startswith("list of ") and get_origin(inner) is list:
            name = f"list (≤ {longest:,}) of {name.removeprefix('list of ')}"
        for attr, sign in (("le", "≤"), ("lt", "<")):
            bound = next((getattr(m, attr) for m in metadata if getattr(m, attr, None) is not None), None)
            if bound is not None:
                name += f" {sign} {bound:,}" if isinstance(bound, int) else f" {sign} {bound:g}"
        return name
    if origin is Literal:
        return " \\| ".join(str(a) for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in get_args(annotation) if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        kind = annotation.model_fields.get("kind")
        return (
            f"{{kind: {kind.default}}}" if kind is not None else _NAMES.get(annotation, annotation.__name__)
        )
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "—"
    if isinstance(value, BaseModel):
        kind = getattr(value, "kind", None)
        return f"`{{kind: {kind}}}`" if kind else "`{}`"
    return f"`{value}`"


def schema_markdown() -> str:
    """Markdown tables: one per schema object, each field with its type, default and meaning."""
    parts = []
    for title, model in _SECTIONS:
        doc = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        rows = [f"#### `{title}`", "", doc, "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if name == "kind":
                continue
            text = (field.description or "").replace("\n", " ").replace("|", "\\|")
            # pydantic moves a top-level ``Annotated[..., Field(le=...)]``'s bounds to field.metadata
            annotation: Any = field.annotation
            if field.metadata:
                annotation = typing.Annotated[(annotation, *field.metadata)]
            rows.append(f"| `{name}` | {_type_name(annotation)} | {_default(field)} | {text} |")
        if len(rows) == 6:
            rows.append("| — | | | no keys besides `kind` |")
        parts.append("\n".join(rows))
    return ("\n\n".join(parts) + "\n").replace("``", "`")
