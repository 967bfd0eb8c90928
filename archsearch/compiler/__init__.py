"""The compiler: one ``build(spec) -> nn.Module`` for every zoo model and every trial."""

from __future__ import annotations

import os
from typing import Any

from ..ops import MapStage, TokenStage
from ..spec import NormalizedSpec, Spec, load_spec, normalize
from ._features import FeatureInfo, FeatureNet
from ._model import ArchNet, ClassifierHead
from ._size import size_dependence
from ._weights import resample_state_dict

__all__ = [
    "ArchNet",
    "ClassifierHead",
    "FeatureInfo",
    "FeatureNet",
    "MapStage",
    "TokenStage",
    "build",
    "create_model",
    "resample_state_dict",
    "size_dependence",
]


def build(spec: Spec | NormalizedSpec | str | os.PathLike[str]) -> ArchNet:
    """Compile a spec (or a normalised spec, a YAML path or a zoo name) into a PyTorch model."""
    if isinstance(spec, NormalizedSpec):
        plan = spec
    else:
        plan = normalize(spec if isinstance(spec, Spec) else load_spec(spec))
    return ArchNet(plan)


def create_model(name: str | os.PathLike[str], **overrides: Any) -> ArchNet:
    """Build a zoo model (or a YAML file) with overrides: ``num_classes``, ``input_size``,
    ``in_chans``, ``dynamic_size``. ``create_model("cvt-13", num_classes=10, input_size=160)``;
    ``create_model("deit-ti", dynamic_size=True)`` takes any input size (timm's
    ``dynamic_img_size=True``)."""
    return build(load_spec(name, **overrides))
