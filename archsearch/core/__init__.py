"""The low layer every other folder may import: the strict base model, YAML with lines, pydantic
errors as line-numbered issues, the plan types normalisation produces, geometry helpers and cost
counting. It imports nothing else of archsearch (except the error types)."""

from ._counting import Cost
from ._geometry import and_words, as_list, conv_out, make_divisible, pool_out_ceil, scalar, window_geometry
from ._model import Act, PerBlockFloat, PerBlockInt, PositiveInt, StrictModel, describe_model, shorthand_kind
from ._plan import BlockPlan, CheckContext, FeatureShape, NormalizedSpec, Path, StagePlan
from ._validation import union_kinds, validation_issues
from ._yaml import MAX_FILE_BYTES, SourceMap, load_yaml_text, read_yaml_file

__all__ = [
    "MAX_FILE_BYTES",
    "Act",
    "BlockPlan",
    "CheckContext",
    "Cost",
    "FeatureShape",
    "NormalizedSpec",
    "Path",
    "PerBlockFloat",
    "PerBlockInt",
    "PositiveInt",
    "SourceMap",
    "StagePlan",
    "StrictModel",
    "and_words",
    "as_list",
    "conv_out",
    "describe_model",
    "load_yaml_text",
    "make_divisible",
    "pool_out_ceil",
    "read_yaml_file",
    "scalar",
    "shorthand_kind",
    "union_kinds",
    "validation_issues",
    "window_geometry",
]
