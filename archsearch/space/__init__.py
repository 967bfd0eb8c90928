"""Search spaces: the spec grammar with choice nodes, sampled through a "suggest" interface."""

from ._load import load_space
from ._nodes import Choice, FloatRange, IntRange, Node, size_text
from ._pieces import fill_table, space_pieces
from ._space import Bound, Candidate, Constraints, Dimension, Sample, SearchSpace
from ._suggest import DefaultSuggest, FixedSuggest, OptunaSuggest, RandomSuggest, Scalar, Suggest

__all__ = [
    "Bound",
    "Candidate",
    "Choice",
    "Constraints",
    "DefaultSuggest",
    "Dimension",
    "FixedSuggest",
    "FloatRange",
    "IntRange",
    "Node",
    "OptunaSuggest",
    "RandomSuggest",
    "Sample",
    "Scalar",
    "SearchSpace",
    "Suggest",
    "fill_table",
    "load_space",
    "size_text",
    "space_pieces",
]
