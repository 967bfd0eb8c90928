"""Small archsearch nets that train in a second on digits, for the evaluator tests."""

from __future__ import annotations

from typing import Any

import archsearch


def tiny_hybrid(size: int = 16, dim: int = 16, channels: int = 1, classes: int = 10) -> archsearch.ArchNet:
    """Two stages: a conv bottleneck at stride 2, then attention over the 4x4 (at 16 px) tokens."""
    spec: dict[str, Any] = {
        "name": "tiny-hybrid",
        "input": {"size": size, "channels": channels},
        "stages": [
            {
                "embed": {"kind": "conv", "kernel": 3, "stride": 2, "norm": "batch"},
                "dim": dim,
                "depth": 1,
                "mixer": "conv",
            },
            {
                "embed": {"kind": "conv", "kernel": 3, "stride": 2},
                "dim": 2 * dim,
                "depth": 1,
                "mixer": {"kind": "attention", "heads": 2},
                "mlp_ratio": 2,
                "pos_embed": "absolute",
            },
        ],
        "head": {"num_classes": classes},
    }
    return archsearch.build(archsearch.load_spec(spec))
