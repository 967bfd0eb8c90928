"""The strict base model every configuration object derives from, and the field types it shares."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Act",
    "PerBlockFloat",
    "PerBlockInt",
    "PositiveInt",
    "StrictModel",
    "describe_model",
    "shorthand_kind",
]

PositiveInt = Annotated[int, Field(gt=0)]
#: A value that is either one scalar for the whole stage or a list with one item per block.
PerBlockInt = PositiveInt | Annotated[list[PositiveInt], Field(min_length=1)]
Act = Literal["relu", "gelu", "quick_gelu", "silu"]
PerBlockFloat = (
    Annotated[float, Field(gt=0)] | Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)]
)


class StrictModel(BaseModel):
    """Base of every spec, space and experiment object: unknown keys are errors (listing the
    allowed ones), no type coercion (``"3"`` is not a depth), frozen (hashable, shareable), and
    each field's docstring is its description (the docs are generated from it)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)


def describe_model(cls: type[BaseModel]) -> str:
    """``ConvMixer (kind 'conv')``: how error messages name a schema object."""
    kind = cls.model_fields.get("kind")
    if kind is not None and kind.default is not None:
        return f"{cls.__name__} (kind {kind.default!r})"
    return cls.__name__


def shorthand_kind(value: Any) -> Any:
    """``mixer: conv`` is short for ``mixer: {kind: conv}``."""
    return {"kind": value} if isinstance(value, str) else value
