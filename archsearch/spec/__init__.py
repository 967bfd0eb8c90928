"""The spec grammar: schema, YAML loading with lines, normalisation."""

from ._hash import canonical_spec, spec_hash
from ._load import ZOO_DIR, load_spec, spec_from_dict, validate_spec, zoo_names
from ._normalize import BlockPlan, FeatureShape, NormalizedSpec, StagePlan, normalize, window_geometry
from ._schema import (
    AttentionMixer,
    BlockEmbed,
    ConvEmbed,
    ConvMixer,
    DwConvMixer,
    Head,
    InputSpec,
    MergeEmbed,
    MhsaMixer,
    NoEmbed,
    PatchEmbed,
    ResNetStem,
    Spec,
    Stage,
    T2TEmbed,
    WindowMixer,
)
from ._yaml import SourceMap, load_yaml_text

__all__ = [
    "ZOO_DIR",
    "AttentionMixer",
    "BlockEmbed",
    "BlockPlan",
    "ConvEmbed",
    "ConvMixer",
    "DwConvMixer",
    "FeatureShape",
    "Head",
    "InputSpec",
    "MergeEmbed",
    "MhsaMixer",
    "NoEmbed",
    "NormalizedSpec",
    "PatchEmbed",
    "ResNetStem",
    "SourceMap",
    "Spec",
    "Stage",
    "StagePlan",
    "T2TEmbed",
    "WindowMixer",
    "canonical_spec",
    "load_spec",
    "load_yaml_text",
    "normalize",
    "spec_from_dict",
    "spec_hash",
    "validate_spec",
    "window_geometry",
    "zoo_names",
]
