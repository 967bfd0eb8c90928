"""The low layer every other folder may import: the strict base model, YAML with lines, pydantic
errors as line-numbered issues, the plan types normalisation produces, geometry helpers and cost
counting. It imports nothing else of archsearch (except the error types)."""

from ._bounds import (
    MAX_BLOCKS,
    MAX_CLASSES,
    MAX_DEPTH,
    MAX_INPUT_SIDE,
    MAX_KERNEL,
    MAX_LIST,
    MAX_RANGE_VALUES,
    MAX_RATIO,
    MAX_TRIALS,
    MAX_WIDTH,
    MAX_YAML_NODES,
)
from ._counting import Cost
from ._geometry import and_words, as_list, conv_out, make_divisible, pool_out_ceil, scalar, window_geometry
from ._model import (
    Act,
    Depth,
    InputSide,
    Kernel,
    PerBlockFloat,
    PerBlockInt,
    PositiveInt,
    Ratio,
    StrictModel,
    describe_model,
    shorthand_kind,
)
from ._output import output_file_problem
from ._overrides import COMMAND_LINE, OVERRIDE, Override, apply_dotlist, command_line_issues, parse_override
from ._plan import BlockPlan, CheckContext, FeatureShape, NormalizedSpec, Path, StagePlan
from ._text import shown
from ._validation import (
    BOUND_WORDS,
    FieldIssue,
    did_you_mean,
    expected_noun,
    union_kinds,
    validation_issues,
)
from ._yaml import MAX_FILE_BYTES, SourceMap, load_yaml_text, read_yaml_file

__all__ = [
    "BOUND_WORDS",
    "COMMAND_LINE",
    "MAX_BLOCKS",
    "MAX_CLASSES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INPUT_SIDE",
    "MAX_KERNEL",
    "MAX_LIST",
    "MAX_RANGE_VALUES",
    "MAX_RATIO",
    "MAX_TRIALS",
    "MAX_WIDTH",
    "MAX_YAML_NODES",
    "OVERRIDE",
    "Act",
    "BlockPlan",
    "CheckContext",
    "Cost",
    "Depth",
    "FeatureShape",
    "FieldIssue",
    "InputSide",
    "Kernel",
    "NormalizedSpec",
    "Override",
    "Path",
    "PerBlockFloat",
    "PerBlockInt",
    "PositiveInt",
    "Ratio",
    "SourceMap",
    "StagePlan",
    "StrictModel",
    "and_words",
    "apply_dotlist",
    "as_list",
    "command_line_issues",
    "conv_out",
    "describe_model",
    "did_you_mean",
    "expected_noun",
    "load_yaml_text",
    "make_divisible",
    "output_file_problem",
    "parse_override",
    "pool_out_ceil",
    "read_yaml_file",
    "scalar",
    "shorthand_kind",
    "shown",
    "union_kinds",
    "validation_issues",
    "window_geometry",
]
