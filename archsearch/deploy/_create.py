"""``create_model`` with weights: a zoo name or spec file, built and loaded in one call."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..compiler import ArchNet
from ..compiler import create_model as _build_named
from ._weights import load_weights

__all__ = ["create_model"]


def create_model(
    name: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> ArchNet:
    """Build a zoo model (or a YAML file) with overrides (``num_classes``, ``input_size``,
    ``in_chans``, ``dynamic_size``), then load ``weights`` into it if given (a safetensors file, a
    ``torch.save`` state dict or a mapping; checked key by key, see :func:`load_weights`):
    ``create_model("winner.yaml", weights="winner.safetensors")`` for a one-shot winner.

    Raises :class:`~archsearch.SpecError` for a bad spec and :class:`~archsearch.ExportError`
    for weights that cannot be read or do not fit."""
    model = _build_named(name, **overrides)
    if weights is not None:
        load_weights(model, weights)
    return model
