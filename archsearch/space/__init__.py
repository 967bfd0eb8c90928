"""Search spaces: the spec grammar with choice nodes, sampled through a "suggest" interface."""

from ._nodes import Choice, FloatRange, IntRange, Node, size_text
from ._space import Bound, Candidate, Constraints, Dimension, Sample, SearchSpace, load_space
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
    "load_space",
    "size_text",
]
