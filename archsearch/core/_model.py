"""The strict base model every configuration object derives from, and the field types it shares."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._bounds import MAX_DEPTH, MAX_INPUT_SIDE, MAX_KERNEL, MAX_LIST, MAX_RATIO, MAX_WIDTH

__all__ = [
    "Act",
    "Depth",
    "InputSide",
    "Kernel",
    "PerBlockFloat",
    "PerBlockInt",
    "PositiveInt",
    "Ratio",
    "StrictModel",
    "describe_model",
    "shorthand_kind",
]

#: A positive size: channels, dims, heads, strides, windows... (at most :data:`MAX_WIDTH`).
PositiveInt = Annotated[int, Field(gt=0, le=MAX_WIDTH)]
#: Blocks in one stage (at most :data:`MAX_DEPTH`).
Depth = Annotated[int, Field(gt=0, le=MAX_DEPTH)]
#: Side of a convolution kernel (at most :data:`MAX_KERNEL`).
Kernel = Annotated[int, Field(gt=0, le=MAX_KERNEL)]
#: Side of the input image in pixels (at most :data:`MAX_INPUT_SIDE`).
InputSide = Annotated[int, Field(gt=0, le=MAX_INPUT_SIDE)]
#: A positive hidden/embedding ratio (at most :data:`MAX_RATIO`).
Ratio = Annotated[float, Field(gt=0, le=MAX_RATIO)]
#: A value that is either one scalar for the whole stage or a list with one item per block
#: (at most :data:`MAX_LIST` items).
PerBlockInt = PositiveInt | Annotated[list[PositiveInt], Field(min_length=1, max_length=MAX_LIST)]
Act = Literal["relu", "gelu", "quick_gelu", "silu"]
PerBlockFloat = Ratio | Annotated[list[Ratio], Field(min_length=1, max_length=MAX_LIST)]


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
