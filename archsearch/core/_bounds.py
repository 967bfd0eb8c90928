"""The largest sizes a spec, search space or experiment may ask for, in one place.

Every bound is checked while the file is validated, before anything of that size is allocated,
so that a typo (``depth: 1000000000000``) is one line naming the file, the line and the bound
instead of a long run ending in ``MemoryError``. The values are far above every published
backbone and every shipped zoo model, space and experiment; ``archsearch schema --markdown``
shows them next to each field, and the README lists them.
"""

from __future__ import annotations

__all__ = [
    "MAX_BLOCKS",
    "MAX_CLASSES",
    "MAX_DEPTH",
    "MAX_INPUT_SIDE",
    "MAX_KERNEL",
    "MAX_LIST",
    "MAX_RANGE_VALUES",
    "MAX_RATIO",
    "MAX_TRIALS",
    "MAX_WIDTH",
    "MAX_YAML_NODES",
]

#: Blocks in one stage (``depth``, each item of ``depths``).
MAX_DEPTH = 1000
#: Blocks in the whole network, all stages together.
MAX_BLOCKS = 10_000
#: Channels, embedding dims, heads, token dims, expansions, strides, windows, patches, classes of a
#: 1x1 conv and batch sizes: any other positive integer size of the schema.
MAX_WIDTH = 65_536
#: Classes of the classifier head (``head.num_classes``).
MAX_CLASSES = 100_000
#: Side of the input image, in pixels (``input.size``, each of ``[height, width]``).
MAX_INPUT_SIDE = 8192
#: Side of a convolution kernel.
MAX_KERNEL = 63
#: Items of any list in a spec: per-block values, stages, ``depths``, T2T kernels and strides.
MAX_LIST = 1000
#: Hidden/embedding ratios (``mlp_ratio``).
MAX_RATIO = 64.0
#: Values one integer range of a search space may take (``{int: [low, high], step}``).
MAX_RANGE_VALUES = 1_000_000
#: Trials of one experiment.
MAX_TRIALS = 1_000_000
#: Values (mappings, lists and scalars) a YAML file may expand to, aliases counted each time they
#: are used; keeps ``&a [*b, *b, ...]`` chains ("billion laughs") from filling the memory.
MAX_YAML_NODES = 200_000
