"""The spec grammar: schema, YAML loading with lines, normalisation."""

from ._hash import canonical_spec, spec_hash
from ._load import ZOO_DIR, load_spec, spec_from_dict, validate_spec, zoo_names
from ._normalize import BlockPlan, FeatureShape, NormalizedSpec, StagePlan, normalize
from ._schema import (
    AttentionMixer,
    BlockEmbed,
    ConvEmbed,
    ConvMixer,
    ConvStem,
    Head,
    InputSpec,
    MBConvEmbed,
    MBConvMixer,
    MhsaMixer,
    MobileViTMixer,
    NoEmbed,
    PatchEmbed,
    ResNetStem,
    Spec,
    Stage,
)
from ._yaml import SourceMap, load_yaml_text

__all__ = [
    "ZOO_DIR",
    "AttentionMixer",
    "BlockEmbed",
    "BlockPlan",
    "ConvEmbed",
    "ConvMixer",
    "ConvStem",
    "FeatureShape",
    "Head",
    "InputSpec",
    "MBConvEmbed",
    "MBConvMixer",
    "MhsaMixer",
    "MobileViTMixer",
    "NoEmbed",
    "NormalizedSpec",
    "PatchEmbed",
    "ResNetStem",
    "SourceMap",
    "Spec",
    "Stage",
    "StagePlan",
    "canonical_spec",
    "load_spec",
    "load_yaml_text",
    "normalize",
    "spec_from_dict",
    "spec_hash",
    "validate_spec",
    "zoo_names",
]
