"""``create_model`` with weights: a zoo name or spec file, built and loaded in one call."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..compiler import ArchNet, FeatureNet
from ..compiler import create_model as _build_named
from ._weights import load_weights

__all__ = ["create_model"]


def create_model(
    name: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | int | None = None,
    **overrides: Any,
) -> ArchNet | FeatureNet:
    """Build a zoo model (or a YAML file) with overrides (``num_classes``, ``input_size``,
    ``in_chans``, ``dynamic_size``), then load ``weights`` into it if given (a safetensors file, a
    ``torch.save`` state dict or a mapping; checked key by key, see :func:`load_weights`):
    ``create_model("winner.yaml", weights="winner.safetensors")`` for a one-shot winner.

    ``features_only=True`` returns the backbone without its head as a
    :class:`~archsearch.compiler.FeatureNet` (timm's convention): its forward gives the output maps
    of the stages in ``out_indices`` (default all; negative from the end; an int ``k``: the last
    ``k``, as timm), and its
    ``feature_info.channels()`` / ``.reduction()`` their channels and strides, for a detection or
    segmentation head. ``weights`` are those of the whole model (the head's are dropped after
    loading).

    Raises :class:`~archsearch.SpecError` for a bad spec, :class:`~archsearch.ExportError`
    for weights that cannot be read or do not fit, and ``ValueError`` for ``out_indices`` without
    ``features_only`` or out of the model's stages, ``TypeError`` for a ``features_only`` that
    is not a bool."""
    if not isinstance(features_only, bool):
        raise TypeError(
            f"features_only: expected True or False (got {features_only!r}); allowed: True (the "
            "backbone's stage maps) or False (the whole model)"
        )
    if out_indices is not None and not features_only:
        raise ValueError("out_indices chooses the stages of a features_only model: add features_only=True")
    model = _build_named(name, **overrides)
    if weights is not None:
        load_weights(model, weights)
    return FeatureNet(model, out_indices) if features_only else model
